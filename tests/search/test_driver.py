"""The worker loop: it runs a stage's trials until the stage says it is done, waits while
only other workers' trials are in flight, stops after too many failures in a row, and fails
the trials of dead workers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from dnc_mlp.space import MLPSpace
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from dnc import optuna_compat
from dnc.plugins import Candidate, DataSpec
from dnc.search.cost import NumParams
from dnc.search.driver import Driver, TrialsFailed, Wait
from dnc.search.events import SearchObserver, TrialFinished, TrialsAbandoned
from dnc.search.storage import open_storage
from dnc.search.trial import TrialRunner
from dnc.train.datasets import Digits
from dnc.train.settings import TrainerSettings


class Broken(MLPSpace):
    name = "broken"

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        raise RuntimeError("no network today")


class Script:
    """Steps that answer from a script: ``later``, ``trial`` or ``done``."""

    def __init__(self, script: list[str], space: MLPSpace) -> None:
        self.script, self.space, self.asked = list(script), space, 0

    def next(self, study: optuna.Study) -> optuna.Trial | Wait:
        step = self.script.pop(0)
        if step == "later":
            return Wait.LATER
        if step == "done":
            return Wait.DONE
        self.asked += 1
        return optuna_compat.ask(study)

    def candidate(self, trial: optuna.Trial) -> tuple[Candidate, str]:
        return self.space.reference_candidate(), ""

    def budget(self, trials: list[FrozenTrial]) -> int:
        return 9


class Heard(SearchObserver):
    def __init__(self) -> None:
        self.finished: list[TrialFinished] = []
        self.abandoned: list[TrialsAbandoned] = []

    def trial_finished(self, event: TrialFinished) -> None:
        self.finished.append(event)

    def trials_abandoned(self, event: TrialsAbandoned) -> None:
        self.abandoned.append(event)


def driver(space: MLPSpace, heard: SearchObserver, *, max_failures: int = 3) -> Driver:
    runner = TrialRunner(
        space=space,
        data=Digits().load(seed=0),
        cost=NumParams(1000),
        wc=0.1,
        trainer=TrainerSettings(epochs=1),
        seed=0,
    )
    return Driver(
        runner=runner,
        observer=heard,
        best=lambda: -1.0,
        max_failures_in_a_row=max_failures,
        grace_period=2,
        poll_seconds=0.01,
    )


def test_runs_trials_until_done_and_waits_in_between(tmp_path):
    heard = Heard()
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/d.db"))
    script = Script(["later", "trial", "later", "later", "trial", "done", "trial"], MLPSpace())
    outcomes = driver(script.space, heard).run(study, "core", script)
    assert len(outcomes) == 2 and script.asked == 2 and script.script == ["trial"]
    assert [e.done for e in heard.finished] == [1, 2]
    assert {(e.budget, e.best) for e in heard.finished} == {(9, -1.0)}


def test_too_many_failures_in_a_row_stop_the_search(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/d.db"))
    script = Script(["trial"] * 5, Broken())
    with pytest.raises(
        TrialsFailed,
        match="3 trials in a row failed in stage core; last: RuntimeError: no network today",
    ):
        driver(script.space, Heard()).run(study, "core", script)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3


def test_a_trial_orphaned_before_its_worker_marked_it_is_failed_after_the_grace_period(
    tmp_path,
):
    storage = open_storage(f"sqlite:///{tmp_path}/o.db", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="o/core", storage=storage)
    heard = Heard()
    d = driver(MLPSpace(), heard)
    orphan = optuna_compat.ask(study)  # RUNNING, no heartbeat, no worker mark
    d.fail_dead_trials(study)
    assert study.trials[orphan.number].state == TrialState.RUNNING  # within the grace period
    time.sleep(2.5)
    d.fail_dead_trials(study)
    assert study.trials[orphan.number].state == TrialState.FAIL
    d.report_abandoned(study)
    assert [t.number for t in heard.abandoned[0].trials] == [orphan.number]
