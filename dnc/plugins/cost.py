"""The cost-evaluator contract (``CostEvaluator``), its calibration (``calibrate_cost``) and the
``number | auto`` normaliser setting (``parse_normaliser``)."""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dnc.plugins.base import DataSpec, UserError

if TYPE_CHECKING:
    import torch


class CostEvaluator(abc.ABC):
    """The complexity ``fc`` of a trained candidate.

    ``measure`` returns raw figures (recorded on the trial, so a study can be re-scored);
    ``complexity`` turns raw figures into the normalised ``fc`` of the search loss
    ``log10(fp + wc * fc)``. ``complexity`` must only read figures, never the model.

    **Calibration.** A cost whose normaliser may be ``auto`` (measured on this machine, from
    the space's reference network) implements ``calibrate(figures)``. Once per search, before
    the first trial, dnc checks ``needs_calibration``; if true it computes the reference
    network's figures (``numparams`` and ``measure``'s; also ``best_val_acc``, ``t_epoch`` and
    ``epochs_run`` from two epochs of training when ``calibrate_by_training``), calls
    ``calibrate(figures)``, and then requires ``complexity(figures)`` to be a finite number
    >= 0 (else the search stops with an error naming the cost). ``settings()`` (with the
    calibrated normaliser) is recorded on the study, so a resumed search and ``dnc.report``
    rebuild the same cost. ``parse_normaliser`` reads a ``number | auto`` setting.

    Example::

        class Width(CostEvaluator):
            name = "width"
            def __init__(self, width_bar="auto"):
                self.bar = parse_normaliser(width_bar, "cost.width_bar")
            def measure(self, model, candidate, data):
                return {"width": float(candidate["width"])}
            def calibrate(self, figures):
                self.bar = figures["width"]
            def complexity(self, figures):
                return figures["width"] / self.bar
            def settings(self):
                return {"width_bar": self.bar}
    """

    name: str = ""
    calibrate_by_training: bool = False
    """True when ``calibrate`` needs figures from training (``t_epoch``), not only from the
    built reference network (``numparams`` and ``measure``)."""

    @property
    def needs_calibration(self) -> bool:
        """Whether dnc must call ``calibrate`` before the first trial. Default: true for a
        class that overrides ``calibrate``; override it to say false once the normaliser is a
        number (this saves the reference network's training)."""
        return type(self).calibrate is not CostEvaluator.calibrate

    def measure(
        self, model: torch.nn.Module, candidate: Mapping[str, Any], data: DataSpec
    ) -> dict[str, float]:
        """Extra raw figures for this cost (``t_epoch`` and ``numparams`` are always recorded),
        of the network as built: a trial measures it once, before training (its pruner needs
        them after every epoch), and calibration measures the untrained reference network."""
        return {}

    @abc.abstractmethod
    def complexity(self, figures: Mapping[str, float]) -> float:
        """Normalised complexity from raw figures."""

    def feasible(self, figures: Mapping[str, float]) -> bool:
        """Whether the costed target can run the candidate (default: always). A cost that can
        say no (a hardware model whose mapping does not fit) overrides it, and still gives such
        a candidate a finite (penalty) ``complexity``, so the search loss steers away. The ramp
        BO asks it of each candidate's built, untrained network (``numparams`` and
        ``measure``'s figures) and proposes only those it admits. A Pareto
        stage records the verdict as an Optuna constraint on each trial (``study.best_trials``
        and Optuna 5's samplers then leave infeasible trials off the front), dnc's front, knee
        and report do too, and rankings put such trials after all the others."""
        return True

    @property
    def judges_feasibility(self) -> bool:
        """Whether this cost overrides ``feasible`` (only then do trials record the verdict)."""
        return type(self).feasible is not CostEvaluator.feasible

    def calibrate(self, figures: Mapping[str, float]) -> None:  # noqa: B027 - optional hook
        """Set an ``auto`` normaliser from the reference network's figures."""

    def settings(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this evaluator with its calibrated normaliser.

        They are recorded with the study, so a finished search can be re-scored.
        """
        return {}


def parse_normaliser(value: float | str | None, key: str) -> float | None:
    """A normaliser setting: a finite positive number, or ``None`` for ``auto``.

    Example:
        >>> parse_normaliser("auto", "cost.tbar_epoch"), parse_normaliser(2, "cost.tbar_epoch")
        (None, 2.0)
    """
    if value == "auto":
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise UserError(f"{key}={value!r}: give a positive number or auto") from err
    if not number > 0 or math.isinf(number):
        raise UserError(f"{key}={value!r}: must be a finite positive number (or auto)")
    return number


def calibrate_cost(cost: CostEvaluator, reference: Mapping[str, float]) -> float:
    """Calibrate ``cost`` on the reference network's ``figures`` if it needs it, and return
    its ``fc`` there; ``UserError`` naming the cost when that is not a finite number >= 0."""
    calibrated = cost.needs_calibration
    if calibrated:
        cost.calibrate(reference)
    what = f"cost {cost.name!r} ({type(cost).__module__}.{type(cost).__qualname__})"
    after = " after calibrate()" if calibrated else ""
    try:
        fc = float(cost.complexity(reference))
    except UserError:
        raise
    except Exception as err:
        if isinstance(err, KeyError):
            fix = f"it gets the figures {', '.join(sorted(reference))}"
        elif isinstance(err, (TypeError, ZeroDivisionError)):
            fix = "an auto normaliser must be set to a positive number in calibrate()"
        else:
            fix = "fix complexity()"
        raise UserError(
            f"{what}: complexity() of the reference network raised{after} "
            f"{type(err).__name__}: {err}; {fix}"
        ) from err
    if not (math.isfinite(fc) and fc >= 0):
        raise UserError(
            f"{what}: complexity() of the reference network is {fc}{after}; it must be a "
            "finite number >= 0"
        )
    return fc


__all__ = ["CostEvaluator", "calibrate_cost", "parse_normaliser"]
