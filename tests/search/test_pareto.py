"""Pareto stages (``objective: pareto``, ``search=pareto``): a real search on digits whose core
stage is an Optuna multi-objective study (accuracy up, cost down) proposed by qLogNEHVI on the
ramp GPs, and whose training stage continues from the knee of that front."""

from __future__ import annotations

import itertools
import json
import random

import optuna
import pytest
from dnc_hwcost import HardwareCost
from dnc_mlp.space import MLPSpace
from mlflow.tracking import MlflowClient
from optuna.study import StudyDirection
from optuna.trial import TrialState
from searches import make_search

from dnc import optuna_compat
from dnc.bo.sampler import PHASE_ATTR
from dnc.plugins import UserError
from dnc.search import BOSettings, SearchSettings, StageSpec, records, warm_start
from dnc.search.cost import NumParams
from dnc.search.objective import loss_terms, performance_term, score
from dnc.search.pareto import (
    DIRECTIONS,
    FEASIBLE,
    front,
    knee_of,
    knee_wc,
    objectives,
    record_feasibility,
)
from dnc.search.ranking import ranked_trials, search_wc_of
from dnc.search.rescore import rescore
from dnc.search.settings import WarmStartSettings
from dnc.search.storage import open_storage, recorded_cost
from dnc.tracking.mlflow_tracker import MlflowTracker
from dnc.tracking.pictures import SearchPictures

STAGES = (
    StageSpec("core", objective="pareto", trials=9),
    StageSpec("arch", kind="grid", trials=1),
    StageSpec("train", groups=("train",), trials=3),
)


# -- the knee ----------------------------------------------------------------------------------
def test_front_keeps_the_points_nothing_beats_on_both():
    parts = [(0.3, 0.5), (0.05, 1.0), (0.06, 2.0), (0.02, 4.0), (0.02, 5.0), (0.3, 0.5)]
    assert front(parts) == [0, 1, 3]  # by cost; (0.06, 2) and (0.02, 5) are dominated


def test_the_knee_is_the_pick_of_its_wc_and_the_point_farthest_below_the_chord():
    rng = random.Random(0)
    for _ in range(200):
        parts = [(rng.uniform(0.01, 0.9), rng.uniform(0.1, 10)) for _ in range(rng.randint(3, 12))]
        ends = [parts[i] for i in front(parts)]
        if len(ends) < 2:
            continue
        wc = knee_wc(parts)
        pick = min(parts, key=lambda p: p[0] + wc * p[1])
        # farthest below the line through the front's ends, errors and costs scaled to [0, 1]
        (fp0, fc0), (fp1, fc1) = ends[0], ends[-1]

        def below(p, fp0=fp0, fc0=fc0, fp1=fp1, fc1=fc1):
            return 1 - (p[0] - fp1) / (fp0 - fp1) - (p[1] - fc0) / (fc1 - fc0)

        assert below(pick) == pytest.approx(max(below(p) for p in parts))
    assert knee_wc([(0.02, 4.0), (0.05, 1.0), (0.30, 0.5)]) == pytest.approx(0.08)
    assert knee_wc([(0.1, 1.0)]) == 0.1  # one point: the paper's balance


def test_the_knee_leaves_out_candidates_the_costed_target_cannot_run():
    cost = HardwareCost(metric="clocks_per_sample", normaliser=1.0)

    def fig(acc: float, clocks: float, runs: bool = True) -> dict[str, float]:
        return {"best_val_acc": acc, "hw_clocks_per_sample": clocks, "hw_feasible": float(runs)}

    feasible = [fig(70.0, 0.5), fig(95.0, 1.0), fig(98.0, 4.0)]
    wrong = fig(99.0, 2.0, runs=False)  # the most accurate, at the penalty's cost of 100
    assert not cost.feasible(wrong) and cost.complexity(wrong) == 100.0
    expected = knee_wc([(0.30, 0.5), (0.05, 1.0), (0.02, 4.0)])
    assert knee_of([*feasible, wrong], cost) == pytest.approx(expected)
    assert knee_wc([loss_terms(f, cost) for f in [*feasible, wrong]]) < expected / 10
    assert knee_of([wrong], cost) == 0.1  # nothing feasible: every trial, here one point


def test_feasibility_is_a_constraint_unless_the_stage_began_without_it(caplog):
    cost = HardwareCost(metric="clocks_per_sample", normaliser=1.0)
    bad = {"best_val_acc": 99.0, "hw_clocks_per_sample": 2.0, "hw_feasible": 0.0}
    fresh = optuna.create_study(directions=list(DIRECTIONS))
    trial = fresh.ask()
    record_feasibility(fresh, trial, bad, cost)
    fresh.tell(trial, objectives(bad, cost))
    (done,) = fresh.trials
    assert optuna_compat.constraints(done) == {FEASIBLE: 1.0} and not optuna_compat.feasible(done)
    assert fresh.best_trials == []  # Optuna's own front leaves it out

    # a stage begun before dnc recorded it: Optuna's GPSampler refuses a mixed study
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    older = optuna.create_study(
        directions=list(DIRECTIONS), sampler=optuna.samplers.GPSampler(seed=0, n_startup_trials=1)
    )
    older.add_trial(
        optuna.trial.create_trial(params={"x": 0.3}, distributions={"x": x}, values=[50.0, 1.0])
    )

    def objective(trial: optuna.Trial) -> list[float]:
        figures = {**bad, "best_val_acc": 100 * trial.suggest_float("x", 0.0, 1.0)}
        record_feasibility(older, trial, figures, cost)
        return objectives(figures, cost)

    older.optimize(objective, n_trials=3)  # GPSampler proposes the last two
    assert [optuna_compat.constraints(t) for t in older.trials] == [{}] * 4
    assert "record no cost_feasible constraint" in caplog.text


def test_settings_check_the_objective_and_a_missing_wc():
    with pytest.raises(UserError, match=r"objective='front': choose loss or pareto"):
        StageSpec("core", objective="front")
    with pytest.raises(UserError, match="only a bo stage can search a front"):
        StageSpec("arch", kind="grid", objective="pareto")
    with pytest.raises(UserError, match="search.wc=null continues from the knee"):
        SearchSettings(wc=None)
    assert SearchSettings(wc=None, stages=STAGES).wc is None


# -- a real search -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def front_search(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pareto")
    uri = f"sqlite:///{tmp}/mlflow.db"
    search = make_search(
        tmp,
        stages=STAGES,
        sampler="ramp",
        wc=None,
        bo=BOSettings(prior_states=4, steps=5, explore=200),
        cost=NumParams(),  # deterministic: the front does not move with timings
        epochs=3,
        observers=[SearchPictures(out_dir=tmp / "run"), MlflowTracker(uri)],
    )
    result = search.run()
    storage = open_storage(f"sqlite:///{tmp}/s.db")
    core = optuna.load_study(study_name="s/core", storage=storage)
    train = optuna.load_study(study_name="s/train", storage=storage)
    return tmp, uri, result, storage, core, train


def grid(tmp):
    return optuna.load_study(study_name="s/arch", storage=f"sqlite:///{tmp}/s.db")


def test_the_core_stage_is_a_two_objective_study_of_accuracy_and_cost(front_search):
    _, _, _, _, core, _ = front_search
    assert core.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert core.metric_names == ["best_val_acc_pct", "complexity"]
    cost = recorded_cost(core)
    done = core.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 9
    for t in done:
        figures = records.figures(t)
        assert t.values == [figures["best_val_acc"], pytest.approx(cost.complexity(figures))]
    parts = [(100 - t.values[0], t.values[1]) for t in done]
    on_front = sorted(done[i].number for i in front(parts))
    assert sorted(t.number for t in core.best_trials) == on_front  # Optuna's front is ours


def test_bo_steps_propose_by_hypervolume_on_every_earlier_trial(front_search):
    _, _, _, _, core, _ = front_search
    info = [t.system_attrs[PHASE_ATTR] for t in core.trials]
    assert [i["phase"] for i in info] == ["prior"] * 4 + ["bo"] * 5
    for number, i in enumerate(info[4:], start=4):
        assert i["model"] == "pareto" and i["observed"] == number
        assert i["pending"] == 0


def test_later_stages_continue_from_the_knee_and_rank_with_its_wc(front_search):
    tmp, _, result, storage, core, train = front_search
    cost = recorded_cost(core)
    done = core.get_trials(states=(TrialState.COMPLETE,))
    parts = [
        (performance_term(records.figures(t)["best_val_acc"]), cost.complexity(records.figures(t)))
        for t in done
    ]
    wc = knee_wc(parts)
    assert core.user_attrs[records.KNEE_WC] == pytest.approx(wc)
    assert search_wc_of(storage, "s") == pytest.approx(wc)
    knee = min(done, key=lambda t: score(records.figures(t), wc, cost))
    arch = grid(tmp)
    # the grid's first sub-stage starts from the knee
    assert arch.user_attrs[records.BASE + "activation"] == records.candidate(knee)
    best = min(ranked_trials(storage, "s"), key=lambda r: (r.stage == "train", r.loss))
    assert train.user_attrs[records.BASE + "stage"] == dict(best.candidate)
    for t in train.get_trials(states=(TrialState.COMPLETE,)):
        assert t.value == pytest.approx(score(records.figures(t), wc, cost))
    rows = ranked_trials(storage, "s")
    assert [r.loss for r in rows] == sorted(r.loss for r in rows)
    written = json.loads((tmp / "run" / "results.json").read_text())
    assert (written["wc"], written["knee_wc"]) == (None, pytest.approx(wc))
    assert written["best"][0]["search_loss"] == pytest.approx(rows[0].loss)
    assert {r.stage for r in rows} == {"core", "arch", "train"}
    assert result.best[0].loss == rows[0].loss


def test_any_wc_picks_from_the_front_without_training(front_search):
    _, _, _, storage, core, _ = front_search
    cost = recorded_cost(core)
    for pick in rescore(storage, "s", [0, 0.01, 1, 100]):
        losses = [score(r.figures, pick.wc, cost) for r in pick.ranking]
        assert pick.best.loss == pytest.approx(min(losses))
    cheapest = rescore(storage, "s", [1000])[0].best
    assert cheapest.figures["numparams"] == min(r.figures["numparams"] for r in pick.ranking)


def test_mlflow_and_pictures_show_the_front(front_search):
    tmp, uri, _, _, core, train = front_search
    client = MlflowClient(tracking_uri=uri)
    for t in itertools.chain(core.trials, train.trials):
        run = client.get_run(t.user_attrs[records.MLFLOW_RUN])
        assert run.info.status == "FINISHED"
        assert run.data.metrics["best_val_acc_pct"] == pytest.approx(
            records.figures(t)["best_val_acc"], abs=1e-3
        )
        # a front trial's loss depends on the wc picked later: only the loss stage's have one
        assert ("search_loss" in run.data.metrics) == (t in train.trials)
    assert (tmp / "run" / "front-s.png").stat().st_size > 10_000
    assert (tmp / "run" / "bo-core-s.png").exists()


def test_a_stage_resumed_with_another_objective_is_refused(front_search, tmp_path):
    tmp, *_ = front_search
    search = make_search(
        tmp,
        stages=(StageSpec("core", trials=9), STAGES[1]),
        sampler="ramp",
        wc=0.1,
        cost=NumParams(),
        epochs=3,
    )
    with pytest.raises(UserError, match="stage 'core' of search 's' in this storage was started"):
        search.run()


def test_a_warm_start_from_a_front_ranks_it_at_its_knee(front_search):
    tmp, _, _, storage, _, _ = front_search
    source = warm_start.open_source(
        WarmStartSettings(search="s"),
        search="w",
        storage=storage,
        storage_url=f"sqlite:///{tmp}/s.db",
        space=MLPSpace(activations=("relu", "tanh", "elu")),
        groups=("core", "train"),
    )
    rows = ranked_trials(storage, "s")  # the front's trials scored at its knee
    assert [t.origin for t in source.trials] == [f"s/{r.stage}/{r.number}" for r in rows]
    assert sum(t.origin.startswith("s/core/") for t in source.trials) == 9
