"""The storage's database goes away under real ``python -m dnc`` workers: a PostgreSQL server of
the test's own (``tests/private_postgres.py``; the shared one of ``.ci/servers.sh`` holds
MLflow's store and is never stopped) is stopped while a trial trains. Restarted within
``storage.retry_s``, the search ends exact; away longer, the worker stops with one line, and the
same command resumes the search once the server is back."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
from conftest import TINY
from optuna.trial import TrialState

from dnc.search import records

from .checks import THREADS, check_search, start_workers, wait_all

SEARCH = "digits-mlp"
GRACE_S = 5


def _common(url: str) -> tuple[str, ...]:
    return (
        *TINY,
        "trainer.epochs=8",  # trials long enough to be caught training
        # the outage is in the first stage: one variant per grid sub-stage after it (not all
        # ten) keeps the rest of the search, at 8 epochs a trial, short
        "search=quick",
        f"storage.url={url}",
        "storage.heartbeat_interval=1",
        # shorter than the outage (stale heartbeats must be waited out), and leaving the live
        # workers 4 s to beat again on a loaded 2-core machine
        f"storage.grace_period={GRACE_S}",
        "tracking.uri=null",
    )


def _training(url: str, study: str, timeout: float = 120) -> int:
    """The number of a trial of ``study`` that a worker is training (its candidate chosen),
    once there is one."""
    storage = optuna.storages.RDBStorage(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                study_id = storage.get_study_id_from_name(study)
            except KeyError:
                study_id = None
            if study_id is not None:
                for t in storage.get_all_trials(study_id, states=(TrialState.RUNNING,)):
                    if records.STAGE in t.user_attrs and records.WORKER in t.user_attrs:
                        return t.number
            time.sleep(0.02)
        raise AssertionError(f"no trial of {study} was trained within {timeout} s")
    finally:
        storage.engine.dispose()


def test_a_database_restart_mid_trial_loses_and_repeats_nothing(tmp_path, cluster):
    """Two workers; the server stops while one trains and comes back 8 s later (longer than the
    grace period): every worker waits, the trial being trained is recorded once the storage is
    back, no live worker's trial is failed as stale, and the search ends exact."""
    url = cluster.new_database()
    procs = start_workers(tmp_path, 2, *_common(url))
    try:
        victim = _training(url, f"{SEARCH}/core")
        cluster.stop()
        time.sleep(GRACE_S + 3)
        cluster.start()
        wait_all(procs, tmp_path, timeout=150)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    by_stage = check_search(url, SEARCH)
    core = {t.number: t for t in by_stage["core"]}
    logs = [(tmp_path / f"run{i}" / "dnc.log").read_text() for i in range(2)]
    told = core[victim]  # told when the storage came back
    assert told.state == TrialState.COMPLETE, (told.state, told.user_attrs, *logs)
    stale = [t for ts in by_stage.values() for t in ts if records.abandoned(t)]
    assert not stale, "a live worker's trial was failed"
    consoles = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert not any("Traceback" in text or cluster.password in text for text in consoles)
    assert any("is unreachable" in log and "reachable again" in log for log in logs)


def test_a_database_away_past_retry_s_stops_the_worker_and_the_search_resumes(tmp_path, cluster):
    """``storage.retry_s=3``: the worker gives up 3 s after the server went away, with one
    ``dnc: error:`` line and a non-zero status; once the server is back the same command
    resumes the search, which ends exact."""
    url = cluster.new_database()
    args = [
        sys.executable,
        "-m",
        "dnc",
        f"hydra.run.dir={tmp_path}/run",
        *_common(url),
        "storage.retry_s=3",
    ]
    env = {**os.environ, **THREADS, "PYTHONUNBUFFERED": "1"}
    with (tmp_path / "out.log").open("w") as out, (tmp_path / "err.log").open("w") as err:
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=out, stderr=err, text=True, env=env)
        try:
            _training(url, f"{SEARCH}/core")
            cluster.stop()
            stopped = time.monotonic()
            code = proc.wait(timeout=60)
            took = time.monotonic() - stopped
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if not cluster.running:
                cluster.start()
    stderr = (tmp_path / "err.log").read_text()
    assert code == 2, f"exit {code}:\n{stderr}"
    assert took < 30, f"the worker took {took:.0f} s to stop"
    errors = [line for line in stderr.splitlines() if line.startswith("dnc: error:")]
    assert len(errors) == 1, stderr
    assert "the Optuna storage at postgresql://dnc:***@127.0.0.1:" in errors[0]
    assert "longer than storage.retry_s=3" in errors[0]
    assert "once it is back, resume with: python -m dnc" in errors[0]
    assert "Traceback" not in stderr and cluster.password not in stderr

    again = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=150)
    assert again.returncode == 0, again.stdout + again.stderr
    check_search(url, SEARCH)
