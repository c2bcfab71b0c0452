"""The transfer study (the paper's CIFAR-10 to CIFAR-100): a finished search's pick for each
``wc`` (the *source*), retrained on another search's data (the *target*) and set beside the
target search's own pick for that ``wc``, both scored with the target's cost and normaliser:
``log10(fp + wc * fc)``.

The source pick is rebuilt for the target's input shape and classes by the search space
(``space.build(candidate, data.spec)``) and trained as the target's trials were (its trainer
settings and seed, so the same validation split). A candidate picked for several ``wc`` is
trained once.

Example:
    >>> rows = transfer(rescore(src, "cifar10-cnn", [0, 0.1]), rescore(dst, "cifar100-cnn",
    ...                 [0, 0.1]), space=space, data=data, cost=cost, trainer=trainer, seed=0)
    >>> [(r.wc, r.transferred.best_val_acc, r.native.best_val_acc) for r in rows]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from dnc.plugins import CostEvaluator, SearchSpace, TensorData, UserError, candidate_key
from dnc.search import records
from dnc.search.objective import evaluate, score
from dnc.search.records import Ranked
from dnc.search.rescore import Pick
from dnc.search.storage import load, search_studies
from dnc.train.settings import TrainerSettings, TrialDiverged


@dataclass(frozen=True)
class Scored:
    """A candidate's figures on the target data, its complexity ``fc`` and its search loss
    under the target's cost for one ``wc``; ``failure`` says why it has no figures (it
    diverged), and its loss is then ``inf``."""

    figures: Mapping[str, float]
    complexity: float
    loss: float
    failure: str = ""

    @property
    def best_val_acc(self) -> float:
        return float(self.figures.get("best_val_acc", math.nan))


@dataclass(frozen=True)
class TransferRow:
    """One ``wc``: the source search's pick (``source``, its figures on the source data), what
    it scores trained on the target data (``transferred``), the target search's own pick
    (``native_pick``) and its figures (``native``: as recorded, or ``retrained`` alike)."""

    wc: float
    source: Ranked
    transferred: Scored
    native_pick: Ranked
    native: Scored
    retrained: bool = False

    @property
    def transferred_better(self) -> bool:
        """Whether the transferred pick has the lower search loss on the target."""
        return self.transferred.loss < self.native.loss


def recorded_settings(storage: optuna.storages.BaseStorage, search: str) -> dict[str, Any]:
    """The settings a search recorded on its first stage's study (``records.SETTINGS``)."""
    studies = search_studies(storage, search)
    if not studies:
        raise UserError(f"search {search!r} has no study in the storage")
    return dict(load(storage, studies[0]).user_attrs.get(records.SETTINGS) or {})


def check_comparable(
    source: Mapping[str, Any],
    target: Mapping[str, Any],
    source_cost: CostEvaluator,
    target_cost: CostEvaluator,
) -> None:
    """``UserError`` unless the two searches (their recorded settings and costs) used the same
    search space and the same kind of cost: a pick is only comparable on the same terms."""
    src, dst = source.get("search", "source"), target.get("search", "target")
    if source.get("space") != target.get("space"):
        raise UserError(
            f"the source search {src!r} used search space {source.get('space')!r} but the "
            f"target {dst!r} used {target.get('space')!r}; transfer needs the same space"
        )
    if source_cost.name != target_cost.name:
        raise UserError(
            f"the source search {src!r} was scored with cost {source_cost.name!r} but the "
            f"target {dst!r} with {target_cost.name!r}; transfer needs the same cost kind"
        )


def transfer(
    source_picks: Sequence[Pick],
    target_picks: Sequence[Pick],
    *,
    space: SearchSpace,
    data: TensorData,
    cost: CostEvaluator,
    trainer: TrainerSettings,
    seed: int,
    retrain_native: bool = False,
    on_train: Callable[[str, Mapping[str, Any]], None] | None = None,
) -> list[TransferRow]:
    """For each ``wc`` (the two lists' order), the source pick trained on ``data`` beside the
    target's pick. ``on_train(role, candidate)`` before each training (``role``: ``source``
    or ``native``). A training that diverges gives a row with ``failure`` set."""
    if [p.wc for p in source_picks] != [p.wc for p in target_picks]:
        raise ValueError("transfer: the source and target picks are for different wc values")
    trained: dict[Any, dict[str, float] | str] = {}  # candidate key -> figures, or failure

    def figures_of(candidate: Mapping[str, Any], role: str) -> dict[str, float] | str:
        key = candidate_key(candidate)
        if key not in trained:
            if on_train is not None:
                on_train(role, candidate)
            try:
                trained[key] = evaluate(
                    candidate,
                    space=space,
                    data=data,
                    cost=cost,
                    wc=0.0,
                    trainer=trainer,
                    seed=seed,
                ).figures
            except TrialDiverged as err:
                trained[key] = f"diverged ({err})" if str(err) else "diverged"
        return trained[key]

    def scored(figures: Mapping[str, float] | str, wc: float) -> Scored:
        if isinstance(figures, str):
            return Scored({}, math.nan, math.inf, failure=figures)
        return Scored(dict(figures), cost.complexity(figures), score(figures, wc, cost))

    rows = []
    for src, dst in zip(source_picks, target_picks, strict=True):
        moved = scored(figures_of(src.best.candidate, "source"), src.wc)
        if retrain_native:
            native = scored(figures_of(dst.best.candidate, "native"), dst.wc)
        else:
            native = Scored(dict(dst.best.figures), dst.complexity, dst.best.loss)
        rows.append(TransferRow(src.wc, src.best, moved, dst.best, native, retrain_native))
    return rows


__all__ = ["Scored", "TransferRow", "check_comparable", "recorded_settings", "transfer"]
