"""RampBOSampler on two-objective studies (a dnc Pareto stage): qLogNEHVI on the fp and fc GPs,
with running trials as pending points (synthetic objectives, real GP fits)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from bo_spaces import ChainCNNSpace, recorded_parts
from optuna.trial import TrialState

from dnc import optuna_compat
from dnc.bo import RampBOSampler
from dnc.bo.sampler import PHASE_ATTR
from dnc.plugins import SearchSpace
from dnc.search import LossParts
from dnc.search.pareto import DIRECTIONS, FEASIBLE, hypervolume
from dnc.suggest import TrialSuggest

optuna.logging.set_verbosity(optuna.logging.WARNING)


def parts_of(c: Mapping[str, Any]) -> tuple[float, float]:
    """A trade-off: wider first layers and ~6 layers err less but cost more; lr ~ 1e-2 errs
    least and costs nothing."""
    depth = c["num_conv_layers"]
    fp = 0.02 + 0.25 * abs(math.log10(c["lr"]) + 2) / 3 + 0.3 * 16 / c["channels_0"]
    fp += 0.02 * abs(depth - 6)
    fc = c["channels_0"] / 64 * depth / 4 * (256 / c["batch_size"]) ** 0.5
    return fp, fc


def front_run(study: optuna.Study, space: SearchSpace, trials: int) -> None:
    """What a dnc Pareto stage records: the candidate, figures, values [accuracy, fc]."""

    def objective(trial: optuna.Trial) -> list[float]:
        c = space.sample(TrialSuggest(trial))
        trial.set_user_attr("candidate", c)
        fp, fc = parts_of(c)
        trial.set_user_attr("figures", {"fp": fp, "fc": fc})
        return [100 * (1 - fp), fc]

    study.optimize(objective, n_trials=trials)


def ramp(seed: int, prior_states: int = 6) -> RampBOSampler:
    return RampBOSampler(
        space=ChainCNNSpace(),
        prior_states=prior_states,
        explore=300,
        seed=seed,
        loss_parts=LossParts(wc=0.1, parts=recorded_parts),
    )


def area(study: optuna.Study) -> float:
    return hypervolume([recorded_parts(t) for t in study.trials], ref=(1.0, 20.0))


def test_bo_steps_grow_the_front_faster_than_random_draws():
    """Over three seeds, 6 Sobol + 8 qLogNEHVI steps dominate more of the (error, cost)
    plane than 14 random candidates, and every step is a ``pareto`` BO step."""
    space = ChainCNNSpace()
    bo, rnd = [], []
    for seed in range(3):
        study = optuna.create_study(directions=list(DIRECTIONS), sampler=ramp(seed))
        front_run(study, space, 14)
        info = [t.system_attrs[PHASE_ATTR] for t in study.trials]
        assert [i["phase"] for i in info] == ["prior"] * 6 + ["bo"] * 8
        assert {i["model"] for i in info[6:]} == {"pareto"}
        assert [i["observed"] for i in info[6:]] == list(range(6, 14))
        bo.append(area(study))
        baseline = optuna.create_study(
            directions=list(DIRECTIONS), sampler=optuna.samplers.RandomSampler(seed=seed)
        )
        front_run(baseline, space, 14)
        rnd.append(area(baseline))
    assert sum(bo) > sum(rnd), (bo, rnd)


def test_candidates_the_target_cannot_run_do_not_set_the_reference_point():
    """The most accurate candidates (first layer over 40 channels) cost a penalty of 100: the
    target cannot run them. Where trials record that as an Optuna constraint, qLogNEHVI's
    reference point comes from the feasible front, so the BO steps stop proposing them; without
    it, the penalised points sit on the front and the steps chase them."""
    space = ChainCNNSpace()

    def infeasible_steps(seed: int, constrained: bool) -> int:
        def objective(trial: optuna.Trial) -> list[float]:
            c = space.sample(TrialSuggest(trial))
            trial.set_user_attr("candidate", c)
            fp, fc = parts_of(c)
            runs = c["channels_0"] <= 40
            if constrained:
                optuna_compat.set_constraint(trial, FEASIBLE, 0.0 if runs else 1.0)
            trial.set_user_attr("figures", {"fp": fp, "fc": fc if runs else 100.0})
            return [100 * (1 - fp), fc if runs else 100.0]

        study = optuna.create_study(directions=list(DIRECTIONS), sampler=ramp(seed))
        study.optimize(objective, n_trials=14)
        if constrained:
            assert all(
                optuna_compat.feasible(t) == (t.params["channels_0"] <= 40) for t in study.trials
            )
        return sum(t.params["channels_0"] > 40 for t in study.trials[6:])

    plain = sum(infeasible_steps(seed, False) for seed in range(3))
    constrained = sum(infeasible_steps(seed, True) for seed in range(3))
    assert plain >= 6 and 2 * constrained <= plain, (constrained, plain)


def test_a_running_trial_enters_as_a_pending_point():
    space = ChainCNNSpace()
    base = optuna.create_study(
        directions=list(DIRECTIONS), sampler=optuna.samplers.RandomSampler(seed=0)
    )
    front_run(base, space, 10)

    def propose(running: bool) -> optuna.trial.FrozenTrial:
        study = optuna.create_study(directions=list(DIRECTIONS))
        study.add_trials(base.trials)
        if running:  # another worker's trial, on the candidate the sampler would pick alone
            study.enqueue_trial(dict(alone.params))
            held = study.ask()
            held.set_user_attr("candidate", space.sample(TrialSuggest(held)))
        study.sampler = ramp(5, prior_states=4)
        front_run(study, space, 1)
        return study.trials[-1]

    alone = propose(False)
    assert alone.system_attrs[PHASE_ATTR]["pending"] == 0
    shared = propose(True)
    assert shared.state == TrialState.COMPLETE
    assert shared.system_attrs[PHASE_ATTR] | {"log_ei": 0} == {
        "phase": "bo",
        "log_ei": 0,
        "pending": 1,
        "model": "pareto",
        "observed": 10,
        "climbed": False,  # search.bo.local_search=0: the best draw
    }
    assert shared.params != alone.params  # not the candidate the other worker trains


def test_a_multi_objective_study_needs_the_loss_parts():
    study = optuna.create_study(
        directions=list(DIRECTIONS),
        sampler=RampBOSampler(space=ChainCNNSpace(), prior_states=2, seed=0),
    )
    with pytest.raises(ValueError, match="multi-objective study needs loss_parts"):
        front_run(study, ChainCNNSpace(), 1)
