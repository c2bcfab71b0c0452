"""The plugin contracts' helpers (``dnc.plugins``): candidate identity, grouped settings, the
``number | auto`` normaliser and the calibration every cost goes through."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pytest

from dnc.plugins import (
    CostEvaluator,
    TrainingBounds,
    UserError,
    calibrate_cost,
    candidate_key,
    check_plugin,
    parse_normaliser,
    settings_from,
)


def test_a_candidate_read_back_from_the_storage_is_the_same_candidate():
    fresh = {"num_layers": 2, "widths": (64, 128), "lr": 0.01, "act": "relu", "bs": 256}
    stored = json.loads(json.dumps(fresh))  # lists for tuples, dict order may differ
    assert candidate_key(dict(reversed(list(stored.items())))) == candidate_key(fresh)
    assert candidate_key({"bs": 256.0, "lr": 1}) == candidate_key({"lr": 1.0, "bs": 256})


def test_different_candidates_differ():
    assert candidate_key({"lr": 0.01}) != candidate_key({"lr": 0.02})
    assert candidate_key({"a": [1, 2]}) != candidate_key({"a": [2, 1]})
    assert candidate_key({"a": {"x": 1}}) == candidate_key({"a": {"x": 1.0}})
    assert candidate_key({"a": [[1, 2], {"y": [3]}]}) == candidate_key({"a": ((1, 2), {"y": (3,)})})
    assert candidate_key({"a": [1, 2]}) != candidate_key({"a": [1, 2, 3]})


def test_settings_from_a_mapping_an_instance_or_nothing():
    assert settings_from(TrainingBounds, None, "t") == TrainingBounds()
    bounds = settings_from(TrainingBounds, {"lr": [1e-4, 1e-2], "default_lr": 1e-3}, "t")
    assert bounds.lr == (1e-4, 1e-2) and isinstance(bounds.lr, tuple)
    assert settings_from(TrainingBounds, bounds, "t") is bounds


def test_settings_from_names_an_unknown_key_and_the_valid_ones():
    with pytest.raises(UserError) as err:
        settings_from(TrainingBounds, {"lrr": [1e-4, 1e-2]}, "search_space.training")
    assert str(err.value).startswith("search_space.training.lrr: unknown key; valid keys: lr, ")
    with pytest.raises(UserError, match="give a mapping"):
        settings_from(TrainingBounds, [1, 2], "search_space.training")


@pytest.mark.parametrize(("value", "parsed"), [("auto", None), (2, 2.0), ("0.5", 0.5)])
def test_parse_normaliser(value, parsed):
    assert parse_normaliser(value, "cost.bar") == parsed


@pytest.mark.parametrize("value", [0, -1, "fast", float("inf"), None])
def test_a_bad_normaliser_is_a_user_error(value):
    with pytest.raises(UserError, match="cost.bar"):
        parse_normaliser(value, "cost.bar")


class Width(CostEvaluator):
    """The README's example cost: it defines calibrate() and nothing else about calibration."""

    name = "width"

    def __init__(self, width_bar: float | str = "auto") -> None:
        self.bar = parse_normaliser(width_bar, "cost.width_bar")

    def measure(self, model: Any, candidate: Mapping[str, Any], data: Any) -> dict[str, float]:
        return {"width": float(candidate["width"])}

    def calibrate(self, figures: Mapping[str, float]) -> None:
        self.bar = figures["width"]

    def complexity(self, figures: Mapping[str, float]) -> float:
        return figures["width"] / self.bar  # type: ignore[operator]

    def settings(self) -> dict[str, Any]:
        return {"width_bar": self.bar}


class Forgetful(Width):
    name = "forgetful"

    def calibrate(self, figures: Mapping[str, float]) -> None:
        pass  # leaves the auto normaliser unset


class Plain(CostEvaluator):
    name = "plain"

    def complexity(self, figures: Mapping[str, float]) -> float:
        return figures["numparams"] / 1000


def test_a_cost_that_implements_calibrate_is_calibrated():
    cost = Width()
    assert cost.needs_calibration  # the default: it overrides calibrate()
    assert calibrate_cost(cost, {"width": 32.0}) == 1.0
    assert cost.bar == 32.0
    assert not Plain().needs_calibration


def test_a_cost_left_uncalibrated_is_a_user_error_naming_it():
    with pytest.raises(
        UserError,
        match=r"cost 'forgetful' \(test_plugins.Forgetful\).*"
        r"TypeError.*auto normaliser",
    ):
        calibrate_cost(Forgetful(), {"width": 32.0})


def test_a_cost_that_reads_a_figure_nobody_recorded_is_told_which_there_are():
    class Misspelt(Plain):
        name = "misspelt"

        def complexity(self, figures: Mapping[str, float]) -> float:
            return figures["num_params"] / 1000

    with pytest.raises(UserError) as err:
        calibrate_cost(Misspelt(), {"numparams": 10.0, "macs": 4.0})
    assert str(err.value).startswith("cost 'misspelt' (test_plugins.")
    assert str(err.value).endswith(
        "Misspelt): complexity() of the reference network raised KeyError: 'num_params'; it "
        "gets the figures macs, numparams"
    )  # no calibrate(), so no word of one or of a normaliser


def test_a_cost_whose_reference_complexity_is_not_finite_is_a_user_error():
    class Nan(Plain):
        name = "nan"

        def complexity(self, figures: Mapping[str, float]) -> float:
            return math.nan

    with pytest.raises(UserError, match="cost 'nan'.* is nan; it must be a finite number >= 0"):
        calibrate_cost(Nan(), {"numparams": 10.0})


def test_check_plugin_names_the_contract():
    check_plugin(Width(), CostEvaluator, "cost")
    with pytest.raises(
        UserError, match="cost builtins.int does not implement dnc.plugins.CostEvaluator"
    ):
        check_plugin(3, CostEvaluator, "cost")
