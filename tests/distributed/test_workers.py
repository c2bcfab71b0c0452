"""Several ``python -m dnc`` workers on one search: real processes, a real PostgreSQL storage and
a real MLflow tracking server (started by ``.ci/servers.sh``), checked from the storage and the
MLflow store as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY
from optuna.trial import TrialState

from dnc.search import records
from dnc.search.storage import load, open_storage

from .checks import (
    THREADS,
    check_mlflow,
    check_search,
    start_workers,
    wait_all,
    workers_of,
)
from .conftest import new_database

QUICK = "search=quick"
"""The three stages with one variant per grid sub-stage, not all ten: for the tests whose
point is how the workers start, not how they share a grid stage (the default search's is
shared by ``three_workers`` and ``test_killed_workers_lose_nothing``)."""


def _all_joined(run_dirs: list[Path], url: str) -> None:
    """Every worker ran the search to its end on the shared storage (its results.json says so;
    with trials this short, one worker may have trained them all before another started)."""
    from dnc.secrets import mask_url

    for run in run_dirs:
        results = json.loads((run / "results.json").read_text())
        assert results["finished"] and results["storage"] == mask_url(url), run
        assert results["best"], run


def _experiment() -> str:
    return f"dnc-{uuid.uuid4().hex[:8]}"


def _calibrated_by(cwd: Path, n: int) -> list[int]:
    """The workers whose log says they calibrated the cost."""
    return [i for i in range(n) if "calibrated cost" in (cwd / f"run{i}/dnc.log").read_text()]


@pytest.fixture(scope="module")
def three_workers(tmp_path_factory, mlflow_uri) -> Iterator[tuple[Path, str, str]]:
    """The default search, run by three workers on a PostgreSQL storage and the MLflow server:
    their folder, the storage's URL and the experiment."""
    cwd = tmp_path_factory.mktemp("three")
    experiment = _experiment()
    with new_database() as url:
        procs = start_workers(
            cwd,
            3,
            *TINY,
            f"storage.url={url}",
            f"tracking.uri={mlflow_uri}",
            f"tracking.experiment={experiment}",
        )
        wait_all(procs, cwd)
        yield cwd, url, experiment


def test_three_workers_share_the_default_search(three_workers, mlflow_uri):
    cwd, postgres_url, experiment = three_workers
    by_stage = check_search(postgres_url, "digits-mlp")
    _all_joined([cwd / f"run{i}" for i in range(3)], postgres_url)
    assert len(workers_of(by_stage)) >= 2, "the workers shared the trials"
    check_mlflow(mlflow_uri, experiment, "digits-mlp", by_stage)
    assert len(_calibrated_by(cwd, 3)) == 1, "tbar_epoch=auto is calibrated once"


def _wait_for(predicate, cwd: Path, procs, timeout: float = 300, every: float = 0.05):
    """``predicate()`` once it is truthy; fails with the workers' logs after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- worker {i} ({'running' if p.poll() is None else f'exit {p.returncode}'}):\n"
                + (cwd / f"worker{i}.log").read_text()[-3000:]
                for i, p in enumerate(procs)
            )
            raise AssertionError(f"timed out waiting for the workers:\n{logs}")
        time.sleep(every)
    return found


def _running_of(url: str, study: str, worker: str) -> list[int]:
    # Polled every 50 ms: each call's engine is disposed here, not left to the garbage
    # collector (an RDBStorage's engine sits in reference cycles; until a full collection its
    # pool keeps 2 idle connections per call, ~80 in a pytest process that imported MLflow's
    # tests: PostgreSQL's max_connections=100 was reached).
    storage = open_storage(url)
    try:
        trials = load(storage, study).get_trials(deepcopy=False)
    except KeyError:
        return []
    finally:
        storage.engine.dispose()
    return [
        t.number
        for t in trials
        if t.state == TrialState.RUNNING
        and str(t.user_attrs.get(records.WORKER, "")).startswith(worker)
        and records.MLFLOW_RUN in t.user_attrs  # training: its candidate chosen, its run open
    ]


def test_killed_workers_lose_nothing(tmp_path, postgres_url, mlflow_uri):
    """One worker killed with SIGKILL mid-trial: its trial is failed by the heartbeat and its
    slot run by another worker. Then every worker killed and two restarted: the search resumes,
    retrains nothing finished, and ends exact."""
    experiment = _experiment()
    common = (
        *TINY,
        "trainer.epochs=30",  # trials long enough to be caught mid-training (6 epochs of a
        # digits MLP, 0.1-0.3 s, once finished a whole search between two looks of a loaded CI)
        f"storage.url={postgres_url}",
        "storage.heartbeat_interval=1",
        "storage.grace_period=4",
        f"tracking.uri={mlflow_uri}",
        f"tracking.experiment={experiment}",
    )
    procs = start_workers(tmp_path, 3, *common)

    def training_core() -> tuple[int, int] | None:  # a live worker and its core trial
        for i, p in enumerate(procs):
            if p.poll() is None and (
                running := _running_of(postgres_url, "digits-mlp/core", f"w{i}@")
            ):
                return i, running[0]
        return None

    victim = None
    for _ in range(2):  # a trial that ends between the look and the kill: try another worker
        index, _number = _wait_for(training_core, tmp_path, procs)
        procs[index].send_signal(signal.SIGKILL)
        procs[index].wait(timeout=30)
        left = _running_of(postgres_url, "digits-mlp/core", f"w{index}@")  # what it was training
        if left:
            victim = left[0]
            break
    assert victim is not None, "two workers in a row were killed between trials"
    # the others go on; once the grid stage runs, kill them too
    _wait_for(lambda: _running_of(postgres_url, "digits-mlp/arch", "w"), tmp_path, procs)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
    for p in procs:
        p.wait(timeout=30)
    storage = open_storage(postgres_url)
    finished_before = {
        (name, t.number)
        for name in ("digits-mlp/core", "digits-mlp/arch")
        for t in load(storage, name).get_trials(deepcopy=False)
        if t.state == TrialState.COMPLETE
    }
    storage.engine.dispose()
    again = tmp_path / "again"
    again.mkdir()
    wait_all(start_workers(again, 2, *common), again)
    by_stage = check_search(postgres_url, "digits-mlp")
    core = {t.number: t for t in by_stage["core"]}
    assert core[victim].state == TrialState.FAIL
    assert records.FAIL_REASON not in core[victim].user_attrs  # its worker died: not its fault
    finished_after = {
        (f"digits-mlp/{s}", t.number)
        for s, ts in by_stage.items()
        for t in ts
        if t.state == TrialState.COMPLETE
    }
    assert finished_before <= finished_after
    check_mlflow(mlflow_uri, experiment, "digits-mlp", by_stage)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    killed = client.search_runs([exp.experiment_id], "attributes.status = 'KILLED'")
    assert any(r.data.tags.get("trial_number") == str(victim) for r in killed)


def test_workers_started_together_on_fresh_sqlite_stores(tmp_path):
    """Fresh SQLite files for Optuna and MLflow, three workers at the same instant: all start
    (none fails creating a schema, a study or the search run) and share the search."""
    procs = start_workers(
        tmp_path,
        3,
        *TINY,
        QUICK,
        f"storage.url=sqlite:///{tmp_path}/optuna.db",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
    )
    wait_all(procs, tmp_path)
    by_stage = check_search(f"sqlite:///{tmp_path}/optuna.db", "digits-mlp")
    check_mlflow(f"sqlite:///{tmp_path}/mlflow.db", "dnc", "digits-mlp", by_stage)


def _multirun(tmp_path: Path, *overrides: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dnc", "-m", f"hydra.sweep.dir={tmp_path}/multirun", *overrides],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **THREADS, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize(
    "launcher",
    [
        ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"),
        ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"),
    ],
    ids=["joblib", "submitit_local"],
)
def test_a_launcher_starts_the_workers(tmp_path, postgres_url, mlflow_uri, launcher):
    experiment = _experiment()
    _multirun(
        tmp_path,
        *launcher,
        "+worker=range(2)",
        *TINY,
        QUICK,
        f"storage.url={postgres_url}",
        f"tracking.uri={mlflow_uri}",
        f"tracking.experiment={experiment}",
    )
    by_stage = check_search(postgres_url, "digits-mlp")
    _all_joined([tmp_path / "multirun/0", tmp_path / "multirun/1"], postgres_url)
    assert {w.split("@")[0] for w in workers_of(by_stage)} <= {"w0", "w1"}
    check_mlflow(mlflow_uri, experiment, "digits-mlp", by_stage)


def test_report_rescores_a_postgres_search(tmp_path, three_workers):
    _, postgres_url, _ = three_workers  # the search the workers shared
    out = tmp_path / "front.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dnc.report",
            f"storage_url={postgres_url}",
            "wc=[0,1]",
            f"out={out}",
            "tracking.uri=null",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and out.with_suffix(".json").exists()
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in proc.stdout + proc.stderr


def test_local_workers_share_the_default_storage(tmp_path):
    """``-m hydra/launcher=local +worker='range(2)'`` with no storage.url: the workers share
    an SQLite file in the sweep folder (not one each in their run folders)."""
    _multirun(
        tmp_path,
        "hydra/launcher=local",
        "hydra.launcher.n_jobs=2",
        "+worker=range(2)",
        *TINY,
        QUICK,
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
    )
    shared = f"sqlite:///{tmp_path}/multirun/optuna.db"
    by_stage = check_search(shared, "digits-mlp")
    _all_joined([tmp_path / "multirun/0", tmp_path / "multirun/1"], shared)
    assert {w.split("@")[0] for w in workers_of(by_stage)} <= {"w0", "w1"}
    assert not list((tmp_path / "multirun").glob("*/optuna.db"))
