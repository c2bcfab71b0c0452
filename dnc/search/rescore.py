"""Re-scoring a finished search for other ``wc`` values, from the raw figures recorded on its
trials: nothing is trained.

Example:
    >>> storage = open_storage("sqlite:///outputs/digits-mlp/2026-11-25_14-44-23/optuna.db")
    >>> [(p.wc, p.best.found_by, p.best.number) for p in rescore(storage, "digits-mlp", [0, 1])]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna

from dnc.plugins import CostEvaluator, UserError
from dnc.search.ranking import ranked_trials
from dnc.search.records import Ranked
from dnc.search.settings import check_wc
from dnc.search.storage import load, recorded_cost, search_studies, searches_in


@dataclass(frozen=True)
class Pick:
    """The candidate a given ``wc`` selects (``best``, with its ``complexity`` fc), and the
    ranking of every finished trial for that ``wc``."""

    wc: float
    best: Ranked
    complexity: float
    ranking: list[Ranked]


def resolve_search(storage: optuna.storages.BaseStorage, search: str | None) -> str:
    """``search``, checked to be in ``storage``; the only search there when ``None``."""
    found = searches_in(storage)
    if search is None:
        if len(found) != 1:
            raise UserError(
                f"the storage holds {len(found)} searches ({', '.join(found) or 'none'}); "
                "name one with search=NAME"
            )
        return found[0]
    if search not in found:
        raise UserError(
            f"search {search!r} is not in the storage; it holds: {', '.join(found) or 'none'}"
        )
    return search


def search_cost(storage: optuna.storages.BaseStorage, search: str) -> CostEvaluator:
    """The cost evaluator a search was scored with (with its calibrated normaliser)."""
    return recorded_cost(load(storage, search_studies(storage, search)[0]))


def rescore(
    storage: optuna.storages.BaseStorage,
    search: str,
    wcs: Sequence[float],
    cost: CostEvaluator | None = None,
) -> list[Pick]:
    """For each ``wc``, the ranking of every finished trial under ``log10(fp + wc * fc)``."""
    cost = cost or search_cost(storage, search)
    picks = []
    for wc in wcs:
        wc = check_wc(wc)
        ranking = ranked_trials(storage, search, wc=wc, cost=cost)
        if not ranking:
            raise UserError(f"search {search!r} has no finished trial to re-score")
        picks.append(Pick(wc, ranking[0], cost.complexity(ranking[0].figures), ranking))
    return picks


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the ``(cost, accuracy)`` points no other point beats on both cost (lower)
    and accuracy (higher), sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_acc = [], -float("inf")
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front


__all__ = ["Pick", "pareto_front", "rescore", "resolve_search", "search_cost"]
