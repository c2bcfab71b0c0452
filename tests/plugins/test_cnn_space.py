"""The CNN search space: the contract, the paper's placement rules, the grid sub-stages."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from dnc_cnn.layout import (
    ConvPlan,
    late_layers,
    max_halvings,
    paper_shortcut_every,
    pool_locations,
    shortcut_starts,
)
from dnc_cnn.network import ConvNet
from dnc_cnn.settings import CNNArch, CNNCore, KernelSparsity
from dnc_cnn.space import CNNSpace

from dnc.plugins import DataSpec, TrainingBounds, UserError
from dnc.testing import SearchSpaceContract

DIGITS = DataSpec(input_shape=(1, 8, 8), num_classes=10)
CIFAR = DataSpec(input_shape=(3, 32, 32), num_classes=10)


class TestCNNSpaceContract(SearchSpaceContract):
    data_spec = DIGITS
    n_samples = 4

    def make_space(self) -> CNNSpace:
        return CNNSpace(kernel_sparsity={"enabled": True})


class TestSmallCNNSpaceOnCIFARShapes(SearchSpaceContract):
    data_spec = CIFAR
    n_samples = 8

    def make_space(self) -> CNNSpace:
        return CNNSpace(
            core=CNNCore(
                conv_layers=(4, 6),
                first_channels=(8, 16),
                max_channels=64,
                default_channels=(8, 16, 32, 64),
                pool_thresholds=(8, 16, 32),
            )
        )


def base(space: CNNSpace, **changes) -> dict:
    return {**space.reference_candidate(), **changes}


def keep(store: dict, key):
    """A forward hook that keeps the output in ``store[key]`` (and changes nothing)."""

    def hook(module, inputs, output) -> None:
        store[key] = output

    return hook


def widths_candidate(widths: list[int], **arch) -> dict:
    cand = {"num_conv_layers": len(widths), **{f"channels_{i}": w for i, w in enumerate(widths)}}
    return {**CNNSpace().reference_candidate(), **cand, **arch}


# -- the paper's rules ------------------------------------------------------------------------
def test_pools_go_before_the_first_width_past_64_128_and_256():
    assert pool_locations([32, 64, 96, 128, 200, 300]) == [1, 3, 4]
    assert pool_locations([16, 32, 64, 64]) == []  # 64 is not past 64
    assert pool_locations([64, 65, 130, 260, 512]) == [0, 1, 2]
    # one pool per threshold, taken in order
    assert pool_locations([60, 120, 240, 480, 512, 512]) == [0, 1, 2]


def test_batchnorm_and_dropout_go_as_late_as_possible():
    assert late_layers(0.5, 7) == [1, 3, 5, 6]  # the paper's example
    assert late_layers(0.25, 8) == [3, 7]
    assert late_layers(0.75, 4) == [1, 2, 3]
    assert late_layers(1.0, 5) == [0, 1, 2, 3, 4]
    assert late_layers(0.0, 5) == []


def test_shortcut_rule_of_the_paper():
    assert [paper_shortcut_every(n) for n in (4, 8, 9, 14, 15, 16)] == [0, 0, 4, 4, 2, 2]
    assert shortcut_starts(16, 4) == [0, 4, 8, 12]
    assert shortcut_starts(16, 2) == [0, 2, 4, 6, 8, 10, 12]
    assert shortcut_starts(10, 0) == []


def test_small_inputs_keep_only_the_pools_they_can_take():
    assert [max_halvings(s, s) for s in (1, 2, 4, 7, 8, 28, 32)] == [0, 1, 2, 3, 3, 5, 5]
    space = CNNSpace()
    cand = widths_candidate([60, 120, 240, 480], downsample="mmm")
    assert space.plan(cand, DataSpec((1, 8, 8), 10)).pool == (True, True, True, False)
    assert space.plan(cand, DataSpec((1, 4, 4), 10)).pool == (True, True, False, False)
    model = space.build(cand, DataSpec((1, 4, 4), 10))
    assert model(torch.randn(2, 1, 4, 4)).shape == (2, 10)


def test_downsample_letters_swap_a_pool_for_a_stride_2_conv():
    space = CNNSpace()
    cand = widths_candidate([32, 64, 96, 128, 200, 300], downsample="sms")
    plan = space.plan(cand, CIFAR)
    assert plan.pool == (False, False, False, True, False, False)
    assert plan.stride == (1, 2, 1, 1, 2, 1)
    model = space.build(cand, CIFAR)
    assert model.convs[1].stride == (2, 2) and model.convs[4].stride == (2, 2)
    feature = {}
    model.acts[-1].register_forward_hook(keep(feature, "out"))
    model(torch.randn(2, 3, 32, 32))
    assert feature["out"].shape == (2, 300, 4, 4)  # three halvings either way


def test_dropout_probabilities_first_layer_and_others():
    space = CNNSpace()
    plan = space.plan(
        widths_candidate([16, 16, 32, 32], dropout_fraction=1.0, drop_in=0.2, drop_other=0.45),
        DIGITS,
    )
    assert plan.dropout == (0.2, 0.45, 0.45, 0.45)
    plan = space.plan(widths_candidate([16, 16, 32, 32], dropout_fraction=0.5), DIGITS)
    assert plan.dropout == (0.0, 0.3, 0.0, 0.3)
    plan = space.plan(widths_candidate([16, 16, 32, 32], bn_fraction=0.25), DIGITS)
    assert plan.bn == (False, False, False, True)


def test_shortcuts_add_the_earlier_output_before_the_activation():
    """Layers 1 and 2 output nothing but the shortcut from layer 0 (zero weights, no BN)."""
    plan = ConvPlan(
        in_channels=1,
        num_classes=3,
        channels=(4, 6, 8, 8),
        pool=(False, True, False, False),
        stride=(1, 1, 1, 1),
        bn=(False,) * 4,
        dropout=(0.0,) * 4,
        shortcuts=(0,),
    )
    model = ConvNet(plan).eval()
    with torch.no_grad():
        for i in (1, 2):
            model.convs[i].weight.zero_()
            model.convs[i].bias.zero_()
    seen = {}
    model.acts[0].register_forward_hook(keep(seen, 0))
    model.acts[2].register_forward_hook(keep(seen, 2))
    model(torch.randn(2, 1, 8, 8))
    skip = torch.nn.functional.avg_pool2d(seen[0], 2, ceil_mode=True)  # the pool after layer 1
    expected = torch.cat([skip, torch.zeros(2, 4, 4, 4)], dim=1)  # 4 -> 8 channels
    torch.testing.assert_close(seen[2], torch.relu(expected))


def test_auto_shortcuts_follow_the_depth():
    space = CNNSpace()
    assert space.plan(widths_candidate([16] * 8), DIGITS).shortcuts == ()
    assert space.plan(widths_candidate([16] * 10), DIGITS).shortcuts == (0, 4)
    assert space.plan(widths_candidate([16] * 16), DIGITS).shortcuts == (0, 2, 4, 6, 8, 10, 12)
    assert space.plan(widths_candidate([16] * 16, shortcut_every=0), DIGITS).shortcuts == ()


def test_channels_follow_the_doubling_bounds():
    import random

    from dnc.suggest import UniformSuggest

    space = CNNSpace()
    rng = random.Random(0)
    for _ in range(200):
        cand = space.sample(UniformSuggest(rng.random))
        w = space.widths(cand)
        assert 4 <= len(w) <= 16 and 16 <= w[0] <= 64
        assert all(a <= b <= min(2 * a, 512) for a, b in itertools.pairwise(w))


def test_image_inputs_are_required():
    with pytest.raises(UserError, match="C x H x W"):
        CNNSpace().build(CNNSpace().reference_candidate(), DataSpec((64,), 10))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            {"core": {"conv_layers": (5, 4)}},
            r"search_space\.core\.conv_layers=\[5, 4\] must satisfy 1 <= low <= high",
        ),
        ({"core": {"conv_layers": (4, 6, 8)}}, r"core\.conv_layers=\[4, 6, 8\]: give two"),
        ({"core": {"first_channels": (16, 1024)}}, r"core\.first_channels=\[16, 1024\]"),
        ({"core": {"pool_thresholds": (128, 64)}}, r"core\.pool_thresholds=\[128, 64\]"),
        (
            {"arch": {"activations": ("relu", "nope")}},
            r"arch\.activations: unknown activation 'nope'",
        ),
        ({"arch": {"bn_fractions": (0.0, 1.5)}}, r"arch\.bn_fraction\(s\)"),
        ({"arch": {"drop_others": (1.0,)}}, r"arch\.drop_in\(s\) / drop_other\(s\)"),
        ({"arch": {"grid_order": ("activation", "colour")}}, r"arch\.grid_order: .*'colour'"),
        (
            {"arch": {"grid_order": ("kernel_sparsity",)}},
            r"kernel_sparsity but search_space\.kernel_sparsity\.enabled is false",
        ),
        ({"kernel_sparsity": {"tap_choices": (9, 3)}}, r"kernel_sparsity\.tap_choices: 3 taps"),
        ({"kernel_sparsity": {"enabled": "false"}}, r"kernel_sparsity\.enabled='false'"),
        ({"kernel_sparsity": {"dense_every": -1}}, r"kernel_sparsity\.dense_every"),
        ({"training": {"lr": (0.1, 0.01)}}, r"lr=\[0\.1, 0\.01\]"),
    ],
)
def test_bad_settings_are_user_errors_naming_the_key(kwargs, needle):
    with pytest.raises(UserError, match=needle) as info:
        CNNSpace(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("group", "key"),
    [
        ("core", "conv_layer"),
        ("arch", "grid_ordr"),
        ("kernel_sparsity", "kernel_taps"),
        ("training", "learning_rate"),
    ],
)
def test_an_unknown_key_in_a_group_names_it_and_the_valid_ones(group, key):
    with pytest.raises(UserError, match=rf"search_space\.{group}\.{key}: unknown key") as info:
        CNNSpace(**{group: {key: 1}})
    valid = {
        "core": "conv_layers, first_channels",
        "arch": "grid_order, activation",
        "kernel_sparsity": "enabled, taps, tap_choices, dense_every",
        "training": "lr, weight_decay",
    }[group]
    assert f"valid keys: {valid}" in str(info.value)


def test_a_nested_mapping_and_dataclass_instances_give_the_same_space():
    from_config = CNNSpace(
        core={
            "conv_layers": [4, 6],
            "first_channels": [8, 16],
            "max_channels": 64,
            "default_channels": [8, 16, 32, 64],
            "pool_thresholds": [8, 16, 32],
        },
        arch={"grid_order": ["shortcuts", "dropout"], "bn_fraction": 1, "drop_ins": [0.2]},
        kernel_sparsity={"enabled": True, "tap_choices": [9, 4]},
        training={"batch_size": [16, 64], "default_batch_size": 32},
    )
    from_objects = CNNSpace(
        core=CNNCore(
            conv_layers=(4, 6),
            first_channels=(8, 16),
            max_channels=64,
            default_channels=(8, 16, 32, 64),
            pool_thresholds=(8, 16, 32),
        ),
        arch=CNNArch(grid_order=("shortcuts", "dropout"), bn_fraction=1.0, drop_ins=(0.2,)),
        kernel_sparsity=KernelSparsity(enabled=True, tap_choices=(9, 4)),
        training=TrainingBounds(batch_size=(16, 64), default_batch_size=32),
    )
    for group in ("core", "arch", "kernel_sparsity", "training"):
        assert getattr(from_config, group) == getattr(from_objects, group), group
    assert from_config.reference_candidate() == from_objects.reference_candidate()
    assert (
        from_config.grid_substages()
        == from_objects.grid_substages()
        == ("shortcuts", "dropout", "kernel_sparsity")
    )
    assert isinstance(from_config.arch.bn_fraction, float)  # 1 from a config becomes 1.0
    assert CNNSpace(core=None, arch={}).core == CNNCore() and CNNSpace().arch == CNNArch()


def test_kernel_features_compare_layer_widths_and_training():
    from dnc.bo import CandidateEncoder, LayerWidths

    space = CNNSpace()
    features = space.kernel_features()
    assert isinstance(features[0], LayerWidths)
    enc = CandidateEncoder(features)
    a = space.reference_candidate()
    b = {**a, "channels_7": 512}
    with torch.no_grad():
        k = enc.kernel()(enc.encode([a, b, a])).to_dense()
    assert float(k[0, 2]) == pytest.approx(1.0) and float(k[0, 1]) < 1.0


# -- the grid ---------------------------------------------------------------------------------
def test_default_substage_order():
    assert CNNSpace().grid_substages() == (
        "activation",
        "downsampling",
        "batchnorm",
        "dropout",
        "shortcuts",
    )
    assert CNNSpace(kernel_sparsity={"enabled": True}).grid_substages()[-1] == "kernel_sparsity"
    order = ("shortcuts", "dropout")
    assert CNNSpace(arch=CNNArch(grid_order=order)).grid_substages() == order


def test_grid_variants_are_complete_json_candidates_and_deterministic():
    space = CNNSpace(kernel_sparsity=KernelSparsity(enabled=True))
    cand = space.reference_candidate()
    counts = {}
    for sub in space.grid_substages():
        variants = space.grid(sub, cand)
        assert variants == space.grid(sub, dict(cand))
        assert json.loads(json.dumps(variants)) == variants
        for v in variants:
            assert set(v) == set(cand)
        unique = {json.dumps(v, sort_keys=True) for v in variants}
        assert len(unique) == len(variants), f"{sub} repeats a variant"
        assert cand in variants, f"{sub} leaves out the candidate's own setting"
        counts[sub] = len(variants)
    # reference: 8 layers, pools after layers 3 and 5 -> 2 locations
    assert counts == {
        "activation": 4,
        "downsampling": 4,
        "batchnorm": 5,
        "dropout": 1 + 3 + 3 + 3 + 3 * 2,
        "shortcuts": 3,
        "kernel_sparsity": 3,
    }


def test_downsampling_tries_every_combination_of_the_pool_locations():
    space = CNNSpace()
    three = widths_candidate([32, 64, 96, 128, 200, 300])
    assert [v["downsample"] for v in space.grid("downsampling", three)] == [
        "mmm",
        "mms",
        "msm",
        "mss",
        "smm",
        "sms",
        "ssm",
        "sss",
    ]
    none = widths_candidate([16, 32, 64, 64])
    assert space.grid("downsampling", none) == [none]


def test_dropout_grid_varies_only_the_probabilities_that_apply():
    space = CNNSpace()
    cand = widths_candidate([16] * 8)
    variants = space.grid("dropout", cand)
    for v in variants:
        layers = late_layers(v["dropout_fraction"], 8)
        if 0 not in layers:
            assert v["drop_in"] == cand["drop_in"]
        if not layers:
            assert v["drop_other"] == cand["drop_other"]
    full = [(v["drop_in"], v["drop_other"]) for v in variants if v["dropout_fraction"] == 1.0]
    assert full == [(0.1, 0.15), (0.2, 0.15), (0.1, 0.3), (0.2, 0.3), (0.1, 0.45), (0.2, 0.45)]


def test_shortcut_grid_keeps_auto_for_the_setting_it_already_is():
    space = CNNSpace()
    ten = widths_candidate([16] * 10)  # auto = every 4
    assert [v["shortcut_every"] for v in space.grid("shortcuts", ten)] == [0, "auto", 2]
    explicit = {**ten, "shortcut_every": 2}
    assert [v["shortcut_every"] for v in space.grid("shortcuts", explicit)] == [0, 4, 2]


def test_kernel_sparsity_substage_needs_the_option():
    with pytest.raises(UserError, match=r"kernel_sparsity\.enabled=true"):
        CNNSpace().grid("kernel_sparsity", CNNSpace().reference_candidate())


def test_describe_is_one_line():
    space = CNNSpace()
    text = space.describe(base(space, kernel_taps=4, downsample="smm"))
    assert "\n" not in text and "32-32-64-64-128-128-256-256" in text and "taps 4/9" in text
    assert "ds sm" in text


@pytest.mark.slow
def test_every_grid_variant_builds_and_trains_a_step():
    from dnc.plugins import TensorData
    from dnc.train.datasets import Digits
    from dnc.train.trainer import TrainerSettings, train

    digits = Digits().load(seed=0)
    data = TensorData(
        digits.xtr[:48],
        digits.ytr[:48],
        digits.xva[:16],
        digits.yva[:16],
        digits.xte[:16],
        digits.yte[:16],
        num_classes=10,
        name="digits48",
    )
    space = CNNSpace(
        core={"pool_thresholds": (16, 32, 64), "first_channels": (8, 16)},
        kernel_sparsity={"enabled": True},
    )
    # 10 layers, 3 pool locations, shortcuts every 4 by the paper's rule
    cand = widths_candidate([8, 12, 20, 24, 40, 48, 70, 80, 80, 80])
    assert len(space.pool_locations(cand)) == 3
    settings = TrainerSettings(epochs=1, device="cpu", augment="flip_crop")
    tried = 0
    for sub in space.grid_substages():
        for variant in space.grid(sub, cand):
            torch.manual_seed(0)
            model = space.build(variant, data.spec)
            before = [p.detach().clone() for p in model.parameters()]
            result = train(
                model, data, lr=1e-3, weight_decay=1e-4, batch_size=48, settings=settings, seed=0
            )
            assert torch.isfinite(torch.tensor(result.train_loss)).all(), (sub, variant)
            moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)]
            assert any(moved), (sub, variant)
            tried += 1
    assert tried == 4 + 8 + 5 + 16 + 3 + 3
