"""``CandidateKernel``: a candidate's kernel as the weighted mean of its features' kernels.

``k(a, b) = sum_j w_j k_j(a, b) / sum_j w_j`` over the per-feature kernels of
``dnc.bo.kernels``, each reading its own columns of the encoded candidates. It is PSD whenever
each part is, and 1 for identical candidates. Two memos make a BO step cheap: in inference the
last few covariance blocks (so the split model's two GPs on the same trials compute each block
once), and under autograd the last inputs' ``omega``-free distances (so a marginal-likelihood
fit computes them once, not once per iteration).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from gpytorch.constraints import Interval, Positive
from gpytorch.kernels import Kernel
from torch import Tensor

from dnc.bo.kernels import _OmegaKernel

_MEMO = 4
"""Kernel blocks a ``CandidateKernel`` remembers in inference (train-train, test-train,
test-test of one posterior)."""


def _unexpand(x: Tensor) -> Tensor:
    """``x`` with every batch dimension along which it does not vary cut to size 1.

    A batched posterior (``explore x 1 x d`` candidates) repeats the training inputs for each
    candidate; the kernel's broadcasting gives the same result from one copy, for a fraction
    of the work. The check is exact: a stride of 0, or equality with the first slice.
    """
    for dim in range(x.dim() - 2):
        if x.shape[dim] > 1:
            first = x.narrow(dim, 0, 1)
            if x.stride(dim) == 0 or torch.equal(x, first.expand_as(x)):
                x = first
    return x


def _as_slice(dims: Tensor) -> slice | Tensor:
    """``active_dims`` as a slice when they are consecutive, else the index tensor."""
    cols = [int(i) for i in dims]
    if cols == list(range(cols[0], cols[0] + len(cols))):
        return slice(cols[0], cols[0] + len(cols))
    return dims


class CandidateKernel(Kernel):
    r"""The weighted mean of per-feature kernels: ``k = sum_j w_j k_j / sum_j w_j``.

    Each part reads its own columns of the encoding (its ``active_dims``); inputs are
    ``... x n x d``. Weights follow GPyTorch's recipe (``raw_weights``, a positive constraint,
    ``weights`` property, shaped ``*batch_shape x J``). Identical candidates give 1. Outside
    autograd the last few blocks are remembered (keyed by the inputs and the hyperparameter
    values), so GPs sharing one instance evaluate each block once.

    Example:
        >>> k = CandidateKernel([RampKernel(32, 512, active_dims=(0,)),
        ...                      RampKernel(-5, -1, active_dims=(1,))])
        >>> x = torch.tensor([[200.0, -3.0], [100.0, -3.0]])
        >>> round(float(k(x).to_dense()[0, 1].detach()), 2)   # (0.82 + 1) / 2
        0.91
    """

    def __init__(
        self,
        kernels: Sequence[Kernel],
        weights: Sequence[float] | None = None,
        weight_constraint: Interval | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        if not kernels:
            raise ValueError("CandidateKernel needs at least one kernel")
        if any(k.active_dims is None for k in kernels):
            raise ValueError("every part of a CandidateKernel needs active_dims")
        self.kernels = torch.nn.ModuleList(kernels)
        # Column ranges as slices (views; index_select would copy expanded batch inputs).
        self._columns = [_as_slice(k.active_dims) for k in kernels]
        # Parts evaluated in two steps (distances, then exponentials): the ramp kernels here,
        # unless a subclass replaced ``forward``.
        self._two_step = [
            isinstance(k, _OmegaKernel) and type(k).forward is _OmegaKernel.forward for k in kernels
        ]
        self.register_parameter(
            name="raw_weights",
            parameter=torch.nn.Parameter(torch.zeros(*self.batch_shape, len(kernels))),
        )
        self.register_constraint(
            "raw_weights", weight_constraint if weight_constraint is not None else Positive()
        )
        self.weights = torch.tensor([1.0] * len(kernels) if weights is None else list(weights))
        self._memo: list[tuple[Tensor, Tensor, bool, Tensor, Tensor]] = []
        self._last_distances: tuple[Tensor, Tensor, Any, list[Any]] | None = None

    @property
    def weights(self) -> Tensor:
        return self.raw_weights_constraint.transform(self.raw_weights)

    @weights.setter
    def weights(self, value: float | Tensor) -> None:
        self._set_weights(value)

    def _set_weights(self, value: float | Tensor) -> None:
        if not torch.is_tensor(value):
            value = torch.as_tensor(value)
        value = value.to(self.raw_weights)
        if bool((value <= 0).any()):
            raise ValueError("CandidateKernel weights must be positive")
        self.initialize(raw_weights=self.raw_weights_constraint.inverse_transform(value))

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params: object) -> Tensor:
        shape = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
        shape += x1.shape[-2:-1] if diag else (x1.shape[-2], x2.shape[-2])
        x1, x2 = _unexpand(x1), _unexpand(x2)
        if torch.is_grad_enabled():
            return self._mean(x1, x2, diag).expand(shape)
        # Inference: remember the last few blocks, so GPs that share this kernel instance (the
        # split model's two GPs on the same trials, hyperparameters fixed) compute each once.
        # The inputs are kept as copies: small once unexpanded, immune to later in-place
        # changes of the caller's tensors, and they do not keep a large batch alive.
        hyper = torch.cat([p.detach().reshape(-1) for p in self.parameters()])
        for a, b, d, h, out in self._memo:
            if (
                d == diag
                and a.shape == x1.shape
                and b.shape == x2.shape
                and torch.equal(h, hyper)
                and torch.equal(a, x1)
                and torch.equal(b, x2)
            ):
                return out.expand(shape)
        out = self._mean(x1, x2, diag)
        self._memo = [*self._memo[-(_MEMO - 1) :], (x1.clone(), x2.clone(), diag, hyper, out)]
        return out.expand(shape)

    def _mean(self, x1: Tensor, x2: Tensor, diag: bool) -> Tensor:
        """The weighted mean of the parts on (unexpanded) inputs, broadcast batch shape."""
        w = self.weights
        w = w / w.sum(-1, keepdim=True)
        distances = self._distances(x1, x2, diag)
        out: Tensor | None = None
        for j, kernel in enumerate(self.kernels):
            dj = distances[j]
            if dj is not None:
                part = cast(_OmegaKernel, kernel).from_distances(dj, diag=diag)
            else:
                part = kernel.forward(*self._inputs(j, x1, x2), diag=diag)
            wj = w[..., j, None] if diag else w[..., j, None, None]
            out = wj * part if out is None else out + wj * part
        assert out is not None
        return out

    def _inputs(self, j: int, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
        """The columns part ``j`` reads."""
        cols = self._columns[j]
        if isinstance(cols, slice):
            return x1[..., cols], x2[..., cols]
        return x1.index_select(-1, cols), x2.index_select(-1, cols)

    def _distances(self, x1: Tensor, x2: Tensor, diag: bool) -> list[tuple[Tensor, ...] | None]:
        """Each ramp part's ``omega``-free distances (``None`` for another kind of kernel).

        With gradients on, the last inputs' are remembered: a marginal-likelihood fit evaluates
        the kernel on the same training inputs (the same tensors) at every step, so this work
        is done once per fit, not once per step."""
        versions = (x1._version, x2._version)
        last = self._last_distances
        if last is not None and last[0] is x1 and last[1] is x2 and last[2] == (versions, diag):
            return last[3]
        out = [
            cast(_OmegaKernel, k).distances(*self._inputs(j, x1, x2), diag=diag)
            if two_step
            else None
            for j, (k, two_step) in enumerate(zip(self.kernels, self._two_step, strict=True))
        ]
        self._last_distances = (x1, x2, (versions, diag), out) if torch.is_grad_enabled() else None
        return out


__all__ = ["CandidateKernel"]
