"""The ramp kernels against their formulas, GPyTorch's kernel conventions, and PSD-ness."""

from __future__ import annotations

import doctest
import math
import random

import numpy as np
import pytest
import torch
from bo_spaces import ChainCNNSpace, random_candidates
from dnc_mlp.space import MLPSpace

from dnc.bo import (
    CategoricalRampKernel,
    LayerwiseRampKernel,
    MLPHiddenKernel,
    RampKernel,
    doubling_bounds,
)
from dnc.bo import kernels as kernels_module
from dnc.bo.encoding import CandidateEncoder


def ramp_formula(
    x1: float, x2: float, lower: float, upper: float, omega: float, root: float
) -> float:
    """The paper's ramp kernel, written out."""
    d = omega * (abs(x1 - x2) / (upper - lower)) ** (1 / root)
    return math.exp(-(d**2) / 2)


def dense(
    kernel: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None
) -> torch.Tensor:
    with torch.no_grad():
        return kernel(x1, x2).to_dense()


# -- RampKernel ---------------------------------------------------------------------------------
def test_published_batch_size_example_is_0_82() -> None:
    k = RampKernel(32, 512, omega=3.0)
    value = float(dense(k, torch.tensor([[200.0]]), torch.tensor([[100.0]])))
    assert round(value, 2) == 0.82
    assert value == pytest.approx(ramp_formula(200, 100, 32, 512, 3.0, 1), rel=1e-6)


@pytest.mark.parametrize("root", [1, 2, 3, 4])
@pytest.mark.parametrize("omega", [0.5, 3.0, 7.0])
def test_ramp_kernel_matches_the_formula(root: int, omega: float) -> None:
    rng = np.random.default_rng(root)
    x1, x2 = rng.uniform(32, 512, 7), rng.uniform(32, 512, 5)
    k = RampKernel(32, 512, omega=omega, root=root).double()
    got = dense(k, torch.tensor(x1)[:, None], torch.tensor(x2)[:, None]).numpy()
    omega_used = float(k.omega.detach())  # float32 parameter: ~1e-8 off
    want = np.array([[ramp_formula(a, b, 32, 512, omega_used, root) for b in x2] for a in x1])
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert omega_used == pytest.approx(omega, rel=1e-6)


def test_ramp_kernel_at_the_full_span_is_exp_minus_omega_squared_over_2() -> None:
    k = RampKernel(-5, -1, omega=3.0, root=2)
    assert float(dense(k, torch.tensor([[-5.0]]), torch.tensor([[-1.0]]))) == pytest.approx(
        math.exp(-4.5), rel=1e-6
    )


def test_equal_bounds_give_distance_zero() -> None:
    k = RampKernel(4, 4)
    assert float(dense(k, torch.tensor([[4.0]]), torch.tensor([[4.0]]))) == 1.0


def test_ramp_kernel_rejects_roots_below_one_and_wide_inputs() -> None:
    with pytest.raises(ValueError, match="root"):
        RampKernel(0, 1, root=0.5)
    with pytest.raises(ValueError, match="one column"):
        dense(RampKernel(0, 1), torch.zeros(3, 2))


# -- GPyTorch conventions: batch shapes, diag, getitem, dtype ------------------------------------
def _layerwise() -> LayerwiseRampKernel:
    return LayerwiseRampKernel(doubling_bounds((16, 64), 512, 5))


def _layerwise_data(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    depth = torch.randint(0, 6, shape + (1,), generator=g).double()
    widths = 16 + 400 * torch.rand(shape + (5,), generator=g, dtype=torch.float64)
    return torch.cat([depth, widths], -1)


KERNELS = {
    "ramp": (
        lambda **kw: RampKernel(0, 10, root=2, **kw),
        lambda s, seed=0: (
            10
            * torch.rand(
                s + (1,), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
            )
        ),
    ),
    "categorical": (
        lambda **kw: CategoricalRampKernel(**kw),
        lambda s, seed=0: torch.randint(
            0, 3, s + (1,), generator=torch.Generator().manual_seed(seed)
        ).double(),
    ),
    "layerwise": (
        lambda **kw: LayerwiseRampKernel(doubling_bounds((16, 64), 512, 5), **kw),
        _layerwise_data,
    ),
    "mlp_hidden": (
        lambda **kw: MLPHiddenKernel((0, 800), (0, 2), **kw),
        lambda s, seed=0: (
            torch.rand(s + (2,), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            * torch.tensor([800.0, 2.0]).double()
        ),
    ),
}


@pytest.fixture(params=sorted(KERNELS))
def kernel_case(request: pytest.FixtureRequest):
    return KERNELS[request.param]


def test_batched_inputs_equal_looping_over_the_batch(kernel_case) -> None:
    make, data = kernel_case
    k = make().double()
    x = data((3, 2, 6))
    batched = dense(k, x)
    assert batched.shape == (3, 2, 6, 6)
    for i in range(3):
        for j in range(2):
            torch.testing.assert_close(batched[i, j], dense(k, x[i, j]))


def test_diag_is_the_diagonal(kernel_case) -> None:
    make, data = kernel_case
    k = make().double()
    x1, x2 = data((2, 5), seed=1), data((2, 5), seed=2)
    with torch.no_grad():
        diag = k(x1, x2, diag=True)
    assert diag.shape == (2, 5)
    torch.testing.assert_close(diag, dense(k, x1, x2).diagonal(dim1=-2, dim2=-1))


def test_batch_shaped_kernel_has_one_omega_per_batch(kernel_case) -> None:
    make, data = kernel_case
    k = make(batch_shape=torch.Size([2])).double()
    k.omega = torch.tensor([1.0, 5.0]).double().view(2, 1, 1)
    x = data((2, 4))
    full = dense(k, x)
    assert full.shape == (2, 4, 4)
    for b, omega in enumerate((1.0, 5.0)):
        single = make(omega=omega).double()
        torch.testing.assert_close(full[b], dense(single, x[b]))
        torch.testing.assert_close(dense(k[b], x[b]), full[b])  # Kernel.__getitem__


def test_omega_gradient_matches_finite_differences(kernel_case) -> None:
    """The kernels form their omega-gradient in the forward pass (``_ExpSum``): it must be the
    true derivative, plain and batched, for the full matrix and its diagonal."""
    make, data = kernel_case
    for batch in ((), (2,)):
        k = make(batch_shape=torch.Size(batch)).double()
        k.omega = torch.tensor([0.8, 2.3][: batch[0] if batch else 1], dtype=torch.float64).reshape(
            *batch, 1, 1
        )
        x1, x2 = data(batch + (5,), seed=3), data(batch + (5,), seed=4)
        for diag in (False, True):
            out_shape = k.forward(x1, x2, diag=diag).shape
            w = torch.rand(
                out_shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64
            )

            def f(k=k, x1=x1, x2=x2, diag=diag, w=w) -> torch.Tensor:
                return (w * k.forward(x1, x2, diag=diag)).sum()

            k.zero_grad()
            f().backward()
            analytic = k.raw_omega.grad.clone()
            numeric = torch.zeros_like(analytic)
            for i in range(analytic.numel()):
                with torch.no_grad():
                    k.raw_omega.view(-1)[i] += 1e-6
                    up = f()
                    k.raw_omega.view(-1)[i] -= 2e-6
                    down = f()
                    k.raw_omega.view(-1)[i] += 1e-6
                numeric.view(-1)[i] = (up - down) / 2e-6
            assert analytic.abs().max() > 1e-3
            torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_identical_inputs_give_one_and_float32_works(kernel_case) -> None:
    make, data = kernel_case
    x = data((6,), seed=3)
    k = make()
    out = dense(k, x.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.diagonal(), torch.ones(6))


def test_active_dims_pick_the_columns() -> None:
    x = torch.tensor([[1.0, 200.0], [2.0, 100.0]])
    k = RampKernel(32, 512, active_dims=(1,))
    assert float(dense(k, x)[0, 1]) == pytest.approx(ramp_formula(200, 100, 32, 512, 3, 1), 1e-6)


# -- Layer-wise kernel --------------------------------------------------------------------------
BOUNDS = doubling_bounds((16, 64), 512, 16)


def layerwise_formula(a: list[float], b: list[float], omega: float, published: bool) -> float:
    """Layer by layer with each layer's bounds and root min(i+1, 4); mean over the deeper net.

    ``published``: a missing layer counts d = omega, shared layers k_i (the paper);
    otherwise shared layers count c + (1 - c) k_i (dnc's PSD form).
    """
    c = math.exp(-(omega**2) / 2)
    deep, shallow = (a, b) if len(a) >= len(b) else (b, a)
    if not deep:
        return 1.0
    total = 0.0
    for i in range(len(deep)):
        if i < len(shallow):
            k = ramp_formula(deep[i], shallow[i], *BOUNDS[i], omega, min(i + 1, 4))
            total += k if published else c + (1 - c) * k
        else:
            total += c
    return total / len(deep)


def encode_widths(lists: list[list[float]], layers: int = 16) -> torch.Tensor:
    return torch.tensor(
        [[len(w), *w, *[16.0] * (layers - len(w))] for w in lists], dtype=torch.float64
    )


def chain_widths(rng: random.Random, depth: int) -> list[float]:
    widths = [float(rng.randint(16, 64))]
    for _ in range(depth - 1):
        widths.append(float(rng.randint(int(widths[-1]), min(2 * int(widths[-1]), 512))))
    return widths[:depth]


@pytest.mark.parametrize("omega", [0.3, 3.0])
def test_layerwise_kernel_matches_its_formula(omega: float) -> None:
    rng = random.Random(0)
    nets = [chain_widths(rng, rng.randint(0, 16)) for _ in range(25)]
    k = LayerwiseRampKernel(BOUNDS, omega=omega).double()
    got = dense(k, encode_widths(nets)).numpy()
    om = float(k.omega.detach())
    want = np.array([[layerwise_formula(a, b, om, published=False) for b in nets] for a in nets])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_layerwise_kernel_stays_within_c_of_the_published_formula() -> None:
    rng = random.Random(1)
    nets = [chain_widths(rng, rng.randint(4, 16)) for _ in range(40)]
    got = dense(LayerwiseRampKernel(BOUNDS, omega=3.0).double(), encode_widths(nets)).numpy()
    published = np.array([[layerwise_formula(a, b, 3.0, True) for b in nets] for a in nets])
    gap = np.abs(got - published).max()
    assert gap <= math.exp(-4.5) + 1e-9
    assert gap > 0  # the change is real, and bounded


def test_layerwise_examples_by_hand() -> None:
    k = LayerwiseRampKernel(BOUNDS).double()
    c = math.exp(-4.5)
    # Same first layers, one extra layer: (1 + 1 + 0) / 3 shared-layer matches, floored at c.
    x = encode_widths([[32, 64], [32, 64, 128]])
    assert float(dense(k, x)[0, 1]) == pytest.approx(c + (1 - c) * 2 / 3, rel=1e-8)
    # Identical networks, and two empty ones, give 1.
    assert float(dense(k, encode_widths([[]]))[0, 0]) == 1.0
    assert float(dense(k, encode_widths([[40, 80, 90]]))[0, 0]) == pytest.approx(1.0)


# Found by minimising the smallest eigenvalue of the published formula over candidates of
# 1-3 layers (widths as fractions of each layer's span): at omega = 0.3 it is not PSD.
COUNTEREXAMPLE = [
    [0.0],
    [0.5],
    [1.0],
    [0.613, 0.0],
    [1.0, 1.0],
    [0.613, 1.0],
    [0.0, 1.0, 1.0],
    [1.0, 0.0, 0.0],
]


def test_published_layerwise_formula_is_not_psd_but_ours_is() -> None:
    nets = [
        [BOUNDS[i][0] + f * (BOUNDS[i][1] - BOUNDS[i][0]) for i, f in enumerate(net)]
        for net in COUNTEREXAMPLE
    ]
    published = np.array([[layerwise_formula(a, b, 0.3, True) for b in nets] for a in nets])
    assert np.linalg.eigvalsh(published).min() < -5e-4
    k = LayerwiseRampKernel(BOUNDS, omega=0.3).double()
    assert np.linalg.eigvalsh(dense(k, encode_widths(nets)).numpy()).min() > -1e-12


def test_layerwise_gradients_are_finite_with_missing_layers() -> None:
    k = LayerwiseRampKernel(BOUNDS, omega=2.0).double()
    rng = random.Random(2)
    x = encode_widths([chain_widths(rng, d) for d in (0, 4, 9, 16, 4)])
    k(x).to_dense().sum().backward()
    assert torch.isfinite(k.raw_omega.grad).all() and float(k.raw_omega.grad.abs().sum()) > 0


# -- MLP hidden layers, categorical, candidate kernel -------------------------------------------
def test_mlp_hidden_kernel_is_the_mean_of_total_nodes_and_layer_count() -> None:
    k = MLPHiddenKernel((0, 800), (0, 2)).double()
    x = torch.tensor([[300.0, 2.0], [150.0, 1.0]], dtype=torch.float64)
    want = (ramp_formula(300, 150, 0, 800, 3, 2) + ramp_formula(2, 1, 0, 2, 3, 1)) / 2
    assert float(dense(k, x)[0, 1]) == pytest.approx(want, rel=1e-8)


def test_categorical_kernel_is_one_or_exp_minus_omega_squared_over_2() -> None:
    out = dense(CategoricalRampKernel(omega=2.0), torch.tensor([[0.0], [1.0], [0.0]]))
    torch.testing.assert_close(
        out,
        torch.tensor(
            [[1.0, math.exp(-2), 1.0], [math.exp(-2), 1.0, math.exp(-2)], [1.0, math.exp(-2), 1.0]]
        ),
    )


# -- PSD over real candidates --------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["mlp", "cnn"])
@pytest.mark.parametrize("omega", [0.3, 3.0, 10.0])
def test_gram_matrix_of_200_candidates_is_psd(space_name: str, omega: float) -> None:
    space = MLPSpace() if space_name == "mlp" else ChainCNNSpace()
    enc = CandidateEncoder(space.kernel_features())
    x = enc.encode(random_candidates(space, 200, seed=11))
    gram = dense(enc.kernel(omega=omega), x).numpy()
    eig = np.linalg.eigvalsh(gram)
    assert eig.min() >= -1e-6 * eig.max(), eig.min()
    np.testing.assert_allclose(np.diag(gram), 1.0, rtol=1e-12)
    np.testing.assert_allclose(gram, gram.T, atol=1e-14)


def test_cnn_gram_with_fitted_like_weights_is_psd() -> None:
    space = ChainCNNSpace()
    enc = CandidateEncoder(space.kernel_features())
    k = enc.kernel()
    for part, omega in zip(k.kernels, (0.2, 9.0, 1.0, 4.0), strict=True):
        part.omega = omega
    k.weights = torch.tensor([5.0, 0.1, 1.0, 2.0], dtype=torch.float64)
    eig = np.linalg.eigvalsh(dense(k, enc.encode(random_candidates(space, 200, seed=5))).numpy())
    assert eig.min() >= -1e-6 * eig.max()


def test_module_examples_run() -> None:
    result = doctest.testmod(kernels_module, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0
