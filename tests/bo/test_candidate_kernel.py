"""``CandidateKernel``: the weighted mean of per-feature kernels, its batch handling and the
memos that make a BO step cheap (distances kept within a fit, blocks shared between GPs)."""

from __future__ import annotations

import doctest

import pytest
import torch
from bo_spaces import ChainCNNSpace, random_candidates
from test_kernels import dense, ramp_formula

from dnc.bo import CandidateKernel, LayerwiseRampKernel, RampKernel
from dnc.bo import candidate_kernel as candidate_kernel_module
from dnc.bo.encoding import CandidateEncoder


def test_module_example_runs() -> None:
    result = doctest.testmod(
        candidate_kernel_module, extraglobs={"torch": torch, "RampKernel": RampKernel}
    )
    assert result.attempted > 0 and result.failed == 0


def test_candidate_kernel_is_the_weighted_mean() -> None:
    parts = [RampKernel(32, 512, active_dims=(0,)), RampKernel(-5, -1, active_dims=(1,))]
    k = CandidateKernel(parts, weights=[3.0, 1.0]).double()
    x = torch.tensor([[200.0, -3.0], [100.0, -4.0]], dtype=torch.float64)
    want = (3 * ramp_formula(200, 100, 32, 512, 3, 1) + ramp_formula(-3, -4, -5, -1, 3, 1)) / 4
    assert float(dense(k, x)[0, 1]) == pytest.approx(want, rel=1e-8)
    torch.testing.assert_close(dense(k, x).diagonal(), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        k.weights = torch.tensor([1.0, 0.0])


def test_candidate_kernel_on_expanded_batches_equals_the_plain_kernel() -> None:
    """A batched posterior passes the training data expanded over the candidates."""
    enc = CandidateEncoder(ChainCNNSpace().kernel_features())
    k = enc.kernel()
    train = enc.encode(random_candidates(ChainCNNSpace(), 7, seed=1))
    test = enc.encode(random_candidates(ChainCNNSpace(), 4, seed=2))
    batched = dense(k, test.unsqueeze(-2), train.expand(4, 7, enc.width))
    torch.testing.assert_close(batched[:, 0, :], dense(k, test, train))


def test_candidate_kernel_in_a_fit_recomputes_its_distances_when_the_inputs_change() -> None:
    """With gradients on (a marginal-likelihood fit) a CandidateKernel keeps the omega-free
    distances of the last inputs; other inputs, or the same tensor changed in place, must give
    fresh values and gradients."""

    def kernel() -> CandidateKernel:
        return CandidateKernel(
            [
                RampKernel(32, 512, active_dims=(0,)),
                LayerwiseRampKernel([(16, 64), (16, 128)], active_dims=(1, 2, 3)),
            ]
        ).double()

    x = torch.tensor(
        [[200.0, 2, 32, 64], [100.0, 1, 16, 0], [500.0, 2, 60, 100]], dtype=torch.float64
    )
    k = kernel()
    first = k(x, x).to_dense()
    first.sum().backward()
    grad = k.kernels[1].raw_omega.grad.clone()
    k.zero_grad()
    k.kernels[1].omega = 2.0  # what a fit step changes: the same inputs, another omega
    reference = kernel()
    reference.kernels[1].omega = 2.0
    torch.testing.assert_close(k(x, x).to_dense(), reference(x, x).to_dense())
    k.kernels[1].omega = 3.0
    again = k(x, x).to_dense()
    torch.testing.assert_close(again, first)
    again.sum().backward()
    torch.testing.assert_close(k.kernels[1].raw_omega.grad, grad)
    x[1, 2] = 40.0  # changed in place
    torch.testing.assert_close(k(x, x).to_dense(), kernel()(x, x).to_dense())
    other = x.clone()
    other[2, 0] = 32.0
    torch.testing.assert_close(k(other, x).to_dense(), kernel()(other, x).to_dense())


def test_candidate_kernel_takes_any_gpytorch_kernel_as_a_part() -> None:
    """A third-party feature may return any GPyTorch kernel, or a ramp kernel whose ``forward``
    it replaced: the candidate kernel evaluates such parts by their ``forward``, in inference and
    in a fit alike."""
    from gpytorch.kernels import RBFKernel

    class Halved(RampKernel):
        def forward(self, x1, x2, diag=False, **params):
            return 0.5 * super().forward(x1, x2, diag=diag, **params)

    rbf = RBFKernel(active_dims=(1,)).double()
    halved = Halved(32, 512, active_dims=(0,)).double()
    k = CandidateKernel([halved, rbf]).double()
    x = torch.tensor([[200.0, 0.3], [100.0, -0.2], [500.0, 1.1]], dtype=torch.float64)
    with torch.no_grad():
        want = (0.5 * dense(RampKernel(32, 512), x[:, :1]) + dense(rbf, x)) / 2
        torch.testing.assert_close(dense(k, x), want)
    fitted = k(x).to_dense()  # with gradients, as in a fit
    torch.testing.assert_close(fitted.detach(), want)
    fitted.sum().backward()
    assert rbf.raw_lengthscale.grad is not None and halved.raw_omega.grad is not None


def test_candidate_kernel_reuses_a_block_only_for_the_same_inputs_and_hyperparameters() -> None:
    """Outside autograd a CandidateKernel remembers recent blocks (the split model's two GPs
    share one instance); a change of inputs, weights or omega must give fresh values."""

    def kernel() -> CandidateKernel:
        return CandidateKernel(
            [RampKernel(32, 512, active_dims=(0,)), RampKernel(-5, -1, active_dims=(1,))]
        ).double()

    x = torch.tensor([[200.0, -3.0], [100.0, -2.0], [500.0, -4.5]], dtype=torch.float64)
    k = kernel()
    with torch.no_grad():
        first = k(x, x).to_dense()
        assert torch.equal(k(x.clone(), x.clone()).to_dense(), first)
        moved = x.clone()
        moved[0, 0] = 300.0
        assert torch.allclose(k(moved, x).to_dense(), kernel()(moved, x).to_dense())
        moved[1, 1] = -1.5  # changed in place after the call
        assert torch.allclose(k(moved, x).to_dense(), kernel()(moved, x).to_dense())
        k.weights = torch.tensor([1.0, 3.0])
        reference = kernel()
        reference.weights = torch.tensor([1.0, 3.0])
        assert torch.allclose(k(x, x).to_dense(), reference(x, x).to_dense())
        k.kernels[0].omega = 1.0
        reference.kernels[0].omega = 1.0
        assert torch.allclose(k(x, x).to_dense(), reference(x, x).to_dense())
        assert not torch.allclose(k(x, x).to_dense(), first)
