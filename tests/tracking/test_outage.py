"""A tracking outage: the MLflow server stops in the middle of a search. The search goes on and
says so once; MLflow ends with the same trials as the Optuna storage, written when the server
is back, or by ``python -m dnc.sync`` when it came back only after the search ended."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import optuna
from conftest import TINY
from distributed.checks import check_mlflow, check_search
from optuna.trial import TrialState

SEARCH = "digits-mlp"


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
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)


def _completed(db: Path) -> int:
    """Completed trials in the search's SQLite storage (0 while the search still creates it)."""
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{db}", skip_table_creation=True)
        return sum(
            len(
                optuna.load_study(study_name=s.study_name, storage=storage).get_trials(
                    states=(TrialState.COMPLETE,)
                )
            )
            for s in optuna.get_all_study_summaries(storage)
        )
    except Exception:  # its tables not made yet
        return 0


def _wait_for(proc: subprocess.Popen[str], db: Path, trials: int) -> None:
    deadline = time.monotonic() + 300
    while not (db.is_file() and _completed(db) >= trials):
        assert proc.poll() is None, "the search ended early"
        assert time.monotonic() < deadline, f"{trials} trials did not complete"
        time.sleep(0.3)


def _start_search(tmp_path: Path, uri: str, experiment: str, *more: str) -> subprocess.Popen[str]:
    args = [
        *(sys.executable, "-m", "dnc", *TINY, "cost=numparams", *more),
        f"storage.url=sqlite:///{tmp_path}/optuna.db",
        f"tracking.uri={uri}",
        f"tracking.experiment={experiment}",
        f"hydra.run.dir={tmp_path}/run",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        args, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def test_the_search_goes_on_through_an_outage_and_mlflow_catches_up(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    experiment = f"outage-{uuid.uuid4().hex[:8]}"
    try:
        # trials long enough that the search outlasts the server's restart (~20 s)
        search = _start_search(tmp_path, server.uri, experiment, "trainer.epochs=60")
        _wait_for(search, tmp_path / "optuna.db", 1)
        server.stop()
        _wait_for(search, tmp_path / "optuna.db", 3)  # trials finish while MLflow is away
        server.start()
        out, _ = search.communicate(timeout=600)
        assert search.returncode == 0, out
        assert out.count("is unreachable") == 1, out  # said once
        assert "is back after" in out
        by_stage = check_search(f"sqlite:///{tmp_path}/optuna.db", SEARCH)
        check_mlflow(server.uri, experiment, SEARCH, by_stage)
    finally:
        server.stop()


def test_runs_missed_to_the_end_are_written_by_dnc_sync(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    experiment = f"outage-{uuid.uuid4().hex[:8]}"
    try:
        search = _start_search(tmp_path, server.uri, experiment)
        _wait_for(search, tmp_path / "optuna.db", 1)
        server.stop()
        out, _ = search.communicate(timeout=600)
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
        # run again: nothing is written twice
        again = subprocess.run(
            [sys.executable, *command[1:]], cwd=tmp_path, capture_output=True, text=True
        )
        assert again.returncode == 0 and " 0 trial runs written" in again.stdout, again.stdout
        check_mlflow(server.uri, experiment, SEARCH, by_stage)
    finally:
        server.stop()
