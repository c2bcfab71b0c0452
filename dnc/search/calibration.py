"""Calibrating the cost evaluator once per search (``CostEvaluator``'s documented contract).

A cost whose normaliser is ``auto`` (``tbar_epoch``, ``numparams_bar``, a plugin's) is set from
the space's reference network on this machine, so that a given ``wc`` means the same on a
laptop and on a GPU server; the result is recorded on the first stage's study, so a resumed
search (or another worker) uses the same one instead of measuring again.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna

from dnc.plugins import (
    CostEvaluator,
    DataSpec,
    SearchSpace,
    TensorData,
    UserError,
    calibrate_cost,
)
from dnc.search import coordination, records
from dnc.search.objective import built_figures, evaluate
from dnc.search.storage import record_cost, recorded_cost
from dnc.search.trial import failure_reason
from dnc.train.settings import TrainerSettings, TrialDiverged

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def calibrated(
    cost: CostEvaluator,
    study: optuna.Study,
    *,
    space: SearchSpace,
    data: TensorData,
    trainer: TrainerSettings,
    seed: int,
) -> CostEvaluator:
    """The search's cost evaluator with its normaliser set: as recorded on ``study`` by an
    earlier run of the same search or another worker, else ``cost`` calibrated here (when it
    needs it) and recorded. Workers sharing the search take turns: one calibrates, the others
    wait and read its result."""
    with coordination.lock(study, f"{study.study_name}:calibrate"):  # one worker calibrates
        if records.COST in study.user_attrs:
            return recorded_cost(study)
        if cost.needs_calibration:
            calibrate_cost(
                cost, reference_figures(cost, space=space, data=data, trainer=trainer, seed=seed)
            )
            log.info("calibrated cost %s on this machine: %s", cost.name, cost.settings())
        record_cost(study, cost)
        return cost


def reference_figures(
    cost: CostEvaluator,
    *,
    space: SearchSpace,
    data: TensorData,
    trainer: TrainerSettings,
    seed: int,
) -> dict[str, float]:
    """Figures of the space's reference network: built (``numparams`` and ``cost.measure``),
    and trained for two epochs when the cost calibrates on training figures (``t_epoch``)."""
    ref = space.reference_candidate()
    try:
        if not cost.calibrate_by_training:
            return built_figures(space.build(ref, data.spec), ref, data.spec, cost)
        short = dataclasses.replace(trainer, epochs=2, patience=0)
        return evaluate(
            ref,
            space=space,
            data=data,
            cost=_Uncalibrated(cost),
            wc=0.0,
            seed=seed,
            trainer=short,
        ).figures
    except TrialDiverged as err:
        raise UserError(
            f"the reference network diverged while calibrating cost {cost.name!r} ({err}); "
            "set its normaliser to a number (e.g. cost.tbar_epoch=1.0)"
        ) from err
    except UserError:
        raise
    except Exception as err:  # a bug in the space or the cost: nothing could be trained
        log.info("the reference network failed", exc_info=err)
        raise UserError(
            f"the reference network of search space {space.name!r} failed while calibrating "
            f"cost {cost.name!r}: {failure_reason(err)}"
        ) from err


class _Uncalibrated(CostEvaluator):
    """``cost``'s figures with a complexity of 0, for the calibration run (only the raw
    figures are used, and ``cost`` cannot compute its complexity yet)."""

    def __init__(self, cost: CostEvaluator) -> None:
        self.cost = cost
        self.name = cost.name

    def measure(
        self, model: torch.nn.Module, candidate: Mapping[str, Any], data: DataSpec
    ) -> dict[str, float]:
        return self.cost.measure(model, candidate, data)

    def complexity(self, figures: Mapping[str, float]) -> float:
        return 0.0


__all__ = ["calibrated", "reference_figures"]
