"""Every use of Optuna's private API, in one place (``tests/test_optuna_compat.py`` covers each).

dnc needs a few things Optuna does not expose publicly: a trial's and a study's storage ids, a
sampler writing a system attribute on the trial it samples for, failing a running trial that
belongs to a dead worker, a heartbeat for trials run through ``ask``/``tell``, whether a
distribution contains a value, the whole study behind the one-bracket view ``HyperbandPruner``
hands samplers, and a storage of its own (``StorageProxy``: Optuna's RDB storage in Optuna's
cache, every call going through one hook, the heartbeat included). When an Optuna upgrade
changes any of them, this module is the one to mend.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Container, Iterator, Sequence
from typing import Any, TypeVar

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

T = TypeVar("T")


def study_id(study: optuna.Study) -> int:
    """The storage's id of ``study`` (stable across processes sharing the storage)."""
    return int(study._study_id)


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of ``trial``, unique across the studies of a storage."""
    return int(trial._trial_id)


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of every study in ``storage``, oldest first (by storage id: the creation order,
    which ``get_all_studies`` does not promise)."""
    return [s.study_name for s in sorted(storage.get_all_studies(), key=lambda s: s._study_id)]


def whole_study(study: optuna.Study) -> optuna.Study:
    """The study itself where Optuna hands a sampler a view of it: under ``HyperbandPruner``,
    samplers get a study holding only the trials of the current trial's bracket (so that TPE
    learns each bracket apart); a model of the whole stage wants every trial."""
    inner = getattr(study, "_study", None)  # HyperbandPruner's _BracketStudy wraps the study
    return inner if isinstance(inner, optuna.Study) else study


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage ``study`` reads and writes (without the cache Optuna wraps an RDB storage
    in; a ``StorageProxy``, what ``dnc.search.storage.open_storage`` gives, as it is)."""
    storage = study._storage
    return getattr(storage, "_backend", storage)  # type: ignore[no-any-return]


def set_trial_system_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Record ``key: value`` in the system attributes of ``trial`` (what a sampler may do for the
    trial it samples; ``Trial.set_system_attr`` is gone from the public API)."""
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


CONSTRAINTS_KEY = "constraints"
"""Optuna's system attribute of a trial's constraint values (with ``constraints:<name>``)."""


def set_constraint(trial: optuna.Trial, name: str, value: float) -> None:
    """Record a constraint value of a running ``trial`` (feasible when <= 0) where Optuna's
    samplers and ``study.best_trials`` read it: ``Trial.set_constraint`` (Optuna 5), else the
    list that Optuna 4's ``constraints_func`` writes (there only ``study.best_trials`` reads it:
    Optuna 4's samplers read constraints only from a ``constraints_func`` of their own)."""
    if hasattr(trial, "set_constraint"):
        trial.set_constraint(name, value)
    else:  # pragma: no cover - Optuna 4
        trial.study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_KEY, [value])


def constraints(trial: FrozenTrial) -> dict[str, float]:
    """The constraint values ``trial`` records, by name (Optuna 4's list by position)."""
    attrs = trial.system_attrs
    out = {str(i): v for i, v in enumerate(attrs.get(CONSTRAINTS_KEY) or [])}
    prefix = CONSTRAINTS_KEY + ":"
    return out | {k[len(prefix) :]: v for k, v in attrs.items() if k.startswith(prefix)}


def feasible(trial: FrozenTrial) -> bool:
    """Whether ``trial`` meets every constraint it records (true when it records none)."""
    return all(v <= 0 for v in constraints(trial).values())


def fail_trial(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Mark a running ``trial`` of another (dead) process failed; False when it has finished
    meanwhile (another worker got there first), or when the storage has just been unreachable
    (``StorageProxy.settling``: its worker may be alive and reconnecting)."""
    storage = study._storage
    if isinstance(storage, StorageProxy) and storage.settling():
        return False
    try:
        return bool(study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's heartbeat check (``optuna.storages.fail_stale_trials``, experimental since 2.9):
    fail the running trials whose process stopped beating."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def ask(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` for a trial that ``heartbeat`` keeps alive (Optuna warns that a storage
    with a heartbeat is meant for ``Study.optimize``; dnc beats as ``optimize`` does)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Beat for ``trial`` while the block runs, as ``Study.optimize`` does for its trials, so
    that a trial run through ``ask``/``tell`` is failed by the heartbeat check when its process
    dies (nothing happens on a storage without a heartbeat)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    with get_heartbeat_thread(trial._trial_id, study._storage):
        yield


def contains(distribution: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` (external representation) is a value of ``distribution``."""
    try:
        internal = distribution.to_internal_repr(value)
    except (ValueError, TypeError):
        return False
    return bool(distribution._contains(internal))


def unreachable(err: BaseException) -> BaseException | None:
    """The error in ``err`` (itself, its cause, or what a failed rollback was handling) saying
    that the storage's database could not be reached: a refused or lost connection, a server
    shutting down or starting up, a deadlock or a locked SQLite file (SQLAlchemy's
    ``OperationalError`` or ``InterfaceError``, or an error that invalidated its connection),
    also inside the ``StorageInternalError`` Optuna raises for them; ``None`` if there is none,
    or if SQLite cannot write at all (a full disk, a read-only file: retrying will not help)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _cannot_write(getattr(current, "orig", None)):  # a full disk: waiting will not help
            return None
        if isinstance(current, (OperationalError, InterfaceError)) or (
            isinstance(current, DBAPIError) and current.connection_invalidated
        ):
            return current
        wraps = isinstance(current, (SQLAlchemyError, optuna.exceptions.StorageInternalError))
        current = current.__cause__ or (current.__context__ if wraps else None)
    return None


def _cannot_write(err: object) -> bool:
    """Whether SQLite refused a write for good: the disk is full, or the file is read-only."""
    import sqlite3

    if not isinstance(err, sqlite3.Error):
        return False
    name = str(getattr(err, "sqlite_errorname", ""))
    text = str(err).lower()
    return (
        name.startswith(("SQLITE_FULL", "SQLITE_READONLY"))
        or "database or disk is full" in text
        or "readonly database" in text
    )


class StorageProxy(BaseStorage, BaseHeartbeat):
    """An Optuna storage over an RDB storage (in the cache ``optuna.create_study`` would wrap
    it in, here one cache for every study of it): every call, the heartbeat's included, goes
    through ``call``, which a subclass overrides to wrap them all (retries, in
    ``dnc.search.storage``). Optuna treats it as any storage with a heartbeat; ``url`` and
    ``engine`` are the RDB storage's (``dnc.search.coordination`` locks with them).

    Example:
        >>> storage = StorageProxy(optuna.storages.RDBStorage("sqlite:///o.db"))
        >>> study = optuna.create_study(study_name="s/core", storage=storage)
    """

    def __init__(self, rdb: RDBStorage) -> None:
        self.rdb = rdb
        self.backend: BaseStorage = optuna.storages._CachedStorage(rdb)

    @property
    def url(self) -> str:
        return str(self.rdb.url)

    @property
    def engine(self) -> Any:
        return self.rdb.engine

    def close(self) -> None:
        """Close the connections the RDB storage pools. SQLAlchemy keeps a pool per storage
        until the garbage collector frees it, which can take long enough for a process that
        opens many (a Hydra multirun's searches) to use up a PostgreSQL server's connections.
        The storage stays usable: a later call connects again."""
        self.rdb.engine.dispose()

    def call(self, op: Callable[[], T]) -> T:
        """Run ``op``, one call of the backend (here: as it is)."""
        return op()

    def settling(self) -> bool:
        """Whether running trials must not be judged dead now, although their heartbeat is
        stale (e.g. just after the storage was unreachable, while their workers reconnect)."""
        return False

    # -- studies ------------------------------------------------------------------------------
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self.call(lambda: self.backend.create_new_study(directions, study_name))

    def delete_study(self, study_id: int) -> None:
        self.call(lambda: self.backend.delete_study(study_id))

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.call(lambda: self.backend.set_study_user_attr(study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.call(lambda: self.backend.set_study_system_attr(study_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.call(lambda: self.backend.get_study_id_from_name(study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.call(lambda: self.backend.get_study_name_from_id(study_id))

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.call(lambda: self.backend.get_study_directions(study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.call(lambda: self.backend.get_study_user_attrs(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.call(lambda: self.backend.get_study_system_attrs(study_id))

    def get_all_studies(self) -> list[FrozenStudy]:
        return self.call(self.backend.get_all_studies)

    # -- trials -------------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self.call(lambda: self.backend.create_new_trial(study_id, template_trial))

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        self.call(
            lambda: self.backend.set_trial_param(
                trial_id, param_name, param_value_internal, distribution
            )
        )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.call(
            lambda: self.backend.get_trial_id_from_study_id_trial_number(study_id, trial_number)
        )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self.call(lambda: self.backend.set_trial_state_values(trial_id, state, values))

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self.call(
            lambda: self.backend.set_trial_intermediate_value(trial_id, step, intermediate_value)
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.call(lambda: self.backend.set_trial_user_attr(trial_id, key, value))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.call(lambda: self.backend.set_trial_system_attr(trial_id, key, value))

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self.call(lambda: self.backend.get_trial(trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        return self.call(lambda: self.backend.get_all_trials(study_id, deepcopy, states))

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self.call(lambda: self.backend.get_best_trial(study_id))

    def remove_session(self) -> None:
        self.rdb.remove_session()

    # -- the heartbeat (BaseHeartbeat) --------------------------------------------------------
    def record_heartbeat(self, trial_id: int) -> None:
        self.call(lambda: self.rdb.record_heartbeat(trial_id))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = self.call(lambda: self.rdb._get_stale_trial_ids(study_id))
        return [] if stale and self.settling() else stale

    def get_heartbeat_interval(self) -> int | None:
        return self.rdb.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.rdb.get_heartbeat_stale_trial_callback()


__all__ = [
    "CONSTRAINTS_KEY",
    "StorageProxy",
    "ask",
    "constraints",
    "contains",
    "fail_stale_trials",
    "fail_trial",
    "feasible",
    "heartbeat",
    "set_constraint",
    "set_trial_system_attr",
    "study_id",
    "storage_of",
    "study_names",
    "trial_id",
    "unreachable",
    "whole_study",
]
