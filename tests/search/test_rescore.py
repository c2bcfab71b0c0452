"""Re-scoring a finished search for another wc, from the storage alone (no training)."""

from __future__ import annotations

import math

import optuna
import pytest
from dnc_mlp.space import MLPSpace

from dnc.search import BOSettings, Search, SearchSettings, StageSpec, open_storage, ranked_trials
from dnc.search.cost import TEpoch
from dnc.search.objective import performance_term, search_loss
from dnc.train.datasets import Digits
from dnc.train.settings import TrainerSettings


@pytest.fixture(scope="module")
def storage_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rescore")
    url = f"sqlite:///{tmp}/s.db"
    settings = SearchSettings(
        name="rs",
        wc=0.1,
        sampler="random",
        stages=(StageSpec("core", groups=("core", "train"), trials=8),),
        bo=BOSettings(prior_states=8, steps=0),
    )
    Search(
        settings,
        space=MLPSpace(),
        dataset=Digits(),
        cost=TEpoch(),
        trainer=TrainerSettings(epochs=2),
        storage=url,
        seed=3,
    ).run()
    return url


def test_rescoring_with_the_same_wc_reproduces_the_stored_losses(storage_url):
    storage = open_storage(storage_url)
    stored = {r.number: r.loss for r in ranked_trials(storage, "rs")}
    again = {r.number: r.loss for r in ranked_trials(storage, "rs", wc=0.1)}
    assert stored.keys() == again.keys() and len(stored) == 8
    for n in stored:
        assert again[n] == pytest.approx(stored[n], rel=1e-12)


@pytest.mark.parametrize("wc", [0.0, 0.01, 1.0, 10.0])
def test_rescoring_equals_a_fresh_computation(storage_url, wc):
    storage = open_storage(storage_url)
    study = optuna.load_study(study_name="rs/core", storage=storage)
    tbar = study.user_attrs["dnc.cost"]["kwargs"]["tbar_epoch"]
    assert tbar > 0
    rows = ranked_trials(storage, "rs", wc=wc)
    for row in rows:
        f = row.figures
        expected = math.log10((100 - f["best_val_acc"]) / 100 + wc * f["t_epoch"] / tbar)
        assert row.loss == pytest.approx(expected, rel=1e-9)
        assert row.loss == pytest.approx(
            search_loss(performance_term(f["best_val_acc"]), f["t_epoch"] / tbar, wc)
        )
    losses = [r.loss for r in rows]
    assert losses == sorted(losses)


def test_wc_zero_ranks_by_accuracy_and_large_wc_by_time(storage_url):
    storage = open_storage(storage_url)
    by_acc = ranked_trials(storage, "rs", wc=0.0)
    assert by_acc[0].figures["best_val_acc"] == max(r.figures["best_val_acc"] for r in by_acc)
    by_cost = ranked_trials(storage, "rs", wc=1e6)
    assert by_cost[0].figures["t_epoch"] == min(r.figures["t_epoch"] for r in by_cost)
