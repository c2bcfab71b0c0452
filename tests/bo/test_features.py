"""Feature declarations: how a candidate becomes numbers for the ramp kernel."""

from __future__ import annotations

import doctest
import math

import pytest
from dnc_mlp.space import MLPSpace

from dnc.bo import Categorical, LayerWidths, MLPHidden, Scalar, doubling_bounds
from dnc.bo import features as features_module


def test_log_scalar_compares_log10_and_zero_weight_decay_sits_at_the_lower_bound() -> None:
    lr = Scalar("lr", 1e-5, 1e-1, log=True)
    assert lr.bounds == (-5.0, -1.0)
    assert lr.encode({"lr": 1e-3}) == [pytest.approx(-3.0)]
    wd = Scalar("weight_decay", 1e-6, 1e-3, log=True, zero_at_lower=True)
    assert wd.encode({"weight_decay": 0.0}) == [-6.0]
    assert wd.encode({"weight_decay": 1e-4}) == [pytest.approx(-4.0)]
    with pytest.raises(ValueError, match="positive"):
        lr.encode({"lr": 0.0})


def test_a_missing_scalar_sits_one_span_below_the_lower_bound() -> None:
    f = Scalar("hidden_1", 20, 400)
    assert f.encode({}) == [20 - 380]


def test_scalar_checks_its_declaration() -> None:
    with pytest.raises(ValueError, match="lower > 0"):
        Scalar("lr", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="lower"):
        Scalar("x", 2.0, 1.0)
    with pytest.raises(ValueError, match="weight"):
        Scalar("x", 0.0, 1.0, weight=0.0)


def test_categorical_encodes_the_option_index() -> None:
    f = Categorical("activation", ("relu", "tanh"))
    assert f.encode({"activation": "relu"}) == [0.0]
    assert f.encode({}) == [-1.0]
    with pytest.raises(ValueError, match="not one of"):
        f.encode({"activation": "gelu"})


def test_layer_widths_from_a_template_or_a_list() -> None:
    bounds = doubling_bounds((16, 64), 512, 4)
    by_name = LayerWidths("channels_{i}", count="num_conv_layers", bounds=bounds)
    assert by_name.name == "channels"
    assert by_name.width == 5
    assert by_name.encode({"num_conv_layers": 2, "channels_0": 20, "channels_1": 40,
                           "channels_2": 999}) == [2.0, 20.0, 40.0, 16.0, 16.0]
    assert set(by_name.reads()) == {"num_conv_layers", "channels_0", "channels_1",
                                    "channels_2", "channels_3"}
    as_list = LayerWidths("channels", bounds=bounds)
    assert as_list.encode({"channels": [20, 40]}) == [2.0, 20.0, 40.0, 16.0, 16.0]
    with pytest.raises(ValueError, match="at most 4"):
        by_name.encode({"num_conv_layers": 5, **{f"channels_{i}": 16 for i in range(5)}})
    with pytest.raises(ValueError, match="template needs count"):
        LayerWidths("c{i}", bounds=bounds)


def test_doubling_bounds_is_the_envelope_of_the_channel_rule() -> None:
    bounds = doubling_bounds((16, 64), 512, 16)
    assert bounds[:5] == [(16, 64), (16, 128), (16, 256), (16, 512), (16, 512)]
    assert len(bounds) == 16


def test_mlp_hidden_encodes_total_nodes_and_layer_count() -> None:
    f = MLPHidden(layers=(0, 2), nodes=(20, 400))
    assert f.encode({"num_hidden_layers": 0}) == [0.0, 0.0]
    assert f.encode({"num_hidden_layers": 2, "hidden_0": 30, "hidden_1": 70}) == [100.0, 2.0]
    kernel = f.kernel((3, 4), omega=3.0)
    assert kernel.total_span == 800 and kernel.layer_span == 2
    assert [int(i) for i in kernel.active_dims] == [3, 4]


def test_mlp_space_declares_every_parameter_it_samples() -> None:
    space = MLPSpace()
    features = space.kernel_features()
    read = {name for f in features for name in f.reads()}
    cand = space.reference_candidate()
    assert set(cand) <= read
    lr = next(f for f in features if getattr(f, "name", "") == "lr")
    assert lr.log and lr.bounds == (math.log10(1e-5), math.log10(1e-1))


def test_module_examples_run() -> None:
    result = doctest.testmod(features_module)
    assert result.attempted > 0 and result.failed == 0
