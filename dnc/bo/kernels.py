"""The ramp kernels of Deep-n-Cheap (DESIGN §3) as GPyTorch kernels.

For one parameter with bounds ``[l, u]`` the ramp distance and kernel are::

    d(x1, x2) = omega * (|x1 - x2| / (u - l)) ** (1 / r)
    k(x1, x2) = exp(-d**2 / 2)

With ``r >= 1`` this is the powered-exponential kernel ``exp(-c |x1 - x2| ** (2 / r))`` with
exponent ``2 / r`` in ``(0, 2]``, which is positive semi-definite (PSD) for every ``omega``.
Layer widths, MLP hidden layers and categorical choices get their own kernels below;
``CandidateKernel`` is the weighted mean of per-feature kernels, so it is PSD whenever each of
them is, and it is 1 for identical candidates.

Every kernel here keeps its ``omega`` by GPyTorch's recipe (``raw_omega`` parameter, a registered
constraint, ``omega`` property and setter), so ``fit_gpytorch_mll`` can learn it. None of them is
differentiable with respect to its inputs (candidates are compared, not optimised).

Each ramp kernel evaluates in two steps: ``distances`` (everything that does not depend on
``omega``) and ``from_distances`` (the exponentials at the current ``omega``, with the gradient
in ``omega`` formed in the same pass). A marginal-likelihood fit evaluates the kernel on the same
training inputs at every step, so ``CandidateKernel`` (``dnc.bo.candidate_kernel``) keeps the
last distances and each step only pays for the exponentials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from gpytorch.constraints import Interval
from gpytorch.kernels import Kernel
from torch import Tensor

_ABSENT = 1e100
"""Where a layer-wise kernel places a missing layer: far enough for ``k = 0`` at any omega."""

_LOWEST = -700.0
"""Floor of every kernel exponent: exp(-700) = 1e-304 still is a normal float (exp of lower
arguments is subnormal or takes a slow path, 20-100x slower) and counts as 0 here."""

OMEGA = 3.0
"""The paper's ``omega``: at the full span of a parameter, ``k = exp(-4.5) = 0.011``."""


class _OmegaKernel(Kernel):
    """A kernel with one ``omega`` per batch, shaped ``*batch_shape x 1 x 1``."""

    def __init__(
        self,
        omega: float = OMEGA,
        omega_constraint: Interval | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.register_parameter(
            name="raw_omega", parameter=torch.nn.Parameter(torch.zeros(*self.batch_shape, 1, 1))
        )
        self.register_constraint(
            "raw_omega", omega_constraint if omega_constraint is not None else Interval(1e-2, 1e2)
        )
        self.omega = omega

    @property
    def omega(self) -> Tensor:
        return self.raw_omega_constraint.transform(self.raw_omega)

    @omega.setter
    def omega(self, value: float | Tensor) -> None:
        self._set_omega(value)

    def _set_omega(self, value: float | Tensor) -> None:
        if not torch.is_tensor(value):
            value = torch.as_tensor(value).to(self.raw_omega)
        self.initialize(raw_omega=self.raw_omega_constraint.inverse_transform(value))

    def _omega(self, diag: bool) -> Tensor:
        """``omega`` shaped to broadcast against ``... x n x m`` (or ``... x n`` with ``diag``)."""
        return self.omega[..., 0] if diag else self.omega

    def forward(self, x1: Tensor, x2: Tensor, diag: bool = False, **params: object) -> Tensor:
        return self.from_distances(self.distances(x1, x2, diag), diag)

    def distances(self, x1: Tensor, x2: Tensor, diag: bool = False) -> tuple[Tensor, ...]:
        """What the kernel's value depends on besides ``omega``: the powered, scaled
        distances ``d**2 / omega**2 = (|x1 - x2| / span) ** (2 / root)`` (no root of zero is
        taken). A fit evaluates the kernel on the same inputs for every ``omega`` it tries, so
        ``CandidateKernel`` computes these once."""
        raise NotImplementedError

    def from_distances(self, distances: tuple[Tensor, ...], diag: bool = False) -> Tensor:
        """The kernel's value from ``distances(x1, x2, diag)`` at the current ``omega``."""
        raise NotImplementedError


class _ExpSum(torch.autograd.Function):
    """``sum_l exp(max(scale * D_l, -700))`` over the leading dimension of ``D``, with the
    gradient in ``scale`` (``sum_l D_l exp(scale * D_l)``) formed in the
    forward pass: the backward pass then is one product, not the graph of ``L`` exponentials
    (most of a fit's time with deep layer-wise kernels)."""

    @staticmethod
    def forward(ctx: Any, scale: Tensor, distances: Tensor) -> Tensor:
        values = torch.mul(distances, scale).clamp_min_(_LOWEST).exp_()
        ctx.scale_shape = scale.shape
        if ctx.needs_input_grad[0]:
            # Where the exponent is floored the true slope is 0; this gives D * 1e-304 there,
            # at most ~1e-100 (a missing layer's D is below ~1e200): nothing next to the rest.
            ctx.save_for_backward((distances * values).sum(0))
        return values.sum(0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (slope,) = ctx.saved_tensors
        return (grad * slope).sum_to_size(ctx.scale_shape), None


def _exp_sum(scale: Tensor, distances: Tensor) -> Tensor:
    """``sum_l exp(max(scale * distances[l], -700))``; see ``_ExpSum``."""
    if torch.is_grad_enabled() and scale.requires_grad:
        return _ExpSum.apply(scale, distances)
    return (distances * scale).clamp_min_(_LOWEST).exp_().sum(0)


def _power_(t: Tensor, exponent: float) -> None:
    """``t **= exponent`` in place, by the cheapest route for common exponents."""
    if exponent == 2.0:
        t.square_()
    elif exponent == 0.5:
        t.sqrt_()
    elif exponent != 1.0:
        t.pow_(exponent)


def _pairwise(x1: Tensor, x2: Tensor, diag: bool) -> tuple[Tensor, Tensor]:
    """Align ``... x n x c`` and ``... x m x c`` for elementwise comparison.

    Returns tensors broadcastable to ``... x n x m x c`` (or ``... x n x c`` with ``diag``).
    """
    if diag:
        return x1, x2
    return x1.unsqueeze(-2), x2.unsqueeze(-3)


def _span(lower: float, upper: float) -> float:
    if upper < lower:
        raise ValueError(f"ramp kernel bounds [{lower}, {upper}]: need lower <= upper")
    # Equal bounds: every value is the same, distance 0 (the original's convention).
    return upper - lower if upper > lower else math.inf


class RampKernel(_OmegaKernel):
    r"""The ramp kernel on one parameter with bounds ``[lower, upper]``.

    ``d = omega * (|x1 - x2| / (upper - lower)) ** (1 / root)``, ``k = exp(-d**2 / 2)``.

    Inputs are ``... x n x 1`` (use ``active_dims`` to pick the column out of a wider
    encoding); the output is ``... x n x m``, or ``... x n`` with ``diag=True``. Values outside
    the bounds are allowed (the distance then exceeds ``omega``). Log-scaled parameters are
    compared in ``log10``: encode them so and pass ``log10`` bounds (``dnc.bo.Scalar`` does).

    Args:
        lower, upper: the parameter's bounds (``lower == upper``: every pair has ``d = 0``).
        omega: the distance at the full span; the paper's 3 by default.
        root: ``r >= 1``; larger roots make small differences count more.

    Example:
        >>> k = RampKernel(32, 512)          # batch size in [32, 512]
        >>> x1, x2 = torch.tensor([[200.0]]), torch.tensor([[100.0]])
        >>> k(x1, x2).to_dense().detach().round(decimals=2)
        tensor([[0.8200]])
    """

    def __init__(
        self,
        lower: float,
        upper: float,
        omega: float = OMEGA,
        root: float = 1,
        **kwargs: object,
    ) -> None:
        if root < 1:
            raise ValueError(f"ramp kernel root={root}: must be >= 1 (smaller is not PSD)")
        super().__init__(omega=omega, **kwargs)
        self.lower, self.upper, self.root = float(lower), float(upper), float(root)
        self.span = _span(self.lower, self.upper)

    def distances(self, x1: Tensor, x2: Tensor, diag: bool = False) -> tuple[Tensor, ...]:
        if x1.shape[-1] != 1 or x2.shape[-1] != 1:
            raise ValueError(
                f"RampKernel compares one column, got {x1.shape[-1]} and {x2.shape[-1]}; "
                "pass active_dims"
            )
        a, b = _pairwise(x1, x2, diag)
        powered = (a - b).abs_().div_(self.span)
        _power_(powered, 2.0 / self.root)
        return (powered,)  # ... x n x m x 1: the trailing 1 is the sum's dimension

    def from_distances(self, distances: tuple[Tensor, ...], diag: bool = False) -> Tensor:
        scale = -0.5 * self._omega(diag).square()
        return _exp_sum(scale, distances[0].movedim(-1, 0))


class CategoricalRampKernel(_OmegaKernel):
    r"""A choice among unordered options: ``d = 0`` for the same option, ``omega`` otherwise.

    ``k = 1`` if ``x1 == x2`` else ``exp(-omega**2 / 2)``; that is a constant plus a
    Kronecker delta, hence PSD. Inputs ``... x n x 1`` hold option codes (any numbers).

    Example:
        >>> k = CategoricalRampKernel()
        >>> round(float(k(torch.tensor([[0.0], [2.0]])).to_dense()[0, 1].detach()), 4)  # exp(-4.5)
        0.0111
    """

    def distances(self, x1: Tensor, x2: Tensor, diag: bool = False) -> tuple[Tensor, ...]:
        a, b = _pairwise(x1, x2, diag)
        return ((a != b).any(-1).to(x1.dtype),)

    def from_distances(self, distances: tuple[Tensor, ...], diag: bool = False) -> Tensor:
        scale = -0.5 * self._omega(diag).square()
        return _exp_sum(scale, distances[0].unsqueeze(0))


class LayerwiseRampKernel(_OmegaKernel):
    r"""Variable-depth width lists (e.g. CNN channels), compared layer by layer.

    Inputs are ``... x n x (1 + L)``: column 0 is the depth ``D`` (0..L), columns ``1..L`` the
    widths, of which only the first ``D`` are read. Layer ``i`` (from 0) has its own bounds
    ``[l_i, u_i]`` and root ``r_i = min(i + 1, max_root)``. With ``c = exp(-omega**2 / 2)``
    (the kernel value at ``d = omega``) and ``k_i`` the ramp kernel of layer ``i``::

        S(a, b) = sum_{i < min(Da, Db)} k_i(a_i, b_i) / max(Da, Db)   (S = 1 if Da = Db = 0)
        k(a, b) = c + (1 - c) * S(a, b)

    **Change from the published formula.** The paper averages, over the deeper network's
    layers, ``k_i`` for shared layers and ``c`` for each layer the shallower network lacks
    (``d = omega``). That is not PSD in general: with ``omega = 0.3`` it has a negative
    eigenvalue on eight small candidates (see ``tests/bo/test_kernels.py``), so a GP fitting
    ``omega`` could break. Here every shared layer is compared as ``c + (1 - c) k_i`` instead of
    ``k_i``, while a missing layer still counts exactly ``c``; the result is
    ``c + (1 - c) * min(1/Da, 1/Db) * sum_i [i < Da][i < Db] k_i``: a constant plus a Schur
    product of PSD kernels (``min(1/Da, 1/Db)`` is the min kernel on ``1/D``), hence PSD for
    every ``omega``. Each layer's value moves by at most ``c (1 - k_i) <= c`` (0.011 at
    ``omega = 3``), so the kernel stays within 0.011 of the published one.

    Args:
        bounds: ``L`` pairs ``(l_i, u_i)``, one per possible layer.
        omega: as in ``RampKernel``.
        max_root: the cap on the per-layer root (the paper's 4).

    Example:
        >>> k = LayerwiseRampKernel([(16, 64), (16, 128), (16, 256)])
        >>> x = torch.tensor([[2.0, 32, 64, 0], [3.0, 32, 64, 128]])   # depth, widths
        >>> round(float(k(x).to_dense()[0, 1].detach()), 3)   # (1 + 1 + 0) / 3 layers, floored at c
        0.67
    """

    def __init__(
        self,
        bounds: Sequence[tuple[float, float]],
        omega: float = OMEGA,
        max_root: int = 4,
        **kwargs: object,
    ) -> None:
        if not bounds:
            raise ValueError("LayerwiseRampKernel needs the bounds of at least one layer")
        super().__init__(omega=omega, **kwargs)
        spans = [_span(float(lo), float(hi)) for lo, hi in bounds]
        self.num_layers = len(spans)
        # Plain tensors, not buffers: they have no batch dimension, so Kernel.__getitem__ and
        # expand_batch must leave them alone (they are moved to the inputs' device on use).
        # A layer with equal bounds (infinite span) would also scale a missing layer's far-away
        # placement down to distance 0, counting it as shared (k(a, a) > 1, not PSD): it gets
        # span 1 instead, and all its present widths read as one value (distance 0).
        self.spans = torch.tensor(
            [s if math.isfinite(s) else 1.0 for s in spans], dtype=torch.float64
        )
        fixed = [math.isinf(s) for s in spans]
        self.fixed = torch.tensor(fixed) if any(fixed) else None
        roots = [float(min(i + 1, max_root)) for i in range(self.num_layers)]
        # Consecutive layers sharing a root, so powers are taken per group (square, sqrt, ...).
        self.root_groups: list[tuple[int, int, float]] = []
        for i, r in enumerate(roots):
            if self.root_groups and self.root_groups[-1][2] == r:
                self.root_groups[-1] = (self.root_groups[-1][0], i + 1, r)
            else:
                self.root_groups.append((i, i + 1, r))
        self.layer_index = torch.arange(self.num_layers, dtype=torch.float64)

    def _widths(self, x: Tensor, absent: float) -> Tensor:
        """``L x ... x n`` widths (layers first), absent layers set to ``absent``."""
        w = x[..., 1:].movedim(-1, 0)
        index = self.layer_index.to(x).view((-1,) + (1,) * (w.dim() - 1))
        if self.fixed is not None:
            w = torch.where(self.fixed.to(x.device).view_as(index), 0.0, w)
        return torch.where(index < x[..., 0].unsqueeze(0), w, absent).contiguous()

    def distances(self, x1: Tensor, x2: Tensor, diag: bool = False) -> tuple[Tensor, ...]:
        width = 1 + self.num_layers
        if x1.shape[-1] != width or x2.shape[-1] != width:
            raise ValueError(f"LayerwiseRampKernel expects {width} columns (depth + widths)")
        # A layer only one network has (or neither) sits ~1e100 away: its exponent reaches the
        # floor, so it adds ~0 (1e-304), and every power of it stays finite (finite gradients).
        # Layers lead (L x ... x n x m) so each group of layers with one root is contiguous.
        dtype = x1.dtype
        x1, x2 = x1.double(), x2.double()  # the far-away placement needs float64's range
        w1, w2 = self._widths(x1, _ABSENT), self._widths(x2, -_ABSENT)
        d1, d2 = x1[..., 0], x2[..., 0]  # ... x n, ... x m
        if not diag:
            w1, w2, d1, d2 = w1.unsqueeze(-1), w2.unsqueeze(-2), d1.unsqueeze(-1), d2.unsqueeze(-2)
        per_layer = (w1 - w2).abs_()
        per_layer.div_(self.spans.to(x1).view((-1,) + (1,) * (per_layer.dim() - 1)))
        for start, stop, root in self.root_groups:
            _power_(per_layer[start:stop], 2.0 / root)
        return per_layer, torch.maximum(d1, d2).to(dtype)  # the deeper network's depth

    def from_distances(self, distances: tuple[Tensor, ...], diag: bool = False) -> Tensor:
        per_layer, deeper = distances
        scale = -0.5 * self._omega(diag).double().square()
        total = _exp_sum(scale, per_layer)  # over the layers both networks have
        similarity = torch.where(deeper > 0, total / deeper.clamp_min(1.0), torch.ones_like(total))
        c = torch.exp(scale.clamp_min(_LOWEST))
        return (c + (1.0 - c) * similarity).to(deeper.dtype)


class MLPHiddenKernel(_OmegaKernel):
    r"""MLP hidden layers: the mean of a ramp kernel on the total node count (root 2) and one on
    the number of hidden layers (root 1), sharing ``omega``.

    ``k = (ramp(N1, N2; total_bounds, r=2) + ramp(D1, D2; layer_bounds, r=1)) / 2``; inputs are
    ``... x n x 2`` holding ``(total nodes, layer count)``. A mean of PSD kernels: PSD.

    Example:
        >>> k = MLPHiddenKernel(total_bounds=(0, 800), layer_bounds=(0, 2))
        >>> x = torch.tensor([[200.0, 1], [400.0, 2]])
        >>> round(float(k(x).to_dense()[0, 1].detach()), 3)   # both parts exp(-4.5 / 4)
        0.325
    """

    def __init__(
        self,
        total_bounds: tuple[float, float],
        layer_bounds: tuple[float, float],
        omega: float = OMEGA,
        **kwargs: object,
    ) -> None:
        super().__init__(omega=omega, **kwargs)
        self.total_span = _span(float(total_bounds[0]), float(total_bounds[1]))
        self.layer_span = _span(float(layer_bounds[0]), float(layer_bounds[1]))

    def distances(self, x1: Tensor, x2: Tensor, diag: bool = False) -> tuple[Tensor, ...]:
        if x1.shape[-1] != 2 or x2.shape[-1] != 2:
            raise ValueError("MLPHiddenKernel expects 2 columns (total nodes, layer count)")
        a, b = _pairwise(x1, x2, diag)
        delta = (a - b).abs_().movedim(-1, 0)  # 2 x ... x n x m: nodes, layers
        nodes = delta[0] / self.total_span  # root 2: power 2 / 2
        layers = (delta[1] / self.layer_span).square_()  # root 1
        return (torch.stack([nodes, layers]),)

    def from_distances(self, distances: tuple[Tensor, ...], diag: bool = False) -> Tensor:
        scale = -0.5 * self._omega(diag).square()
        return 0.5 * _exp_sum(scale, distances[0])


__all__ = [
    "OMEGA",
    "CategoricalRampKernel",
    "LayerwiseRampKernel",
    "MLPHiddenKernel",
    "RampKernel",
]
