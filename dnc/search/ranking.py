"""The finished trials of a search, best first, and the ``wc`` that ranks them.

A loss stage's trial has its search loss as its value; a Pareto stage's trial
(``dnc.search.pareto``) has two values, and its search loss comes from its recorded figures for
the search's ``wc``: ``search.wc``, or with ``search.wc=null`` the knee of the front found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from dnc.plugins import CostEvaluator, UserError
from dnc.search import pareto, records
from dnc.search.objective import score
from dnc.search.records import Ranked
from dnc.search.storage import load, recorded_cost, search_studies


def ranked_trials(
    storage: optuna.storages.BaseStorage,
    search: str,
    *,
    wc: float | None = None,
    cost: CostEvaluator | None = None,
) -> list[Ranked]:
    """Every completed trial of ``search``, best first. With ``wc`` (and optionally another
    ``cost``), losses are recomputed from the recorded figures: no training. A Pareto stage's
    trials are scored for ``wc``, else for the search's (``search_wc``). Trials the costed
    target cannot run (``CostEvaluator.feasible``) come after every trial it can, whatever
    their loss (which for a small ``wc`` hardly counts their penalty cost)."""
    studies = [load(storage, name) for name in search_studies(storage, search)]
    if wc is None and any(pareto.is_pareto(s) for s in studies):
        cost = cost or recorded_cost(studies[0])
        wc = search_wc(studies, cost)
        rescore_all = False
    else:
        rescore_all = wc is not None
    rows: list[Ranked] = []
    for study in studies:
        if wc is not None and cost is None:
            cost = recorded_cost(study)
        stage = study.study_name.rsplit("/", 1)[-1]
        rescore = rescore_all or pareto.is_pareto(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            figs = records.figures(t)
            loss = score(figs, wc, cost) if rescore and wc is not None and figs and cost else None
            row = records.ranked(t, stage, loss)
            if row is not None:
                rows.append(row)
    judge = cost or _cost_of(studies)
    if judge is not None and judge.judges_feasibility:  # what the target can run comes first
        rows.sort(key=lambda r: (not judge.feasible(r.figures), _finite(r.loss)))
    else:
        rows.sort(key=lambda r: _finite(r.loss))
    return rows


def _cost_of(studies: list[optuna.Study]) -> CostEvaluator | None:
    """The cost the search recorded, if it did and its plugin is installed."""
    try:
        return recorded_cost(studies[0]) if studies else None
    except UserError:  # ranked by loss alone, as it always could be
        return None


def _finite(loss: float) -> float:
    return loss if math.isfinite(loss) else math.inf


def search_wc(studies: list[optuna.Study], cost: CostEvaluator) -> float:
    """The ``wc`` a search ranks with: the one it records (``search.wc``), else the knee of its
    Pareto stages' trials (``pareto.knee_wc``; recorded as ``dnc.knee_wc`` once the stage
    finished; ``pareto.DEFAULT_WC`` before a front has two points)."""
    first = studies[0].user_attrs if studies else {}
    settings: Mapping[str, Any] = first.get(records.SETTINGS) or {}
    if settings.get("wc") is not None:
        return float(settings["wc"])
    for study in studies:
        if pareto.is_pareto(study) and records.KNEE_WC in study.user_attrs:
            return float(study.user_attrs[records.KNEE_WC])
    return knee_of(studies, cost)


def knee_of(studies: list[optuna.Study], cost: CostEvaluator) -> float:
    """``pareto.knee_wc`` of the completed trials of the Pareto stages among ``studies``."""
    figures = [
        f
        for study in studies
        if pareto.is_pareto(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if (f := records.figures(t)) is not None
    ]
    return pareto.knee_of(figures, cost)


def search_wc_of(storage: optuna.storages.BaseStorage, search: str) -> float:
    """``search_wc`` of the search called ``search`` in ``storage``."""
    studies = [load(storage, name) for name in search_studies(storage, search)]
    return search_wc(studies, recorded_cost(studies[0]))


__all__ = ["knee_of", "ranked_trials", "search_wc", "search_wc_of"]
