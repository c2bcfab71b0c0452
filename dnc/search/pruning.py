"""Early stopping of hopeless trials with Optuna's pruners (``trainer.pruner``).

After each epoch but the last, a trial reports its search loss so far (``log10(fp + wc * fc)``
of its best validation accuracy so far and its cost: ``t_epoch`` over the epochs run) as the
intermediate value of that epoch, and asks the stage study's pruner whether to go on:

- ``median``: ``optuna.pruners.MedianPruner``: stopped when worse than the median of the
  earlier trials at the same epoch, once 5 trials have completed and past the first quarter of
  the epochs;
- ``hyperband``: ``optuna.pruners.HyperbandPruner`` from 1 epoch to ``trainer.epochs``
  (reduction factor 3).

A pruned trial is told ``PRUNED``: its value is its last reported search loss (Optuna records
it), its figures and curves are those of the epochs it ran, and ``pruned_at_epoch`` says when.
It uses up a slot of its stage's budget, the BO sampler takes it as an observation at that
value, and it is never a pick (reports rank completed trials only). Optuna shows a sampler only
the trials of the current trial's Hyperband bracket (so that TPE learns each bracket apart); the
ramp BO sampler looks through that view (``optuna_compat.whole_study``) and models the whole
stage, as it does under any other pruner.
"""

from __future__ import annotations

import optuna

from dnc.train.settings import TrainerSettings

MEDIAN_STARTUP_TRIALS = 5
HYPERBAND_REDUCTION = 3


def make_pruner(trainer: TrainerSettings) -> optuna.pruners.BasePruner | None:
    """The pruner ``trainer.pruner`` names (``None`` for ``none``)."""
    if trainer.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=trainer.epochs // 4
        )
    if trainer.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=trainer.epochs, reduction_factor=HYPERBAND_REDUCTION
        )
    return None


__all__ = ["make_pruner"]
