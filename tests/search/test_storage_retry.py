"""A storage whose database goes away (``dnc.search.storage.RetryingStorage``): calls wait it
out, a write whose answer was lost is made once, the heartbeat survives, and a storage away past
``retry_s`` stops with one line. On a real SQLite storage (a lost commit made by SQLAlchemy's
own events) and on a real PostgreSQL server of the test's own, stopped and started again."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
import types
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import optuna
import pytest
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState
from private_postgres import PostgresCluster
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from dnc import optuna_compat
from dnc.plugins import UserError
from dnc.search.coordination import lock
from dnc.search.settings import StorageSettings
from dnc.search.storage import (
    CREATE_TOKEN,
    RetryingStorage,
    StorageUnavailable,
    open_storage,
)


@pytest.fixture
def sqlite_storage(tmp_path) -> RetryingStorage:
    return open_storage(f"sqlite:///{tmp_path}/r.db", heartbeat_interval=1, grace_period=2)


@pytest.fixture
def pg_url(cluster) -> Iterator[str]:
    yield cluster.new_database()
    if not cluster.running:  # a test that failed with the server stopped
        cluster.start()


class _AnswerLost:
    """An SQLite connection whose next ``lose`` commits that wrote something are made, then
    fail as if the connection had dropped before the answer came back."""

    lose = 0

    def __init__(self, path: str) -> None:
        object.__setattr__(self, "_conn", sqlite3.connect(path, check_same_thread=False))
        object.__setattr__(self, "wrote", False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._conn, name, value)

    def commit(self) -> None:
        self._conn.commit()
        if self.wrote and _AnswerLost.lose:
            _AnswerLost.lose -= 1
            raise sqlite3.OperationalError("disk I/O error")
        object.__setattr__(self, "wrote", False)


@pytest.fixture
def losing_storage(tmp_path) -> Iterator[RetryingStorage]:
    """A storage over an SQLite file whose commits lose their answer when ``lost_answers``
    says so."""
    path = str(tmp_path / "lost.db")
    rdb = optuna.storages.RDBStorage(
        f"sqlite:///{path}", engine_kwargs={"creator": lambda: _AnswerLost(path)}
    )

    @event.listens_for(rdb.engine, "before_cursor_execute")
    def wrote(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            object.__setattr__(conn.connection.dbapi_connection, "wrote", True)

    yield RetryingStorage(rdb, retry_s=30, grace_period=2)
    _AnswerLost.lose = 0


@contextlib.contextmanager
def lost_answers(n: int = 1) -> Iterator[None]:
    """The next ``n`` commits that write lose their answer (on ``losing_storage``)."""
    _AnswerLost.lose = n
    try:
        yield
    finally:
        assert _AnswerLost.lose == 0, "an answer was not lost"


@contextlib.contextmanager
def outage(cluster: PostgresCluster, seconds: float) -> Iterator[None]:
    """The server stopped now and started again ``seconds`` later, while the block runs."""
    cluster.stop()
    restart = threading.Timer(seconds, cluster.start)
    restart.start()
    try:
        yield
    finally:
        restart.join()


# -- what Optuna and dnc find in the storage (SQLite) ----------------------------------------------
def test_optuna_and_dnc_see_the_storage_through_the_wrapper(sqlite_storage, tmp_path):
    study = optuna.create_study(study_name="s/core", storage=sqlite_storage)
    assert study._storage is sqlite_storage  # Optuna keeps it (and its cache) as it is
    assert isinstance(sqlite_storage.backend, optuna.storages._CachedStorage)
    assert is_heartbeat_enabled(sqlite_storage)
    assert optuna_compat.storage_of(study) is sqlite_storage
    assert sqlite_storage.url == f"sqlite:///{tmp_path}/r.db"
    assert sqlite_storage.engine.dialect.name == "sqlite"
    with lock(study, "x"), lock(sqlite_storage, "y"):  # the file lock beside the database
        assert (tmp_path / "r.db.lock").exists()
    trial = optuna_compat.ask(study)
    trial.suggest_int("n", 1, 4)
    with optuna_compat.heartbeat(study, trial):
        time.sleep(0.1)
    study.tell(trial, 1.0)
    study.enqueue_trial({"n": 2})
    frozen = study.get_trials()
    assert [t.state for t in frozen] == [TrialState.COMPLETE, TrialState.WAITING]
    assert all(t.system_attrs[CREATE_TOKEN] for t in frozen)
    again = optuna.load_study(study_name="s/core", storage=sqlite_storage)
    assert again.best_value == 1.0 and again.trials[1].system_attrs["fixed_params"] == {"n": 2}


def test_retry_s_is_checked():
    assert StorageSettings().retry_s == 120
    assert StorageSettings(retry_s=5).retry_s == 5.0
    for bad in (-1, float("inf"), float("nan"), "soon", True):
        with pytest.raises(UserError, match="storage.retry_s"):
            StorageSettings(retry_s=bad)


def test_what_counts_as_unreachable():
    gone = OperationalError("SELECT 1", {}, Exception("connection refused"))
    internal = optuna.exceptions.StorageInternalError("commit failed")
    internal.__cause__ = gone
    assert optuna_compat.unreachable(gone) is optuna_compat.unreachable(internal) is gone
    duplicate = IntegrityError("INSERT", {}, Exception("duplicate"))
    for other in (duplicate, optuna.exceptions.UpdateFinishedTrialError("done"), ValueError()):
        assert optuna_compat.unreachable(other) is None


# -- a write whose answer was lost is made once (SQLite) -------------------------------------------
def test_a_tell_whose_answer_was_lost_is_recorded_once(losing_storage):
    study = optuna.create_study(study_name="s/core", storage=losing_storage)
    trial = optuna_compat.ask(study)
    with lost_answers():
        study.tell(trial, 0.5)  # committed, answer lost, tried again: finished as meant
    assert [(t.state, t.value) for t in study.trials] == [(TrialState.COMPLETE, 0.5)]
    other = optuna_compat.ask(study)
    study.tell(other, 0.7)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # not a retry: an error
        losing_storage.set_trial_state_values(optuna_compat.trial_id(other), TrialState.FAIL)


def test_a_queued_trial_created_twice_is_queued_once(losing_storage):
    """Optuna itself creates a trial again when its commit fails: the extra queued copy is
    failed at once, so that a grid variant is not trained twice."""
    study = optuna.create_study(study_name="s/arch", storage=losing_storage)
    with lost_answers():
        study.enqueue_trial({"n": 2}, user_attrs={"candidate": {"n": 2}})
    trials = study.get_trials()
    assert sorted(t.state.name for t in trials) == ["FAIL", "WAITING"]
    assert trials[0].system_attrs[CREATE_TOKEN] == trials[1].system_attrs[CREATE_TOKEN]
    popped = optuna_compat.ask(study)
    assert popped.user_attrs == {"candidate": {"n": 2}}
    assert [t.state for t in study.get_trials(states=(TrialState.WAITING,))] == []


def test_a_creation_tried_again_finds_the_trial_it_made(losing_storage, monkeypatch):
    """Every attempt commits and loses its answer (Optuna's own five, here without their waits,
    then dnc's): dnc's next attempt finds the trial made first; the copies are failed."""
    import optuna.storages._rdb.storage as rdb

    monkeypatch.setattr(rdb, "random", types.SimpleNamespace(random=lambda: 0.0))
    study = optuna.create_study(study_name="s/core", storage=losing_storage)
    with lost_answers(5):
        trial = optuna_compat.ask(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.RUNNING] + [TrialState.FAIL] * 4
    assert trial.number == 0 and len({t.system_attrs[CREATE_TOKEN] for t in trials}) == 1


# -- a real PostgreSQL server, stopped and started again ------------------------------------------
def test_calls_wait_out_a_restart(cluster, pg_url, caplog):
    storage = open_storage(pg_url, heartbeat_interval=1, grace_period=2, retry_s=30)
    study = optuna.create_study(study_name="s/core", storage=storage)
    trial = optuna_compat.ask(study)
    caplog.set_level(logging.WARNING, logger="dnc.search.storage")
    with outage(cluster, 2.0):
        started = time.monotonic()
        study.tell(trial, 0.25)  # waits for the server, then lands once
        assert time.monotonic() - started >= 1.5
    assert [(t.state, t.value) for t in study.get_trials()] == [(TrialState.COMPLETE, 0.25)]
    assert storage.settling()  # it has just come back: no trial is judged dead yet
    messages = [r.getMessage() for r in caplog.records]
    assert any("is unreachable" in m for m in messages)
    assert any("reachable again" in m for m in messages)
    assert not any(cluster.password in m for m in messages)


def test_a_lock_is_taken_after_a_restart_and_a_lost_one_is_let_go(cluster, pg_url, caplog):
    storage = open_storage(pg_url, retry_s=30)
    with outage(cluster, 1.5), lock(storage, "search"):  # taken once the server is back
        pass
    with lock(storage, "search"):  # held while the server restarts: released by it
        cluster.stop()
        cluster.start()
    assert "lost the lock 'search'" in caplog.text
    with lock(storage, "search"):
        pass


def test_the_heartbeat_thread_survives_a_restart(cluster, pg_url, monkeypatch):
    """Away longer than grace_period: the heartbeat thread (Optuna's, which dies on the first
    error it meets) beats again once the server is back, and the trial stays alive."""
    died: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_value))
    storage = open_storage(pg_url, heartbeat_interval=1, grace_period=2, retry_s=30)
    study = optuna.create_study(study_name="s/core", storage=storage)
    trial = optuna_compat.ask(study)
    with optuna_compat.heartbeat(study, trial):
        time.sleep(1.2)
        with outage(cluster, 3.0):
            pass
        back = datetime.now()
        time.sleep(2.5)  # past the grace period: only beats since the restart keep it alive
        optuna_compat.fail_stale_trials(study)
        with storage.engine.connect() as conn:
            beat = conn.execute(text("SELECT heartbeat FROM trial_heartbeats")).scalar_one()
    assert not died
    assert beat > back  # (both clocks are this machine's)
    assert study.trials[0].state == TrialState.RUNNING


def test_no_trial_is_judged_dead_while_workers_reconnect(cluster, pg_url):
    """Right after the server restarted, a stale heartbeat may only mean that its worker has
    not reconnected yet: no worker (not even one that saw no outage) fails the trial until
    grace_period has passed; then it is failed as before."""
    storage = open_storage(pg_url, heartbeat_interval=1, grace_period=2, retry_s=30)
    study = optuna.create_study(study_name="s/core", storage=storage)
    optuna_compat.ask(study)
    optuna_compat.ask(study)  # a trial of a worker killed before it beat: never stale
    storage.record_heartbeat(optuna_compat.trial_id(study.trials[0]))  # then silent
    with outage(cluster, 3.0):
        pass
    other = open_storage(pg_url, heartbeat_interval=1, grace_period=2, retry_s=30)
    other_study = optuna.load_study(study_name="s/core", storage=other)
    assert other.settling()
    optuna_compat.fail_stale_trials(other_study)
    assert not optuna_compat.fail_trial(other_study, other_study.trials[1])
    assert [t.state for t in study.trials] == [TrialState.RUNNING] * 2
    time.sleep(2.2)
    assert not other.settling()
    optuna_compat.fail_stale_trials(other_study)
    assert optuna_compat.fail_trial(other_study, other_study.trials[1])
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2


def test_away_past_retry_s_is_one_line_and_then_it_works_again(cluster, pg_url):
    storage = open_storage(pg_url, retry_s=2)
    study = optuna.create_study(study_name="s/core", storage=storage)
    cluster.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as err:
            study.set_user_attr("k", 1)
        assert 2 <= time.monotonic() - started < 5
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):  # the same outage: at once
            study.set_user_attr("k", 1)
        assert time.monotonic() - started < 1
    finally:
        cluster.start()
    message = str(err.value)
    assert isinstance(err.value, UserError) and "\n" not in message
    assert message.startswith("the Optuna storage at postgresql://dnc:***@127.0.0.1:")
    assert "has been unreachable for 2 s, longer than storage.retry_s=2 (" in message
    assert cluster.password not in message
    study.set_user_attr("k", 2)  # back: calls work again
    assert study.user_attrs == {"k": 2}


def test_a_server_that_takes_no_more_connections_is_one_line_that_says_so(cluster, pg_url):
    """Too many workers for the database server: at start, a line that names the limit and
    what to do, not Optuna's "an exception is raised during the commit"."""
    cluster._sql(f"ALTER DATABASE {pg_url.rsplit('/', 1)[1]} CONNECTION LIMIT 0")
    with pytest.raises(UserError) as err:
        open_storage(pg_url)
    message = str(err.value)
    assert message.startswith("storage.url='postgresql://dnc:***@127.0.0.1:"), message
    assert "too many connections for database" in message
    assert "run fewer workers, or raise its max_connections" in message
    assert "\n" not in message and cluster.password not in message
