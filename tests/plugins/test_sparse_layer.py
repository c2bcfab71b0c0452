"""SparseLinear and SparseMLP: every path computes the same thing, zeros stay zero through real
training, and the parameter count follows the density."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dnc_sparse import SparseLinear, SparseMLP, adjacency
from dnc_sparse.layer import SPARSE_MIN_ELEMENTS, choose_path
from torch import nn

from dnc.plugins import UserError
from dnc.train.morse import Morse
from dnc.train.trainer import TrainerSettings, count_params, train

SPARSE_PATHS = ("masked", "sparse")


def _reference(layer: SparseLinear, x: torch.Tensor, gy: torch.Tensor):
    """Output and gradients of the same layer as a plain dense computation."""
    w = layer.dense_weight().clone().requires_grad_(True)
    b = layer.bias.detach().clone().requires_grad_(True) if layer.bias is not None else None
    xr = x.detach().clone().requires_grad_(True)
    y = xr @ w.T + (b if b is not None else 0)
    y.backward(gy)
    return y.detach(), xr.grad, w.grad, (b.grad if b is not None else None)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("path", SPARSE_PATHS)
@pytest.mark.parametrize(("kind", "n_left", "n_right", "d_out"),
                         [("basic", 64, 32, 8), ("clash_free", 96, 48, 6), ("random", 50, 30, 7)])
def test_every_path_matches_the_dense_computation(kind, n_left, n_right, d_out, path, bias):
    torch.manual_seed(0)
    mask = adjacency(kind, n_left, n_right, d_out, z=8 if kind == "clash_free" else None, seed=1)
    layer = SparseLinear(mask, bias=bias, path=path)
    assert layer.path == path
    x = torch.randn(9, n_left, requires_grad=True)
    gy = torch.randn(9, n_right)
    y = layer(x)
    y.backward(gy)
    y_ref, gx_ref, gw_ref, gb_ref = _reference(layer, x, gy)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad, gx_ref, atol=1e-5, rtol=1e-5)
    grad_w = (layer.values.grad if path == "sparse"
              else layer.weight.grad.reshape(-1)[layer.flat_index])
    torch.testing.assert_close(grad_w, gw_ref.reshape(-1)[layer.flat_index], atol=1e-5, rtol=1e-5)
    if path == "masked":  # the dense gradient is exactly zero off the mask
        assert torch.count_nonzero(layer.weight.grad[~mask]) == 0
    if bias:
        torch.testing.assert_close(layer.bias.grad, gb_ref, atol=1e-5, rtol=1e-5)


def test_paths_start_identical_and_accept_any_leading_shape():
    mask = adjacency("basic", 64, 32, 8, seed=0)
    outs = []
    for path in SPARSE_PATHS:
        torch.manual_seed(3)
        layer = SparseLinear(mask, path=path)
        outs.append(layer(torch.ones(2, 5, 64)))
    assert outs[0].shape == (2, 5, 32)
    torch.testing.assert_close(outs[0], outs[1])


def _train_steps(model: nn.Module, opt: torch.optim.Optimizer, steps: int, n_in: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, n_in, generator=gen)
    y = torch.randint(0, 4, (64,), generator=gen)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x)[:, :4], y).backward()
        opt.step()


@pytest.mark.parametrize("optimizer", ["adam_wd", "adamw", "sgd_momentum_wd"])
@pytest.mark.parametrize("path", SPARSE_PATHS)
def test_zeros_stay_exactly_zero_through_training(path, optimizer):
    mask = adjacency("clash_free", 64, 32, 4, z=16, seed=2)
    torch.manual_seed(0)
    layer = SparseLinear(mask, path=path)
    before = layer.dense_weight().clone()
    params = list(layer.parameters())
    opt = {"adam_wd": lambda: torch.optim.Adam(params, lr=1e-2, weight_decay=1e-2),
           "adamw": lambda: torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1),
           "sgd_momentum_wd": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9,
                                                      weight_decay=1e-2)}[optimizer]()
    _train_steps(layer, opt, 20, 64)
    after = layer.dense_weight()
    assert torch.count_nonzero(after[~mask]) == 0
    assert (after[mask] != before[mask]).float().mean() > 0.5  # the edges did train


def test_parameter_count_follows_the_density():
    counts = {}
    for d_out in (1, 2, 4, 8, 16, 32):
        mask = adjacency("basic", 128, 32, d_out, seed=0)
        sparse = SparseLinear(mask, path="sparse")
        masked = SparseLinear(mask, path="masked")
        counts[d_out] = sparse.count_params()
        assert counts[d_out] == 128 * d_out + 32 == masked.count_params()
        assert sum(p.numel() for p in sparse.parameters()) == counts[d_out]  # only the edges
        assert sparse.density == pytest.approx(d_out / 32)
    assert SparseLinear(torch.ones(32, 128, dtype=torch.bool)).count_params() == counts[32]
    net = SparseMLP([64, 128, 32, 10], [16, 4, 5], kind="basic")
    assert net.count_params() == 64 * 16 + 128 + 128 * 4 + 32 + 32 * 5 + 10
    assert count_params(net) == net.count_params()  # what the trainer records


def test_auto_chooses_by_size_and_density():
    assert choose_path(64, 64, 64 * 64) == "dense"
    assert choose_path(64, 64, 64 * 2) == "masked"  # small layers: dense GEMM is faster
    assert choose_path(4096, 4096, 4096 * 82) == "sparse"
    assert choose_path(4096, 4096, 4096 * 2048) == "masked"
    assert choose_path(1024, 1024, 1024 * 20) == "sparse"
    assert SPARSE_MIN_ELEMENTS > 64 * 64
    layer = SparseLinear(adjacency("random", 2048, 2048, 41, seed=0))  # 2% of 2048 x 2048
    assert layer.path == "sparse"


def test_state_moves_between_paths():
    mask = adjacency("basic", 64, 32, 8, seed=0)
    torch.manual_seed(0)
    masked = SparseLinear(mask, path="masked")
    sparse = SparseLinear(mask, path="sparse")
    sparse.load_state_dict(masked.state_dict())
    torch.testing.assert_close(sparse.dense_weight(), masked.dense_weight())
    other = SparseLinear(adjacency("basic", 64, 32, 4, seed=9), path="masked")
    other.load_state_dict(sparse.state_dict())  # another pattern is adopted
    assert torch.equal(other.mask, mask)
    x = torch.randn(3, 64)
    torch.testing.assert_close(other(x), masked(x))
    masked.set_path("sparse")
    torch.testing.assert_close(masked(x), sparse(x))


def test_inference_mode_first_then_training():
    layer = SparseLinear(adjacency("basic", 64, 32, 8, seed=0), path="masked")
    with torch.inference_mode():
        layer(torch.randn(2, 64))
    layer(torch.randn(2, 64)).sum().backward()
    assert layer.weight.grad is not None


@pytest.mark.parametrize(
    ("mask", "path", "needle"),
    [
        (torch.ones(4, 4), "auto", "bool mask"),
        (torch.zeros(4, 4, dtype=torch.bool), "auto", "no edges"),
        (torch.eye(4, dtype=torch.bool), "fast", "path='fast'"),
        (torch.eye(4, dtype=torch.bool), "dense", "full mask"),
    ],
)
def test_bad_layers_are_refused(mask, path, needle):
    with pytest.raises(UserError, match=needle):
        SparseLinear(mask, path=path)


@pytest.mark.parametrize("path", SPARSE_PATHS)
def test_sparse_mlp_trains_on_morse_and_keeps_its_zeros(tmp_path, path):
    data = Morse(examples_per_class=30, cache_dir=str(tmp_path)).load(seed=0)
    torch.manual_seed(0)
    net = SparseMLP([64, 128, 64], [16, 8], kind="clash_free", path=path)
    masks = [j.mask.clone() for j in net.junctions]
    result = train(net, data, lr=1e-2, weight_decay=1e-3, batch_size=32, seed=0,
                   settings=TrainerSettings(epochs=8, device="cpu"))
    assert result.best_val_acc > 5 * 100 / 64  # it learns: well above chance (1.6%)
    for junction, mask in zip(net.junctions, masks, strict=True):
        assert junction.path == path
        assert torch.count_nonzero(junction.dense_weight()[~mask]) == 0


def test_layer_bench_runs_and_ends_with_json():
    bench = Path(__file__).resolve().parents[2] / "bench" / "sparse_layer.py"
    proc = subprocess.run([sys.executable, str(bench), "--sizes", "64", "--densities", "1",
                           "0.25", "--repeats", "1", "--min-seconds", "0"],
                          capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["ratio_vs_dense"]["64"]) == {"1", "0.25"}
    assert result["auto_path"]["64"] == {"1": "dense", "0.25": "masked"}
    assert {"dense", "auto", "masked", "sparse"} <= set(result["times_ms"]["64"]["0.25"])
    assert "machine" in result
