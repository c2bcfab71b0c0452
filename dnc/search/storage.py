"""The Optuna storage of a search: opening it, reading its trials back, re-scoring them.

A search named ``S`` keeps one study per stage, named ``S/<stage>``. Each finished trial holds
its candidate and raw figures as user attributes, so everything below works from the storage
alone, in any process (several workers may share it).
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dnc.plugins import CostEvaluator, UserError
from dnc.search.objective import score
from dnc.tracking.console import Ranked

SETTINGS_ATTR = "dnc.settings"
COST_ATTR = "dnc.cost"
PARENT_RUN_ATTR = "mlflow_parent_run_id"


def open_storage(
    url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.BaseStorage:
    """An RDB storage for ``url`` (``sqlite:///file.db``, ``postgresql://...``)."""
    if not isinstance(url, str) or "://" not in url:
        raise UserError(f"storage.url={url!r}: give an SQLAlchemy URL such as sqlite:///optuna.db")
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if str(path) not in ("", ":memory:"):
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
            )
    except Exception as err:
        raise UserError(f"storage.url={url!r}: cannot open the Optuna storage ({err})") from err


def study_name(search: str, stage: str) -> str:
    return f"{search}/{stage}"


def search_studies(storage: optuna.storages.BaseStorage, search: str) -> list[str]:
    """Names of the stage studies of ``search`` in ``storage``, oldest first."""
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    ordered = sorted(summaries, key=lambda s: s._study_id)
    return [s.study_name for s in ordered if s.study_name.startswith(f"{search}/")]


def counts_against_budget(trial: FrozenTrial) -> bool:
    """Finished trials use up a stage's budget: completed ones, and failed ones that failed on
    their own (a NaN loss, an error). A trial failed because its worker died (Optuna's
    heartbeat, or a resumed search) does not: its slot is run again."""
    if trial.state == TrialState.COMPLETE:
        return True
    return trial.state == TrialState.FAIL and "fail_reason" in trial.user_attrs


def ranked_trials(
    storage: optuna.storages.BaseStorage,
    search: str,
    *,
    wc: float | None = None,
    cost: CostEvaluator | None = None,
) -> list[Ranked]:
    """Every completed trial of ``search``, best first. With ``wc`` (and optionally another
    ``cost``), losses are recomputed from the recorded figures: no training."""
    rows: list[Ranked] = []
    for name in search_studies(storage, search):
        study = optuna.load_study(study_name=name, storage=storage)
        if wc is not None and cost is None:
            cost = recorded_cost(study)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            figures = t.user_attrs.get("figures")
            if figures is None or t.value is None:
                continue
            loss = t.value if wc is None else score(figures, wc, cost)  # type: ignore[arg-type]
            rows.append(
                Ranked(
                    stage=t.user_attrs.get("stage", name.rsplit("/", 1)[-1]),
                    number=t.number,
                    loss=float(loss),
                    figures=figures,
                    candidate=t.user_attrs.get("candidate", t.params),
                    substage=t.user_attrs.get("substage", ""),
                )
            )
    rows.sort(key=lambda r: r.loss if math.isfinite(r.loss) else math.inf)
    return rows


def record_cost(study: optuna.Study, cost: CostEvaluator) -> None:
    cls = type(cost)
    study.set_user_attr(
        COST_ATTR, {"target": f"{cls.__module__}.{cls.__qualname__}", "kwargs": cost.settings()}
    )


def recorded_cost(study: optuna.Study) -> CostEvaluator:
    """Rebuild the cost evaluator (with its calibrated normaliser) a study was scored with."""
    spec: Mapping[str, Any] | None = study.user_attrs.get(COST_ATTR)
    if spec is None:
        raise UserError(f"study {study.study_name!r} records no cost evaluator; pass one")
    module, _, name = spec["target"].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**spec["kwargs"])
