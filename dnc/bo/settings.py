"""``BOSettings``: the budgets of a model-based stage and the ramp-BO options, with their one
set of defaults (the sampler's keyword defaults, ``conf/search`` and ``python -m dnc --help``
all read these)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dnc.plugins import UserError

MODELS = ("split", "loss")
"""What the ramp BO's GPs model (``search.bo.model``): ``split``, log10 fp and log10 fc by one
GP each; ``loss``, the search loss by one GP (the paper)."""


@dataclass(frozen=True)
class BOSettings:
    """Budgets of a model-based stage (DESIGN §3) and the ramp-BO options (``search.bo``).

    Example:
        >>> BOSettings(prior_states=3, steps=2).trials
        5
    """

    prior_states: int = 15
    """Trials of a BO stage drawn from a scrambled Sobol sequence before the GP guides."""
    steps: int = 15
    """GP-guided trials after the prior states."""
    explore: int = 1000
    """Random candidates scored by expected improvement per step."""
    fit_kernel: bool = False
    """Ramp BO: fit omega, weights and noise by marginal likelihood at every step."""
    noise: float = 1e-4
    """Ramp BO: noise variance on the standardised outcome when the kernel is not fitted (the
    original's 1e-4; raise it when t_epoch measurements are noisy)."""
    omega: float = 1.5
    """Ramp BO: the kernels' ``omega`` (the start of the fit with ``fit_kernel``). 1.5 measured
    best on ``bench/search_quality.py`` (bench/README.md); the paper's is ``omega=3``."""
    at_bounds: float = 0.1
    """Ramp BO: probability that an explored candidate takes a numeric parameter at one of its
    bounds (0: uniform draws, as the paper)."""
    local_search: int = 0
    """Ramp BO: starts of the local search of the acquisition (that many best draws and best
    trials, each moved one parameter at a time while it improves; 0: the best of the
    ``explore`` draws, as the paper)."""
    model: str = "split"
    """Ramp BO: ``split`` (one GP on log10 fp, one on log10 fc, combined in the acquisition) or
    ``loss`` (one GP on the search loss, as the paper)."""

    def __post_init__(self) -> None:
        if not isinstance(self.fit_kernel, bool):
            raise UserError(f"search.bo.fit_kernel={self.fit_kernel!r}: give true or false")
        if not self.noise > 0:
            raise UserError(f"search.bo.noise={self.noise}: must be > 0")
        if not (self.omega > 0 and math.isfinite(self.omega)):
            raise UserError(f"search.bo.omega={self.omega}: must be a positive number")
        if not 0 <= self.at_bounds < 1:
            raise UserError(f"search.bo.at_bounds={self.at_bounds}: must lie in [0, 1)")
        if self.model not in MODELS:
            raise UserError(f"search.bo.model={self.model!r}: choose {' or '.join(MODELS)}")
        if isinstance(self.local_search, bool) or not isinstance(self.local_search, int):
            raise UserError(f"search.bo.local_search={self.local_search!r}: give a whole number")
        if self.prior_states < 1 or self.steps < 0 or self.explore < 1 or self.local_search < 0:
            raise UserError(
                "search.bo: prior_states and explore must be >= 1, steps and local_search >= 0 "
                f"(got {self.prior_states}, {self.explore}, {self.steps}, {self.local_search})"
            )

    @property
    def trials(self) -> int:
        """A BO stage's default budget: ``prior_states + steps``."""
        return self.prior_states + self.steps


__all__ = ["MODELS", "BOSettings"]
