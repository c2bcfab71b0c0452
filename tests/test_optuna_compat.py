"""Every use of Optuna's private API (``dnc.optuna_compat``), on a real SQLite storage: when an
Optuna upgrade breaks one, a test here says which."""

from __future__ import annotations

import time
import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from dnc import optuna_compat
from dnc.search.storage import open_storage


@pytest.fixture
def storage(tmp_path):
    return open_storage(f"sqlite:///{tmp_path}/c.db", heartbeat_interval=1, grace_period=2)


def test_ids_are_the_storage_ids(storage):
    a = optuna.create_study(study_name="a", storage=storage)
    b = optuna.create_study(study_name="b", storage=storage)
    assert optuna_compat.study_id(a) != optuna_compat.study_id(b)
    assert optuna_compat.study_id(
        optuna.load_study(study_name="b", storage=storage)
    ) == optuna_compat.study_id(b)
    ta, tb = optuna_compat.ask(a), optuna_compat.ask(b)
    assert optuna_compat.trial_id(ta) != optuna_compat.trial_id(tb)
    assert optuna_compat.trial_id(a.trials[0]) == optuna_compat.trial_id(ta)


def test_study_names_come_in_creation_order(storage):
    for name in ("s/zeta", "s/alpha", "other/x", "s/mid"):
        optuna.create_study(study_name=name, storage=storage)
    assert optuna_compat.study_names(storage) == ["s/zeta", "s/alpha", "other/x", "s/mid"]


def test_a_sampler_records_a_system_attribute_on_its_trial(storage):
    study = optuna.create_study(storage=storage)
    trial = optuna_compat.ask(study)
    optuna_compat.set_trial_system_attr(study, study.trials[0], "dnc.bo", {"phase": "prior"})
    assert study.trials[trial.number].system_attrs["dnc.bo"] == {"phase": "prior"}


def test_fail_trial_fails_a_running_trial_once(storage):
    study = optuna.create_study(storage=storage)
    optuna_compat.ask(study)
    frozen = study.trials[0]
    assert optuna_compat.fail_trial(study, frozen) is True
    assert study.trials[0].state == TrialState.FAIL
    assert optuna_compat.fail_trial(study, frozen) is False  # finished: left alone


def test_ask_is_quiet_and_heartbeat_keeps_a_trial_alive(storage):
    study = optuna.create_study(storage=storage)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's "Heartbeat ... Study.optimize" warning
        alive, dead = optuna_compat.ask(study), optuna_compat.ask(study)
    with optuna_compat.heartbeat(study, alive):
        with optuna_compat.heartbeat(study, dead):
            time.sleep(1.2)  # both beat at least once
        time.sleep(3)  # the dead one is silent past the grace period; the other beats on
        optuna_compat.fail_stale_trials(study)
    states = {t.number: t.state for t in study.trials}
    assert states == {alive.number: TrialState.RUNNING, dead.number: TrialState.FAIL}


@pytest.mark.parametrize(
    ("distribution", "inside", "outside"),
    [
        (CategoricalDistribution(("relu", "tanh")), "tanh", "elu"),
        (CategoricalDistribution((0.0, 0.2)), 0.2, 0.3),
        (IntDistribution(16, 64), 32, 65),
        (FloatDistribution(1e-5, 1e-1, log=True), 1e-3, 1.0),
    ],
)
def test_contains(distribution, inside, outside):
    assert optuna_compat.contains(distribution, inside)
    assert not optuna_compat.contains(distribution, outside)


def test_whole_study_sees_past_hyperbands_bracket_view(storage):
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=9, reduction_factor=3)
    study = optuna.create_study(storage=storage, pruner=pruner)
    for _ in range(12):
        trial = study.ask()
        trial.report(1.0, 1)
        trial.should_prune()  # the pruner sets up its brackets on the first call
        study.tell(trial, 1.0)
    last = study.trials[-1]
    view = optuna.pruners._filter_study(study, last)  # what samplers get under Hyperband
    assert len(view.get_trials()) < 12  # one bracket's trials
    whole = optuna_compat.whole_study(view)
    assert len(whole.get_trials()) == 12
    assert optuna_compat.study_id(whole) == optuna_compat.study_id(study)
    assert optuna_compat.whole_study(study) is study
