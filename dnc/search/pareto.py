"""Pareto stages: accuracy against cost in one search, as an Optuna multi-objective study.

A stage with ``objective: pareto`` (``search=pareto``) does not minimise the search loss for one
``wc``: its study has two objectives, the best validation accuracy (``best_val_acc``, in %,
maximised) and the complexity ``fc`` of the search's cost evaluator (minimised), so Optuna,
optuna-dashboard and ``dnc.report`` see the front it finds. Every trial still records its raw
figures, so any ``wc`` picks a candidate from it without training (``dnc.search.ranking``).

The stages after it continue from the pick for ``search.wc``; with ``search.wc=null``, from the
**knee** of the front: normalise error and complexity to ``[0, 1]`` over the front, and take the
point farthest below the line through its two ends. That point minimises
``fp / range(fp) + fc / range(fc)``, so it is the pick of the search loss for
``wc = range(fp) / range(fc)`` (``knee_wc``), the ``wc`` the later stages then use.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import optuna
from optuna.trial import TrialState

from dnc import optuna_compat
from dnc.plugins import CostEvaluator
from dnc.search.objective import loss_terms

log = logging.getLogger(__name__)

DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize")
"""A Pareto study's objectives: ``best_val_acc`` (%) up, the complexity ``fc`` down."""

METRIC_NAMES = ("best_val_acc_pct", "complexity")
"""What optuna-dashboard calls a Pareto study's two objectives."""

FEASIBLE = "cost_feasible"
"""The Optuna constraint of a Pareto trial whose cost judges feasibility
(``CostEvaluator.feasible``): 0 when the target can run the candidate, 1 when not. Optuna's
samplers and ``study.best_trials`` then keep infeasible trials off the front; so do the ramp
BO's reference point, the knee and the report's front."""

DEFAULT_WC = 0.1
"""The ``wc`` of a knee that a front of one point leaves undefined (the paper's balance)."""


def is_pareto(study: optuna.Study) -> bool:
    """Whether ``study`` is a Pareto stage's (more than one objective)."""
    return len(study.directions) > 1


def objectives(figures: Mapping[str, float], cost: CostEvaluator) -> list[float]:
    """A Pareto trial's values: ``[best_val_acc, fc]`` of its recorded ``figures``."""
    return [float(figures["best_val_acc"]), float(cost.complexity(figures))]


def front(parts: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the ``(fp, fc)`` points that no other point beats on both (lower is
    better), by increasing ``fc``; of equal points, the first."""
    order = sorted(range(len(parts)), key=lambda i: (parts[i][1], parts[i][0], i))
    kept: list[int] = []
    for i in order:
        if not kept or parts[i][0] < parts[kept[-1]][0]:
            kept.append(i)
    return kept


def hypervolume(parts: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The area that the ``(fp, fc)`` points dominate below the reference point ``ref`` (both
    lower is better; points not below ``ref`` on both add nothing).

    Example:
        >>> hypervolume([(0.1, 2.0), (0.3, 1.0)], ref=(1.0, 4.0))  # 0.9*2 + 0.7*(2-1)
        2.5
    """
    inside = [p for p in parts if p[0] < ref[0] and p[1] < ref[1]]
    kept = [inside[i] for i in front(inside)]  # by increasing fc, so decreasing fp
    ends = [fc for _, fc in kept[1:]] + [ref[1]]  # where each point's strip ends
    area = 0.0
    for (fp, fc), end in zip(kept, ends, strict=False):
        area += (end - fc) * (ref[0] - fp)
    return area


def knee_wc(parts: Sequence[tuple[float, float]]) -> float:
    """The ``wc`` whose search-loss pick is the knee of the front of ``(fp, fc)`` points:
    ``range(fp) / range(fc)`` over the front (``DEFAULT_WC`` for a front of one point).

    Example:
        >>> knee_wc([(0.02, 4.0), (0.05, 1.0), (0.30, 0.5)])  # (0.30 - 0.02) / (4.0 - 0.5)
        0.08
    """
    points = [parts[i] for i in front(parts)]
    if len(points) < 2:
        return DEFAULT_WC
    fps = [p[0] for p in points]
    fcs = [p[1] for p in points]
    return (max(fps) - min(fps)) / (max(fcs) - min(fcs))


def record_feasibility(
    study: optuna.Study, trial: optuna.Trial, figures: Mapping[str, float], cost: CostEvaluator
) -> None:
    """Record ``cost.feasible(figures)`` as the ``FEASIBLE`` constraint of a Pareto stage's
    ``trial``, when the cost judges feasibility, unless a completed trial of ``study`` has no
    such constraint (a stage begun before dnc recorded it: Optuna's GPSampler refuses trials
    with differing constraints, so the study then records none, and says so)."""
    if not cost.judges_feasibility:
        return
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if any(FEASIBLE not in optuna_compat.constraints(t) for t in done):
        log.warning(
            "%s: its first trials record no %s constraint (begun by an older dnc), so none "
            "does: candidates the target cannot run count on its front by their penalty cost",
            study.study_name,
            FEASIBLE,
        )
        return
    runs = cost.feasible(figures)
    optuna_compat.set_constraint(trial, FEASIBLE, 0.0 if runs else 1.0)


def knee_of(figures: Sequence[Mapping[str, float]], cost: CostEvaluator) -> float:
    """``knee_wc`` of trials' recorded ``figures`` under ``cost``, of those the costed target
    can run (``cost.feasible``; all of them when none can)."""
    runs = [f for f in figures if cost.feasible(f)] or figures
    return knee_wc([loss_terms(f, cost) for f in runs])


__all__ = [
    "DEFAULT_WC",
    "DIRECTIONS",
    "FEASIBLE",
    "METRIC_NAMES",
    "front",
    "hypervolume",
    "is_pareto",
    "knee_of",
    "knee_wc",
    "objectives",
    "record_feasibility",
]
