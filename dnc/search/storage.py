"""The Optuna storage of a search: opening it, finding its studies, reading its trials back.

A search named ``S`` keeps one study per stage, named ``S/<stage>``. Each finished trial holds
its candidate and raw figures (``dnc.search.records``), so everything below works from the
storage alone, in any process (several workers may share it).
"""

from __future__ import annotations

import importlib
import math
import random
import time
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from dnc import optuna_compat
from dnc.plugins import CostEvaluator, UserError
from dnc.search import coordination, records
from dnc.search.objective import score
from dnc.search.records import Ranked
from dnc.secrets import mask_url, remember, scrub


def open_storage(
    url: str, *, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.BaseStorage:
    """An RDB storage for ``url`` (``sqlite:///file.db``, ``postgresql://...``)."""
    if not isinstance(url, str) or "://" not in url:
        raise UserError(f"storage.url={url!r}: give an SQLAlchemy URL such as sqlite:///optuna.db")
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    remember(url)
    # Workers started together on a fresh database all create Optuna's tables: on SQLite they
    # take turns (a file lock), elsewhere the losers of that race (a table or row that already
    # exists) try again; any other error (no server, a wrong password) is reported at once.
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            with coordination.sqlite_lock(url):
                return _rdb_storage(url, heartbeat_interval, grace_period)
        except Exception as err:
            race = isinstance(err, (IntegrityError, ProgrammingError))
            if race and attempt + 1 < _OPEN_ATTEMPTS:
                time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
                continue
            detail = scrub(str(err).splitlines()[0] if str(err) else repr(err))
            if isinstance(err, ImportError) and url.startswith("postgresql"):
                detail += '; install the driver: pip install "dnc[postgres]"'
            raise UserError(
                f"storage.url={mask_url(url)!r}: cannot open the Optuna storage ({detail})"
            ) from err
    raise AssertionError("unreachable")


_OPEN_ATTEMPTS = 4


def _rdb_storage(
    url: str, heartbeat_interval: int | None, grace_period: int | None
) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
        )


def study_name(search: str, stage: str) -> str:
    return f"{search}/{stage}"


def search_studies(storage: optuna.storages.BaseStorage, search: str) -> list[str]:
    """Names of the stage studies of ``search`` in ``storage``, oldest first."""
    return [n for n in optuna_compat.study_names(storage) if n.startswith(f"{search}/")]


def searches_in(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the searches in a storage (study names are ``<search>/<stage>``)."""
    return sorted({n.rsplit("/", 1)[0] for n in optuna_compat.study_names(storage) if "/" in n})


def load(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


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
        study = load(storage, name)
        if wc is not None and cost is None:
            cost = recorded_cost(study)
        stage = name.rsplit("/", 1)[-1]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            figs = records.figures(t)
            loss = score(figs, wc, cost) if wc is not None and figs and cost else None
            row = records.ranked(t, stage, loss)
            if row is not None:
                rows.append(row)
    rows.sort(key=lambda r: r.loss if math.isfinite(r.loss) else math.inf)
    return rows


def record_cost(study: optuna.Study, cost: CostEvaluator) -> None:
    """Record the cost evaluator (class and ``settings()``) on ``study``."""
    cls = type(cost)
    study.set_user_attr(
        records.COST, {"target": f"{cls.__module__}.{cls.__qualname__}", "kwargs": cost.settings()}
    )


def recorded_cost(study: optuna.Study) -> CostEvaluator:
    """Rebuild the cost evaluator (with its calibrated normaliser) a study was scored with."""
    spec: Mapping[str, Any] | None = study.user_attrs.get(records.COST)
    if spec is None:
        raise UserError(f"study {study.study_name!r} records no cost evaluator; pass one")
    module, _, name = spec["target"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise UserError(
            f"study {study.study_name!r} was scored with {spec['target']}, which is not "
            "installed here; install its plugin"
        ) from err
    return cls(**spec["kwargs"])  # type: ignore[no-any-return]


__all__ = [
    "load",
    "mask_url",
    "open_storage",
    "ranked_trials",
    "record_cost",
    "recorded_cost",
    "search_studies",
    "searches_in",
    "study_name",
]
