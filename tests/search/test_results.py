"""``results.json``: rewritten when a search ends (or stops), readable on its own."""

from __future__ import annotations

import json

from searches import make_search

from dnc.search import BOSettings, StageSpec
from dnc.search.cost import NumParams
from dnc.search.records import Ranked
from dnc.search.results import SearchResult, write_results
from dnc.search.settings import SearchSettings


def test_a_finished_search_writes_its_best_candidates(tmp_path):
    stages = (StageSpec("core", groups=("core", "train"), trials=3),)
    result = make_search(
        tmp_path,
        stages=stages,
        num_best=2,
        cost=NumParams(),
        bo=BOSettings(prior_states=3, steps=0),
    ).run()
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["search"] == "s" and saved["finished"] is True and saved["wc"] == 0.1
    assert saved["storage"] == f"sqlite:///{tmp_path}/s.db"
    assert saved["cost"] == {"name": "numparams", **result.cost_settings}
    assert [r["trial"] for r in saved["best"]] == [r.number for r in result.best]
    assert saved["best"][0]["candidate"] == result.best[0].candidate
    assert saved["best"][0]["search_loss"] <= saved["best"][1]["search_loss"]


def test_the_test_accuracy_joins_its_row(tmp_path):
    best = [
        Ranked("train", 4, -1.0, {"best_val_acc": 97.0}, {"lr": 0.1}),
        Ranked("core", 2, -0.9, {"best_val_acc": 95.0}, {"lr": 0.01}),
    ]
    result = SearchResult(
        "s", best, SearchSettings(name="s"), {}, {"train/4": 96.5}, finished=False
    )
    path = write_results(
        tmp_path / "r.json",
        result,
        storage="postgresql://u:***@h/d",
        cost=NumParams(numparams_bar=10),
    )
    saved = json.loads(path.read_text())
    assert saved["finished"] is False and saved["storage"] == "postgresql://u:***@h/d"
    assert saved["best"][0]["test_acc"] == 96.5 and "test_acc" not in saved["best"][1]
