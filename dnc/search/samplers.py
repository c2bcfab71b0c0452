"""The samplers a stage may use, by name (``search.sampler``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from dnc.bo.settings import BOSettings
from dnc.plugins import Candidate, SearchSpace, UserError

if TYPE_CHECKING:
    from dnc.search.objective import LossParts
    from dnc.search.warm_start import Observation


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler factory may use: the space, the stage's groups, the held values and, in a
    dnc search, how each trial's search loss splits into fp and fc (``loss_parts``) and how
    many of the first trials are a warm start's queued candidates (``warm_trials``: they count
    among the prior states), and which candidates may be proposed (``screen``: a cost's
    feasibility before training; ``None``: all), and a warm start's source trials for the
    GPs to learn from (``source``, ``dnc.search.warm_start.Observation``s; the ramp BO only)."""

    space: SearchSpace
    groups: tuple[str, ...]
    base: Mapping[str, Any]
    bo: BOSettings
    seed: int
    extras: Mapping[str, Any] = field(default_factory=dict)
    loss_parts: LossParts | None = None
    objective: str = "loss"  # "pareto": a two-objective study (dnc.search.pareto)
    warm_trials: int = 0
    screen: Callable[[Candidate], bool] | None = None
    source: Sequence[Observation] = ()


SamplerFactory = Callable[[SamplerContext], optuna.samplers.BaseSampler]


def _tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=ctx.seed, n_startup_trials=ctx.bo.prior_states)


def _tpe_group(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    # TPE in its strongest form for conditional (define-by-run) spaces: a joint density per group
    # of parameters that occur together, rather than one density per parameter
    return optuna.samplers.TPESampler(
        seed=ctx.seed, n_startup_trials=ctx.bo.prior_states, multivariate=True, group=True
    )


def _random(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=ctx.seed)


def _nsga2(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    # a generation per prior states' worth of trials (NSGA-II needs 2): a 30-trial stage evolves
    size = max(ctx.bo.prior_states, 2)
    return optuna.samplers.NSGAIISampler(seed=ctx.seed, population_size=size)


def _gp(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=ctx.seed, n_startup_trials=ctx.bo.prior_states)


def _ramp(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    from dnc.bo import RampBOSampler  # torch, GPyTorch and BoTorch load only when used

    return RampBOSampler(
        space=ctx.space,
        active=ctx.groups,
        base=ctx.base,
        prior_states=ctx.bo.prior_states,
        explore=ctx.bo.explore,
        fit_kernel=ctx.bo.fit_kernel,
        noise=ctx.bo.noise,
        omega=ctx.bo.omega,
        at_bounds=ctx.bo.at_bounds,
        loss_parts=ctx.loss_parts if ctx.bo.model == "split" or ctx.objective == "pareto" else None,
        seed=ctx.seed,
        warm_trials=ctx.warm_trials,
        local_search=ctx.bo.local_search,
        screen=ctx.screen,
        source=[(o.params, o.loss, o.parts) for o in ctx.source],
    )


SAMPLERS: dict[str, SamplerFactory] = {
    "ramp": _ramp,
    "tpe": _tpe,
    "tpe_group": _tpe_group,
    "random": _random,
    "gp": _gp,
    "nsga2": _nsga2,
}


def make_sampler(name: str, ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` for a stage; ``UserError`` for an unknown name."""
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise UserError(
            f"search.sampler={name!r}: choose one of {', '.join(sorted(SAMPLERS))}"
        ) from None
    return factory(ctx)
