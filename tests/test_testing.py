"""The contract mixins (``dnc.testing``) fail for plugins that break their contract, not only
pass for the built-in ones."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from dnc_mlp.space import MLPSpace
from test_plugins import Forgetful, Width
from torch import nn

from dnc.plugins import Candidate, Dataset, TensorData, UserError
from dnc.testing import CostEvaluatorContract, DatasetContract, SearchSpaceContract
from dnc.train.datasets import Digits


class SamplesWhatItShouldHold(MLPSpace):
    """Asks Optuna for the hidden width directly, whether or not its group is searched."""

    name = "bypass"

    def sample(self, suggest: Any) -> Candidate:
        cand = super().sample(suggest)
        trial = getattr(suggest, "trial", None)
        if trial is not None and cand["num_hidden_layers"] > 0:
            cand["hidden_0"] = trial.suggest_int("hidden_0", *self.hidden_nodes)
        return cand


class IgnoresHeldValues(MLPSpace):
    """Takes the activation from the suggest but then always uses its own default."""

    name = "stubborn"

    def sample(self, suggest: Any) -> Candidate:
        return {**super().sample(suggest), "activation": self.activation}


class SeedBlind(Dataset):
    """Digits with the same validation split whatever the seed."""

    name = "seed-blind"

    def load(self, seed: int) -> TensorData:
        return Digits().load(seed=0)


def _run(contract: type, **fixtures: Any) -> None:
    """Every ``test_*`` of a contract mixin, with ``fixtures`` as its methods."""
    case = type("Case", (contract,), {k: (lambda self, v=v: v()) for k, v in fixtures.items()})()
    for name in dir(case):
        if name.startswith("test_"):
            getattr(case, name)()


def test_the_mlp_space_passes_the_space_contract():
    _run(SearchSpaceContract, make_space=MLPSpace)


@pytest.mark.parametrize(
    ("space", "message"),
    [(SamplesWhatItShouldHold, "were sampled"), (IgnoresHeldValues, "was held but changed")],
)
def test_a_space_that_does_not_hold_its_held_groups_fails(space, message):
    case = type("Case", (SearchSpaceContract,), {"make_space": lambda self: space()})()
    with pytest.raises(AssertionError, match=message):
        case.test_held_groups_keep_base_values()


def test_a_dataset_that_ignores_its_seed_fails():
    case = type("Case", (DatasetContract,), {"make_dataset": lambda self: SeedBlind()})()
    case.test_validation_split_is_fixed_by_the_seed()  # the same seed: fine
    with pytest.raises(AssertionError, match="ignores the seed"):
        case.test_another_seed_gives_another_validation_split()


def _model_and_candidate() -> tuple[nn.Module, dict[str, Any]]:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Linear(32, 10)), {"width": 32}


def test_a_cost_calibrated_as_the_readme_says_passes():
    _run(CostEvaluatorContract, make_cost=Width, make_model_and_candidate=_model_and_candidate)


def test_a_cost_that_leaves_its_auto_normaliser_unset_fails():
    case = type(
        "Case",
        (CostEvaluatorContract,),
        {
            "make_cost": lambda self: Forgetful(),
            "make_model_and_candidate": lambda self: _model_and_candidate(),
        },
    )()
    with pytest.raises(UserError, match="auto normaliser"):
        case.test_complexity_after_calibration_is_a_finite_non_negative_number()
    with pytest.raises(TypeError):
        case.test_an_auto_normaliser_is_calibrated()


def test_a_cost_with_a_nan_complexity_fails():
    class NanCost(Width):
        name = "nan"

        def complexity(self, figures: Mapping[str, float]) -> float:
            return math.nan

    case = type(
        "Case",
        (CostEvaluatorContract,),
        {
            "make_cost": lambda self: NanCost(),
            "make_model_and_candidate": lambda self: _model_and_candidate(),
        },
    )()
    with pytest.raises(UserError, match="finite"):
        case.test_complexity_after_calibration_is_a_finite_non_negative_number()
    assert torch.isnan(torch.tensor(NanCost(1).complexity({"width": 1.0})))


def test_a_cost_whose_feasible_is_not_a_bool_fails():
    class Vague(Width):
        name = "vague"

        def feasible(self, figures: Mapping[str, float]) -> bool:
            return figures["width"]  # type: ignore[return-value]  # a number, not a verdict

    case = type(
        "Case",
        (CostEvaluatorContract,),
        {
            "make_cost": lambda self: Vague(),
            "make_model_and_candidate": lambda self: _model_and_candidate(),
        },
    )()
    assert case.make_cost().judges_feasibility and not Width().judges_feasibility
    with pytest.raises(AssertionError):
        case.test_feasible_is_a_yes_or_no_on_the_figures()
