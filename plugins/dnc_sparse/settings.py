"""The sparse-MLP space's settings groups: ``search_space.core``, ``search_space.sparsity`` and
``search_space.arch`` (``search_space.training`` is ``dnc.plugins.TrainingBounds``).

Each group is a frozen dataclass that normalises and checks its own fields (lists become tuples,
numbers get their type) and names the config key in its ``UserError``.

Example:
    >>> JunctionSparsity(density=[0.1, 1.0], default_density=0.5).density
    (0.1, 1.0)
    >>> SparseMLPCore(widths=[32, 32])
    Traceback (most recent call last):
    ...
    dnc.plugins.UserError: search_space.core.widths=[32, 32]: give distinct positive integers
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dnc.plugins import UserError, as_bounds, as_tuple
from dnc.train.activations import check_activations

# DESIGN §7 (MNIST, 2 junctions): L2 1.1e-4 at 100% density, 5.5e-5 at 40%, 0 at 11%. As
# fractions of the dense default, interpolated linearly in the network density rho_net.
L2_BY_DENSITY = ((0.11, 0.0), (0.4, 0.5), (1.0, 1.0))

KINDS = ("random", "basic", "clash_free")
"""Connection patterns of a junction (``dnc_sparse.patterns``)."""
CLASH_FREE_TYPES = (1, 2, 3)
PATHS = ("auto", "dense", "masked", "sparse")
"""Compute paths of ``dnc_sparse.SparseLinear``."""


@dataclass(frozen=True)
class SparseMLPCore:
    """The layers: ``hidden_layers`` in ``[low, high]``, each of a width from ``widths`` (a set
    of multiples, so that sparse out-degrees exist); the defaults give the reference network.

    ``input_size`` and ``num_classes`` (``N_0`` and ``N_J``; ``None``: unknown until the
    network is built) let each candidate carry its realised out-degrees ``d_out_{j}``.
    """

    hidden_layers: tuple[int, int] = (0, 2)
    widths: tuple[int, ...] = (32, 64, 128, 256, 512)
    default_hidden_layers: int = 1
    default_hidden_nodes: int = 128
    input_size: int | None = None
    num_classes: int | None = None

    def __post_init__(self) -> None:
        key = "search_space.core."
        _set(
            self,
            hidden_layers=as_bounds(int, self.hidden_layers, key + "hidden_layers"),
            widths=as_tuple(int, self.widths, key + "widths"),
            default_hidden_layers=int(self.default_hidden_layers),
            default_hidden_nodes=int(self.default_hidden_nodes),
            input_size=None if self.input_size is None else int(self.input_size),
            num_classes=None if self.num_classes is None else int(self.num_classes),
        )
        lo, hi = self.hidden_layers
        if not 0 <= lo <= hi:
            raise UserError(f"{key}hidden_layers=[{lo}, {hi}] must satisfy 0 <= low <= high")
        if not self.widths:
            raise UserError(f"{key}widths is empty: give at least one layer width")
        if min(self.widths) < 1 or len(set(self.widths)) != len(self.widths):
            raise UserError(f"{key}widths={list(self.widths)}: give distinct positive integers")
        if self.default_hidden_nodes not in self.widths:
            raise UserError(
                f"{key}default_hidden_nodes={self.default_hidden_nodes} is not one of "
                f"widths={list(self.widths)}"
            )
        for name in ("input_size", "num_classes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{key}{name}={value}: must be a positive integer or null")


@dataclass(frozen=True)
class JunctionSparsity:
    """The density of each junction and its connection pattern (``dnc_sparse.patterns``).

    ``density_{j}`` is log-uniform in ``density`` (``nondecreasing``: each junction's lower
    bound is the previous one's density); ``pattern`` (one of ``patterns``) is held until the
    grid's ``pattern`` sub-stage. Clash-free patterns use ``clash_free_type`` (1, 2 or 3),
    ``dither`` and ``target_c`` clocks per junction (``None``: the smallest feasible);
    ``pattern_seed`` fixes random choices. ``path``: the sparse layers' compute path.
    ``l2_by_density``: ``(density, fraction)`` anchors of the weight decay default, as a
    fraction of the dense default, piecewise linear in the network density.
    """

    density: tuple[float, float] = (0.02, 1.0)
    default_density: float = 1.0
    nondecreasing: bool = False
    patterns: tuple[str, ...] = KINDS
    pattern: str = "clash_free"
    clash_free_type: int = 1
    dither: bool = False
    target_c: int | None = None
    pattern_seed: int = 0
    path: str = "auto"
    l2_by_density: tuple[tuple[float, float], ...] = L2_BY_DENSITY

    def __post_init__(self) -> None:
        key = "search_space.sparsity."
        for name in ("nondecreasing", "dither"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{key}{name}={getattr(self, name)!r}: use true or false")
        anchors = tuple(as_tuple(float, p, key + "l2_by_density") for p in self.l2_by_density)
        _set(
            self,
            density=as_bounds(float, self.density, key + "density"),
            default_density=float(self.default_density),
            patterns=as_tuple(str, self.patterns, key + "patterns"),
            pattern=str(self.pattern),
            clash_free_type=int(self.clash_free_type),
            target_c=None if self.target_c is None else int(self.target_c),
            pattern_seed=int(self.pattern_seed),
            path=str(self.path),
            l2_by_density=anchors,
        )
        lo, hi = self.density
        if not 0 < lo <= hi <= 1:
            raise UserError(f"{key}density=[{lo}, {hi}] must satisfy 0 < low <= high <= 1")
        if not lo <= self.default_density <= hi:
            raise UserError(
                f"{key}default_density={self.default_density} must lie in density=[{lo}, {hi}]"
            )
        bad = [p for p in (self.pattern, *self.patterns) if p not in KINDS]
        if bad or not self.patterns:
            raise UserError(
                f"{key}patterns: unknown pattern {bad[0] if bad else None!r}; "
                f"choose from {', '.join(KINDS)}"
            )
        if self.pattern not in self.patterns:
            raise UserError(
                f"{key}pattern={self.pattern!r} is not one of patterns={list(self.patterns)}"
            )
        if self.clash_free_type not in CLASH_FREE_TYPES:
            raise UserError(f"{key}clash_free_type={self.clash_free_type}: choose 1, 2 or 3")
        if self.target_c is not None and self.target_c < 1:
            raise UserError(f"{key}target_c={self.target_c}: must be a positive integer or null")
        if self.path not in PATHS:
            raise UserError(f"{key}path={self.path!r}: choose one of {', '.join(PATHS)}")
        pairs = bool(anchors) and all(len(p) == 2 for p in anchors)
        if not (
            pairs
            and [a for a, _ in anchors] == sorted(a for a, _ in anchors)
            and all(0 <= a <= 1 and f >= 0 for a, f in anchors)
        ):
            raise UserError(
                f"{key}l2_by_density: give [density, fraction] pairs with increasing densities "
                "in [0, 1] and fractions >= 0"
            )


@dataclass(frozen=True)
class SparseMLPArch:
    """The rest of the architecture: ``activation`` and ``dropout`` (the probability after each
    hidden layer), held until the grid stage tries ``activations`` and ``dropouts``."""

    activation: str = "relu"
    activations: tuple[str, ...] = ("relu", "tanh", "sigmoid", "elu")
    dropout: float = 0.2
    dropouts: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)

    def __post_init__(self) -> None:
        key = "search_space.arch."
        _set(
            self,
            activation=str(self.activation),
            activations=as_tuple(str, self.activations, key + "activations"),
            dropout=float(self.dropout),
            dropouts=as_tuple(float, self.dropouts, key + "dropouts"),
        )
        check_activations((self.activation,), key + "activation")
        check_activations(self.activations, key + "activations")
        if not all(0.0 <= p < 1.0 for p in (self.dropout, *self.dropouts)):
            raise UserError(
                f"{key}dropout(s) must lie in [0, 1), got {[self.dropout, *self.dropouts]}"
            )


def _set(settings: object, **values: Any) -> None:
    """Store normalised field values on a frozen dataclass (from its ``__post_init__``)."""
    for name, value in values.items():
        object.__setattr__(settings, name, value)


__all__ = ["L2_BY_DENSITY", "JunctionSparsity", "SparseMLPArch", "SparseMLPCore"]
