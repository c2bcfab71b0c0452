"""Stages from configuration: order, grid sub-stages and their deduplication, the cap on a
grid's trials per sub-stage, the best candidate carried between stages, combined mode,
num_best and final_test, calibration, and what a stage says it runs."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from dnc_mlp.space import MLPSpace
from optuna.distributions import CategoricalDistribution
from searches import make_search, trials

from dnc.plugins import UserError, candidate_key
from dnc.search import BOSettings, SearchSettings, StageSpec, open_storage, ranked_trials, records
from dnc.search.events import SearchObserver
from dnc.search.stages import describe_stages, make_stage
from dnc.search.variants import capped_variants


class Recorder(SearchObserver):
    """Records the names of the events a search sends, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __getattribute__(self, name: str):
        if name.endswith(("_started", "_finished", "_tested", "_abandoned")):
            events = object.__getattribute__(self, "events")
            return lambda event: events.append(name)
        return object.__getattribute__(self, name)


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper")
    recorder = Recorder()
    result = make_search(tmp, final_test=True, num_best=3, observers=[recorder]).run()
    return tmp, result, recorder


def test_each_stage_is_a_study_named_search_slash_stage(paper):
    tmp, _, _ = paper
    names = [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp}/s.db")]
    assert names == ["s/core", "s/arch", "s/train"]
    assert len(trials(tmp, "s/core")) == 4 and len(trials(tmp, "s/train")) == 4


def test_grid_tries_every_variant_once_and_skips_what_was_tried(paper):
    tmp, _, _ = paper
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
    tmp, _, _ = paper
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
    tmp, result, recorder = paper
    assert len(result.best) == 3
    assert set(result.test_acc) == {f"{r.stage}/{r.number}" for r in result.best}
    assert all(0 <= acc <= 100 for acc in result.test_acc.values())
    assert max(result.test_acc.values()) > 50  # retrained on train + val, digits is easy
    assert recorder.events.count("final_tested") == 3


def test_observers_hear_every_step_in_order(paper):
    tmp, _, recorder = paper
    ev = recorder.events
    assert ev[0] == "search_started" and ev[-1] == "search_finished"
    assert ev.count("stage_started") == ev.count("stage_finished") == 3
    assert ev.count("substage_started") == 2  # MLP: activation, dropout
    finished = sum(len(trials(tmp, f"s/{s}")) for s in ("core", "arch", "train"))
    assert ev.count("trial_started") == ev.count("trial_finished") == finished
    assert ev.index("final_tested") > max(i for i, e in enumerate(ev) if e == "stage_finished")


def test_tbar_auto_is_recorded_on_the_study(paper):
    tmp, _, _ = paper
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp}/s.db")
    tbar = study.user_attrs["dnc.cost"]["kwargs"]["tbar_epoch"]
    assert isinstance(tbar, float) and 0 < tbar < 60


def test_grid_trials_carry_their_varied_choices_as_optuna_params(paper):
    tmp, _, _ = paper
    for t in trials(tmp, "s/arch"):
        varied = "activation" if t.user_attrs["substage"] == "activation" else "dropout"
        assert list(t.params) == [varied]
        assert t.params[varied] == t.user_attrs["candidate"][varied]
        dist = t.distributions[varied]
        assert isinstance(dist, CategoricalDistribution)
        assert t.user_attrs["candidate"][varied] in dist.choices
    frame = optuna.load_study(
        study_name="s/arch", storage=f"sqlite:///{tmp}/s.db"
    ).trials_dataframe()
    assert {"params_activation", "params_dropout"} <= set(frame.columns)


def test_a_finished_search_run_again_trains_nothing(paper):
    tmp, _, _ = paper
    before = {s: len(trials(tmp, f"s/{s}", states=None)) for s in ("core", "arch", "train")}
    make_search(tmp, final_test=True, num_best=3).run()
    after = {s: len(trials(tmp, f"s/{s}", states=None)) for s in ("core", "arch", "train")}
    assert before == after


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


def test_an_unknown_stage_kind_names_the_kinds():
    with pytest.raises(UserError, match=r"kind='anneal': choose one of bo, grid"):
        make_stage(StageSpec("x", kind="anneal"), SearchSettings())
    with pytest.raises(UserError, match="groups is empty"):
        make_stage(StageSpec("x", groups=()), SearchSettings())


def test_a_capped_grid_runs_its_cap_per_substage_in_order_from_the_list_every_worker_computes(
    tmp_path,
):
    space = MLPSpace(activations=("relu", "tanh", "elu"))
    stages = (
        StageSpec("core", groups=("core",), trials=2),
        StageSpec("arch", kind="grid", substages=("dropout", "activation"), trials=1),
    )
    make_search(tmp_path, stages=stages, space=space, bo=BOSettings(prior_states=2, steps=0)).run()
    study = optuna.load_study(study_name="s/arch", storage=f"sqlite:///{tmp_path}/s.db")
    grid = sorted(trials(tmp_path, "s/arch"), key=lambda t: t.number)
    # the sub-stages in the order given, each one trial: the cap (the base's own is known)
    assert [t.user_attrs["substage"] for t in grid] == ["dropout", "activation"]
    for t in grid:
        sub = t.user_attrs["substage"]
        # what any worker computes from the base recorded on the study and the search's seed
        base = study.user_attrs[records.BASE + sub]
        capped = capped_variants(space.grid(sub, base), base, 1, f"7/arch/{sub}")
        others = [v for v in capped if candidate_key(v) != candidate_key(base)]
        assert [candidate_key(v) for v in others] == [candidate_key(t.user_attrs["candidate"])]


def test_capped_variants_keep_the_base_and_a_seeded_choice_of_the_rest():
    base = {"activation": "relu", "dropout": 0.2}
    grid = [{**base, "dropout": p} for p in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.1)]  # one repeat
    capped = capped_variants(grid, base, 2, "7/arch/dropout")
    assert len(capped) == 3 and base in capped
    assert capped == [v for v in grid[:6] if v in capped]  # in the space's order, each once
    assert capped == capped_variants(grid, base, 2, "7/arch/dropout")
    choices = {
        tuple(v["dropout"] for v in capped_variants(grid, base, 2, f"{s}/a/d")) for s in range(9)
    }
    assert len(choices) > 1  # the seed chooses
    assert capped_variants(grid, base, 0, "x") == grid  # 0: every variant
    assert capped_variants(grid, base, 5, "x") == grid  # the cap is not reached
    assert len(capped_variants(grid, {}, 2, "x")) == 2  # no base among them: the cap alone


def test_workers_in_other_processes_choose_the_same_variants():
    code = (
        "from dnc.search.variants import capped_variants as c;"
        "g=[{'a': a} for a in 'pqrstuvw'];"
        "print([v['a'] for v in c(g, {'a': 's'}, 3, '7/arch/a')])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    grid = [{"a": a} for a in "pqrstuvw"]
    assert outs == {f"{[v['a'] for v in capped_variants(grid, {'a': 's'}, 3, '7/arch/a')]}\n"}


@pytest.mark.parametrize("trials", [-1, 1.5, True])
def test_a_bad_grid_cap_is_one_line(trials):
    with pytest.raises(UserError) as err:
        StageSpec("arch", kind="grid", trials=trials)
    assert str(err.value) == (
        f"search.stages[arch].trials={trials!r}: give a whole number >= 0 "
        "(the most trials per sub-stage; 0: every variant)"
    )


def test_stages_say_what_they_run():
    settings = SearchSettings(
        stages=(
            StageSpec("core", groups=("core",), trials=4),
            StageSpec("arch", kind="grid", groups=("arch",), trials=2),
            StageSpec("drop", kind="grid", substages=("dropout",)),
            StageSpec("train", groups=("train",), sampler="tpe"),
        ),
        bo=BOSettings(prior_states=3, steps=2),
    )
    space = MLPSpace()
    core, arch, drop, train = (make_stage(s, settings) for s in settings.stages)
    assert core.params(space) == {
        "kind": "bo",
        "groups": ["core"],
        "sampler": "ramp",
        "budget": 4,
        "objective": "loss",
    }
    assert train.params(space)["budget"] == 5 and train.params(space)["sampler"] == "tpe"
    assert arch.params(space) == {
        "kind": "grid",
        "substages": ["activation", "dropout"],
        "trials_per_substage": 2,
    }
    assert drop.params(space)["trials_per_substage"] == "all"
    assert arch.label == "grid, at most 2 trials per sub-stage" and drop.label == "grid"
    one = make_stage(StageSpec("arch", kind="grid", trials=1), settings)
    assert one.describe(space) == "grid over activation, dropout (at most 1 trial each)"
    assert describe_stages(settings, space) == (
        "core: ramp bo over core, 4 trials; "
        "arch: grid over activation, dropout (at most 2 trials each); "
        "drop: grid over dropout (every variant); "
        "train: tpe bo over train, 5 trials"
    )


class _NestedWidths(MLPSpace):
    """A space whose candidate nests its suggested widths in a list: a later stage, holding
    the core group at the best candidate's values, would find no ``hidden_*`` there and train
    every candidate at the default widths."""

    name = "nested"

    def sample(self, suggest):
        candidate = dict(super().sample(suggest))
        widths = [candidate.pop(k) for k in sorted(k for k in candidate if k.startswith("hidden_"))]
        return {**candidate, "widths": widths}

    def build(self, candidate, data):
        flat = {k: v for k, v in candidate.items() if k != "widths"}
        flat.update((f"hidden_{i}", w) for i, w in enumerate(candidate["widths"]))
        return super().build(flat, data)


def test_a_candidate_that_nests_its_suggested_values_is_a_user_error(tmp_path):
    search = make_search(tmp_path, space=_NestedWidths())
    with pytest.raises(UserError, match=r"'nested': sample\(\) suggested 'hidden_.*flat mapping"):
        search.run()
    # it stopped at the first candidate with a width: none was trained at the default widths
    assert all(t.params["num_hidden_layers"] == 0 for t in trials(tmp_path, "s/core"))
