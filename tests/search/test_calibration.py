"""Calibration is part of the cost contract: any cost that implements ``calibrate`` (built-in
or a third party's, as the README describes) gets its ``auto`` normaliser set once per search,
before the first trial, recorded on the study and reused when the search resumes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from searches import make_search

from dnc.plugins import CostEvaluator, UserError, parse_normaliser
from dnc.search import BOSettings, StageSpec
from dnc.search.cost import TEpoch

ONE_STAGE = (StageSpec("core", groups=("core", "train"), trials=4),)


class Hidden(CostEvaluator):
    """A third party's cost written from the README: hidden units per network, ``auto``."""

    name = "hidden"

    def __init__(self, hidden_bar: float | str = "auto") -> None:
        self.bar = parse_normaliser(hidden_bar, "cost.hidden_bar")

    def measure(self, model: Any, candidate: Mapping[str, Any], data: Any) -> dict[str, float]:
        n = int(candidate["num_hidden_layers"])
        return {"hidden": float(sum(candidate[f"hidden_{i}"] for i in range(n)) or 1)}

    def calibrate(self, figures: Mapping[str, float]) -> None:
        self.bar = figures["hidden"]

    def complexity(self, figures: Mapping[str, float]) -> float:
        return figures["hidden"] / self.bar  # type: ignore[operator]

    def settings(self) -> dict[str, Any]:
        return {"hidden_bar": self.bar}


class TimedHidden(Hidden):
    """The same, calibrated on training figures (as ``t_epoch`` is)."""

    name = "timed_hidden"
    calibrate_by_training = True

    def calibrate(self, figures: Mapping[str, float]) -> None:
        assert figures["t_epoch"] > 0 and figures["epochs_run"] == 2  # the reference trained
        self.bar = figures["hidden"]


@pytest.mark.parametrize("cost", [Hidden, TimedHidden])
def test_a_third_party_auto_cost_is_calibrated_and_every_trial_finishes(tmp_path, cost):
    search = make_search(
        tmp_path, stages=ONE_STAGE, cost=cost(), bo=BOSettings(prior_states=4, steps=0)
    )
    result = search.run()
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp_path}/s.db")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert study.user_attrs["dnc.cost"]["kwargs"] == {"hidden_bar": 200.0}  # the reference
    assert result.cost_settings == {"hidden_bar": 200.0}
    assert '"hidden_bar": 200.0' in study.user_attrs["dnc.settings"]["cost_settings"]


def test_a_resumed_search_reuses_the_recorded_normaliser(tmp_path):
    make_search(tmp_path, stages=ONE_STAGE, bo=BOSettings(prior_states=4, steps=0)).run()
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp_path}/s.db")
    tbar = study.user_attrs["dnc.cost"]["kwargs"]["tbar_epoch"]

    class NeverAgain(TEpoch):
        def calibrate(self, figures: Mapping[str, float]) -> None:
            raise AssertionError("calibrated twice")

    again = make_search(
        tmp_path, stages=ONE_STAGE, cost=NeverAgain(), bo=BOSettings(prior_states=4, steps=0)
    )
    assert again.run().cost_settings == {"tbar_epoch": tbar}


def test_a_cost_that_stays_uncalibrated_stops_before_any_trial(tmp_path):
    class Forgetful(Hidden):
        name = "forgetful"

        def calibrate(self, figures: Mapping[str, float]) -> None:
            pass

    with pytest.raises(UserError, match="cost 'forgetful' .*auto normaliser"):
        make_search(tmp_path, stages=ONE_STAGE, cost=Forgetful()).run()
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp_path}/s.db")
    assert study.trials == []
