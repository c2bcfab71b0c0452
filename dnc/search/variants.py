"""The variants of a grid sub-stage: which of them a capped stage tries (``capped_variants``)
and the Optuna params a grid trial records (``varied_params``), so that Optuna's plots and
optuna-dashboard show the choices it varied."""

from __future__ import annotations

import random

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from dnc.plugins import Candidate, SearchSpace, candidate_key
from dnc.suggest import ParamRecord, RecordingSuggest, ReplaySuggest


def capped_variants(
    variants: list[Candidate], base: Candidate, most: int, seed: str
) -> list[Candidate]:
    """``variants`` of ``base`` cut to the base's own variant (if among them) and at most
    ``most`` distinct others (0: all), chosen by ``seed`` and kept in their order.

    Every worker of a search computes the same list (the base is recorded on the study, the
    seed names the search's seed, the stage and the sub-stage), so they queue the same variants.
    The base's own variant is kept because the search has it already: it costs no trial and
    the sub-stage compares the others with it.

    Example:
        >>> base = {"activation": "relu"}
        >>> grid = [{"activation": a} for a in ("relu", "tanh", "elu", "gelu")]
        >>> [v["activation"] for v in capped_variants(grid, base, 2, "0/arch/activation")]
        ['relu', 'elu', 'gelu']
    """
    if not most:
        return variants
    own = candidate_key(base)
    distinct = list(dict.fromkeys(candidate_key(v) for v in variants))
    others = [k for k in distinct if k != own]
    if len(others) <= most:
        return variants
    keep = {own, *random.Random(seed).sample(others, most)}
    kept: list[Candidate] = []
    for variant in variants:
        key = candidate_key(variant)
        if key in keep:
            keep.discard(key)  # each distinct variant once
            kept.append(variant)
    return kept


def varied_params(space: SearchSpace, variants: list[Candidate]) -> dict[str, BaseDistribution]:
    """The choices a grid sub-stage varies (keys whose value differs between ``variants``),
    each with the distribution the space samples it from (replayed on the variants), or a
    categorical over the variants' values for a key the space derives."""
    if not variants:
        return {}
    differs = [k for k in variants[0] if len({repr(v.get(k)) for v in variants}) > 1]
    asked: dict[str, ParamRecord] = {}
    for variant in variants:
        space.sample(RecordingSuggest(ReplaySuggest(variant), asked))
    out: dict[str, BaseDistribution] = {}
    for key in differs:
        rec = asked.get(key)
        if rec is None or rec.kind == "categorical":
            values = rec.choices if rec else tuple(dict.fromkeys(v.get(key) for v in variants))
            if all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
                out[key] = CategoricalDistribution(values)
        elif rec.kind == "int":
            out[key] = IntDistribution(int(rec.low), int(rec.high), log=rec.log)
        else:
            out[key] = FloatDistribution(rec.low, rec.high, log=rec.log)
    return out


def suggest_param(trial: optuna.Trial, name: str, dist: BaseDistribution) -> None:
    """Ask ``trial`` for ``name`` under ``dist`` (a queued trial answers its queued value);
    nothing when the study already has ``name`` under an incompatible distribution."""
    try:
        if isinstance(dist, CategoricalDistribution):
            trial.suggest_categorical(name, dist.choices)
        elif isinstance(dist, IntDistribution):
            trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, FloatDistribution):
            trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    except ValueError:
        pass


__all__ = ["capped_variants", "suggest_param", "varied_params"]
