"""A linear layer with a fixed sparse connection pattern whose zeros stay exactly zero.

Three compute paths give the same result; the path is fixed when the layer is built:

- ``dense`` (density 1): a plain ``F.linear`` on the ``weight`` parameter.
- ``masked``: a dense ``n_out x n_in`` weight parameter, zero off the mask, and dense GEMMs;
  the weight gradient is multiplied by the mask in place, so the zeros get a zero gradient and
  never move. Cost ~ dense (the mask pass is ~4% of the GEMMs at 4096 x 4096). Holding the
  edges as ``values`` here instead would cost a scatter and a gather through int64 indices per
  step: 20-30% over dense, measured.
- ``sparse``: only the edges are parameters (``values``, ``nnz``, CSR order), so optimizer state
  and time follow the density. CSR kernels. Forward ``y^T = W x^T`` (``torch.sparse.mm``),
  input gradient ``g_x^T = W^T g_y^T`` (a CSR of ``W^T`` sharing the values through a
  permutation), weight gradient ``torch.sparse.sampled_addmm(W, g_y^T, x)``: the dense product
  evaluated at the edges only. Cost ~ density.

``path="auto"`` picks one at construction by density and size (``choose_path``), from thresholds
measured with ``bench/sparse_layer.py`` (see ``SPARSE_MAX_DENSITY``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from dnc.plugins import UserError
from dnc_sparse.settings import PATHS

# Where the CSR path beats dense GEMMs, forward + backward at batch 256 on 2 CPU cores (torch
# 2.13, MKL; bench/sparse_layer.py, minimum over repetitions, 1 and 2 threads): the crossover
# is near 5% density at 512 x 512 and near 10-12% at 1024 x 1024 to 4096 x 4096 (sparse/dense
# 0.7-0.95 at 10%). The thresholds sit below the crossovers, so a noisy machine or another CPU
# cannot make ``auto`` much slower than dense (masked costs dense + ~4%); below 512 x 512 the
# sparse kernels' per-call overheads dominate and dense GEMMs win at every density measured.
SPARSE_MIN_ELEMENTS = 512 * 512
SPARSE_MAX_DENSITY = ((512 * 512, 0.05), (1024 * 1024, 0.075), (4096 * 4096, 0.075))
CUDA_SPARSE_MAX_DENSITY = 0.0  # not measured on a GPU: keep the dense GEMM there


def choose_path(n_in: int, n_out: int, nnz: int, device: torch.device | str = "cpu") -> str:
    """The compute path ``auto`` uses for a layer: ``dense``, ``masked`` or ``sparse``.

    Dense when every edge is present; ``sparse`` when the layer has at least
    ``SPARSE_MIN_ELEMENTS`` weights and its density is at most the measured threshold for its
    size (interpolated on ``log(n_in n_out)``); ``masked`` otherwise.

    Example:
        >>> choose_path(4096, 4096, 4096 * 82), choose_path(1024, 1024, 1024 * 512)
        ('sparse', 'masked')
    """
    elements = n_in * n_out
    if nnz == elements:
        return "dense"
    if torch.device(device).type != "cpu":
        limit = CUDA_SPARSE_MAX_DENSITY
    elif elements < SPARSE_MIN_ELEMENTS:
        return "masked"
    else:
        limit = _threshold(elements)
    return "sparse" if nnz / elements <= limit else "masked"


def _threshold(elements: int) -> float:
    points = SPARSE_MAX_DENSITY
    if elements <= points[0][0]:
        return points[0][1]
    for (e0, r0), (e1, r1) in zip(points, points[1:], strict=False):
        if elements <= e1:
            t = (math.log(elements) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return r0 + t * (r1 - r0)
    return points[-1][1]


def _csr(crow: Tensor, col: Tensor, values: Tensor, size: tuple[int, int]) -> Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow, col, values, size, check_invariants=False)


class _SparseLinearFn(torch.autograd.Function):
    """``y = x W^T + b`` with ``W`` in CSR; see the module docstring for the three products."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, values: Tensor, bias: Tensor | None, layer: SparseLinear
    ) -> Tensor:
        xt = x.t().contiguous()  # n_in x B; free when x is the transposed output of a sparse layer
        w = _csr(layer.crow, layer.col, values, (layer.out_features, layer.in_features))
        yt = torch.sparse.mm(w, xt)  # n_out x B
        if bias is not None:
            yt += bias[:, None]
        ctx.save_for_backward(xt, values)
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return yt.t()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        xt, values = ctx.saved_tensors
        layer: SparseLinear = ctx.layer
        gt = grad.t().contiguous()  # n_out x B
        gx = gv = gb = None
        if ctx.needs_input_grad[0]:
            wt = _csr(
                layer.crow_t,
                layer.col_t,
                values[layer.perm_t],
                (layer.in_features, layer.out_features),
            )
            gx = torch.sparse.mm(wt, gt).t()
        if ctx.needs_input_grad[1]:
            pattern = _csr(layer.crow, layer.col, values, (layer.out_features, layer.in_features))
            gv = torch.sparse.sampled_addmm(pattern, gt, xt.t(), beta=0.0).values()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gt.sum(dim=1)
        return gx, gv, gb, None


class _MaskedLinearFn(torch.autograd.Function):
    """``y = x W^T + b`` with a dense ``W`` whose gradient is masked in place (zeros stay 0)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, mask: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight, mask)
        ctx.has_bias = bias is not None
        return F.linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, mask = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = grad @ weight
        if ctx.needs_input_grad[1]:
            gw = (grad.t() @ x).mul_(mask)  # one in-place pass: ~4% of the GEMMs at 4096^2
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum(dim=0)
        return gx, gw, gb, None


class SparseLinear(nn.Module):
    """``y = x W^T + b`` where ``W`` (``n_out x n_in``) is zero outside a fixed ``mask``.

    The zeros stay exactly zero through training under any optimizer (Adam with weight decay
    included): on the ``sparse`` path they are not parameters at all (the only weight
    parameter is ``values``, one per edge in CSR order); on the ``masked`` path the parameter is
    the dense ``weight`` and its gradient is zero off the mask, so no optimizer state ever
    builds up there. ``count_params() = nnz + n_out`` on every path. Weights are initialised
    uniformly in ``±1/sqrt(fan_in)`` with ``fan_in = nnz / n_out`` (the mean in-degree: the
    sparse analogue of ``nn.Linear``'s default), identically on every path for a given seed.

    The path is fixed at construction (``auto``: ``choose_path``); ``set_path`` converts the
    parameters, so call it before creating an optimizer.

    Shapes: input ``B x n_in``, output ``B x n_out`` (on the ``sparse`` path the output is a
    transposed view, which the next sparse layer consumes without a copy).

    Example:
        >>> from dnc_sparse.patterns import adjacency
        >>> layer = SparseLinear(adjacency("basic", 64, 32, d_out=8, seed=0))
        >>> layer.count_params(), layer.density, layer(torch.randn(5, 64)).shape
        (544, 0.25, torch.Size([5, 32]))
    """

    crow: Tensor
    col: Tensor
    flat_index: Tensor
    perm_t: Tensor
    crow_t: Tensor
    col_t: Tensor
    mask_f: Tensor
    values: nn.Parameter
    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(self, mask: Tensor, bias: bool = True, path: str = "auto") -> None:
        super().__init__()
        if mask.dim() != 2 or mask.dtype != torch.bool:
            raise UserError("SparseLinear needs a 2-D bool mask (n_out x n_in)")
        _check_path(path)
        n_out, n_in = mask.shape
        nnz = int(mask.sum())
        if nnz == 0:
            raise UserError("SparseLinear: the mask has no edges")
        self.in_features, self.out_features, self.nnz = int(n_in), int(n_out), nnz
        rows, cols = mask.nonzero(as_tuple=True)  # row-major: CSR order
        self.register_buffer("crow", _crow(rows, n_out))
        self.register_buffer("col", cols.clone())
        self._structure()
        bound = 1.0 / math.sqrt(nnz / n_out)
        values = torch.empty(nnz).uniform_(-bound, bound)
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound)) if bias else None
        self.path = self._resolve(path)
        self._set_weights(values)
        self._register_load_state_dict_pre_hook(self._convert_state)

    # -- structure --------------------------------------------------------------------------
    def _structure(self) -> None:
        """Derived index tensors (not saved: rebuilt from ``crow``/``col``)."""
        n_out, n_in = self.out_features, self.in_features
        rows = torch.repeat_interleave(
            torch.arange(n_out, device=self.crow.device), self.crow.diff()
        )
        cols = self.col
        # W^T in CSR: edges sorted by (col, row); perm_t maps them to positions in `values`.
        perm_t = torch.argsort(cols * n_out + rows)
        self.register_buffer("flat_index", rows * n_in + cols, persistent=False)
        self.register_buffer("perm_t", perm_t, persistent=False)
        self.register_buffer("crow_t", _crow(cols[perm_t], n_in), persistent=False)
        self.register_buffer("col_t", rows[perm_t].clone(), persistent=False)

    def _resolve(self, path: str) -> str:
        full = self.nnz == self.in_features * self.out_features
        if path == "auto":
            return choose_path(self.in_features, self.out_features, self.nnz, self.crow.device)
        if full and path == "masked":
            return "dense"  # nothing to mask
        if path == "dense" and not full:
            raise UserError("SparseLinear path='dense' needs a full mask; use 'masked' or 'sparse'")
        return path

    def _set_weights(self, values: Tensor) -> None:
        """Hold ``values`` (``nnz``, CSR order) as this path's parameters."""
        for name in ("values", "weight", "mask_f"):
            self._parameters.pop(name, None)
            self._buffers.pop(name, None)
        if self.path == "sparse":
            self.values = nn.Parameter(values.detach().clone())
            return
        weight = torch.zeros(
            self.out_features * self.in_features, device=values.device, dtype=values.dtype
        )
        weight[self.flat_index] = values.detach()
        self.weight = nn.Parameter(weight.view(self.out_features, self.in_features))
        if self.path == "masked":
            self.register_buffer("mask_f", self._mask_float(), persistent=False)

    def _mask_float(self) -> Tensor:
        m = torch.zeros(
            self.out_features * self.in_features, device=self.col.device, dtype=self.weight.dtype
        )
        m[self.flat_index] = 1.0
        return m.view(self.out_features, self.in_features)

    def _convert_state(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Load a state saved on another path (``values`` <-> ``weight``)."""
        col = state_dict.get(prefix + "col")
        if col is not None and (
            col.shape != self.col.shape or not torch.equal(col.cpu(), self.col.cpu())
        ):
            # another pattern: adopt it, with placeholder weights the loader then overwrites
            self.col = col.clone().to(self.col.device)
            self.crow = state_dict[prefix + "crow"].clone().to(self.crow.device)
            self.nnz = int(self.col.numel())
            self._structure()
            self._set_weights(torch.zeros(self.nnz, device=self.col.device))
        if self.path == "sparse" and prefix + "weight" in state_dict:
            w = state_dict.pop(prefix + "weight")
            state_dict[prefix + "values"] = w.reshape(-1)[self.flat_index.to(w.device)]
        elif self.path != "sparse" and prefix + "values" in state_dict:
            v = state_dict.pop(prefix + "values")
            w = torch.zeros(self.out_features * self.in_features, dtype=v.dtype, device=v.device)
            w[self.flat_index.to(v.device)] = v
            state_dict[prefix + "weight"] = w.view(self.out_features, self.in_features)

    def set_path(self, path: str) -> None:
        """Switch the compute path (``auto`` re-chooses for the current device), keeping the
        weights. Parameters are replaced: create the optimizer afterwards."""
        _check_path(path)
        values = self.edge_values().detach()
        self.path = self._resolve(path)
        self._set_weights(values)

    # -- public ---------------------------------------------------------------------------------
    @property
    def density(self) -> float:
        return self.nnz / (self.in_features * self.out_features)

    @property
    def mask(self) -> Tensor:
        """The bool ``n_out x n_in`` connection pattern."""
        m = torch.zeros(
            self.out_features * self.in_features, dtype=torch.bool, device=self.col.device
        )
        m[self.flat_index] = True
        return m.view(self.out_features, self.in_features)

    def edge_values(self) -> Tensor:
        """The ``nnz`` weights on the edges, in CSR order."""
        if self.path == "sparse":
            return self.values
        return self.weight.reshape(-1)[self.flat_index]

    def dense_weight(self) -> Tensor:
        """The ``n_out x n_in`` weight, zeros off the mask (detached)."""
        if self.path != "sparse":
            return self.weight.detach()
        w = torch.zeros(
            self.out_features * self.in_features, device=self.values.device, dtype=self.values.dtype
        )
        w[self.flat_index] = self.values.detach()
        return w.view(self.out_features, self.in_features)

    def count_params(self) -> int:
        """Trainable parameters: the edges plus the biases."""
        return self.nnz + (self.out_features if self.bias is not None else 0)

    def forward(self, x: Tensor) -> Tensor:
        if self.path == "dense":
            return F.linear(x, self.weight, self.bias)
        if x.dim() != 2:
            lead = x.shape[:-1]
            return self.forward(x.reshape(-1, x.shape[-1])).reshape(*lead, self.out_features)
        if self.path == "masked":
            return _MaskedLinearFn.apply(x, self.weight, self.bias, self.mask_f)
        return _SparseLinearFn.apply(x, self.values, self.bias, self)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"density={self.density:.4g}, path={self.path}"
        )


def _check_path(path: str) -> None:
    if path not in PATHS:
        raise UserError(f"SparseLinear path={path!r}: choose one of {', '.join(PATHS)}")


def _crow(rows: Tensor, n_rows: int) -> Tensor:
    """CSR row pointers for sorted row indices."""
    counts = torch.bincount(rows, minlength=n_rows)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


__all__ = ["PATHS", "SparseLinear", "choose_path"]
