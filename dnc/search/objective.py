"""The search loss ``f = log10(fp + wc * fc)`` and the evaluation of one candidate."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dnc.plugins import CostEvaluator, SearchSpace, TensorData, UserError
from dnc.train.trainer import TrainerSettings, TrainResult, count_params, train

# Figures every trial records (more come from the cost evaluator).
ALWAYS = ("best_val_acc", "t_epoch", "numparams", "epochs_run")


def check_wc(wc: float) -> float:
    try:
        value = float(wc)
    except (TypeError, ValueError) as err:
        raise UserError(f"search.wc={wc!r}: give a number >= 0") from err
    if not value >= 0 or math.isinf(value):
        raise UserError(f"search.wc={wc}: must be a finite number >= 0 (0: accuracy only)")
    return value


def performance_term(best_val_acc: float) -> float:
    """``fp = (100 - best_val_acc) / 100`` for classification."""
    return (100.0 - best_val_acc) / 100.0


def search_loss(fp: float, fc: float, wc: float) -> float:
    """``log10(fp + wc * fc)``; a perfect, free network (sum 0) scores -inf, clipped to -12."""
    return math.log10(max(fp + wc * fc, 1e-12))


def loss_terms(figures: Mapping[str, float], cost: CostEvaluator) -> tuple[float, float]:
    """``(fp, fc)`` of recorded ``figures``: the two terms of the search loss."""
    return performance_term(figures["best_val_acc"]), cost.complexity(figures)


def score(figures: Mapping[str, float], wc: float, cost: CostEvaluator) -> float:
    """The search loss of recorded ``figures`` for ``wc``: re-scoring needs no training."""
    return search_loss(*loss_terms(figures, cost), wc)


@dataclass
class Evaluation:
    """One trained candidate: the raw figures, the search loss and the training curves."""

    figures: dict[str, float]
    loss: float
    result: TrainResult


def evaluate(
    candidate: Mapping[str, Any],
    *,
    space: SearchSpace,
    data: TensorData,
    cost: CostEvaluator,
    wc: float,
    trainer: TrainerSettings,
    seed: int,
) -> Evaluation:
    """Build, train and cost ``candidate``. Raises ``TrialDiverged`` on a NaN loss."""
    model = space.build(candidate, data.spec)
    result = train(
        model, data,
        lr=float(candidate["lr"]), weight_decay=float(candidate["weight_decay"]),
        batch_size=int(candidate["batch_size"]), settings=trainer, seed=seed,
    )
    figures: dict[str, float] = {
        "best_val_acc": result.best_val_acc,
        "t_epoch": result.t_epoch,
        "numparams": float(count_params(model)),
        "epochs_run": float(result.epochs_run),
    }
    figures.update(cost.measure(model, candidate, data.spec))
    return Evaluation(figures=figures, loss=score(figures, wc, cost), result=result)
