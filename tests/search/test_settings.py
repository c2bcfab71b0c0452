"""Search, stage and storage settings: one set of defaults, and a clear error for each bad
value."""

from __future__ import annotations

import pytest

from dnc.plugins import UserError
from dnc.search import BOSettings, SearchSettings, StageSpec, StorageSettings
from dnc.search.settings import PAPER_STAGES, check_wc


def test_the_defaults_are_the_papers_search():
    s = SearchSettings()
    assert s.stages == PAPER_STAGES
    assert [(st.name, st.kind) for st in s.stages] == [
        ("core", "bo"),
        ("arch", "grid"),
        ("train", "bo"),
    ]
    assert (s.wc, s.sampler, s.bo.trials, s.num_best) == (0.1, "ramp", 30, 5)
    assert s.budget(s.stages[0]) == 30 and s.budget(StageSpec("x", trials=7)) == 7


def test_lists_from_a_config_become_tuples():
    spec = StageSpec("a", groups=["core", "train"], substages=["x"])  # type: ignore[arg-type]
    assert spec.groups == ("core", "train") and spec.substages == ("x",)
    assert isinstance(SearchSettings(stages=[spec]).stages, tuple)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StageSpec("a/b"), "without '/'"),
        (lambda: StageSpec("x", groups=("everything",)), "groups"),
        (lambda: StageSpec("x", trials=-1), "trials=-1"),
        (lambda: StageSpec("x", substages=("a", "a")), "each at most once"),
        (lambda: SearchSettings(stages=(StageSpec("a"), StageSpec("a"))), "unique"),
        (lambda: SearchSettings(stages=()), "empty"),
        (lambda: SearchSettings(sampler="anneal"), "search.sampler='anneal': choose one of"),
        (lambda: SearchSettings(stages=(StageSpec("a", sampler="nope"),)), "nope"),
        (lambda: SearchSettings(name=""), "search.name"),
        (lambda: SearchSettings(num_best=0), "num_best"),
        (lambda: SearchSettings(final_test="yes"), "true or false"),  # type: ignore[arg-type]
        (lambda: SearchSettings(max_failures_in_a_row=0), "max_failures_in_a_row"),
        (lambda: BOSettings(prior_states=0), "prior_states"),
        (lambda: BOSettings(model="gp"), "split or loss"),
        (lambda: StorageSettings(url="optuna.db"), "SQLAlchemy URL"),
        (lambda: StorageSettings(heartbeat_interval=10, grace_period=5), "grace_period"),
    ],
)
def test_bad_settings_are_user_errors(make, message):
    with pytest.raises(UserError, match=message):
        make()


@pytest.mark.parametrize("wc", [-1, float("inf"), "x", True, None])
def test_bad_wc(wc):
    with pytest.raises(UserError, match="search.wc"):
        check_wc(wc)


def test_wc_as_text_from_the_command_line():
    assert SearchSettings(wc="0.5").wc == 0.5  # type: ignore[arg-type]
