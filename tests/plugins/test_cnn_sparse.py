"""Pre-defined kernel sparsity: the periodic tap patterns, and zeros that survive training."""

from __future__ import annotations

import pytest
import torch
from dnc_cnn.network import ConvNet
from dnc_cnn.space import CNNSpace
from dnc_cnn.sparse import KernelSparseConv2d, kernel_mask

from dnc.plugins import DataSpec, UserError
from dnc.train.datasets import Digits
from dnc.train.trainer import TrainerSettings, count_params, train


def test_each_kernel_keeps_its_taps_and_every_pth_kernel_is_dense():
    for taps in (4, 2):
        mask = kernel_mask(12, 10, taps, dense_every=7)
        per_kernel = mask.sum(dim=(2, 3)).flatten()
        dense = (torch.arange(120) + 1) % 7 == 0
        assert per_kernel[dense].eq(9).all() and per_kernel[~dense].eq(taps).all()
        assert int(dense.sum()) == 120 // 7
    assert kernel_mask(3, 5, 9).all()
    assert kernel_mask(4, 4, 4, dense_every=0).sum(dim=(2, 3)).eq(4).all()


def test_four_of_nine_is_a_quadrant_rotated_by_filter_and_channel():
    mask = kernel_mask(5, 6, 4)
    first = mask[0, 0]
    assert first[:2, :2].all() and first.sum() == 4  # top-left quadrant
    for o in range(5):
        for c in range(6):
            # one clockwise quarter turn per step of o + c
            assert torch.equal(mask[o, c], torch.rot90(first, -((o + c) % 4)))


def test_two_of_nine_is_the_centre_and_a_neighbour_going_round():
    mask = kernel_mask(1, 8, 2)
    assert mask[0, :, 1, 1].all()  # the centre in every kernel
    neighbours = mask[0].clone()
    neighbours[:, 1, 1] = False
    assert neighbours.sum(dim=0).eq(1).sum() == 8  # the 8 kernels cover the 8 neighbours
    # the pattern depends on filter + channel only
    assert torch.equal(kernel_mask(3, 5, 2)[2, 3], kernel_mask(1, 6, 2)[0, 5])


def test_bad_taps_are_user_errors():
    with pytest.raises(UserError):
        kernel_mask(2, 2, 3)
    with pytest.raises(UserError):
        kernel_mask(2, 2, 4, dense_every=-1)


def sparse_candidate(taps: int) -> dict:
    space = CNNSpace(kernel_sparsity={"enabled": True})
    return {
        **space.reference_candidate(),
        "num_conv_layers": 4,
        "channels_0": 8,
        "channels_1": 16,
        "channels_2": 16,
        "channels_3": 32,
        "kernel_taps": taps,
        "dropout_fraction": 0.0,
    }


def test_first_layer_is_dense_and_params_count_the_mask():
    space = CNNSpace(kernel_sparsity={"enabled": True, "dense_every": 4})
    dense = space.build(sparse_candidate(9), DataSpec((1, 8, 8), 10))
    sparse = space.build(sparse_candidate(4), DataSpec((1, 8, 8), 10))
    assert type(sparse.convs[0]) is torch.nn.Conv2d
    assert all(isinstance(c, KernelSparseConv2d) for c in sparse.convs[1:])
    removed = sum(int((1 - c.mask).sum()) for c in sparse.convs[1:])
    assert removed > 0
    assert count_params(sparse) == count_params(dense) - removed
    assert count_params(dense) == sum(p.numel() for p in dense.parameters())


@pytest.mark.parametrize("taps", [4, 2])
def test_zeros_stay_exactly_zero_through_adam_with_weight_decay(taps):
    data = Digits().load(seed=0)
    space = CNNSpace(kernel_sparsity={"enabled": True, "dense_every": 5})
    model = space.build(sparse_candidate(taps), data.spec)
    assert isinstance(model, ConvNet)
    before = [c.weight.detach().clone() for c in model.convs[1:]]
    result = train(
        model,
        data,
        lr=3e-3,
        weight_decay=1e-3,
        batch_size=64,
        settings=TrainerSettings(epochs=3, device="cpu"),
        seed=0,
    )
    assert result.best_val_acc > 40.0  # it learned something
    for conv, old in zip(model.convs[1:], before, strict=True):
        off = conv.mask == 0
        assert conv.weight[off].eq(0).all(), "a masked weight moved"
        on = ~off
        assert not torch.equal(conv.weight[on], old[on]), "the kept weights did not train"
        assert int((conv.weight != 0).sum()) <= conv.nonzero_weights()
