"""The search loss ``f = log10(fp + wc * fc)``, its two parts, and the evaluation of one
candidate (build, train, measure)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dnc.plugins import CostEvaluator, DataSpec, SearchSpace, TensorData
from dnc.search.records import FIGURES

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from dnc.train.settings import TrainerSettings
    from dnc.train.trainer import TrainResult


log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class LossParts:
    """How a trial's search loss ``log10(fp + wc * fc)`` splits, for the ramp sampler's split
    model (``RampBOSampler(loss_parts=...)``): ``parts(trial)`` gives a finished trial's
    ``(fp, fc)`` from what it recorded, ``None`` when it recorded nothing (a step with such a
    trial falls back to one GP on the trial values). The study must minimise the loss.

    Example:
        >>> LossParts(wc=0.1, parts=lambda t: (t.user_attrs["fp"], t.user_attrs["fc"]))
    """

    wc: float
    parts: Callable[[FrozenTrial], tuple[float, float] | None]

    def __post_init__(self) -> None:
        if not (self.wc >= 0 and math.isfinite(self.wc)):
            raise ValueError(f"LossParts: wc={self.wc} must be a finite number >= 0")

    @classmethod
    def of_search(cls, wc: float, cost: CostEvaluator) -> LossParts:
        """The parts of a dnc search's trials: ``(fp, fc)`` of their recorded figures under
        ``cost``."""

        def parts(trial: FrozenTrial) -> tuple[float, float] | None:
            figures = trial.user_attrs.get(FIGURES)
            if not isinstance(figures, Mapping):
                return None
            try:
                return loss_terms(figures, cost)
            except (KeyError, TypeError, ValueError):
                return None

        return cls(wc=wc, parts=parts)


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
    on_epoch: Callable[[int, float, float], None] | None = None,
    keep_best: bool = False,
    should_stop: Callable[[dict[str, float]], bool] | None = None,
) -> Evaluation:
    """Build, train and cost ``candidate`` (``on_epoch`` and ``keep_best``: as
    ``dnc.train.trainer.train`` takes them; ``should_stop(figures so far)`` after each epoch
    but the last: true stops training, ``Evaluation.result.stopped``). Raises
    ``TrialDiverged`` on a NaN loss."""
    from dnc.train.trainer import build_seeded, train

    model = build_seeded(space, candidate, data.spec, seed)
    measured = cost.measure(model, candidate, data.spec)  # the cost's own, of the built network
    stop = None
    if should_stop is not None:

        def stop(so_far: TrainResult) -> bool:
            return should_stop({**_figures(so_far, model), **measured})

    result = train(
        model,
        data,
        lr=float(candidate["lr"]),
        weight_decay=float(candidate["weight_decay"]),
        batch_size=int(candidate["batch_size"]),
        settings=trainer,
        seed=seed,
        on_epoch=on_epoch,
        keep_best=keep_best,
        should_stop=stop,
    )
    figures = {**_figures(result, model), **measured}
    return Evaluation(figures=figures, loss=score(figures, wc, cost), result=result)


def built_figures(
    model: Any, candidate: Mapping[str, Any], spec: DataSpec, cost: CostEvaluator
) -> dict[str, float]:
    """The figures of a built, untrained network: ``numparams`` and ``cost.measure``'s."""
    from dnc.train.trainer import count_params

    return {"numparams": float(count_params(model)), **cost.measure(model, candidate, spec)}


def feasibility_screen(
    space: SearchSpace, cost: CostEvaluator, spec: DataSpec
) -> Callable[[Mapping[str, Any]], bool] | None:
    """Whether the costed target can run a candidate, asked before any training: ``cost``'s
    ``feasible`` on the built, untrained network's figures (``numparams`` and ``measure``'s),
    as a trial would record them. ``None`` for a cost that never says no. The ramp BO proposes
    only candidates it admits; one whose build or measure raises, or whose verdict needs
    training figures, is admitted (its trial then records what happened)."""
    if not cost.judges_feasibility:
        return None

    def screen(candidate: Mapping[str, Any]) -> bool:
        from dnc.train.trainer import build_seeded

        try:
            model = build_seeded(space, candidate, spec, 0)
            return bool(cost.feasible(built_figures(model, candidate, spec, cost)))
        except Exception as err:  # the trial builds it again and records the failure
            log.debug("feasibility screen: %s admitted (%r)", dict(candidate), err)
            return True

    return screen


def _figures(result: TrainResult, model: Any) -> dict[str, float]:
    """The figures every trial records (``records.ALWAYS_FIGURES``), of a training so far."""
    from dnc.train.trainer import count_params

    return {
        "best_val_acc": result.best_val_acc,
        "t_epoch": result.t_epoch,
        "numparams": float(count_params(model)),
        "epochs_run": float(result.epochs_run),
    }


__all__ = [
    "Evaluation",
    "LossParts",
    "built_figures",
    "evaluate",
    "feasibility_screen",
    "loss_terms",
    "performance_term",
    "score",
    "search_loss",
]
