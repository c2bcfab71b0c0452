"""The Optuna storage of a search: opening it, waiting out an outage of its database, finding
its studies, reading its trials back.

A search named ``S`` keeps one study per stage, named ``S/<stage>``. Each finished trial holds
its candidate and raw figures (``dnc.search.records``), so everything below works from the
storage alone, in any process (several workers may share it).
"""

from __future__ import annotations

import copy
import functools
import importlib
import logging
import math
import random
import re
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import optuna
from optuna.trial import FrozenTrial, TrialState

from dnc import optuna_compat
from dnc.plugins import CostEvaluator, UserError
from dnc.search import coordination, records
from dnc.search.settings import StorageSettings
from dnc.secrets import mask_url, remember, scrub

log = logging.getLogger(__name__)

T = TypeVar("T")


class StorageUnavailable(UserError):
    """The Optuna storage stayed unreachable longer than ``storage.retry_s``: the worker stops
    (one line, with the reason); the trial it was running is run again when the search
    resumes."""


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    retry_s: float | None = None,
) -> RetryingStorage:
    """The storage for ``url`` (``sqlite:///file.db``, ``postgresql://...``): Optuna's RDB
    storage, whose calls wait out an unreachable database for up to ``retry_s`` seconds
    (``storage.retry_s`` by default; ``RetryingStorage``). A database that cannot be opened is
    reported at once."""
    if not isinstance(url, str) or "://" not in url:
        raise UserError(f"storage.url={url!r}: give an SQLAlchemy URL such as sqlite:///optuna.db")
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    remember(url)
    # Workers started together on a fresh database all create Optuna's tables: on SQLite they
    # take turns (a file lock), elsewhere the race's losers try again; other errors stop at once.
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            with coordination.sqlite_lock(url):
                rdb = _rdb_storage(url, heartbeat_interval, grace_period)
            break
        except Exception as err:
            race = isinstance(err, (IntegrityError, ProgrammingError))
            if race and attempt + 1 < _OPEN_ATTEMPTS:
                time.sleep(random.uniform(0.2, 1.0) * (attempt + 1))
                continue
            detail = _reason(err)  # the driver's words, not Optuna's "error during the commit"
            if isinstance(err, ImportError) and url.startswith("postgresql"):
                detail += '; install the driver: pip install "dnc[postgres]"'
            elif _FULL.search(detail):
                detail += "; it takes no more connections: run fewer workers, or raise its "
                detail += "max_connections (or the role's or database's connection limit)"
            raise UserError(
                f"storage.url={mask_url(url)!r}: cannot open the Optuna storage ({detail})"
            ) from err
    if grace_period is None and heartbeat_interval is not None:
        grace_period = 2 * heartbeat_interval  # Optuna's default
    retry_s = StorageSettings.retry_s if retry_s is None else retry_s
    return RetryingStorage(rdb, retry_s=retry_s, grace_period=grace_period or 0)


_OPEN_ATTEMPTS = 4
# PostgreSQL's refusals past max_connections, or a role's or database's CONNECTION LIMIT
_FULL = re.compile(r"too many (connections|clients)|connection slots", re.IGNORECASE)

# libpq: give up connecting after 10 s (a host that does not answer), and notice a server that
# vanished under an open connection within about a minute (TCP keepalives).
_POSTGRES_CONNECT = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def _rdb_storage(
    url: str, heartbeat_interval: int | None, grace_period: int | None
) -> optuna.storages.RDBStorage:
    engine: dict[str, Any] | None = None
    if not url.startswith("sqlite"):  # a pooled connection is checked before use
        engine = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            engine["connect_args"] = dict(_POSTGRES_CONNECT)
    with warnings.catch_warnings():  # heartbeat_interval is "experimental" since Optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            engine_kwargs=engine,
        )


CREATE_TOKEN = "dnc.create_token"
"""System attribute of every trial: a random token of the call that created it, so that a
creation tried again after a lost answer finds the trial it made instead of making another."""

_FIRST_WAIT_S = 0.25  # the wait after a first failed call, doubled after each further one
_MAX_WAIT_S = 5.0  # ... up to this
_HEARTBEAT_MAX_WAIT_S = 1.0  # the heartbeat's (a beat gives up after heartbeat_interval)
_JITTER = random.SystemRandom()  # not the seeded global one: workers with one seed differ here


class RetryingStorage(optuna_compat.StorageProxy):
    """A search's Optuna storage (what ``open_storage`` gives): Optuna's RDB storage, cached as
    Optuna caches it, whose calls wait out a database that cannot be reached (a server
    restarting, a lost network, a locked SQLite file: ``optuna_compat.unreachable``).

    - A call that fails so is tried again after a wait that doubles from 0.25 s up to 5 s (with
      jitter, so that workers do not come back in step), until the database has been
      unreachable for ``retry_s`` seconds, counted from the first failed call of any thread of
      the process: then ``StorageUnavailable`` (and every further call that fails, at once).
    - A write is made once even when a failed attempt did commit (its answer lost with the
      connection): a trial is created with a token (``CREATE_TOKEN``) that a retried creation
      looks for, and a queued trial that was created twice (Optuna retries creations itself) is
      failed at once; a retried tell that finds its trial finished as it meant is done.
    - The heartbeat (its own thread, every ``heartbeat_interval``) never raises because the
      database is away: it tries again, and keeps beating once it is back. No running trial is
      judged dead (``settling``) until ``grace_period`` after this process saw the database come
      back, or after a PostgreSQL server (re)started, so that live workers beat again first.

    Example:
        >>> storage = open_storage("postgresql://dnc@db/dnc", heartbeat_interval=10,
        ...                        grace_period=30, retry_s=120)
        >>> study = optuna.create_study(study_name="s/core", storage=storage)
    """

    def __init__(
        self, rdb: optuna.storages.RDBStorage, *, retry_s: float, grace_period: float
    ) -> None:
        super().__init__(rdb)
        self.retry_s = retry_s
        self.grace_period = grace_period
        self._down_since: float | None = None  # time.monotonic() of this outage's first failure
        self._back_at: float | None = None  # ... and of the end of the last outage

    def call(
        self, op: Callable[[], T], *, patience: float | None = None, max_wait: float = _MAX_WAIT_S
    ) -> T:
        """Run ``op`` (one call of the backend) until it does not fail for an unreachable
        database; give up (``StorageUnavailable``) once the database has been unreachable for
        ``retry_s``, or after ``patience`` seconds of this call."""
        started = time.monotonic()
        wait = _FIRST_WAIT_S
        while True:
            try:
                result = op()
            except Exception as err:
                if optuna_compat.unreachable(err) is None:
                    raise
                now = time.monotonic()
                down_since = self._down_since
                if down_since is None:
                    self._down_since = down_since = now
                    log.warning(
                        "the Optuna storage at %s is unreachable (%s): retrying for up to %g s",
                        mask_url(self.url),
                        _reason(err),
                        self.retry_s,
                    )
                give_up = down_since + self.retry_s
                if patience is not None:
                    give_up = min(give_up, started + patience)
                if now >= give_up:
                    raise StorageUnavailable(
                        f"the Optuna storage at {mask_url(self.url)} has been unreachable for "
                        f"{now - down_since:.0f} s, longer than storage.retry_s={self.retry_s:g} "
                        f"({_reason(err)})"
                    ) from err
                time.sleep(min(wait * _JITTER.uniform(0.5, 1.0), give_up - now))
                wait = min(2 * wait, max_wait)
                continue
            down_since = self._down_since
            if down_since is not None:
                self._down_since = None
                self._back_at = now = time.monotonic()
                log.warning(
                    "the Optuna storage at %s is reachable again (after %.0f s)",
                    mask_url(self.url),
                    now - down_since,
                )
            return result

    def settling(self) -> bool:
        """Whether a running trial's stale heartbeat may only mean that its worker has not beaten
        since the database came back (less than ``grace_period`` ago)."""
        if self._down_since is not None:
            return True
        if self._back_at is not None and time.monotonic() - self._back_at < self.grace_period:
            return True
        return self.grace_period > 0 and self._server_age() < self.grace_period

    def _server_age(self) -> float:
        """Seconds since the database server started (PostgreSQL; ``inf`` elsewhere)."""
        if self.engine.dialect.name != "postgresql":
            return math.inf
        from sqlalchemy import text

        def age() -> float:
            with self.engine.connect() as conn:
                query = "SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time())"
                return float(conn.execute(text(query)).scalar_one())

        return self.call(age)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        token = uuid.uuid4().hex
        template = _with_token(template_trial, token)
        tries = 0

        def attempt() -> int:
            nonlocal tries
            tries += 1
            if tries > 1:  # did the failed attempt create it?
                made = self._created(study_id, token)
                if made:
                    return made[0]
            if template_trial is None:  # started now, not when the first attempt failed
                template.datetime_start = datetime.now()
            return self.backend.create_new_trial(study_id, template)

        trial_id = self.call(attempt)
        if tries > 1 or template.state == TrialState.WAITING:
            # made twice (Optuna itself retries a creation): a queued copy would be trained too
            for extra in self.call(lambda: self._created(study_id, token)):
                if extra != trial_id:
                    self.call(functools.partial(_fail_quietly, self.backend, extra))
        return trial_id

    def _created(self, study_id: int, token: str) -> list[int]:
        return [
            optuna_compat.trial_id(t)
            for t in self.backend.get_all_trials(study_id, deepcopy=False)
            if t.system_attrs.get(CREATE_TOKEN) == token
        ]

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        tries = 0

        def attempt() -> bool:
            nonlocal tries
            tries += 1
            try:
                return self.backend.set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                if tries > 1 and _finished_as(self.backend.get_trial(trial_id), state, values):
                    return True  # the failed attempt did commit
                raise

        return self.call(attempt)

    def record_heartbeat(self, trial_id: int) -> None:
        interval = float(self.get_heartbeat_interval() or 1)
        try:
            self.call(
                lambda: self.rdb.record_heartbeat(trial_id),
                patience=interval,
                max_wait=_HEARTBEAT_MAX_WAIT_S,
            )
        except (StorageUnavailable, optuna.exceptions.StorageInternalError):
            pass  # the next beat tries again: the worker's own calls decide when to give up


def _reason(err: BaseException) -> str:
    """The first line of the database driver's message for an unreachable database, passwords
    scrubbed."""
    cause = optuna_compat.unreachable(err) or err
    driver = getattr(cause, "orig", None)  # SQLAlchemy wraps the driver's exception
    text = str(driver if isinstance(driver, BaseException) else cause).strip()
    return scrub(text.splitlines()[0].strip() if text else type(cause).__name__)


def _with_token(template: FrozenTrial | None, token: str) -> FrozenTrial:
    """``template`` (or a plain new running trial) with the creation token among its system
    attributes."""
    if template is None:
        return FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={},
            distributions={},
            user_attrs={},
            system_attrs={CREATE_TOKEN: token},
            intermediate_values={},
            trial_id=-1,
        )
    marked = copy.deepcopy(template)
    marked.system_attrs = {**template.system_attrs, CREATE_TOKEN: token}
    return marked


def _finished_as(trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> bool:
    """Whether ``trial`` finished with ``state`` and ``values``."""
    if trial.state != state:
        return False
    return values is None or trial.values == [float(v) for v in values]


def _fail_quietly(storage: optuna.storages.BaseStorage, trial_id: int) -> None:
    try:
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


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
    "CREATE_TOKEN",
    "RetryingStorage",
    "StorageUnavailable",
    "load",
    "mask_url",
    "open_storage",
    "record_cost",
    "recorded_cost",
    "search_studies",
    "searches_in",
    "study_name",
]
