"""A search killed with SIGKILL mid-stage and started again with the same command resumes:
no finished trial is retrained, and every stage ends with its budget of trials."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import run_dnc
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

ARGS = (
    "search=quick",  # the paper's three stages, one variant per grid sub-stage
    "search.bo.prior_states=3",
    "search.bo.steps=1",
    "trainer.epochs=6",
    "search.sampler=tpe",
    "tracking.pictures=false",
    "storage.heartbeat_interval=1",
    "storage.grace_period=3",
    "search.name=killme",
)


def _states(db: Path, study: str) -> list[str]:
    """Trial states, read straight from the file; a trial whose training has started (its
    MLflow run exists) reads TRAINING."""
    if not db.exists():
        return []
    con = sqlite3.connect(db, timeout=5)
    try:
        rows = con.execute(
            "select t.state, exists(select 1 from trial_user_attributes a where "
            "a.trial_id = t.trial_id and a.key = 'mlflow_run_id') from trials t "
            "join studies s on s.study_id = t.study_id where s.study_name = ?",
            (study,),
        ).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []
    finally:
        con.close()
    return ["TRAINING" if state == "RUNNING" and started else state for state, started in rows]


def test_sigkill_mid_stage_then_resume(tmp_path: Path):
    db = tmp_path / "run" / "optuna.db"
    cmd = [sys.executable, "-m", "dnc", f"hydra.run.dir={tmp_path}/run", *ARGS]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # wait until the core stage is half done, a trial running
            states = _states(db, "killme/core")
            if states.count("COMPLETE") >= 2 and "TRAINING" in states:
                break
            assert proc.poll() is None, "the search ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the search never got half-way through its first stage")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    storage = f"sqlite:///{db}"
    before = optuna.load_study(study_name="killme/core", storage=storage).get_trials()
    finished_before = {
        t.number: t.datetime_complete for t in before if t.state == TrialState.COMPLETE
    }
    assert any(t.state == TrialState.RUNNING for t in before)

    resumed = run_dnc(tmp_path, *ARGS, check=True)
    assert "resuming after" in resumed.stdout

    core = optuna.load_study(study_name="killme/core", storage=storage).get_trials()
    complete = [t for t in core if t.state == TrialState.COMPLETE]
    assert len(complete) == 4  # the stage's budget, no more
    for number, finished in finished_before.items():  # finished trials were not retrained
        assert core[number].state == TrialState.COMPLETE
        assert core[number].datetime_complete == finished
    killed = [t for t in core if t.state == TrialState.FAIL]
    assert len(killed) == 1 and "fail_reason" not in killed[0].user_attrs
    assert (
        len(
            optuna.load_study(study_name="killme/train", storage=storage).get_trials(
                states=(TrialState.COMPLETE,)
            )
        )
        == 4
    )
    arch = optuna.load_study(study_name="killme/arch", storage=storage).get_trials()
    assert arch and all(t.state == TrialState.COMPLETE for t in arch)

    # one search run in MLflow, resumed; the killed trial's run is closed as KILLED
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("dnc").experiment_id], max_results=500)
    searches = [r for r in runs if r.data.tags.get("dnc.kind") == "search"]
    assert len(searches) == 1 and searches[0].info.status == "FINISHED"
    killed_run = client.get_run(killed[0].user_attrs["mlflow_run_id"])
    assert killed_run.info.status == "KILLED"
    assert not list((tmp_path / "run").glob("*.png"))  # tracking.pictures=false: none drawn


def test_a_run_with_other_settings_cannot_join_a_search(tmp_path: Path):
    """A resumed search, or another worker, started with another wc gets one line naming it,
    before it trains anything; the search is left as it was."""
    from searches import make_search

    from dnc.plugins import UserError
    from dnc.search import StageSpec

    stages = (StageSpec("core", groups=("core",), trials=2),)
    make_search(tmp_path, stages=stages, wc=0.1).run()
    before = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp_path}/s.db").trials
    with pytest.raises(UserError, match=r"started with wc=0.1, this run has wc=1.0"):
        make_search(tmp_path, stages=stages, wc=1.0).run()
    after = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp_path}/s.db").trials
    assert len(after) == len(before)
