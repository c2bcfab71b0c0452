"""The run folder (``hydra.run.dir``): two runs started at once on one folder share its search;
a folder that cannot be written, or a disk that fills up mid-run, ends the run with one line
``dnc: error: ...`` naming the file and what to do, and the search resumes once there is room.

The disk is filled for real where a tmpfs can be mounted (as root in most containers; skipped
elsewhere), and a file size limit (``RLIMIT_FSIZE``, a write past it fails with ``EFBIG``)
stands in for a full disk everywhere else.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import resource
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import TINY, run_dnc
from distributed.checks import check_mlflow, check_search
from mlflow.tracking import MlflowClient

from dnc.search import results
from dnc.search.results import write_atomically
from dnc.write_errors import FailedWrite, LogFileGuard, LogWriteFailed, failed_write

SEARCH = "digits-mlp"
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
FAST_HEARTBEAT = ("storage.heartbeat_interval=1", "storage.grace_period=2")
"""A trial left running by a run that failed is judged dead within seconds on resume."""
ONE_VARIANT = "search=quick"
"""The paper's stages with one variant of each grid sub-stage besides the best so far (not all
ten), for a search that one run trains alone."""
LOG_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[[\w.]+\]\[[A-Z]+\] - \S")


def _dnc(folder: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "dnc", f"hydra.run.dir={folder}", *TINY, *overrides]


def _start(
    args: list[str], cwd: Path, preexec_fn: Callable[[], None] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENV, "HYDRA_FULL_ERROR": "0"},
        preexec_fn=preexec_fn,
    )


def _communicate(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Its stdout and stderr once it exits; killed if it runs past ``timeout``."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _one_error_line(stderr: str, returncode: int, *needles: str) -> str:
    """Exit status 2 and exactly one line on stderr, ``dnc: error: ...`` with ``needles``: no
    traceback, no "--- Logging error ---", no warning before it."""
    assert returncode == 2, (returncode, stderr)
    assert stderr.count("\n") == 1 and stderr.startswith("dnc: error: "), stderr
    for needle in needles:
        assert needle in stderr, stderr
    return stderr


def _no_partial_results(folder: Path) -> None:
    """``results.json``, if there, is whole; no temporary file of it is left behind."""
    if (folder / "results.json").exists():
        json.loads((folder / "results.json").read_text())
    assert not list(folder.glob(".results.json.*")), list(folder.iterdir())


def _intact_log(path: Path) -> None:
    """Every line of ``dnc.log`` that starts a record is a whole record header (the two
    processes appended whole lines, not interleaved pieces)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines, "dnc.log is empty"
    heads = [line for line in lines if line.startswith("[")]
    assert heads and all(LOG_LINE.match(line) for line in heads), lines


# -- two runs on one folder ------------------------------------------------------------------
def test_two_runs_started_at_once_on_one_run_folder_share_its_search(tmp_path: Path) -> None:
    """Same ``hydra.run.dir``: same SQLite storage, log and results. Both finish, every stage
    has exactly its budget and no candidate is trained twice (the storage's locks), MLflow
    has one run per finished trial, and ``dnc.log`` and ``results.json`` are whole."""
    folder = tmp_path / "run"
    mlflow = f"sqlite:///{folder}/mlflow.db"
    args = _dnc(folder, f"tracking.uri={mlflow}")
    procs = [_start(args, tmp_path) for _ in range(2)]
    outputs = [_communicate(p, timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:] + err[-3000:]
        assert "Traceback" not in err and "error" not in err.lower(), err
        assert f"candidates of {SEARCH}" in out, out[-2000:]  # its summary table
    by_stage = check_search(f"sqlite:///{folder}/optuna.db", SEARCH)
    check_mlflow(mlflow, "dnc", SEARCH, by_stage)
    client = MlflowClient(tracking_uri=mlflow)
    experiment = client.get_experiment_by_name("dnc").experiment_id
    (run,) = client.search_runs([experiment], "tags.`dnc.kind` = 'search'")
    # TINY: tracking.log_model=false and tracking.pictures=false, so the results alone
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["results.json"]
    assert not client.search_logged_models([experiment])
    content = json.loads((folder / "results.json").read_text())
    assert content["finished"] is True and content["best"], content
    _no_partial_results(folder)
    _intact_log(folder / "dnc.log")


def test_results_are_replaced_whole_while_others_read_them(tmp_path: Path) -> None:
    """Writers of different lengths race on one file; a reader never sees a torn one."""
    path = tmp_path / "results.json"
    stop = threading.Event()
    torn: list[str] = []

    def write(n: int) -> None:
        for i in range(40):
            write_atomically(path, json.dumps({"writer": n, "i": i, "pad": "x" * (n * 3000)}))

    def read() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                text = path.read_text()
                try:
                    json.loads(text)
                except ValueError:
                    torn.append(text[:80])

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(1, 4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert not torn, torn[:3]
    _no_partial_results(tmp_path)


def test_a_failed_write_of_results_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "results.json"
    write_atomically(path, '{"finished": false}')

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results.os, "fsync", full)
    with pytest.raises(OSError) as raised:
        write_atomically(path, '{"finished": true}')
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert path.read_text() == '{"finished": false}'
    _no_partial_results(tmp_path)


# -- a run folder that cannot be written -----------------------------------------------------
@contextlib.contextmanager
def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``path`` for the block (skips the test where mounting is refused:
    not root, no ``mount``, a container without the capability)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_run_folder_under_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    for folder in (tmp_path / "afile" / "run", tmp_path / "afile"):
        proc = run_dnc(tmp_path, f"hydra.run.dir={folder}", "tracking.uri=null", timeout=60)
        _one_error_line(
            proc.stderr,
            proc.returncode,
            f"cannot write {folder} ",
            f"{tmp_path / 'afile'} is a file, not a folder",
            "hydra.run.dir=PATH",
        )


def test_a_run_folder_in_a_read_only_place_is_refused_in_one_line(tmp_path: Path) -> None:
    folder = Path("/sys") / f"dnc-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir()
    except OSError:
        pass
    else:
        folder.rmdir()
        pytest.skip("/sys can be written here")
    proc = run_dnc(tmp_path, f"hydra.run.dir={folder}", "tracking.uri=null", timeout=60)
    _one_error_line(proc.stderr, proc.returncode, f"cannot write {folder} (", "hydra.run.dir=")


def test_a_read_only_file_system_is_refused_in_one_line(tmp_path: Path) -> None:
    """The run folder on a read-only mount: as the folder itself (it exists: Hydra cannot open
    ``dnc.log``) and below it (Hydra cannot make it)."""
    with _tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        for folder, culprit in ((ro, ro / "dnc.log"), (ro / "run", ro / "run")):
            proc = run_dnc(tmp_path, f"hydra.run.dir={folder}", "tracking.uri=null", timeout=60)
            _one_error_line(
                proc.stderr,
                proc.returncode,
                f"cannot write {culprit} (Read-only file system)",
                "hydra.run.dir=PATH",
            )


# -- a full disk -----------------------------------------------------------------------------
def _fill(folder: Path) -> Path:
    """Write zeros to ``folder/filler`` until the disk under it is full."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(1 << 16))
    except OSError as err:
        assert err.errno == errno.ENOSPC, err
    finally:
        os.close(fd)
    return filler


def _resume(stderr: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the command the error line says resumes the search."""
    command = shlex.split(stderr.split("resume with: ", 1)[1])
    assert command[:3] == ["python", "-m", "dnc"], command
    return subprocess.run(
        [sys.executable, *command[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **ENV},
    )


def test_a_disk_that_fills_up_mid_run_stops_it_in_one_line_and_it_resumes(
    tmp_path: Path,
) -> None:
    """A 1 MiB tmpfs, filled once the first trial has finished: the next write of the storage
    fails (SQLite: "database or disk is full"). One line names the folder and the resume
    command; with room again, that command finishes the search with nothing lost."""
    with _tmpfs(tmp_path / "disk", "size=1m") as disk:
        folder = disk / "run"
        # storage.retry_s: a full disk is not an unreachable storage to wait out; if it were
        # taken for one, the run would warn and wait (a second line), for seconds, not minutes
        overrides = ("tracking.uri=null", "storage.retry_s=5", *FAST_HEARTBEAT, ONE_VARIANT)
        proc = _start(_dnc(folder, *overrides), tmp_path)
        assert proc.stdout is not None
        seen = []
        try:
            for line in proc.stdout:  # fill the disk once the first trial is in the storage
                seen.append(line)
                if re.search(r"\] trial +\d+ ", line):
                    break
            filler = _fill(disk)
        finally:
            out, err = _communicate(proc, timeout=120)
        assert seen and "trial" in seen[-1], "".join(seen) + out + err
        _one_error_line(err, proc.returncode, f"cannot write {folder}", "the disk is full (")
        assert "free some space, then resume with: python -m dnc" in err, err
        _no_partial_results(folder)
        filler.unlink()
        resumed = _resume(err, tmp_path)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        check_search(f"sqlite:///{folder}/optuna.db", SEARCH)
        assert json.loads((folder / "results.json").read_text())["finished"] is True


def test_a_log_file_past_a_size_limit_stops_the_run_in_one_line_and_it_resumes(
    tmp_path: Path,
) -> None:
    """A resumed run appends to a ``dnc.log`` already at the process's file size limit
    (``RLIMIT_FSIZE``: every append fails with ``EFBIG``, as on a full disk), while the
    storage stays below it: one line naming ``dnc.log`` (not logging's "--- Logging error ---"
    traceback at each record), and without the limit the search runs to the end."""
    folder = tmp_path / "run"
    folder.mkdir()
    limit = 512 * 1024  # above what the storage of a tiny search grows to (about 130 KiB)
    (folder / "dnc.log").write_text(("[an earlier run] " + "x" * 1006 + "\n") * (limit // 1024))
    assert (folder / "dnc.log").stat().st_size == limit

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _start(_dnc(folder, "tracking.uri=null", ONE_VARIANT), tmp_path, preexec_fn=limited)
    out, err = _communicate(proc, timeout=120)
    _one_error_line(
        err,
        proc.returncode,
        f"cannot write {folder / 'dnc.log'}: the disk is full or the file reached a size limit",
        "(File too large)",
        "resume with: python -m dnc",
    )
    assert (folder / "dnc.log").stat().st_size == limit
    resumed = _resume(err, tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    check_search(f"sqlite:///{folder}/optuna.db", SEARCH)
    assert "calibrated cost" in (folder / "dnc.log").read_text()


# -- the pieces: what failed, and the log file's guard ---------------------------------------
def _raised(error: BaseException, wrapper: type[Exception] = RuntimeError) -> BaseException:
    """``error`` as a library hands it on: the cause of another exception."""
    try:
        try:
            raise error
        except BaseException as err:
            raise wrapper("wrapped") from err
    except Exception as wrapped:
        return wrapped


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device"),
            FailedWrite(None, "No space left on device", "disk full"),
        ),
        (
            OSError(errno.EFBIG, "File too large", "/x/results.json"),
            FailedWrite("/x/results.json", "File too large", "file too large"),
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/ro/run"),
            FailedWrite("/ro/run", "Read-only file system", "not writable"),
        ),
        (
            sqlite3.OperationalError("database or disk is full"),
            FailedWrite(None, "database or disk is full", "disk full", sqlite=True),
        ),
        (
            sqlite3.OperationalError("attempt to write a readonly database"),
            FailedWrite(None, "attempt to write a readonly database", "not writable", sqlite=True),
        ),
        (sqlite3.OperationalError("database is locked"), None),
        (OSError(errno.ECONNREFUSED, "Connection refused"), None),
        (ValueError("not a write"), None),
    ],
)
def test_failed_write_is_found_among_the_causes(
    error: BaseException, expected: FailedWrite | None
) -> None:
    assert failed_write(_raised(error)) == expected


def test_a_folder_under_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    found = failed_write(OSError(errno.ENOTDIR, "Not a directory", str(tmp_path / "afile/run")))
    assert found is not None and found.kind == "not writable"
    assert found.reason == f"{tmp_path / 'afile'} is a file, not a folder"


class _FullDisk:
    """A stream whose every write fails as on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def full_log(tmp_path: Path) -> Iterator[tuple[logging.Logger, logging.FileHandler]]:
    """A logger of its own whose only handler writes a file on a full disk."""
    logger = logging.getLogger(f"dnc.test.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())  # not logging's last resort, on stderr
    handler = logging.FileHandler(tmp_path / "dnc.log", delay=True)
    handler.stream = _FullDisk()  # type: ignore[assignment]
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


def test_a_log_file_on_a_full_disk_stops_the_main_thread_quietly(
    full_log: tuple[logging.Logger, logging.FileHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    logger, handler = full_log
    LogFileGuard.install(logger)
    with pytest.raises(LogWriteFailed) as raised:
        logger.warning("a record")
    found = failed_write(raised.value)
    assert found == FailedWrite(handler.baseFilename, "No space left on device", "disk full")
    assert handler not in logger.handlers
    logger.warning("the next record goes nowhere, quietly")
    assert capsys.readouterr().err == ""  # no "--- Logging error ---"


def test_a_log_file_on_a_full_disk_is_reported_after_another_thread_wrote(
    full_log: tuple[logging.Logger, logging.FileHandler], capsys: pytest.CaptureFixture[str]
) -> None:
    logger, handler = full_log
    guard = LogFileGuard.install(logger)
    escaped: list[BaseException] = []

    def beat() -> None:
        try:
            logger.warning("from a heartbeat thread")
        except BaseException as err:  # noqa: BLE001 - what a thread would die of
            escaped.append(err)

    thread = threading.Thread(target=beat)
    thread.start()
    thread.join()
    assert not escaped
    with pytest.raises(LogWriteFailed):
        guard.check()
    assert capsys.readouterr().err == ""
