"""Stages from configuration: order, grid sub-stages and their deduplication, the best
candidate carried between stages, combined mode, num_best and final_test, calibration."""

from __future__ import annotations

import optuna
import pytest
from dnc_mlp.space import MLPSpace
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from dnc.plugins import UserError
from dnc.search import Search, SearchSettings, StageSpec, open_storage, ranked_trials
from dnc.search.cost import TEpoch
from dnc.search.samplers import BOSettings
from dnc.search.stages import candidate_key
from dnc.tracking.console import SearchConsole
from dnc.tracking.mlflow_tracker import Tracker
from dnc.train.datasets import Digits
from dnc.train.trainer import TrainerSettings

PAPER = (
    StageSpec("core", groups=("core",)),
    StageSpec("arch", kind="grid"),
    StageSpec("train", groups=("train",)),
)


def make_search(tmp_path, stages=PAPER, name="s", tracker=False, **kw) -> Search:
    kw.setdefault("bo", BOSettings(prior_states=3, steps=1))
    settings = SearchSettings(
        name=name,
        stages=stages,
        sampler="random",
        seed=7,
        storage_url=f"sqlite:///{tmp_path}/s.db",
        **kw,
    )
    return Search(
        settings,
        space=MLPSpace(activations=("relu", "tanh", "elu")),
        dataset=Digits(),
        cost=TEpoch(),
        trainer=TrainerSettings(epochs=2),
        console=SearchConsole(quiet=True),
        output_dir=tmp_path / "run",
        tracker=Tracker(f"sqlite:///{tmp_path}/mlflow.db") if tracker else None,
    )


def trials(tmp_path, study: str, states=(TrialState.COMPLETE,)):
    return optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path}/s.db").get_trials(
        states=states
    )


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper")
    result = make_search(tmp, tracker=True, final_test=True, num_best=3).run()
    return tmp, result


def test_each_stage_is_a_study_named_search_slash_stage(paper):
    tmp, _ = paper
    names = [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp}/s.db")]
    assert names == ["s/core", "s/arch", "s/train"]
    assert len(trials(tmp, "s/core")) == 4 and len(trials(tmp, "s/train")) == 4


def test_grid_tries_every_variant_once_and_skips_what_was_tried(paper):
    tmp, _ = paper
    grid = trials(tmp, "s/arch")
    by_sub: dict[str, list] = {}
    for t in grid:
        by_sub.setdefault(t.user_attrs["substage"], []).append(t.user_attrs["candidate"])
    # the base's own activation (relu) and dropout (its value after the activation sub-stage)
    # were tried already: each sub-stage runs every other variant exactly once
    assert sorted(c["activation"] for c in by_sub["activation"]) == ["elu", "tanh"]
    assert sorted(c["dropout"] for c in by_sub["dropout"]) == [0.0, 0.1, 0.3, 0.4, 0.5]
    keys = [candidate_key(t.user_attrs["candidate"]) for t in grid]
    assert len(keys) == len(set(keys))
    # sub-stages run in the space's order: every activation trial precedes every dropout trial
    assert max(t.number for t in grid if t.user_attrs["substage"] == "activation") < min(
        t.number for t in grid if t.user_attrs["substage"] == "dropout"
    )


def test_the_best_so_far_is_carried_between_stages(paper):
    tmp, _ = paper
    storage = open_storage(f"sqlite:///{tmp}/s.db")
    core_best = min(trials(tmp, "s/core"), key=lambda t: t.value).user_attrs["candidate"]
    arch = trials(tmp, "s/arch")
    for t in arch:  # the grid varies one thing of the core stage's winner at a time
        cand = t.user_attrs["candidate"]
        assert cand["num_hidden_layers"] == core_best["num_hidden_layers"]
        assert cand["lr"] == core_best["lr"] and cand["batch_size"] == core_best["batch_size"]
    # a dropout variant starts from the activation sub-stage's winner if it beat the best so far
    act_best = min(
        trials(tmp, "s/core") + [t for t in arch if t.user_attrs["substage"] == "activation"],
        key=lambda t: t.value,
    ).user_attrs["candidate"]
    for t in arch:
        if t.user_attrs["substage"] == "dropout":
            assert t.user_attrs["candidate"]["activation"] == act_best["activation"]
    before_train = min(trials(tmp, "s/core") + arch, key=lambda t: t.value).user_attrs["candidate"]
    for t in trials(tmp, "s/train"):  # the last stage searches lr, wd, bs of the best network
        cand = t.user_attrs["candidate"]
        for key in ("num_hidden_layers", "activation", "dropout", "hidden_0"):
            assert cand.get(key) == before_train.get(key)
    assert ranked_trials(storage, "s")[0].loss == min(
        t.value for t in trials(tmp, "s/core") + arch + trials(tmp, "s/train")
    )


def test_num_best_and_final_test(paper):
    tmp, result = paper
    assert len(result.best) == 3
    assert set(result.test_acc) == {f"{r.stage}/{r.number}" for r in result.best}
    assert all(0 <= acc <= 100 for acc in result.test_acc.values())
    assert max(result.test_acc.values()) > 50  # retrained on train + val, digits is easy
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    runs = client.search_runs(
        [client.get_experiment_by_name("dnc").experiment_id],
        filter_string="tags.`dnc.kind` = 'trial'",
        max_results=500,
    )
    tested = [r for r in runs if "final_test_acc" in r.data.metrics]
    assert len(tested) == 3


def test_mlflow_structure_search_stage_trial(paper):
    tmp, _ = paper
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("dnc").experiment_id], max_results=500)
    kinds = {r.info.run_id: r.data.tags["dnc.kind"] for r in runs}
    search = [r for r in runs if kinds[r.info.run_id] == "search"]
    stages = [r for r in runs if kinds[r.info.run_id] == "stage"]
    assert len(search) == 1 and sorted(r.data.tags["stage"] for r in stages) == [
        "arch",
        "core",
        "train",
    ]
    for st in stages:
        assert st.data.tags["mlflow.parentRunId"] == search[0].info.run_id
    stage_ids = {r.info.run_id: r.data.tags["stage"] for r in stages}
    for r in runs:
        if kinds[r.info.run_id] == "trial":
            assert stage_ids[r.data.tags["mlflow.parentRunId"]] == r.data.tags["stage"]
            assert r.data.tags["dnc.search_run_id"] == search[0].info.run_id


def test_tbar_auto_is_recorded_on_the_study_and_the_run(paper):
    tmp, _ = paper
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp}/s.db")
    tbar = study.user_attrs["dnc.cost"]["kwargs"]["tbar_epoch"]
    assert isinstance(tbar, float) and 0 < tbar < 60
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db")
    run = client.search_runs(
        [client.get_experiment_by_name("dnc").experiment_id],
        filter_string="tags.`dnc.kind` = 'search'",
    )[0]
    assert str(tbar) in run.data.params["cost_settings"]


def test_a_finished_search_run_again_trains_nothing(paper):
    tmp, _ = paper
    before = {s: len(trials(tmp, f"s/{s}", states=None)) for s in ("core", "arch", "train")}
    make_search(tmp, final_test=True, num_best=3).run()
    after = {s: len(trials(tmp, f"s/{s}", states=None)) for s in ("core", "arch", "train")}
    assert before == after


def test_reordered_substages(tmp_path):
    stages = (
        StageSpec("core", groups=("core",), trials=2),
        StageSpec("arch", kind="grid", substages=("dropout", "activation")),
    )
    make_search(tmp_path, stages=stages, bo=BOSettings(prior_states=2, steps=0)).run()
    grid = sorted(trials(tmp_path, "s/arch"), key=lambda t: t.number)
    subs = [t.user_attrs["substage"] for t in grid]
    assert subs == sorted(subs, key=lambda s: s != "dropout") and "activation" in subs


def test_combined_mode_searches_every_group_in_one_stage(tmp_path):
    stages = (StageSpec("all", groups=("core", "arch", "train"), trials=8),)
    make_search(tmp_path, stages=stages).run()
    done = trials(tmp_path, "s/all")
    assert len(done) == 8
    for key in ("num_hidden_layers", "activation", "dropout", "lr", "batch_size"):
        assert len({str(t.user_attrs["candidate"][key]) for t in done}) > 1, key
        assert key in done[0].params  # sampled by Optuna, not held


def test_unknown_grid_substage_is_a_user_error(tmp_path):
    stages = (StageSpec("core", trials=1), StageSpec("arch", kind="grid", substages=("nosuch",)))
    with pytest.raises(UserError, match="nosuch"):
        make_search(tmp_path, stages=stages).run()


def test_bad_stage_settings_are_user_errors():
    with pytest.raises(UserError, match="kind"):
        StageSpec("x", kind="anneal")
    with pytest.raises(UserError, match="groups"):
        StageSpec("x", groups=("everything",))
    with pytest.raises(UserError, match="unique"):
        SearchSettings(name="s", stages=(StageSpec("a"), StageSpec("a")))
