"""What a search writes on its trials, read back: identities, budgets, ranking rows."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from dnc.plugins import candidate_key
from dnc.search import records


@pytest.fixture
def study():
    study = optuna.create_study()
    cand = {"lr": 0.01, "widths": [8, 8]}
    done = study.ask()
    done.set_user_attr(records.CANDIDATE, cand)
    done.set_user_attr(records.FIGURES, {"best_val_acc": 90.0})
    done.set_user_attr(records.STAGE, "core")
    study.tell(done, -1.0)
    own = study.ask()
    own.set_user_attr(records.CANDIDATE, {"lr": 0.02})
    own.set_user_attr(records.FAIL_REASON, "ValueError: boom")
    study.tell(own, state=TrialState.FAIL)
    dead = study.ask()
    dead.set_user_attr(records.CANDIDATE, {"lr": 0.03})
    study.tell(dead, state=TrialState.FAIL)  # failed without a reason: its worker died
    running = study.ask()
    running.set_user_attr(records.CANDIDATE, {"lr": 0.04})
    study.enqueue_trial({}, user_attrs={records.CANDIDATE: {"lr": 0.05}})
    return study


def test_budget_counts_completed_and_own_failures_only(study):
    counted = [records.counts_against_budget(t) for t in study.trials]
    assert counted == [True, True, False, False, False]
    assert [records.in_flight(t) for t in study.trials] == [False, False, False, True, True]


def test_tried_keys_are_the_candidate_identity(study):
    keys = [records.tried_key(t) for t in study.trials]
    assert keys[0] == candidate_key({"widths": (8, 8), "lr": 0.01})
    assert keys[2] is None  # its slot is free again
    assert keys[3] == candidate_key({"lr": 0.04}) and keys[4] == candidate_key({"lr": 0.05})


def test_typed_readers(study):
    done, own = study.trials[0], study.trials[1]
    assert records.candidate(done) == {"lr": 0.01, "widths": [8, 8]}
    assert records.figures(done) == {"best_val_acc": 90.0}
    assert records.figures(own) is None and records.fail_reason(own) == "ValueError: boom"
    assert records.fail_reason(done) is None


def test_a_ranked_row_of_a_completed_trial(study):
    row = records.ranked(study.trials[0], "core")
    assert row is not None and (row.stage, row.number, row.loss, row.key) == (
        "core",
        0,
        -1.0,
        "core/0",
    )
    assert records.ranked(study.trials[0], "core", loss=-2.5).loss == -2.5  # type: ignore[union-attr]
    assert records.ranked(study.trials[1], "core") is None
    assert row.found_by == "core"
    assert records.Ranked("arch", 1, 0.0, {}, {}, "dropout").found_by == "arch:dropout"
