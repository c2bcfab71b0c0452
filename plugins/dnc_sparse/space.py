"""Pre-defined sparse MLPs (DESIGN §7): the MLP space plus a density per junction.

A candidate is an MLP of the ``mlp`` space (hidden layers, widths, activation, dropout,
training hyperparameters) whose junctions are sparse: junction ``i`` (``N_{i-1}`` left,
``N_i`` right neurons) gets a searched density ``density_i``, realised as the feasible
out-degree ``d_out_i`` nearest to it on a log scale (``d_in_i = N_{i-1} d_out_i / N_i`` an
integer dividing ``N_{i-1}``), and the connection ``pattern`` (clash-free, basic, random).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dnc_mlp.space import MLPSpace
from torch import nn

from dnc.plugins import Candidate, DataSpec, Suggest, TrainingBounds, UserError, suggest_training
from dnc.train.activations import ACTIVATIONS
from dnc_sparse.network import SparseMLP
from dnc_sparse.patterns import CLASH_FREE_TYPES, KINDS, nearest_out_degree

# DESIGN §7 (MNIST, 2 junctions): L2 1.1e-4 at 100% density, 5.5e-5 at 40%, 0 at 11%. As
# fractions of the dense default, interpolated linearly in the network density rho_net.
L2_BY_DENSITY = ((0.11, 0.0), (0.4, 0.5), (1.0, 1.0))


class SparseMLPSpace(MLPSpace):
    """MLPs with pre-defined sparse junctions.

    Parameters (group): ``num_hidden_layers``, ``hidden_{i}`` (core; widths from ``widths``, a
    set of multiples so that sparse out-degrees exist), ``density_{j}`` for every junction
    ``j = 0 .. num_hidden_layers`` (core; log-uniform in ``density``; with
    ``nondecreasing=True`` each junction's lower bound is the previous one's density: the
    research's guideline that later junctions want higher density), ``pattern``, ``activation``,
    ``dropout`` (arch), ``lr``, ``weight_decay``, ``batch_size`` (train).

    ``d_out_j = argmin over feasible d of |log(d / N_j) - log(density_j)|``. When the space
    knows the data's ``input_size`` and ``num_classes`` the candidate also carries the realised
    ``d_out_{j}``; otherwise they are realised when the network is built.

    The weight decay default (used while the train group is held) follows the density:
    ``default_weight_decay * f(rho_net)`` with ``f`` piecewise linear through ``l2_by_density``
    (DESIGN §7: 1.1e-4 dense, 5.5e-5 at 40%, 0 at 11%); ``rho_net`` is the realised network
    density when the sizes are known, else the mean of the junction densities.

    Example:
        >>> space = SparseMLPSpace(input_size=64, num_classes=10)
        >>> cand = space.reference_candidate()
        >>> cand["hidden_0"], cand["density_0"], cand["d_out_0"], cand["d_out_1"]
        (128, 1.0, 128, 10)
        >>> round(SparseMLPSpace.default_l2(0.4, 1.1e-4), 7)
        5.5e-05
    """

    name = "sparse_mlp"

    def __init__(
        self,
        hidden_layers: Sequence[int] = (0, 2),
        widths: Sequence[int] = (32, 64, 128, 256, 512),
        default_hidden_layers: int = 1,
        default_hidden_nodes: int = 128,
        density: Sequence[float] = (0.02, 1.0),
        default_density: float = 1.0,
        nondecreasing: bool = False,
        patterns: Sequence[str] = KINDS,
        pattern: str = "clash_free",
        clash_free_type: int = 1,
        dither: bool = False,
        target_c: int | None = None,
        pattern_seed: int = 0,
        input_size: int | None = None,
        num_classes: int | None = None,
        l2_by_density: Sequence[Sequence[float]] = L2_BY_DENSITY,
        path: str = "auto",
        activation: str = "relu",
        activations: Sequence[str] = ("relu", "tanh", "sigmoid", "elu"),
        dropout: float = 0.2,
        dropouts: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
        training: TrainingBounds | Mapping[str, Any] | None = None,
    ) -> None:
        self.widths_choices = tuple(int(w) for w in widths)
        self.density = (float(density[0]), float(density[1]))
        self.default_density = float(default_density)
        self.nondecreasing = bool(nondecreasing)
        self.patterns = tuple(patterns)
        self.pattern = pattern
        self.clash_free_type = int(clash_free_type)
        self.dither = bool(dither)
        self.target_c = None if target_c is None else int(target_c)
        self.pattern_seed = int(pattern_seed)
        self.input_size = None if input_size is None else int(input_size)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.l2_by_density = tuple((float(a), float(b)) for a, b in l2_by_density)
        self.path = path
        if training is None:
            training = TrainingBounds(default_weight_decay=1.1e-4)
        if not self.widths_choices:
            raise UserError("search_space.widths is empty: give at least one layer width")
        super().__init__(
            hidden_layers=hidden_layers,
            hidden_nodes=(min(self.widths_choices), max(self.widths_choices)),
            default_hidden_layers=default_hidden_layers,
            default_hidden_nodes=default_hidden_nodes,
            activation=activation, activations=activations, dropout=dropout, dropouts=dropouts,
            training=training,
        )

    # -- settings -------------------------------------------------------------------------------
    def check(self) -> None:
        super().check()
        if any(w < 1 for w in self.widths_choices) or len(set(self.widths_choices)) != len(
                self.widths_choices):
            raise UserError(f"search_space.widths={list(self.widths_choices)}: give distinct "
                            "positive integers")
        if self.default_hidden_nodes not in self.widths_choices:
            raise UserError(f"search_space.default_hidden_nodes={self.default_hidden_nodes} is "
                            f"not one of widths={list(self.widths_choices)}")
        lo, hi = self.density
        if not 0 < lo <= hi <= 1:
            raise UserError(f"search_space.density=[{lo}, {hi}] must satisfy 0 < low <= high <= 1")
        if not lo <= self.default_density <= hi:
            raise UserError(f"search_space.default_density={self.default_density} must lie in "
                            f"density=[{lo}, {hi}]")
        bad = [p for p in (self.pattern, *self.patterns) if p not in KINDS]
        if bad or not self.patterns:
            raise UserError(f"search_space.patterns: unknown pattern {bad[0] if bad else None!r}; "
                            f"choose from {', '.join(KINDS)}")
        if self.pattern not in self.patterns:
            raise UserError(f"search_space.pattern={self.pattern!r} is not one of "
                            f"patterns={list(self.patterns)}")
        if self.clash_free_type not in CLASH_FREE_TYPES:
            raise UserError(f"search_space.clash_free_type={self.clash_free_type}: choose 1, 2 "
                            "or 3")
        for key in ("input_size", "num_classes", "target_c"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise UserError(f"search_space.{key}={value}: must be a positive integer or null")
        xs = [a for a, _ in self.l2_by_density]
        if not xs or xs != sorted(xs) or not all(0 <= a <= 1 and f >= 0
                                                 for a, f in self.l2_by_density):
            raise UserError("search_space.l2_by_density: give [density, fraction] pairs with "
                            "increasing densities in [0, 1] and fractions >= 0")

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, suggest: Suggest) -> Candidate:
        lo, hi = self.hidden_layers
        n = suggest.int("num_hidden_layers", lo, hi, group="core",
                        default=min(max(self.default_hidden_layers, lo), hi))
        cand: Candidate = {"num_hidden_layers": n}
        for i in range(n):
            cand[f"hidden_{i}"] = suggest.categorical(
                f"hidden_{i}", self.widths_choices, group="core", default=self.default_hidden_nodes
            )
        sizes = self._sizes(self.widths(cand))
        low, previous = self.density[0], 0.0
        realised: list[float] = []
        for j in range(n + 1):
            rho = suggest.float(f"density_{j}", low, self.density[1], group="core",
                                default=min(max(self.default_density, low), self.density[1]),
                                log=True)
            cand[f"density_{j}"] = rho
            if sizes is not None:
                d = nearest_out_degree(sizes[j], sizes[j + 1], rho,
                                       at_least=previous if self.nondecreasing else 0.0)
                cand[f"d_out_{j}"] = d
                previous = d / sizes[j + 1]
                realised.append(previous)
            if self.nondecreasing:
                low = min(max(low, rho, previous), self.density[1])
        cand["pattern"] = suggest.categorical("pattern", self.patterns, group="arch",
                                              default=self.pattern)
        cand["activation"] = suggest.categorical("activation", self.activations, group="arch",
                                                 default=self.activation)
        cand["dropout"] = suggest.categorical("dropout", self.dropouts, group="arch",
                                              default=self.dropout)
        rho_net = (_network_density(sizes, [cand[f"d_out_{j}"] for j in range(n + 1)])
                   if sizes is not None else
                   sum(cand[f"density_{j}"] for j in range(n + 1)) / (n + 1))
        bounds = dataclasses.replace(
            self.training,
            default_weight_decay=self.default_l2(rho_net, self.training.default_weight_decay,
                                                 self.l2_by_density))
        cand.update(suggest_training(suggest, bounds))
        return cand

    @staticmethod
    def default_l2(rho_net: float, dense_l2: float,
                   anchors: Sequence[tuple[float, float]] = L2_BY_DENSITY) -> float:
        """``dense_l2 * f(rho_net)``, ``f`` piecewise linear through ``anchors`` (constant
        outside them)."""
        if rho_net <= anchors[0][0]:
            return dense_l2 * anchors[0][1]
        for (x0, f0), (x1, f1) in zip(anchors, anchors[1:], strict=False):
            if rho_net <= x1:
                return dense_l2 * (f0 + (rho_net - x0) / (x1 - x0) * (f1 - f0))
        return dense_l2 * anchors[-1][1]

    def _sizes(self, hidden: Sequence[int]) -> list[int] | None:
        if self.input_size is None or self.num_classes is None:
            return None
        return [self.input_size, *hidden, self.num_classes]

    # -- building -------------------------------------------------------------------------------
    def layout(self, candidate: Mapping[str, Any], data: DataSpec) -> tuple[list[int], list[int]]:
        """Layer sizes ``[N_0, ..., N_J]`` and out-degrees ``[d_out_1, ..., d_out_J]`` of
        ``candidate`` on ``data``."""
        n_in = math.prod(data.input_shape)
        for key, mine, theirs in (("input_size", self.input_size, n_in),
                                  ("num_classes", self.num_classes, data.num_classes)):
            if mine is not None and mine != theirs:
                raise UserError(f"search_space.{key}={mine} but the data has {theirs}; fix it "
                                f"or set it to null")
        sizes = [n_in, *self.widths(candidate), data.num_classes]
        d_out: list[int] = []
        previous = 0.0
        for j in range(len(sizes) - 1):
            if f"d_out_{j}" in candidate:
                d = int(candidate[f"d_out_{j}"])
            else:
                d = nearest_out_degree(sizes[j], sizes[j + 1], float(candidate[f"density_{j}"]),
                                       at_least=previous if self.nondecreasing else 0.0)
            d_out.append(d)
            previous = d / sizes[j + 1]
        return sizes, d_out

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        sizes, d_out = self.layout(candidate, data)
        return SparseMLP(
            sizes, d_out, kind=str(candidate.get("pattern", self.pattern)),
            activation=ACTIVATIONS[candidate.get("activation", self.activation)],
            dropout=float(candidate.get("dropout", self.dropout)), target_c=self.target_c,
            cf_type=self.clash_free_type, dither=self.dither, seed=self.pattern_seed,
            path=self.path,
        )

    def describe(self, candidate: Mapping[str, Any]) -> str:
        c = candidate
        n = int(c["num_hidden_layers"])
        dens = ",".join(f"{float(c[f'density_{j}']):.2g}" for j in range(n + 1))
        return (f"hidden {self.widths(c)} density [{dens}] {c.get('pattern', self.pattern)} "
                f"{c.get('activation', self.activation)} "
                f"drop {float(c.get('dropout', self.dropout)):g} lr {float(c['lr']):.2g} "
                f"wd {float(c['weight_decay']):.2g} bs {int(c['batch_size'])}")

    # -- grid and kernel ------------------------------------------------------------------------
    def grid_substages(self) -> Sequence[str]:
        return ("activation", "dropout", "pattern")

    def grid(self, substage: str, candidate: Mapping[str, Any]) -> list[Candidate]:
        if substage == "pattern":
            return [{**candidate, "pattern": p} for p in self.patterns]
        return super().grid(substage, candidate)

    def kernel_features(self) -> Sequence[Any]:
        """Ramp-kernel features: hidden layers as in the MLP space (total nodes and layer
        count), each junction's density on a log scale, the pattern, and the training
        hyperparameters."""
        from dnc.bo.features import Categorical, MLPHidden, Scalar

        t = self.training
        lo, hi = self.density
        return (
            MLPHidden(layers=self.hidden_layers, nodes=self.hidden_nodes),
            *(Scalar(f"density_{j}", lo, hi, log=True) for j in range(self.hidden_layers[1] + 1)
              if hi > lo),
            Categorical("pattern", self.patterns),
            Categorical("activation", self.activations),
            Categorical("dropout", self.dropouts),
            Scalar("lr", *t.lr, log=True),
            Scalar("weight_decay", *t.weight_decay, log=True, zero_at_lower=True),
            Scalar("batch_size", *t.batch_size),
        )


def _network_density(sizes: Sequence[int], d_out: Sequence[int]) -> float:
    edges = sum(n * d for n, d in zip(sizes[:-1], d_out, strict=True))
    return edges / sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


__all__ = ["L2_BY_DENSITY", "SparseMLPSpace"]
