"""Coordinating the workers of one search: locks held in the storage's own database.

Several workers share a search by sharing its Optuna storage (DESIGN §6). Most decisions are
safe without coordination (Optuna hands each queued trial to exactly one worker), but a few are
"check, then write" and must not interleave between workers: queueing a grid sub-stage's
variants, claiming a BO candidate, calibrating the cost, recording a stage's base candidate,
creating the search's MLflow runs and running the final test. Each runs under ``lock``:

- PostgreSQL: a session-level advisory lock (``pg_advisory_lock``), MySQL: ``GET_LOCK``; the
  database releases it when the worker's connection closes, so a killed worker never leaves it
  held;
- SQLite: an exclusive ``flock`` on ``<database>.lock`` beside the file (the workers share the
  file system), released by the operating system when the process dies; one lock stands for
  every name;
- anything else (an in-memory storage): a lock within this process only.

Locks are re-entrant within a process, and block until they are free. Taking a database lock
waits out an unreachable database as every call of the storage does (its ``call``:
``dnc.search.storage.RetryingStorage``). A lock whose connection is lost while it is held (the
database restarted) is released by the database: the holder finishes its step and logs a
warning, and another worker may have taken the lock meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from dnc import optuna_compat

log = logging.getLogger(__name__)

_held: dict[str, int] = {}  # what this process holds -> depth
_local = threading.RLock()  # serialises this process's threads on every lock


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (PostgreSQL's advisory lock space)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def lock(where: optuna.storages.BaseStorage | optuna.Study, name: str) -> Iterator[None]:
    """Hold the lock ``name`` of the database of a storage (or of a study's storage) across
    every worker sharing it."""
    storage = optuna_compat.storage_of(where) if isinstance(where, optuna.Study) else where
    url = str(getattr(storage, "url", ""))
    path = sqlite_file(url)
    held = f"file:{path}" if path else f"{url}#{name}"  # SQLite: one lock for every name
    with _local:
        if _held.get(held):
            _held[held] += 1
            try:
                yield
            finally:
                _held[held] -= 1
            return
        with _database_lock(storage, name):
            _held[held] = 1
            try:
                yield
            finally:
                del _held[held]


@contextlib.contextmanager
def _database_lock(storage: Any, name: str) -> Iterator[None]:
    url = str(getattr(storage, "url", ""))
    engine = getattr(storage, "engine", None)
    if engine is None:
        yield
    elif url.startswith("sqlite"):
        with sqlite_lock(url):
            yield
    elif engine.dialect.name == "postgresql":
        with _sql_lock(
            storage,
            name,
            "SELECT pg_advisory_lock(:k)",
            "SELECT pg_advisory_unlock(:k)",
            {"k": lock_key(name)},
        ):
            yield
    elif engine.dialect.name in ("mysql", "mariadb"):
        key = f"dnc:{lock_key(name)}"
        take, release = "SELECT GET_LOCK(:k, -1)", "SELECT RELEASE_LOCK(:k)"
        with _sql_lock(storage, name, take, release, {"k": key}):
            yield
    else:
        log.warning(
            "no lock for %s storages: workers of one search are not coordinated",
            engine.dialect.name,
        )
        yield


@contextlib.contextmanager
def _sql_lock(
    storage: Any, name: str, take: str, release: str, params: dict[str, Any]
) -> Iterator[None]:
    """A session-level database lock on a connection of its own, held for the block; taking it
    waits out an unreachable database (the storage's ``call``, where it has one)."""
    from sqlalchemy import text

    engine = storage.engine

    def taken() -> Any:
        conn = engine.connect()
        try:
            conn.execute(text(take), params)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    call = getattr(storage, "call", None)
    conn = call(taken) if callable(call) else taken()
    try:
        yield
    finally:
        try:
            conn.execute(text(release), params)
            conn.commit()
        except Exception as err:
            if optuna_compat.unreachable(err) is None:
                raise
            log.warning(
                "lost the lock %r while holding it (the storage was unreachable; the database "
                "released it): another worker may have taken it meanwhile",
                name,
            )
        finally:
            conn.close()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing) for the block, between processes of
    one machine or of a shared file system; released by the OS if the process dies."""
    try:
        import fcntl
    except ImportError:  # Windows: one worker per SQLite file there
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def sqlite_lock(url: str) -> contextlib.AbstractContextManager[None]:
    """A lock on the database file of an ``sqlite:///`` URL, between the processes using it
    (a no-op for any other URL)."""
    path = sqlite_file(url)
    return file_lock(path.with_name(path.name + ".lock")) if path else contextlib.nullcontext()


def sqlite_file(url: str) -> Path | None:
    """The database file of an ``sqlite:///`` URL (``None`` for an in-memory database or any
    other URL)."""
    if not url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return Path(database).resolve() if database and database != ":memory:" else None


__all__ = ["file_lock", "lock", "lock_key", "sqlite_file", "sqlite_lock"]
