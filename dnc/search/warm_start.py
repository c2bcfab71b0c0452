"""Warm start (``search.warm_start``): the first BO stage of a search trains the best distinct
candidates of a finished search first (the paper's CIFAR-10 to CIFAR-100 transfer).

1. ``open_source`` reads the source (another storage, a run folder's ``optuna.db``, or this
   search's own storage) before anything trains, and refuses one that cannot start this search
   (``UserError``, one line): a missing storage or search, another search space, no completed
   trial, or no candidate that fits this space.
2. ``plan`` rebuilds the source's candidates, best first, through this space
   (``TransferSuggest``): the stage's groups take the source's values, numeric ones clamped
   into this space's bounds; a candidate with a choice this space lacks is skipped; the rest
   of the candidate is the stage's base, and whatever depends on the data (a sparse layer's
   fan-out) is derived again. Duplicates after the rebuild and candidates this search already
   tried are dropped. Each clamp and skip is a warning.
3. ``start`` records the plan on the stage's study (``records.WARM_START``) once, under the
   search's lock, so a resumed stage or a second worker never plans (nor queues) again;
   ``queue_missing`` queues each planned candidate (``study.enqueue_trial``, marked with
   ``records.WARM_START_FROM``) that has no trial yet, or whose trial's worker died. Queued
   trials answer the space's ``suggest_*`` calls with their params, so the sampler is not
   asked: they are the stage's first prior states, and the ramp BO's Sobol points follow from
   the first point on (``RampBOSampler(warm_trials=...)``).
4. With ``observations`` (off by default), ``observe`` rebuilds every completed source trial
   (up to ``MAX_OBSERVATIONS``, best first) the same way, with its search loss and ``(fp, fc)``,
   and ``record`` keeps them beside the plan: the ramp BO's GPs learn from them as a related
   task (``dnc.bo.model.SourceTask``), so its steps, not only its first trials, start from what
   the source learnt. Recorded once, they are what every worker and a resumed stage use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dnc.plugins import Candidate, CostEvaluator, SearchSpace, UserError, candidate_key
from dnc.search import records
from dnc.search.objective import loss_terms
from dnc.search.ranking import ranked_trials
from dnc.search.settings import WarmStartSettings
from dnc.search.storage import load, open_storage, recorded_cost, search_studies, searches_in
from dnc.secrets import mask_url
from dnc.suggest import TransferSuggest

log = logging.getLogger(__name__)

KEY = "search.warm_start"
MAX_OBSERVATIONS = 200
"""The source trials (best first) a warm-started stage's GPs learn from, at most."""


@dataclass(frozen=True)
class SourceTrial:
    """A completed trial of the source: where it came from (``<search>/<stage>/<number>``),
    its search loss, and its values (its candidate, with its raw params over it)."""

    origin: str
    loss: float
    values: Mapping[str, Any]
    parts: tuple[float, float] | None = None  # (fp, fc) under the source's own cost


@dataclass(frozen=True)
class WarmSource:
    """A finished search to start from: ``label`` names it (``<search> in <storage>``), and
    ``trials`` are its completed trials, best first."""

    label: str
    trials: tuple[SourceTrial, ...]


@dataclass(frozen=True)
class Entry:
    """A planned warm-started trial: the source trial it came from and the params queued."""

    origin: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class Observation:
    """A source trial as a warm-started stage's GPs see it: where it came from, its params
    rebuilt for this stage, its search loss and ``(fp, fc)`` (``None``: not recorded)."""

    origin: str
    params: Mapping[str, Any]
    loss: float
    parts: tuple[float, float] | None


def open_source(
    settings: WarmStartSettings,
    *,
    search: str,
    storage: optuna.storages.BaseStorage,
    storage_url: str,
    space: SearchSpace,
    groups: Sequence[str],
) -> WarmSource:
    """The source ``settings`` name, checked to be able to start ``search`` (in ``storage``
    at ``storage_url``, searching ``space``; its first BO stage searches ``groups``)."""
    source, url = _source_storage(settings, storage, storage_url)
    same_storage = source is storage
    name = _source_search(settings.search, source, url, own=search if same_storage else None)
    if same_storage and name == search:
        raise UserError(f"{KEY}.search={name!r} is this search itself: name a finished one")
    studies = search_studies(source, name)
    recorded = load(source, studies[0]).user_attrs.get(records.SETTINGS, {})
    theirs = recorded.get("space")
    if theirs is not None and theirs != space.name:
        raise UserError(
            f"{KEY}: search {name!r} searched space {theirs!r}, this search searches "
            f"{space.name!r}; a warm start needs the same search space"
        )
    trials = tuple(_completed(source, name, studies))
    if not trials:
        raise UserError(f"{KEY}.search={name!r} has no completed trial to start from")
    reasons = []
    for trial in trials:
        try:
            rebuild(trial, space, groups, {})
            break
        except (KeyError, ValueError, TypeError) as err:
            reasons.append(str(err))
    else:
        raise UserError(
            f"{KEY}: none of the {len(trials)} completed candidates of search {name!r} fits "
            f"search space {space.name!r} as configured here (the best: {reasons[0]})"
        )
    return WarmSource(f"{name} in {_location(url)}", trials)


def check_resumed(
    settings: WarmStartSettings, recorded: str, search: str, stage: str, storage_url: str
) -> None:
    """A resumed ``stage`` of ``search`` (at ``storage_url``), or another worker, that names a
    warm start must name the one the stage recorded (``recorded``, the source's label), whose
    plan it runs: ``UserError`` otherwise. Nothing is opened: the source need not be there."""
    url = _given_url(settings, storage_url)
    # the place as labels say it now, and as they said it before SQLite paths were absolute
    for place in (f" in {_location(url)}", f" in {mask_url(url)}"):
        if recorded.endswith(place) and settings.search in (None, recorded[: -len(place)]):
            return
    given = f"{settings.search or '(the only other search)'} in {_location(url)}"
    raise UserError(
        f"{KEY}: stage {stage} of search {search!r} in this storage was warm-started from "
        f"{recorded}, this run names {given}: run it with the same warm start (or none), "
        "or give this one another search.name"
    )


def _given_url(settings: WarmStartSettings, storage_url: str) -> str:
    """The URL of the storage ``settings`` names (``storage_url``, this search's, by default)."""
    if settings.run_dir is not None:
        return f"sqlite:///{Path(settings.run_dir) / 'optuna.db'}"
    return settings.storage if settings.storage is not None else storage_url


def _location(url: str) -> str:
    """Where a source is, as its label says: ``url`` masked, an SQLite file's path absolute
    (so that a resumed run in another folder names the same file alike)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != f"{prefix}:memory:":
        return prefix + str(Path(url[len(prefix) :]).resolve())
    return mask_url(url)


def _source_storage(
    settings: WarmStartSettings, storage: optuna.storages.BaseStorage, storage_url: str
) -> tuple[optuna.storages.BaseStorage, str]:
    """The source's storage and URL (this search's own when none is named)."""
    if settings.run_dir is not None:
        folder = Path(settings.run_dir)
        if not folder.is_dir():
            raise UserError(f"{KEY}.run_dir={str(folder)!r}: no such directory")
        if not (folder / "optuna.db").is_file():
            raise UserError(
                f"{KEY}.run_dir={str(folder)!r} holds no optuna.db: give a search's run folder"
            )
    elif settings.storage is not None:
        file = settings.storage.removeprefix("sqlite:///")
        if file != settings.storage and not Path(file).is_file():
            raise UserError(f"{KEY}.storage={mask_url(settings.storage)!r}: no such SQLite file")
    else:
        return storage, storage_url
    url = _given_url(settings, storage_url)
    if url == storage_url:
        return storage, storage_url
    try:
        return open_storage(url), url
    except UserError as err:
        raise UserError(f"{KEY}: {err}") from None


def _source_search(
    name: str | None, storage: optuna.storages.BaseStorage, url: str, own: str | None
) -> str:
    """The source search's name: ``name``, checked; the only search besides ``own`` when
    ``None``."""
    found = [s for s in searches_in(storage) if s != own]
    where = mask_url(url)
    if name is None:
        if len(found) != 1:
            raise UserError(
                f"{KEY}: {where} holds {len(found)} other searches ({', '.join(found) or 'none'}); "
                f"name one with {KEY}.search=NAME"
            )
        return found[0]
    if name not in found and name != own:
        raise UserError(
            f"{KEY}.search={name!r}: no such search in {where}; it holds: "
            f"{', '.join(found) or 'none'}"
        )
    return name


def _completed(
    storage: optuna.storages.BaseStorage, search: str, studies: Sequence[str]
) -> list[SourceTrial]:
    """The completed trials of ``search``, best first (as ``ranked_trials`` ranks them: a
    Pareto stage's for the search's ``wc``), with their ``(fp, fc)`` where the source's cost
    can say."""
    params, costs = {}, {}
    for name in studies:
        study = load(storage, name)
        stage = name.rsplit("/", 1)[-1]
        costs[stage] = _cost(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            params[(str(t.user_attrs.get(records.STAGE, stage)), t.number)] = t.params
    return [
        SourceTrial(
            f"{search}/{r.stage}/{r.number}",
            r.loss,
            {**r.candidate, **params.get((r.stage, r.number), {})},
            _parts(r.figures, costs.get(r.stage)),
        )
        for r in ranked_trials(storage, search)
    ]


def _cost(study: optuna.Study) -> CostEvaluator | None:
    """The cost a source stage was scored with (``None``: not recorded, or not installed)."""
    try:
        return recorded_cost(study)
    except UserError:
        return None


def _parts(figures: Mapping[str, float], cost: CostEvaluator | None) -> tuple[float, float] | None:
    """A source trial's ``(fp, fc)`` (``None``: its cost is unknown, or the figures lack it)."""
    if cost is None or not figures:
        return None
    try:
        fp, fc = loss_terms(figures, cost)
    except (KeyError, TypeError, ValueError):
        return None
    return (float(fp), float(fc)) if math.isfinite(fp) and math.isfinite(fc) else None


def rebuild(
    trial: SourceTrial, space: SearchSpace, groups: Sequence[str], base: Mapping[str, Any]
) -> tuple[Candidate, dict[str, Any], list[str]]:
    """The source trial as a candidate of ``space`` searching ``groups`` (the rest at
    ``base``): the candidate, its searched params, and the names clamped into bounds."""
    suggest = TransferSuggest(trial.values, groups, base)
    candidate = space.sample(suggest)
    return candidate, suggest.params, suggest.clamped


def plan(
    source: WarmSource,
    *,
    space: SearchSpace,
    groups: Sequence[str],
    base: Mapping[str, Any],
    tried: set[Any],
    slots: int,
) -> list[Entry]:
    """Up to ``slots`` distinct rebuilt candidates of ``source``, best first, none of them
    ``tried`` (warnings for those clamped or skipped)."""
    entries: list[Entry] = []
    seen = set(tried)
    for trial in source.trials:
        if len(entries) == slots:
            break
        try:
            candidate, params, clamped = rebuild(trial, space, groups, base)
        except (KeyError, ValueError, TypeError) as err:
            log.warning("warm start: %s skipped (%s)", trial.origin, err)
            continue
        key = candidate_key(candidate)
        if key in seen:
            continue
        seen.add(key)
        if clamped:
            was = ", ".join(f"{n}={trial.values.get(n)!r} -> {params[n]!r}" for n in clamped)
            log.warning("warm start: %s clamped into this space's bounds (%s)", trial.origin, was)
        entries.append(Entry(trial.origin, params))
    return entries


def observe(
    source: WarmSource, *, space: SearchSpace, groups: Sequence[str], base: Mapping[str, Any]
) -> list[Observation]:
    """The source's completed trials rebuilt for this stage (those that fit it; at most
    ``MAX_OBSERVATIONS``, best first), as its GPs' observations of a related task."""
    out: list[Observation] = []
    for trial in source.trials:
        if len(out) == MAX_OBSERVATIONS:
            break
        try:
            _, params, _ = rebuild(trial, space, groups, base)
        except (KeyError, ValueError, TypeError):
            continue  # plan() warns of the best ones; the rest are only left out
        if math.isfinite(trial.loss):
            out.append(Observation(trial.origin, params, trial.loss, trial.parts))
    return out


def recorded(study: optuna.Study) -> tuple[str, list[Entry]] | None:
    """The warm start recorded on a stage's study: its source and entries (``None``: none)."""
    value = study.user_attrs.get(records.WARM_START)
    if not isinstance(value, Mapping):
        return None
    entries = [Entry(str(e["from"]), dict(e["params"])) for e in value.get("entries", [])]
    return str(value.get("source", "")), entries


def recorded_observations(study: optuna.Study) -> list[Observation]:
    """The source observations recorded with a stage's warm start (none when it has none)."""
    value = study.user_attrs.get(records.WARM_START)
    if not isinstance(value, Mapping):
        return []
    return [
        Observation(
            str(o["from"]),
            dict(o["params"]),
            float(o["loss"]),
            None if o.get("parts") is None else (float(o["parts"][0]), float(o["parts"][1])),
        )
        for o in value.get("observations", [])
    ]


def record(
    study: optuna.Study,
    source: str,
    entries: Sequence[Entry],
    observations: Sequence[Observation] = (),
) -> None:
    """Record the warm start on the stage's study (the caller holds the search's lock)."""
    study.set_user_attr(
        records.WARM_START,
        {
            "source": source,
            "entries": [{"from": e.origin, "params": dict(e.params)} for e in entries],
            "observations": [
                {
                    "from": o.origin,
                    "params": dict(o.params),
                    "loss": o.loss,
                    "parts": None if o.parts is None else list(o.parts),
                }
                for o in observations
            ],
        },
    )


def queue_missing(
    study: optuna.Study, entries: Sequence[Entry], trials: Sequence[FrozenTrial]
) -> int:
    """Queue each entry that has no trial yet, or only trials whose worker died (their slot is
    run again); the caller holds the search's lock. How many were queued."""
    settled = {
        str(t.user_attrs[records.WARM_START_FROM])
        for t in trials
        if records.WARM_START_FROM in t.user_attrs and not records.abandoned(t)
    }
    queued = 0
    for entry in entries:
        if entry.origin in settled:
            continue
        study.enqueue_trial(
            dict(entry.params),
            user_attrs={records.WARM_START_FROM: entry.origin},
            skip_if_exists=False,
        )
        queued += 1
    return queued


__all__ = [
    "MAX_OBSERVATIONS",
    "Entry",
    "Observation",
    "SourceTrial",
    "WarmSource",
    "open_source",
    "plan",
    "observe",
    "queue_missing",
    "rebuild",
    "record",
    "recorded",
    "recorded_observations",
]
