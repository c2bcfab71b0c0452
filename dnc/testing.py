"""Contract tests shipped with dnc: a plugin's test case mixes one in and supplies fixtures.

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
import math
import random
from collections.abc import Mapping
from typing import Any

import optuna
import torch

from dnc.plugins import (
    CostEvaluator,
    Dataset,
    DataSpec,
    DefaultSuggest,
    SearchSpace,
    Suggest,
    TensorData,
    UserError,
    suggest_training,
)
from dnc.search.suggest import TrialSuggest, UniformSuggest


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
        cand = space.sample(DefaultSuggest())
        self._forward_backward(space, cand)
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
        for u in (0.0, 0.999999):
            self._forward_backward(space, space.sample(UniformSuggest(functools.partial(float, u))))

    def test_sampling_through_optuna_is_define_by_run(self) -> None:
        space = self.make_space()
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(5):
            trial = study.ask()
            cand = space.sample(TrialSuggest(trial))
            # every suggested value is part of the candidate
            for name in trial.params:
                assert name in cand, f"{name} was suggested but is missing from the candidate"
            study.tell(trial, 0.0)

    def test_held_groups_keep_base_values(self) -> None:
        space = self.make_space()
        base = self._uniform_candidates(space, 1, seed=1)[0]
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        trial = study.ask()
        suggest = TrialSuggest(trial, active=("train",), base=base)
        cand = space.sample(suggest)
        for name in suggest.fixed:
            assert cand[name] == base[name], f"{name} was held but changed"

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
    """What every cost evaluator must do. Supply ``make_cost()``, ``model``, ``candidate`` and
    ``data_spec`` (the figures come from ``measure`` plus ``t_epoch`` / ``numparams``)."""

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
        cost.calibrate(figures)
        return figures

    def test_is_a_cost_evaluator(self) -> None:
        cost = self.make_cost()
        assert isinstance(cost, CostEvaluator) and cost.name

    def test_complexity_is_a_non_negative_number(self) -> None:
        cost = self.make_cost()
        fc = cost.complexity(self._figures(cost))
        assert isinstance(fc, float) and fc >= 0 and not math.isnan(fc)

    def test_figures_are_json_numbers(self) -> None:
        import json

        cost = self.make_cost()
        figures = self._figures(cost)
        json.dumps(figures)
        assert all(isinstance(v, (int, float)) for v in figures.values())

    def test_settings_rebuild_the_same_complexity(self) -> None:
        cost = self.make_cost()
        figures = self._figures(cost)
        again = type(cost)(**cost.settings())
        assert again.complexity(figures) == cost.complexity(figures)


class DatasetContract:
    """What every dataset must do. Supply ``make_dataset()``."""

    def make_dataset(self) -> Dataset:
        raise NotImplementedError

    def test_loads_tensor_data(self) -> None:
        data = self.make_dataset().load(seed=0)
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


class ChainCNNSpace(SearchSpace):
    """A CNN-shaped space with only what the ramp kernel sees (it builds no network): 4-16
    conv layers, the first with 16-64 channels, each next in ``[c_prev, min(2 c_prev, 512)]``,
    plus lr, weight decay and batch size. For kernel and sampler tests and benchmarks."""

    name = "chain_cnn"

    def sample(self, suggest: Suggest) -> dict[str, Any]:
        n = suggest.int("num_conv_layers", 4, 16, group="core", default=8)
        cand: dict[str, Any] = {"num_conv_layers": n}
        prev = 0
        for i in range(n):
            lo, hi = (16, 64) if i == 0 else (prev, min(2 * prev, 512))
            prev = suggest.int(f"channels_{i}", lo, hi, group="core", default=lo)
            cand[f"channels_{i}"] = prev
        cand.update(suggest_training(suggest))
        return cand

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> torch.nn.Module:
        raise NotImplementedError("a kernel-only space: no network is built")

    def kernel_features(self) -> tuple[Any, ...]:
        from dnc.bo import LayerWidths, Scalar, doubling_bounds

        return (
            LayerWidths(
                "channels_{i}", count="num_conv_layers", bounds=doubling_bounds((16, 64), 512, 16)
            ),
            Scalar("lr", 1e-5, 1e-1, log=True),
            Scalar("weight_decay", 1e-6, 1e-3, log=True, zero_at_lower=True),
            Scalar("batch_size", 32, 512),
        )


def recorded_parts(trial: optuna.trial.FrozenTrial) -> tuple[float, float] | None:
    """A trial's ``(fp, fc)`` from its ``figures`` user attribute (keys ``fp`` and ``fc``), for
    ``RampBOSampler(loss_parts=LossParts(wc, recorded_parts))`` on synthetic studies; ``None``
    when it recorded none."""
    figures = trial.user_attrs.get("figures")
    return None if figures is None else (figures["fp"], figures["fc"])
