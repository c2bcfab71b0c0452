"""Contract tests shipped with dnc: a plugin's test case mixes one in and supplies fixtures.

- ``SearchSpaceContract``: supply ``make_space()`` (and ``data_spec`` for its inputs);
- ``CostEvaluatorContract``: supply ``make_cost()`` and ``make_model_and_candidate()``;
- ``DatasetContract``: supply ``make_dataset()``.

Example (a third-party search space's tests)::

    from dnc.testing import SearchSpaceContract

    class TestMySpace(SearchSpaceContract):
        def make_space(self):
            return MySpace()
        data_spec = DataSpec(input_shape=(1, 8, 8), num_classes=10)

pytest collects the ``test_*`` methods of the mixin for every subclass.
"""

from __future__ import annotations

import functools
import json
import math
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import torch

from dnc.plugins import (
    CostEvaluator,
    Dataset,
    DataSpec,
    SearchSpace,
    TensorData,
    UserError,
    calibrate_cost,
)
from dnc.suggest import DefaultSuggest, RecordingSuggest, TrialSuggest, UniformSuggest


class SearchSpaceContract:
    """What every search space must do. Supply ``make_space()`` and ``data_spec``."""

    data_spec: DataSpec = DataSpec(input_shape=(1, 8, 8), num_classes=10)
    n_samples: int = 20

    def make_space(self) -> SearchSpace:
        raise NotImplementedError

    def _uniform_candidates(
        self, space: SearchSpace, n: int, seed: int = 0
    ) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        return [space.sample(UniformSuggest(rng.random)) for _ in range(n)]

    def test_is_a_search_space(self) -> None:
        space = self.make_space()
        assert isinstance(space, SearchSpace)
        assert space.name, "a search space needs a name"

    def test_default_candidate_builds_and_runs(self) -> None:
        space = self.make_space()
        self._forward_backward(space, space.sample(DefaultSuggest()))
        self._forward_backward(space, space.reference_candidate())

    def test_candidates_have_training_hyperparameters(self) -> None:
        space = self.make_space()
        for cand in self._uniform_candidates(space, self.n_samples):
            assert cand["lr"] > 0 and cand["weight_decay"] >= 0 and int(cand["batch_size"]) >= 1

    def test_sampled_candidates_build_and_run(self) -> None:
        space = self.make_space()
        for cand in self._uniform_candidates(space, self.n_samples):
            self._forward_backward(space, cand)

    def test_extremes_build(self) -> None:
        space = self.make_space()
        for u in (0.0, 1.0):
            self._forward_backward(space, space.sample(UniformSuggest(functools.partial(float, u))))

    def test_sampling_through_optuna_is_define_by_run(self) -> None:
        space = self.make_space()
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask()
            cand = space.sample(TrialSuggest(trial))
            for name in trial.params:
                assert name in cand, f"{name} was suggested but is missing from the candidate"
            study.tell(trial, 0.0)

    def test_held_groups_keep_base_values(self) -> None:
        """With a group held, none of its parameters is sampled, something is held, and every
        held parameter keeps the base candidate's value; bases are sampled candidates and the
        grid's variants (what a later stage starts from)."""
        space = self.make_space()
        records: dict[str, Any] = {}
        rng = random.Random(1)
        bases = [
            space.sample(RecordingSuggest(UniformSuggest(rng.random), records))
            for _ in range(self.n_samples)
        ]
        reference = space.reference_candidate()
        bases += [v for sub in space.grid_substages() for v in space.grid(sub, reference)]
        groups = {r.group for r in records.values()}
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for group in sorted(groups):
            names = {n for n, r in records.items() if r.group == group}
            held_any = False
            for base in bases:
                trial = study.ask()
                suggest = TrialSuggest(trial, active=groups - {group}, base=base)
                cand = space.sample(suggest)
                sampled = names & set(trial.params)
                assert not sampled, f"{sorted(sampled)} of held group {group!r} were sampled"
                held_any = held_any or bool(suggest.fixed)
                for name, value in suggest.fixed.items():
                    if name in base:
                        assert cand.get(name, value) == base[name], f"{name} was held but changed"
            assert held_any, f"group {group!r} was held but the space held nothing"

    def test_grid_variants_build(self) -> None:
        space = self.make_space()
        base = space.reference_candidate()
        for sub in space.grid_substages():
            variants = space.grid(sub, base)
            assert variants, f"grid sub-stage {sub} offers no variant"
            for cand in variants:
                self._forward_backward(space, cand)

    def test_unknown_grid_substage_is_a_user_error(self) -> None:
        space = self.make_space()
        try:
            space.grid("no-such-substage", space.reference_candidate())
        except UserError:
            return
        raise AssertionError("an unknown grid sub-stage must raise UserError")

    def _forward_backward(self, space: SearchSpace, cand: Mapping[str, Any]) -> None:
        model = space.build(cand, self.data_spec)
        x = torch.randn(3, *self.data_spec.input_shape)
        out = model(x)
        assert out.shape == (3, self.data_spec.num_classes)
        out.sum().backward()
        assert all(
            math.isfinite(float(p.grad.abs().sum()))
            for p in model.parameters()
            if p.grad is not None
        )


class CostEvaluatorContract:
    """What every cost evaluator must do. Supply ``make_cost()`` and
    ``make_model_and_candidate()`` (a model and candidate of a space it costs); ``data_spec``
    describes the data. Figures are what a trial records: ``measure``'s plus ``t_epoch``,
    ``numparams``, ``best_val_acc`` and ``epochs_run``. Make ``make_cost()`` return the cost as
    a user configures it by default (an ``auto`` normaliser, if it has one): the contract then
    checks calibration as a search does it."""

    data_spec: DataSpec = DataSpec(input_shape=(1, 8, 8), num_classes=10)

    def make_cost(self) -> CostEvaluator:
        raise NotImplementedError

    def make_model_and_candidate(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        raise NotImplementedError

    def _figures(self, cost: CostEvaluator) -> dict[str, float]:
        model, cand = self.make_model_and_candidate()
        figures = {
            "t_epoch": 0.01,
            "numparams": float(sum(p.numel() for p in model.parameters())),
            "best_val_acc": 90.0,
            "epochs_run": 1.0,
        }
        figures.update(cost.measure(model, cand, self.data_spec))
        return figures

    def _calibrated(self) -> tuple[CostEvaluator, dict[str, float]]:
        cost = self.make_cost()
        figures = self._figures(cost)
        calibrate_cost(cost, figures)  # as a search does: UserError unless fc is finite
        return cost, figures

    def test_is_a_cost_evaluator(self) -> None:
        cost = self.make_cost()
        assert isinstance(cost, CostEvaluator) and cost.name

    def test_complexity_after_calibration_is_a_finite_non_negative_number(self) -> None:
        cost, figures = self._calibrated()
        fc = cost.complexity(figures)
        assert isinstance(fc, float) and math.isfinite(fc) and fc >= 0

    def test_an_auto_normaliser_is_calibrated(self) -> None:
        """A cost that needs calibration has what it needs after it: ``complexity`` works on
        the reference figures (an ``auto`` normaliser left unset fails here)."""
        cost = self.make_cost()
        if not cost.needs_calibration:
            return
        figures = self._figures(cost)
        cost.calibrate(figures)
        assert math.isfinite(cost.complexity(figures))

    def test_figures_are_json_numbers(self) -> None:
        cost = self.make_cost()
        figures = self._figures(cost)
        json.dumps(figures)
        assert all(isinstance(v, (int, float)) for v in figures.values())

    def test_feasible_is_a_yes_or_no_on_the_figures(self) -> None:
        """``feasible`` (default: always) answers yes or no (a bool, or NumPy's) from
        recorded figures alone."""
        cost, figures = self._calibrated()
        assert isinstance(cost.feasible(figures), (bool, np.bool_))

    def test_settings_rebuild_the_same_complexity(self) -> None:
        cost, figures = self._calibrated()
        again = type(cost)(**json.loads(json.dumps(cost.settings())))  # as the study keeps it
        assert again.complexity(figures) == cost.complexity(figures)


class DatasetContract:
    """What every dataset must do. Supply ``make_dataset()``."""

    def make_dataset(self) -> Dataset:
        raise NotImplementedError

    def test_loads_tensor_data(self) -> None:
        ds = self.make_dataset()
        ds.check()
        data = ds.load(seed=0)
        assert isinstance(data, TensorData)
        for x, y in ((data.xtr, data.ytr), (data.xva, data.yva), (data.xte, data.yte)):
            assert x.dtype == torch.float32 and y.dtype == torch.int64
            assert len(x) == len(y) > 0
            assert x.shape[1:] == data.xtr.shape[1:]
            assert int(y.min()) >= 0 and int(y.max()) < data.num_classes

    def test_validation_split_is_fixed_by_the_seed(self) -> None:
        ds = self.make_dataset()
        a, b = ds.load(seed=3), ds.load(seed=3)
        assert torch.equal(a.yva, b.yva) and torch.equal(a.xva, b.xva)

    def test_another_seed_gives_another_validation_split(self) -> None:
        ds = self.make_dataset()
        a, b = ds.load(seed=3), ds.load(seed=4)
        assert a.xva.shape == b.xva.shape
        assert not torch.equal(a.xva, b.xva), "the validation split ignores the seed"


__all__ = ["CostEvaluatorContract", "DatasetContract", "SearchSpaceContract"]
