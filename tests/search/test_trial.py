"""One trial: a completed one records its candidate and figures; one that fails on its own
records one line of reason (its traceback goes to the log) and the search goes on; a setting
that cannot work, or an interruption, stops the search and frees the trial's slot."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from dnc_mlp.space import MLPSpace
from optuna.trial import TrialState
from torch import nn

from dnc.plugins import DataSpec, UserError
from dnc.search import records
from dnc.search.cost import NumParams
from dnc.search.storage import open_storage
from dnc.search.trial import WORKER_ID, TrialLost, TrialRunner, time_limit
from dnc.train.datasets import Digits
from dnc.train.settings import TrainerSettings, TrialTimedOut


class Exploding(MLPSpace):
    name = "exploding"

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        raise self.error


@pytest.fixture(scope="module")
def data():
    return Digits().load(seed=0)


def runner(data, space=None) -> TrialRunner:
    cost = NumParams(numparams_bar=1000)
    return TrialRunner(
        space=space or MLPSpace(),
        data=data,
        cost=cost,
        wc=0.1,
        trainer=TrainerSettings(epochs=1),
        seed=0,
    )


def study_at(tmp_path) -> optuna.Study:
    return optuna.create_study(
        study_name="s/core", storage=open_storage(f"sqlite:///{tmp_path}/t.db")
    )


def test_a_completed_trial(tmp_path, data):
    study = study_at(tmp_path)
    cand = MLPSpace().reference_candidate()
    outcome = runner(data).run(study, study.ask(), "core", lambda trial: (cand, ""))
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE and t.value == outcome.loss
    assert t.user_attrs[records.CANDIDATE] == cand and t.user_attrs[records.STAGE] == "core"
    assert t.user_attrs[records.WORKER] == WORKER_ID
    assert t.user_attrs[records.FIGURES] == outcome.figures
    assert set(outcome.figures) >= set(records.ALWAYS_FIGURES)  # type: ignore[arg-type]
    assert len(outcome.curves["val_acc"]) == 1 and not outcome.failed


def test_a_failing_trial_records_one_line_and_logs_the_traceback(tmp_path, data, caplog):
    study = study_at(tmp_path)
    space = Exploding(ValueError("shapes do not match\nsecond line of detail"))
    cand = space.reference_candidate()
    with caplog.at_level(logging.INFO, logger="dnc.search.trial"):
        outcome = runner(data, space).run(study, study.ask(), "core", lambda t: (cand, ""))
    assert outcome.fail_reason == "ValueError: shapes do not match"
    t = study.trials[0]
    assert t.state == TrialState.FAIL and t.user_attrs[records.FAIL_REASON] == outcome.fail_reason
    assert records.counts_against_budget(t)
    (record,) = [r for r in caplog.records if r.name == "dnc.search.trial"]
    assert record.levelno == logging.INFO and record.exc_info is not None  # the log file only


@pytest.mark.parametrize("error", [UserError("cost=hardware: not an MLP"), KeyboardInterrupt()])
def test_a_user_error_or_an_interruption_stops_and_frees_the_slot(tmp_path, data, error):
    study = study_at(tmp_path)
    space = Exploding(error)
    with pytest.raises(type(error)):
        runner(data, space).run(
            study, study.ask(), "core", lambda t: (space.reference_candidate(), "")
        )
    t = study.trials[0]
    interrupted = isinstance(error, KeyboardInterrupt)
    assert t.state == TrialState.FAIL
    assert t.user_attrs.get(records.FAIL_REASON) == (records.INTERRUPTED if interrupted else None)
    assert records.fail_reason(t) is None and records.abandoned(t)
    assert not records.counts_against_budget(t)  # a resumed search runs the slot again


class GivenUpMeanwhile(MLPSpace):
    """While its network is built, another worker fails the trial (as Optuna's heartbeat check
    does when this worker could not reach the storage for longer than the grace period)."""

    name = "given-up"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        other = optuna.load_study(study_name="s/core", storage=self.url)
        (running,) = other.get_trials(states=(TrialState.RUNNING,))
        other.tell(running.number, state=TrialState.FAIL)
        return super().build(candidate, data)


def test_a_trial_given_up_by_another_worker_drops_its_result(tmp_path, data):
    study = study_at(tmp_path)
    space = GivenUpMeanwhile(f"sqlite:///{tmp_path}/t.db")
    with pytest.raises(TrialLost):
        runner(data, space).run(
            study, study.ask(), "core", lambda t: (space.reference_candidate(), "")
        )
    (t,) = study.trials
    assert t.state == TrialState.FAIL and records.abandoned(t)  # its slot is run again
    assert records.FIGURES not in t.user_attrs


def test_the_time_limit_stops_a_block_and_gives_back_the_callers_timer():
    fired: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(time.monotonic()))
    try:
        started = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 1.0)  # the caller's own timer (pytest-timeout's)
        with pytest.raises(TrialTimedOut), time_limit(0.2):
            time.sleep(5)
        assert time.monotonic() - started < 1.0
        time.sleep(1.5)
        assert len(fired) == 1 and 0.9 < fired[0] - started < 1.4
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
