"""A sparse-MLP search on Morse end to end, scored by the hardware cost: through the Python API
with a real Optuna storage, and through ``python -m dnc +experiment=morse``."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from conftest import run_dnc
from dnc_hwcost import HardwareCost
from dnc_sparse import SparseMLPSpace, feasible_out_degrees
from optuna.trial import TrialState

from dnc.bo.sampler import PHASE_ATTR
from dnc.plugins import DataSpec
from dnc.search import (
    BOSettings,
    Search,
    SearchSettings,
    StageSpec,
    pareto,
    ranked_trials,
    records,
    score,
)
from dnc.search.cost import NumParams
from dnc.search.objective import feasibility_screen, loss_terms
from dnc.search.storage import recorded_cost
from dnc.train.morse import Morse
from dnc.train.trainer import TrainerSettings


def morse_space() -> SparseMLPSpace:
    """Sparse MLPs for 64-sample Morse frames and 64 classes: 1-2 hidden layers of 64-256."""
    return SparseMLPSpace(
        core={
            "input_size": 64,
            "num_classes": 64,
            "hidden_layers": (1, 2),
            "widths": (64, 128, 256),
        },
        sparsity={"default_density": 0.25},
    )


def test_sparse_mlp_search_on_morse(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/s.db"
    space = morse_space()
    search = Search(
        SearchSettings(
            name="morse",
            stages=(StageSpec("core", groups=("core", "train")),),
            bo=BOSettings(prior_states=3, steps=1),
        ),
        storage=url,
        space=space,
        dataset=Morse(examples_per_class=20, cache_dir=str(tmp_path)),
        cost=HardwareCost(metric="clocks_per_sample"),
        trainer=TrainerSettings(epochs=2, device="cpu"),
    )
    result = search.run()
    assert result.best and result.cost_settings["normaliser"] == 36.0  # the reference's cpc

    study = optuna.load_study(study_name="morse/core", storage=url)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 4
    cost = recorded_cost(study)
    assert isinstance(cost, HardwareCost) and cost.settings() == result.cost_settings
    for t in trials:
        cand, figures = t.user_attrs["candidate"], t.user_attrs["figures"]
        sizes = [64, *space.widths(cand), 64]
        d_out = [cand[f"d_out_{j}"] for j in range(len(sizes) - 1)]
        for j, d in enumerate(d_out):
            assert d in feasible_out_degrees(sizes[j], sizes[j + 1])
            assert figures[f"hw_d_out_{j + 1}"] == d
        edges = sum(n * d for n, d in zip(sizes[:-1], d_out, strict=True))
        assert figures["numparams"] == edges + sum(sizes[1:])  # only edges and biases
        assert figures["hw_feasible"] in (0.0, 1.0)
        assert t.value == pytest.approx(score(figures, 0.1, cost))
    # a finished study re-scores for another metric without training
    rescored = ranked_trials(
        search.storage, "morse", wc=1.0, cost=HardwareCost(metric="memory_bits", normaliser=1e5)
    )
    assert len(rescored) == 4


def test_sparse_experiments_instantiate_their_nested_settings():
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("dnc.conf", version_base=None):
        morse = compose("config", overrides=["+experiment=morse", "cost.target_c=32"])
        mnist = compose(
            "config", overrides=["+experiment=mnist_sparse", "search_space.sparsity.dither=true"]
        )
        morse_space = instantiate(morse.search_space, _convert_="all")
        mnist_space = instantiate(mnist.search_space, _convert_="all")
    assert isinstance(morse_space, SparseMLPSpace) and isinstance(mnist_space, SparseMLPSpace)
    # interpolations from the dataset and the cost reach the groups
    assert (morse_space.core.input_size, morse_space.core.num_classes) == (64, 64)
    assert morse_space.sparsity.target_c == 32 and morse_space.sparsity.default_density == 0.25
    assert mnist_space.core.widths == (56, 112, 224, 448) and mnist_space.core.input_size == 784
    assert mnist_space.sparsity.nondecreasing and mnist_space.sparsity.dither
    assert mnist_space.training.default_weight_decay == 1.1e-4


@pytest.mark.slow
def test_morse_experiment_from_the_command_line(tmp_path: Path):
    proc = run_dnc(
        tmp_path,
        "+experiment=morse",
        "search=combined",
        "search.bo.prior_states=3",
        "search.bo.steps=1",
        "trainer.epochs=2",
        "dataset.examples_per_class=20",
        f"dataset.cache_dir={tmp_path}/cache",
        "tracking.uri=null",  # MLflow is tested in tests/tracking; here, results.json
        "tracking.pictures=true",  # drawn without MLflow, in the sparse space's parameters
        f"hydra.run.dir={tmp_path}/run",
        timeout=300,
        check=True,
    )
    assert "morse-sparse_mlp" in proc.stdout and "search loss" in proc.stdout
    pictures = {p.name for p in (tmp_path / "run").glob("*.png")}
    assert pictures == {
        "front-morse-sparse_mlp.png",
        "convergence-morse-sparse_mlp.png",
        "bo-all-morse-sparse_mlp.png",
    }, pictures
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["finished"] is True and results["cost"]["name"] == "hardware"
    best = results["best"][0]
    assert "hw_clocks_per_sample" in best["figures"] and "d_out_0" in best["candidate"]
    assert list((tmp_path / "cache").glob("morse-*.npz"))


def pareto_search(tmp_path: Path, sampler: str) -> tuple[Search, optuna.Study]:
    """A run Pareto stage of 8 one-epoch trainings on Morse, costed by the hardware model."""
    url = f"sqlite:///{tmp_path}/{sampler}.db"
    search = Search(
        SearchSettings(
            name="front",
            wc=None,
            sampler=sampler,
            stages=(StageSpec("core", groups=("core", "train"), objective="pareto"),),
            bo=BOSettings(prior_states=6, steps=2, explore=200),
        ),
        storage=url,
        space=morse_space(),
        dataset=Morse(examples_per_class=20, cache_dir=str(tmp_path)),
        cost=HardwareCost(metric="clocks_per_sample"),
        trainer=TrainerSettings(epochs=1, device="cpu"),
    )
    search.run()
    return search, optuna.load_study(study_name="front/core", storage=url)


def test_a_pareto_search_keeps_candidates_the_hardware_cannot_run_off_its_front(tmp_path: Path):
    """An infeasible mapping still costs ``infeasible_penalty`` (a finite figure), but a Pareto
    stage records it as a violated Optuna constraint: ``study.best_trials`` and the knee leave
    it off the front, and rankings put it last. (Random candidates: the ramp BO proposes none
    the hardware cannot run, below.)"""
    search, study = pareto_search(tmp_path, "random")
    cost = recorded_cost(study)
    assert isinstance(cost, HardwareCost)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    runs = {t.number: t.user_attrs["figures"]["hw_feasible"] == 1.0 for t in trials}
    assert len(trials) == 8 and 0 < sum(runs.values()) < 8, runs  # both kinds to tell apart
    for t in trials:
        assert t.constraints == {pareto.FEASIBLE: 0.0 if runs[t.number] else 1.0}
        assert (t.values[1] == cost.infeasible_penalty) != runs[t.number]
    assert study.best_trials and all(runs[t.number] for t in study.best_trials)
    feasible = [t.user_attrs["figures"] for t in trials if runs[t.number]]
    knee = pareto.knee_wc([loss_terms(f, cost) for f in feasible])
    assert study.user_attrs[records.KNEE_WC] == pytest.approx(knee)
    # the most accurate network the hardware can run is wc=0's pick, whatever the penalised do
    ranking = ranked_trials(search.storage, "front", wc=0.0)
    kinds = [runs[r.number] for r in ranking]
    assert kinds == sorted(kinds, reverse=True)
    assert ranking[0].figures["best_val_acc"] == max(f["best_val_acc"] for f in feasible)
    # the screen the ramp BO asks before training gives the verdict each trial recorded
    spec = DataSpec(input_shape=(64,), num_classes=64)
    screen = feasibility_screen(search.space, cost, spec)
    assert screen is not None
    assert {t.number: screen(t.user_attrs["candidate"]) for t in trials} == runs
    assert screen({"num_hidden_layers": 1})  # a build that fails is admitted: its trial says why
    assert feasibility_screen(search.space, NumParams(), spec) is None  # a cost that never says no


def test_the_ramp_bo_proposes_only_networks_the_hardware_can_run(tmp_path: Path):
    """The cost's ``feasible`` is asked of each candidate's built network before it is
    proposed, so no training is spent on a mapping the hardware cannot run: neither a prior
    state nor a BO step (random candidates of the same space include such mappings, above)."""
    _, study = pareto_search(tmp_path, "ramp")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 8
    assert {t.system_attrs[PHASE_ATTR]["phase"] for t in trials} == {"prior", "bo"}
    assert [t.user_attrs["figures"]["hw_feasible"] for t in trials] == [1.0] * 8
    assert all(t.constraints == {pareto.FEASIBLE: 0.0} for t in trials)
