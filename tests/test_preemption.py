"""Preemption: SIGTERM (a cluster's warning before it preempts a job) or Ctrl-C stops a search
within seconds. The running trial is closed at once as failed with reason ``interrupted``, so a
resumed search runs its slot again without waiting for the heartbeat's grace period; its MLflow
run is ``KILLED``; the resume command is printed; the exit status is 128 + the signal."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from dnc.search import records


def _popen(cwd: Path, args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        args, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _training(db: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    """Trials of ``study`` being trained (their MLflow run open)."""
    try:
        trials = optuna.load_study(study_name=study, storage=f"sqlite:///{db}").get_trials()
    except (KeyError, Exception):  # not created yet
        return []
    return [
        t for t in trials if t.state == TrialState.RUNNING and records.MLFLOW_RUN in t.user_attrs
    ]


def test_a_signal_closes_the_running_trial_and_the_search_resumes(tmp_path):
    """SIGTERM, as a cluster sends it (Ctrl-C takes the same path: its exit status is checked
    below, on a process of its own)."""
    signum, code = signal.SIGTERM, 143
    overrides = [
        "search=combined",  # one BO stage of 2 trials
        "search.bo.prior_states=2",
        "search.bo.steps=0",
        # a second or more per trial: caught mid-training (the poll below sees a trial within
        # a fraction of one); the resumed search trains both trials again at this length
        "trainer.epochs=30",
        "cost=numparams",
        "search.final_test=false",
        "tracking.pictures=false",
        f"storage.url=sqlite:///{tmp_path}/optuna.db",
        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"hydra.run.dir={tmp_path}/run",
    ]
    proc = _popen(tmp_path, [sys.executable, "-m", "dnc", *overrides])
    deadline = time.monotonic() + 120
    while not (running := _training(tmp_path / "optuna.db", "digits-mlp/all")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no trial started training"
        time.sleep(0.05)
    victim = running[0]
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == code, err
    assert took < 10, f"exited {took:.1f} s after the signal"
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"dnc: error: interrupted by {signal.Signals(signum).name}"), err
    assert "resume with: python -m dnc" in last

    study = optuna.load_study(
        study_name="digits-mlp/all", storage=f"sqlite:///{tmp_path}/optuna.db"
    )
    closed = study.trials[victim.number]
    assert closed.state == TrialState.FAIL
    assert closed.user_attrs[records.FAIL_REASON] == records.INTERRUPTED
    assert not records.counts_against_budget(closed)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert client.get_run(closed.user_attrs[records.MLFLOW_RUN]).info.status == "KILLED"
    (search_run,) = client.search_runs(
        [client.get_experiment_by_name("dnc").experiment_id], "tags.`dnc.kind` = 'search'"
    )
    assert search_run.info.status == "KILLED"

    # the printed command resumes: the interrupted slot is trained again, nothing else
    finished_before = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
    resume = shlex.split(last.split("resume with: ", 1)[1])
    assert resume[:3] == ["python", "-m", "dnc"]
    again = subprocess.run(
        [sys.executable, *resume[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(
        study_name="digits-mlp/all", storage=f"sqlite:///{tmp_path}/optuna.db"
    ).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2  # the stage's budget, the interrupted slot included
    assert finished_before <= {t.number for t in complete}
    assert client.get_run(search_run.info.run_id).info.status == "FINISHED"


_SLOW_CLEANUP = """
import sys, time
from dnc.cli import stop_on_signals
with stop_on_signals(grace_s=float(sys.argv[1])):
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:
        print("cleaning up", flush=True)
        time.sleep(60)  # a clean-up that hangs (an unreachable server, say)
"""


_INTERRUPTED = """
import sys, time
from dnc.cli import Interrupted, stop_on_signals
try:
    with stop_on_signals():
        print("ready", flush=True)
        time.sleep(60)
except Interrupted as err:
    print(err, err.exit_code, flush=True)
    sys.exit(err.exit_code)
"""


_IN_A_FINALISER = """
import os, signal, sys, time
from dnc.cli import Interrupted, stop_on_signals


class Dropped:
    def __del__(self):  # the signal lands while a finaliser runs (as in SQLAlchemy's weakrefs)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass


try:
    with stop_on_signals():
        Dropped()
        time.sleep(30)
        print("not interrupted", flush=True)
except Interrupted as err:
    print(err, err.exit_code, flush=True)
    sys.exit(err.exit_code)
"""


def _until(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == line


def test_a_hanging_clean_up_is_cut_short_after_the_grace_period(tmp_path):
    proc = _popen(tmp_path, [sys.executable, "-c", _SLOW_CLEANUP, "1"])
    _until(proc, "ready")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _until(proc, "cleaning up")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert 0.9 < time.monotonic() - sent < 10
    assert "dnc: stopped at once" in err


def test_ctrl_c_is_interrupted_with_status_130(tmp_path):
    proc = _popen(tmp_path, [sys.executable, "-c", _INTERRUPTED])
    _until(proc, "ready")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and out.strip().endswith("SIGINT 130"), out


def test_a_signal_that_lands_in_a_finaliser_still_interrupts(tmp_path):
    """Python drops an exception raised in a ``__del__`` or weakref callback: the signal's
    ``Interrupted`` is sent again, instead of the search going on to the end and exiting 0."""
    proc = _popen(tmp_path, [sys.executable, "-c", _IN_A_FINALISER])
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out.strip()) == (143, "SIGTERM 143"), (out, err)
    assert "Exception ignored" not in err, err


def test_a_second_ctrl_c_exits_at_once(tmp_path):
    proc = _popen(tmp_path, [sys.executable, "-c", _SLOW_CLEANUP, "300"])
    _until(proc, "ready")
    proc.send_signal(signal.SIGINT)
    _until(proc, "cleaning up")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert time.monotonic() - sent < 5
    assert "dnc: stopped at once" in err
