"""A write that failed, as one line for the user: a full disk, a file past a size limit, a run
folder or database that cannot be written.

``failed_write`` finds it in an exception's causes (an ``OSError``, SQLite's "database or disk
is full"); ``LogFileGuard`` turns a failed write of the log file into ``LogWriteFailed`` instead
of logging's "--- Logging error ---" traceback at every record. ``dnc.cli`` and ``python -m
dnc`` word the advice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

WriteFailure = Literal["disk full", "file too large", "not writable", "I/O error"]

_KINDS: dict[int, WriteFailure] = {
    errno.ENOSPC: "disk full",
    getattr(errno, "EDQUOT", errno.ENOSPC): "disk full",  # a quota: the user's disk is full
    errno.EFBIG: "file too large",
    **dict.fromkeys(
        (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOENT), "not writable"
    ),
    **dict.fromkeys((errno.ENOTDIR, errno.EEXIST), "not writable"),  # a file, not a folder
}


@dataclass(frozen=True)
class FailedWrite:
    """A write that failed: the file (``None`` where the error does not name it), the reason as
    the operating system or SQLite gave it, and its ``kind``: ``"disk full"`` (``ENOSPC``,
    ``EDQUOT``, SQLite's "database or disk is full"), ``"file too large"`` (``EFBIG``: a full
    disk's cousin, past a file size limit such as ``ulimit -f``), ``"not writable"`` (a
    read-only place, no permission, a file where a folder should be) or ``"I/O error"``
    (SQLite's "disk I/O error", which it gives for any failed write but a full disk's);
    ``sqlite``: SQLite reported it (its database file is then the storage's)."""

    path: str | None
    reason: str
    kind: WriteFailure
    sqlite: bool = False

    @property
    def disk_full(self) -> bool:
        """Whether more room would let the write through (``"disk full"``, ``"file too
        large"``)."""
        return self.kind in ("disk full", "file too large")

    def within(self, *places: str | Path | None) -> bool:
        """Whether the file is one of ``places`` or inside one of them (a folder)."""
        if self.path is None:
            return False
        path = Path(self.path).absolute()
        return any(
            place is not None and path.is_relative_to(Path(place).absolute()) for place in places
        )

    def message(self, advice: str) -> str:
        """``cannot write PATH: the disk is full (REASON); ADVICE``, or for a place that cannot
        be written ``cannot write PATH (REASON); ADVICE``."""
        where = self.path or ("an SQLite database" if self.sqlite else "the run folder")
        if self.kind == "disk full":
            return f"cannot write {where}: the disk is full ({self.reason}); {advice}"
        if self.kind == "file too large":
            full = "the disk is full or the file reached a size limit"
            return f"cannot write {where}: {full} ({self.reason}); {advice}"
        if self.kind == "I/O error":
            return f"cannot write {where} ({self.reason}: is the disk full or failing?); {advice}"
        return f"cannot write {where} ({self.reason}); {advice}"


class LogWriteFailed(BaseException):
    """Writing the log file ``path`` failed with ``error``. A ``BaseException``, as
    ``KeyboardInterrupt`` is, so that it stops the run where the record was logged: no
    ``except Exception`` on the way takes it for a failed trial or a tracking hiccup."""

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(f"{path}: {error}")
        self.path = path
        self.error = error


def failed_write(err: BaseException | None) -> FailedWrite | None:
    """The failed write in ``err``, its causes and the errors it was handling: an ``OSError`` of
    a full disk (any) or of a place that cannot be written (naming its file), SQLite's "database
    or disk is full", "attempt to write a readonly database" or "disk I/O error"; else
    ``None``."""
    seen: set[int] = set()
    todo = [err]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        found = _failed_write(current)
        if found is not None:
            return found
        todo += [current.__cause__, current.__context__]
    return None


def _failed_write(err: BaseException) -> FailedWrite | None:
    if isinstance(err, LogWriteFailed):
        found = _failed_write(err.error)
        return dataclasses.replace(found, path=err.path) if found else None
    if isinstance(err, OSError) and err.errno in _KINDS:
        path = os.fsdecode(err.filename) if err.filename is not None else None
        reason = err.strerror or str(err)
        if err.errno in (errno.ENOTDIR, errno.EEXIST) and path is not None:
            reason = _not_a_folder(path) or reason
        return FailedWrite(path, reason, _KINDS[err.errno])
    sqlite3 = sys.modules.get("sqlite3")  # not imported: no SQLite error to find
    if sqlite3 is not None and isinstance(err, sqlite3.Error):
        name, text = str(getattr(err, "sqlite_errorname", "")), str(err)  # the name: Python 3.11+
        if name == "SQLITE_FULL" or "database or disk is full" in text:
            return FailedWrite(None, text, "disk full", sqlite=True)
        if name.startswith("SQLITE_READONLY") or "readonly database" in text:
            return FailedWrite(None, text, "not writable", sqlite=True)
        if name.startswith("SQLITE_IOERR") or "disk I/O error" in text:
            return FailedWrite(None, text, "I/O error", sqlite=True)
    return None


def _not_a_folder(path: str) -> str | None:
    """``PARENT is a file, not a folder`` for the first part of ``path`` that exists and is
    not a folder (why the folder ``path`` cannot be made)."""
    for part in [Path(path), *Path(path).parents]:
        if part.exists():
            return None if part.is_dir() else f"{part} is a file, not a folder"
    return None


class LogFileGuard:
    """Watches the log files of the root logger (Hydra's job logging: ``dnc.log``): the first
    record one cannot write (a full disk) detaches and closes it, instead of logging's
    "--- Logging error ---" traceback on stderr at every record, and raises ``LogWriteFailed``
    where it was logged (in the main thread; in another thread ``check`` raises it later).

    Example:
        >>> guard = LogFileGuard.install()
        >>> ...  # the run
        >>> guard.check()  # a write that failed in another thread
    """

    def __init__(self) -> None:
        self.failed: LogWriteFailed | None = None

    @classmethod
    def install(cls, logger: logging.Logger | None = None) -> LogFileGuard:
        """Guard the file handlers of ``logger`` (the root logger by default)."""
        guard = cls()
        logger = logger or logging.getLogger()
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                failed = guard._failed(handler, logger)
                handler.handleError = failed  # type: ignore[method-assign,assignment]
        return guard

    def check(self) -> None:
        """Raise the ``LogWriteFailed`` of a write that failed (in any thread)."""
        if self.failed is not None:
            raise self.failed

    def _failed(
        self, handler: logging.FileHandler, logger: logging.Logger
    ) -> Callable[[logging.LogRecord], None]:
        def handle_error(record: logging.LogRecord) -> None:
            error = sys.exc_info()[1]
            if not isinstance(error, OSError):
                logging.FileHandler.handleError(handler, record)  # logging's own report
                return
            logger.removeHandler(handler)
            with contextlib.suppress(OSError, ValueError):
                handler.close()  # its buffer cannot be written either: closing drops it
            failed = LogWriteFailed(handler.baseFilename, error)
            if self.failed is None:
                self.failed = failed
            if threading.current_thread() is threading.main_thread():
                raise failed from error

        return handle_error


__all__ = ["FailedWrite", "LogFileGuard", "LogWriteFailed", "WriteFailure", "failed_write"]
