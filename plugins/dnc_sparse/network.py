"""A multilayer perceptron whose junctions are pre-defined sparse (``SparseLinear``) layers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dnc.plugins import UserError
from dnc_sparse.layer import SparseLinear
from dnc_sparse.patterns import CLASH_FREE_TYPES, KINDS, adjacency, feasible_out_degrees


def junction_clocks(layers: Sequence[int], d_out: Sequence[int]) -> list[int]:
    """Every clock count ``C`` for which the junction-pipelined hardware of DESIGN §7 is
    feasible, ascending: ``z_i = |W_i| / C`` must make ``N_{i-1}/z_i``, ``z_i/d_out_i`` and
    ``z_i/d_in_i`` integers, i.e. ``C`` divides every ``N_i`` and is a multiple of every
    ``d_out_i``.

    Example:
        >>> junction_clocks([1024, 64, 32], [4, 16])
        [16, 32]
    """
    g = math.gcd(*layers)
    step = math.lcm(*d_out)
    return [c for c in range(step, g + 1, step) if g % c == 0]


def junction_banks(
    layers: Sequence[int], d_out: Sequence[int], target_c: int | None = None
) -> list[int]:
    """Memory banks ``z_i`` per junction for clash-free patterns.

    ``z_i = |W_i| / C`` with ``C = target_c`` when that is feasible, else the smallest feasible
    ``C`` (``junction_clocks``); when no ``C`` is feasible, ``z_i = d_in_i`` (which divides
    ``N_{i-1}``, so the pattern exists; only the hardware mapping is then infeasible).

    Example:
        >>> junction_banks([1024, 64, 32], [4, 16], target_c=32)
        [128, 32]
    """
    edges = [n * d for n, d in zip(layers[:-1], d_out, strict=True)]
    clocks = junction_clocks(layers, d_out)
    if clocks:
        c = target_c if target_c in clocks else clocks[0]
        return [w // c for w in edges]
    return [w // n for w, n in zip(edges, layers[1:], strict=True)]


class SparseMLP(nn.Module):
    """``Flatten -> [SparseLinear -> activation -> dropout] x hidden -> SparseLinear``.

    Junction ``i`` joins ``layers[i]`` to ``layers[i+1]`` neurons with out-degree ``d_out[i]``
    (density ``d_out[i] / layers[i+1]``) in the pattern ``kind``. Zeros stay zero through
    training; ``count_params()`` counts edges and biases only, so
    ``count_params() = sum_i (N_{i-1} d_out_i + N_i)``.

    Example:
        >>> net = SparseMLP([64, 32, 10], [8, 5], kind="basic")
        >>> net.count_params(), round(net.density, 3), net(torch.randn(2, 1, 8, 8)).shape
        (714, 0.284, torch.Size([2, 10]))
    """

    def __init__(
        self,
        layers: Sequence[int],
        d_out: Sequence[int],
        *,
        kind: str = "clash_free",
        activation: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0,
        target_c: int | None = None,
        cf_type: int = 1,
        dither: bool = False,
        seed: int = 0,
        path: str = "auto",
    ) -> None:
        super().__init__()
        self.layers = tuple(int(n) for n in layers)
        self.d_out = tuple(int(d) for d in d_out)
        if len(self.layers) < 2 or len(self.d_out) != len(self.layers) - 1:
            raise UserError(
                f"SparseMLP: {len(self.layers)} layer sizes need {len(self.layers) - 1} "
                f"out-degrees, got {len(self.d_out)}"
            )
        if kind not in KINDS:
            raise UserError(f"sparse pattern kind {kind!r}: choose one of {', '.join(KINDS)}")
        if cf_type not in CLASH_FREE_TYPES:
            raise UserError(f"clash-free type {cf_type}: choose 1, 2 or 3")
        self.kind = kind
        self.z = tuple(junction_banks(self.layers, self.d_out, target_c)) if kind == "clash_free" \
            else tuple(0 for _ in self.d_out)
        modules: list[nn.Module] = [nn.Flatten()]
        last = len(self.d_out) - 1
        for i, (n_left, n_right, d) in enumerate(zip(self.layers[:-1], self.layers[1:], self.d_out,
                                                    strict=True)):
            if kind != "random" and d not in feasible_out_degrees(n_left, n_right):
                raise UserError(
                    f"junction {i + 1} ({n_left} -> {n_right}): d_out={d} is infeasible; "
                    f"choose from {feasible_out_degrees(n_left, n_right)}"
                )
            mask = adjacency(kind, n_left, n_right, d, z=self.z[i] or None, seed=seed * 1009 + i,
                             cf_type=cf_type, dither=dither)
            modules.append(SparseLinear(mask, path=path))
            if i < last:
                modules.append(activation())
                if dropout > 0:
                    modules.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*modules)

    @property
    def junctions(self) -> list[SparseLinear]:
        return [m for m in self.net if isinstance(m, SparseLinear)]

    @property
    def d_in(self) -> tuple[int, ...]:
        return tuple(n * d // r for n, d, r in zip(self.layers[:-1], self.d_out, self.layers[1:],
                                                  strict=True))

    @property
    def density(self) -> float:
        """``rho_net = sum_i |W_i| / sum_i N_{i-1} N_i``."""
        edges = sum(n * d for n, d in zip(self.layers[:-1], self.d_out, strict=True))
        return edges / sum(a * b for a, b in zip(self.layers[:-1], self.layers[1:], strict=True))

    def count_params(self) -> int:
        return sum(j.count_params() for j in self.junctions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


__all__ = ["SparseMLP", "junction_banks", "junction_clocks"]
