"""The hardware cost model: the group's prototype figures, feasibility, and the cost evaluator."""

from __future__ import annotations

import math

import pytest
import torch
from dnc_hwcost import (
    HardwareCost,
    HardwareEstimate,
    estimate,
    feasible_clocks,
    network_layout,
    z_for,
)
from dnc_sparse import SparseMLP, SparseMLPSpace
from torch import nn

from dnc.plugins import DataSpec, UserError
from dnc.search.objective import score
from dnc.testing import CostEvaluatorContract

PROTOTYPE = dict(layers=[1024, 64, 32], d_out=[4, 16], z=[128, 32], bits=10)
DIGITS = DataSpec(input_shape=(1, 8, 8), num_classes=10)
HW = DataSpec(input_shape=(1, 8, 8), num_classes=16)  # 10 classes admit no feasible C


def test_the_prototype_figures():
    e = estimate(**PROTOTYPE)
    assert isinstance(e, HardwareEstimate) and e.feasible and e.reasons == ()
    assert e.clocks == 32  # C = |W_i| / z_i
    assert e.clocks_per_sample == 36
    assert e.multipliers == 387  # the group's estimator (training)
    assert e.memory_bits / 1e6 == pytest.approx(0.069, abs=5e-4)
    assert e.throughput == pytest.approx(15e6 / 36)
    assert e.latency_clocks == e.latency_clocks_training == 2 * 2 * 36
    assert e.latency_clocks_inference == 2 * 36
    assert e.d_in == (64, 32)


def test_input_width_is_a_parameter():
    assert estimate(**PROTOTYPE, input_bits=8).memory_bits / 1e6 == pytest.approx(0.109, abs=5e-4)


def test_inference_needs_less_than_training():
    train, infer = estimate(**PROTOTYPE), estimate(**PROTOTYPE, training=False)
    assert infer.multipliers == 128 + 32 == train.multipliers_inference
    assert infer.memory_bits < train.memory_bits
    assert infer.memory_bits == train.memory_bits_inference
    assert infer.energy < train.energy and infer.adders < train.adders


def test_figures_scale_as_the_formulas_say():
    base = estimate(**PROTOTYPE)
    doubled = estimate([1024, 64, 32], [4, 16], [256, 64], bits=10)  # twice the parallelism
    assert doubled.clocks == base.clocks / 2
    assert doubled.multipliers == 2 * base.multipliers
    assert doubled.memory_bits == base.memory_bits  # storage does not depend on z
    wider = estimate(**{**PROTOTYPE, "bits": 20})
    assert wider.memory_bits > base.memory_bits and wider.energy > base.energy


@pytest.mark.parametrize(
    ("z", "needle"),
    [([100, 32], "N_0/z"), ([128, 64], "different clocks"), ([128, 24], "z/d_out")],
)
def test_infeasible_mappings_are_reported_not_raised(z, needle):
    e = estimate([1024, 64, 32], [4, 16], z, bits=10)
    assert not e.feasible
    assert any(needle in r for r in e.reasons)
    assert math.isfinite(e.clocks_per_sample) and e.figures()["hw_feasible"] == 0.0


def test_feasible_clocks_and_z():
    assert feasible_clocks([1024, 64, 32], [4, 16]) == [16, 32]
    assert z_for([1024, 64, 32], [4, 16], target_c=32) == ([128.0, 32.0], 32.0)
    assert z_for([1024, 64, 32], [4, 16], z1=128) == ([128.0, 32.0], 32.0)
    assert z_for([1024, 64, 32], [4, 16]) == ([256.0, 64.0], 16.0)  # the smallest C
    assert feasible_clocks([64, 256, 64], [256, 16]) == []  # d_out 256 > gcd 64
    for c in (16, 32):
        z, _ = z_for([1024, 64, 32], [4, 16], target_c=c)
        assert estimate([1024, 64, 32], [4, 16], z).feasible


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(layers=[1024, 64], d_out=[4, 16], z=[128]), "out-degrees"),
        (dict(layers=[1024, 64, 32], d_out=[4, 40], z=[128, 32]), "d_out_2=40"),
        (dict(layers=[1024, 64, 32], d_out=[4, 16], z=[128]), "values of z"),
        (dict(layers=[1024, 64, 32], d_out=[4, 16], z=[0, 32]), "positive"),
    ],
)
def test_bad_networks_are_refused(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        estimate(**kwargs)


def _sparse_net(density: float = 0.125) -> tuple[nn.Module, dict]:
    """64 -> 128 -> 16 with d_out (16, 2): C = 16 is feasible."""
    space = SparseMLPSpace(
        core={"input_size": 64, "num_classes": 16}, sparsity={"default_density": density}
    )
    cand = space.reference_candidate()
    return space.build(cand, HW), cand


class TestHardwareCostContract(CostEvaluatorContract):
    data_spec = HW

    def make_cost(self) -> HardwareCost:
        return HardwareCost()

    def make_model_and_candidate(self):
        return _sparse_net()


class TestHardwareCostMemoryContract(TestHardwareCostContract):
    def make_cost(self) -> HardwareCost:
        return HardwareCost(metric="energy", target_c=8, bits=8, input_bits=8, e_mac=0.5)


def test_measure_reads_the_network_and_matches_estimate():
    model, cand = _sparse_net()
    assert isinstance(model, SparseMLP)
    cost = HardwareCost(target_c=None)
    figures = cost.measure(model, cand, HW)
    z, _ = z_for(list(model.layers), list(model.d_out))
    expected = estimate(list(model.layers), list(model.d_out), z).figures()
    assert figures == expected
    assert figures["hw_feasible"] == 1.0
    assert [figures["hw_d_out_1"], figures["hw_d_out_2"]] == list(model.d_out)


def test_layout_of_a_dense_mlp_and_of_an_explicit_candidate():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    assert network_layout(mlp) == ([64, 32, 10], [32, 10])
    assert network_layout(mlp, {"layers": [1024, 64, 32], "d_out": [4, 16]}) == (
        [1024, 64, 32],
        [4, 16],
    )
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(UserError, match="convolutions"):
        network_layout(conv)


def test_normalised_cost_and_the_prototype_through_the_evaluator():
    cost = HardwareCost(target_c=32, normaliser=36)
    proto = cost.measure(
        nn.Identity(),
        {"layers": [1024, 64, 32], "d_out": [4, 16]},
        DataSpec(input_shape=(1024,), num_classes=32),
    )
    assert proto["hw_clocks_per_sample"] == 36 and proto["hw_multipliers"] == 387
    assert cost.complexity(proto) == 1.0
    memory = HardwareCost(metric="memory_bits", target_c=32)
    memory.calibrate(proto)
    assert memory.settings()["normaliser"] == pytest.approx(proto["hw_memory_bits"])
    assert memory.complexity(proto) == 1.0


def test_an_infeasible_candidate_gets_the_finite_penalty():
    space = SparseMLPSpace(
        core={"input_size": 64, "num_classes": 16}, sparsity={"default_density": 1.0}
    )
    dense = space.reference_candidate()  # 64 -> 128 -> 16 dense: d_out 128 > every feasible C
    model = space.build(dense, HW)
    cost = HardwareCost(normaliser=50.0, infeasible_penalty=100.0)
    figures = cost.measure(model, dense, HW)
    assert figures["hw_feasible"] == 0.0
    assert cost.complexity(figures) == 100.0
    figures.update(best_val_acc=99.0)
    assert score(figures, 0.1, cost) == pytest.approx(math.log10(0.01 + 10))
    sparse_model, sparse = _sparse_net()
    feasible = {**cost.measure(sparse_model, sparse, HW), "best_val_acc": 90.0}
    assert feasible["hw_feasible"] == 1.0
    assert score(feasible, 0.1, cost) < score(figures, 0.1, cost)


def test_data_that_does_not_match_the_network_is_refused():
    model, cand = _sparse_net()
    with pytest.raises(UserError, match="784 inputs"):
        HardwareCost().measure(model, cand, DataSpec(input_shape=(784,), num_classes=16))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"metric": "area"}, "cost.metric='area'"),
        ({"target_c": 32, "z1": 128}, "not both"),
        ({"target_c": -1}, "target_c"),
        ({"normaliser": "big"}, "normaliser"),
        ({"normaliser": 0}, "positive"),
        ({"bits": 0}, "bits"),
        ({"infeasible_penalty": float("inf")}, "infeasible_penalty"),
        ({"e_mac": -1.0}, "energy constants"),
    ],
)
def test_bad_settings_are_refused(kwargs, needle):
    with pytest.raises(UserError, match=needle):
        HardwareCost(**kwargs)


def test_auto_normaliser_without_figures_is_a_clear_error():
    cost = HardwareCost()
    with pytest.raises(UserError, match="hw_clocks_per_sample"):
        cost.calibrate({"numparams": 10.0})


def test_hardware_figures_are_independent_of_training():
    model, cand = _sparse_net()
    before = HardwareCost().measure(model, cand, HW)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert HardwareCost().measure(model, cand, HW) == before
