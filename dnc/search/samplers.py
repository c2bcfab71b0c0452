"""The samplers a stage may use, by name (``search.sampler``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from dnc.plugins import SearchSpace, UserError

if TYPE_CHECKING:
    from dnc.bo.sampler import LossParts


MODELS = ("split", "loss")
"""What the ramp BO's GPs model (``search.bo.model``): ``split``, log10 fp and log10 fc by one
GP each; ``loss``, the search loss by one GP (the paper)."""


@dataclass(frozen=True)
class BOSettings:
    """Budgets of a model-based stage (DESIGN §3) and the ramp-BO options."""

    prior_states: int = 15
    steps: int = 15
    explore: int = 1000
    fit_kernel: bool = False
    noise: float = 1e-4
    """Ramp BO: noise variance on the standardised outcome when the kernel is not fitted (the
    original's 1e-4; raise it when t_epoch measurements are noisy)."""
    omega: float = 3.0
    """Ramp BO: the kernels' ``omega`` (the paper's 3; the start of the fit with ``fit_kernel``)."""
    at_bounds: float = 0.1
    """Ramp BO: probability that an explored candidate takes a numeric parameter at one of its
    bounds (0: uniform draws, as the paper)."""
    model: str = "split"
    """Ramp BO: ``split`` (one GP on log10 fp, one on log10 fc, combined in the acquisition) or
    ``loss`` (one GP on the search loss, as the paper)."""

    def __post_init__(self) -> None:
        if not self.noise > 0:
            raise UserError(f"search.bo.noise={self.noise}: must be > 0")
        if not (self.omega > 0 and math.isfinite(self.omega)):
            raise UserError(f"search.bo.omega={self.omega}: must be a positive number")
        if not 0 <= self.at_bounds < 1:
            raise UserError(f"search.bo.at_bounds={self.at_bounds}: must lie in [0, 1)")
        if self.model not in MODELS:
            raise UserError(f"search.bo.model={self.model!r}: choose {' or '.join(MODELS)}")
        if self.prior_states < 1 or self.steps < 0 or self.explore < 1:
            raise UserError(
                "search.bo: prior_states and explore must be >= 1 and steps >= 0 "
                f"(got {self.prior_states}, {self.explore}, {self.steps})"
            )

    @property
    def trials(self) -> int:
        return self.prior_states + self.steps


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler factory may use: the space, the stage's groups, the held values and, in a
    dnc search, how each trial's search loss splits into fp and fc (``loss_parts``)."""

    space: SearchSpace
    groups: tuple[str, ...]
    base: Mapping[str, Any]
    bo: BOSettings
    seed: int
    extras: Mapping[str, Any] = field(default_factory=dict)
    loss_parts: LossParts | None = None


SamplerFactory = Callable[[SamplerContext], optuna.samplers.BaseSampler]


def _tpe(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(seed=ctx.seed, n_startup_trials=ctx.bo.prior_states)


def _random(ctx: SamplerContext) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=ctx.seed)


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
        loss_parts=ctx.loss_parts if ctx.bo.model == "split" else None,
        seed=ctx.seed,
    )


SAMPLERS: dict[str, SamplerFactory] = {
    "ramp": _ramp,
    "tpe": _tpe,
    "random": _random,
    "gp": _gp,
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
