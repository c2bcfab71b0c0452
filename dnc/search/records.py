"""What a search writes on its Optuna studies and trials, and typed readers of it.

Optuna storage is the source of truth: every decision of a search is read back from these
attributes, in any process (a resumed search, another worker, ``dnc.report``). Their names are
defined here once.

On a trial (``user_attrs``): ``candidate`` (the whole candidate: params plus held values),
``figures`` (raw figures: ``best_val_acc``, ``t_epoch``, ``numparams``, ``epochs_run`` and the cost
evaluator's; each also as a number of its own under its ``metrics_of`` name, such as
``best_val_acc_pct`` and ``t_epoch_ms``, which dashboards sort), ``curves`` (per-epoch
``train_loss`` and ``val_acc``), ``stage``, ``substage`` (grid), ``worker`` (``host:pid``, or
``w<index>@host:pid``), ``train_seconds`` (wall time of building, training and measuring it),
``fail_reason`` (a trial that failed on its own; ``interrupted`` for one stopped by a signal, whose
slot is run again), ``duplicate_of`` (a trial given up because another worker holds its candidate:
``PRUNED``), ``pruned_at_epoch`` (a trial a pruner stopped, ``PRUNED`` with its figures so far),
``warm_start_from`` (a warm-started trial: the source trial, ``<search>/<stage>/<number>``),
``mlflow_run_id``.

On a stage's study (``user_attrs``): ``dnc.settings`` (the search's settings), ``dnc.cost``
(the cost evaluator and its calibrated normaliser; on the first stage's study),
``dnc.base.<stage or sub-stage>`` (the candidate it holds fixed), ``dnc.warm_start`` (on the
first BO stage's study of a warm-started search: ``source``, the search it started from, and
``entries``, each the ``from`` trial and the ``params`` queued for it), ``dnc.finished``,
``dnc.final_test`` (test accuracies, on the last stage's study), ``dnc.knee_wc`` (a finished
Pareto stage's knee, the ``wc`` later stages rank with under ``search.wc=null``),
``mlflow_parent_run_id``,
``mlflow_search_label`` (the name of the search's MLflow runs) and ``mlflow_stage_run_id``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from dnc.plugins import Candidate, candidate_key

# -- trial attributes -------------------------------------------------------------------------
CANDIDATE = "candidate"
FIGURES = "figures"
STAGE = "stage"
SUBSTAGE = "substage"
WORKER = "worker"
TRAIN_SECONDS = "train_seconds"  # wall time of building, training and measuring the candidate
CURVES = "curves"  # per-epoch series of a completed trial: train_loss, val_acc
DUPLICATE_OF = "duplicate_of"  # a trial given up: its candidate was taken by this trial
PRUNED_AT = "pruned_at_epoch"  # a trial a pruner stopped after this epoch (trainer.pruner)
FAIL_REASON = "fail_reason"
INTERRUPTED = "interrupted"  # the fail_reason of a trial stopped by SIGTERM or Ctrl-C
MLFLOW_RUN = "mlflow_run_id"
WARM_START_FROM = "warm_start_from"  # a warm-started trial: <search>/<stage>/<number> it came from

# -- study attributes -------------------------------------------------------------------------
SETTINGS = "dnc.settings"
COST = "dnc.cost"
BASE = "dnc.base."
FINISHED = "dnc.finished"
FINAL_TEST = "dnc.final_test"
KNEE_WC = "dnc.knee_wc"
WARM_START = "dnc.warm_start"  # the first BO stage's warm start: source and queued entries
MLFLOW_SEARCH_RUN = "mlflow_parent_run_id"
MLFLOW_STAGE_RUN = "mlflow_stage_run_id"
MLFLOW_SEARCH_LABEL = "mlflow_search_label"  # how the search's MLflow runs are named

ALWAYS_FIGURES = ("best_val_acc", "t_epoch", "numparams", "epochs_run")
"""Figures every trial records (more come from the cost evaluator)."""


UNITS = {
    "best_val_acc": ("best_val_acc_pct", 1.0),
    "t_epoch": ("t_epoch_ms", 1e3),
    "final_test_acc": ("final_test_acc_pct", 1.0),
}
"""Figures as people read them: a name that carries the unit, and the scale to it (``figures``
keeps them raw: accuracies in %, ``t_epoch`` in seconds). MLflow's metrics and the trials'
numeric attributes (``metrics_of``) use these names, rounded to 3 decimals."""


def metrics_of(figures: Mapping[str, float | None]) -> dict[str, float | None]:
    """Figures under the names of ``UNITS`` (``best_val_acc_pct``, ``t_epoch_ms``), scaled and
    rounded to 3 decimals (what a table shows); any other figure as it is."""
    out: dict[str, float | None] = {}
    for key, value in figures.items():
        if key in UNITS and value is not None and math.isfinite(value):
            name, scale = UNITS[key]
            out[name] = round(float(value) * scale, 3)
        else:
            out[key] = None if value is None else float(value)
    return out


@dataclass(frozen=True)
class Ranked:
    """A finished trial as reports show it: where it came from, its search loss, figures and
    candidate."""

    stage: str
    number: int
    loss: float
    figures: Mapping[str, float]
    candidate: Mapping[str, Any]
    substage: str = ""
    run_id: str = ""  # the trial's MLflow run ("": not tracked)

    @property
    def found_by(self) -> str:
        """The stage (and grid sub-stage) that found this candidate."""
        return f"{self.stage}:{self.substage}" if self.substage else self.stage

    @property
    def key(self) -> str:
        """``<stage>/<number>``: how results and the final test name a trial."""
        return f"{self.stage}/{self.number}"


def candidate(trial: FrozenTrial) -> Candidate | None:
    """The trial's whole candidate (``None`` before it has one)."""
    value = trial.user_attrs.get(CANDIDATE)
    return dict(value) if isinstance(value, Mapping) else None


def figures(trial: FrozenTrial) -> dict[str, float] | None:
    """The trial's raw figures (``None`` unless it finished training)."""
    value = trial.user_attrs.get(FIGURES)
    return dict(value) if isinstance(value, Mapping) else None


def fail_reason(trial: FrozenTrial) -> str | None:
    """Why the trial failed on its own (``None``: it did not; its worker died or was
    interrupted)."""
    value = trial.user_attrs.get(FAIL_REASON)
    return None if value is None or value == INTERRUPTED else str(value)


def counts_against_budget(trial: FrozenTrial) -> bool:
    """Finished trials use up a stage's budget: completed ones, pruned ones (``pruned``), and
    failed ones that failed on their own (a NaN loss, an error). A trial failed because its
    worker died (Optuna's heartbeat, or a resumed search) or was interrupted does not: its slot
    is run again."""
    if trial.state == TrialState.COMPLETE or pruned(trial):
        return True
    return trial.state == TrialState.FAIL and fail_reason(trial) is not None


def pruned(trial: FrozenTrial) -> bool:
    """A trial a pruner stopped early (``PRUNED`` with its figures so far; a trial given up
    for a taken candidate is ``PRUNED`` too, with ``duplicate_of`` and no figures)."""
    return trial.state == TrialState.PRUNED and PRUNED_AT in trial.user_attrs


def abandoned(trial: FrozenTrial) -> bool:
    """A trial failed because its worker died or was interrupted: its slot is run again."""
    return trial.state == TrialState.FAIL and fail_reason(trial) is None


def ended(trial: FrozenTrial) -> bool:
    """Completed, failed (on its own or not), or pruned by a pruner: a trial with an outcome
    (not queued, running, or given up as a duplicate)."""
    return trial.state in (TrialState.COMPLETE, TrialState.FAIL) or pruned(trial)


def in_flight(trial: FrozenTrial) -> bool:
    """Queued (grid variants) or running, in this worker or another."""
    return trial.state in (TrialState.WAITING, TrialState.RUNNING)


def tried_key(trial: FrozenTrial) -> Any | None:
    """The candidate identity (``dnc.plugins.candidate_key``) of a trial that used up budget
    or is in flight; ``None`` for one whose slot is free again or that has no candidate yet."""
    if not (counts_against_budget(trial) or in_flight(trial)):
        return None
    cand = trial.user_attrs.get(CANDIDATE)
    return candidate_key(cand) if isinstance(cand, Mapping) else None


def value(trial: FrozenTrial) -> float | None:
    """The search loss a loss stage's trial was told (``None``: none, or a Pareto stage's
    trial, which has two values)."""
    values = trial.values
    return float(values[0]) if values is not None and len(values) == 1 else None


def ranked(trial: FrozenTrial, study_stage: str, loss: float | None = None) -> Ranked | None:
    """A completed trial with figures as a ``Ranked`` row (``loss``: re-scored; default its
    value); ``None`` for any other trial."""
    figs = figures(trial)
    loss = value(trial) if loss is None else loss
    if trial.state != TrialState.COMPLETE or figs is None or loss is None:
        return None
    return Ranked(
        stage=str(trial.user_attrs.get(STAGE, study_stage)),
        number=trial.number,
        loss=float(loss),
        figures=figs,
        candidate=candidate(trial) or dict(trial.params),
        substage=str(trial.user_attrs.get(SUBSTAGE, "")),
        run_id=str(trial.user_attrs.get(MLFLOW_RUN) or ""),
    )


__all__ = [
    "ALWAYS_FIGURES",
    "BASE",
    "CANDIDATE",
    "CURVES",
    "COST",
    "DUPLICATE_OF",
    "PRUNED_AT",
    "FAIL_REASON",
    "INTERRUPTED",
    "FIGURES",
    "FINAL_TEST",
    "FINISHED",
    "KNEE_WC",
    "MLFLOW_RUN",
    "MLFLOW_SEARCH_LABEL",
    "MLFLOW_SEARCH_RUN",
    "MLFLOW_STAGE_RUN",
    "SETTINGS",
    "STAGE",
    "SUBSTAGE",
    "TRAIN_SECONDS",
    "WORKER",
    "Ranked",
    "UNITS",
    "WARM_START",
    "WARM_START_FROM",
    "candidate",
    "candidate_key",
    "abandoned",
    "counts_against_budget",
    "ended",
    "fail_reason",
    "figures",
    "in_flight",
    "metrics_of",
    "pruned",
    "ranked",
    "tried_key",
    "value",
]
