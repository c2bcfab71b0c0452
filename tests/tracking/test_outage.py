"""A tracking outage: the MLflow server stops in the middle of a search. The search goes on and
says so once; MLflow ends with the same trials as the Optuna storage, written when the server
is back, or by ``python -m dnc.sync`` when it came back only after the search ended.

The module's tests share one server (its start-up is the slowest part of a test), each with an
experiment of its own; each stops and restarts it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from conftest import TINY
from distributed.checks import check_mlflow, check_search
from mlflow.tracking import MlflowClient

from dnc.search import StageSpec
from dnc.search.events import SearchObserver, StageFinished, TrialStarted
from dnc.search.storage import open_storage
from dnc.tracking import mlflow_tracker
from dnc.tracking.mlflow_runs import MlflowRuns
from dnc.tracking.mlflow_tracker import MlflowTracker

sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
from searches import make_search  # noqa: E402 - the search tests' small searches

SEARCH = "digits-mlp"
FAST_HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.3",
}
"""MLflow's retries of a failed request at most 0.3 s apart instead of dnc's default 2 s and 4 s
(a user's own settings win): each request to the stopped server, the first and every probe,
holds the search for under a second instead of about seven."""


class MlflowServer:
    """A real MLflow tracking server on loopback, over an SQLite store in ``folder`` that
    outlives it (so a restarted server holds what the stopped one had)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        log = open(self.folder / "mlflow-server.log", "ab")  # noqa: SIM115 - the server's
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"),
                *("--port", str(self.port), "--workers", "1"),
                *("--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}"),
                *("--artifacts-destination", str(self.folder / "artifacts")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                    if reply.read().strip() == b"OK":
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, (self.folder / "mlflow-server.log").read_text()
            assert time.monotonic() < deadline, "the MLflow server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:  # it waits on a request of a held search
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=60)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """The module's MLflow server (``mlflow_up`` starts it)."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mlflow_up(server: MlflowServer) -> MlflowServer:
    """The module's server, running: each test stops it and starts it again."""
    if not server.running:  # the first test, or one that failed while it was stopped
        server.start()
    return server


def _completed(db: Path) -> int:
    """Completed trials in the search's SQLite storage (0 while the search still creates it),
    read straight from the file: a poll cheap enough to act within a trial."""
    if not db.is_file():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]
    except sqlite3.OperationalError as err:
        if "no such table" in str(err):  # its tables not made yet
            return 0
        raise
    finally:
        con.close()


def _wait_for(proc: subprocess.Popen[str], db: Path, trials: int) -> None:
    deadline = time.monotonic() + 300
    while _completed(db) < trials:
        if proc.poll() is not None:
            out, _ = proc.communicate()
            raise AssertionError(f"the search ended early, with {_completed(db)} trials:\n{out}")
        assert time.monotonic() < deadline, f"{trials} trials did not complete"
        time.sleep(0.05)


@contextlib.contextmanager
def _held(proc: subprocess.Popen[str]) -> Iterator[None]:
    """The search stopped (SIGSTOP) in the block and continued after it: what the test does to
    the server meanwhile happens at this point of the search, however fast its trials are."""
    proc.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGCONT)


def _start_search(tmp_path: Path, uri: str, experiment: str, *more: str) -> subprocess.Popen[str]:
    args = [
        *(sys.executable, "-m", "dnc", *TINY, "cost=numparams", *more),
        f"storage.url=sqlite:///{tmp_path}/optuna.db",
        f"tracking.uri={uri}",
        f"tracking.experiment={experiment}",
        f"hydra.run.dir={tmp_path}/run",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **FAST_HTTP_RETRIES}
    return subprocess.Popen(
        args, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs (the test failed first)."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_the_search_goes_on_through_an_outage_and_mlflow_catches_up(tmp_path, mlflow_up):
    server = mlflow_up
    experiment = f"outage-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "optuna.db"
    search = _start_search(tmp_path, server.uri, experiment)
    try:
        _wait_for(search, db, 1)
        with _held(search):  # its trials are fast: it must not end while the server stops
            server.stop()
        _wait_for(search, db, _completed(db) + 2)  # trials finish while MLflow is away
        with _held(search):  # the search is still running when MLflow is back
            server.start()
        out, _ = search.communicate(timeout=600)
    finally:
        _kill(search)
    assert search.returncode == 0, out
    assert out.count("is unreachable") == 1, out  # said once
    assert "is back after" in out
    by_stage = check_search(f"sqlite:///{db}", SEARCH)
    check_mlflow(server.uri, experiment, SEARCH, by_stage)


def test_runs_missed_to_the_end_are_written_by_dnc_sync(tmp_path, mlflow_up):
    server = mlflow_up
    experiment = f"outage-{uuid.uuid4().hex[:8]}"
    # one variant per grid sub-stage (not all ten): every stage, fewer trials to run unreachable
    search = _start_search(tmp_path, server.uri, experiment, "search=quick")
    try:
        _wait_for(search, tmp_path / "optuna.db", 1)
        with _held(search):  # it must not end before the server has stopped
            server.stop()
        out, _ = search.communicate(timeout=600)
    finally:
        _kill(search)
    assert search.returncode == 0, out
    assert out.count("is unreachable") == 1, out
    hint = next(line for line in out.splitlines() if "python -m dnc.sync" in line)
    command = shlex.split(hint.split("write them with: ", 1)[1])
    assert command[:3] == ["python", "-m", "dnc.sync"]
    server.start()
    synced = subprocess.run(
        [sys.executable, *command[1:]], cwd=tmp_path, capture_output=True, text=True
    )
    assert synced.returncode == 0, synced.stderr
    by_stage = check_search(f"sqlite:///{tmp_path}/optuna.db", SEARCH)
    check_mlflow(server.uri, experiment, SEARCH, by_stage)
    # again (in this process: the command itself ran above): nothing is written twice
    again = MlflowRuns(server.uri, experiment).sync(
        open_storage(f"sqlite:///{tmp_path}/optuna.db"), SEARCH
    )
    assert again == (0, 0)
    check_mlflow(server.uri, experiment, SEARCH, by_stage)


class _OutageAtStageStart(SearchObserver):
    """Stops the server as the core stage ends and starts it again as the arch stage's first
    trial starts: MLflow comes back in a stage that began while it was away (put before the
    tracker, so each happens before the tracker hears of the event)."""

    def __init__(self, server: MlflowServer) -> None:
        self.server = server

    def stage_finished(self, event: StageFinished) -> None:
        if event.spec.name == "core":
            self.server.stop()

    def trial_started(self, event: TrialStarted) -> None:
        if event.stage == "arch" and not self.server.running:
            self.server.start()


def test_a_stage_that_began_during_the_outage_nests_its_trials(tmp_path, mlflow_up, monkeypatch):
    """The arch stage starts while MLflow is away, so its run is not made then; MLflow is back
    before any of its trials ends. Its trials' runs are nested under its run all the same."""
    for key, value in FAST_HTTP_RETRIES.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(mlflow_tracker, "OUTAGE_RETRY_S", (0.0,))  # probe at every event
    experiment = f"outage-{uuid.uuid4().hex[:8]}"
    tracker = MlflowTracker(mlflow_up.uri, experiment)
    stages = (StageSpec("core", groups=("core",), trials=2), StageSpec("arch", kind="grid"))
    make_search(tmp_path, stages=stages, observers=[_OutageAtStageStart(mlflow_up), tracker]).run()
    client = MlflowClient(tracking_uri=mlflow_up.uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id], max_results=500
    )
    stage_runs = {
        r.data.tags["stage"]: r.info.run_id for r in runs if r.data.tags["dnc.kind"] == "stage"
    }
    arch = optuna.load_study(study_name="s/arch", storage=f"sqlite:///{tmp_path}/s.db")
    trial_runs = [r for r in runs if r.data.tags["dnc.kind"] == "trial"]
    assert set(stage_runs) == {"core", "arch"}
    assert sum(r.data.tags["stage"] == "arch" for r in trial_runs) == len(arch.trials) > 0
    for run in trial_runs:
        assert run.data.tags["mlflow.parentRunId"] == stage_runs[run.data.tags["stage"]], (
            run.info.run_name
        )
    # the arch run, made when MLflow came back, says what the stage did, as a live one does
    (arch_run,) = [r for r in runs if r.info.run_id == stage_runs["arch"]]
    assert (arch_run.data.params["kind"], arch_run.data.params["wc"]) == ("grid", "0.1")
    assert arch_run.data.params["substages"].startswith('["activation"')
