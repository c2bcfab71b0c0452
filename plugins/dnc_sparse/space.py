"""Pre-defined sparse MLPs (DESIGN §7): the MLP space plus a density per junction.

A candidate is an MLP of the ``mlp`` space (hidden layers, widths, activation, dropout,
training hyperparameters) whose junctions are sparse: junction ``i`` (``N_{i-1}`` left,
``N_i`` right neurons) gets a searched density ``density_i``, realised as the feasible
out-degree ``d_out_i`` nearest to it on a log scale (``d_in_i = N_{i-1} d_out_i / N_i`` an
integer dividing ``N_{i-1}``), and the connection ``pattern`` (clash-free, basic, random).

The space's settings come in groups (``dnc_sparse.settings``): ``core`` (``SparseMLPCore``),
``sparsity`` (``JunctionSparsity``), ``arch`` (``SparseMLPArch``) and ``training``
(``dnc.plugins.TrainingBounds``); on the command line, e.g.
``search_space.sparsity.nondecreasing=true``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dnc_mlp.space import MLPSpace

from dnc.plugins import (
    Candidate,
    DataSpec,
    Suggest,
    TrainingBounds,
    UserError,
    settings_from,
    suggest_training,
)
from dnc.train.activations import activation
from dnc_sparse.patterns import nearest_out_degree
from dnc_sparse.settings import L2_BY_DENSITY, JunctionSparsity, SparseMLPArch, SparseMLPCore

if TYPE_CHECKING:
    from torch import nn

SPARSE_TRAINING = TrainingBounds(default_weight_decay=1.1e-4)
"""The training bounds when none are given: the dense default weight decay of DESIGN §7."""


class SparseMLPSpace(MLPSpace):
    """MLPs with pre-defined sparse junctions.

    Parameters (group): ``num_hidden_layers``, ``hidden_{i}`` (core; widths from
    ``core.widths``, a set of multiples so that sparse out-degrees exist), ``density_{j}`` for
    every junction ``j = 0 .. num_hidden_layers`` (core; log-uniform in ``sparsity.density``;
    with ``sparsity.nondecreasing`` each junction's lower bound is the previous one's density:
    the research's guideline that later junctions want higher density), ``pattern``,
    ``activation``, ``dropout`` (arch), ``lr``, ``weight_decay``, ``batch_size`` (train).

    Each settings group is a config mapping, an instance of its dataclass, or ``None`` (its
    defaults; ``training``: ``SPARSE_TRAINING``); an unknown key is a ``UserError`` naming it
    and the valid ones.

    ``d_out_j = argmin over feasible d of |log(d / N_j) - log(density_j)|``. When the space
    knows the data's ``core.input_size`` and ``core.num_classes`` the candidate also carries the
    realised ``d_out_{j}``; otherwise they are realised when the network is built.

    The weight decay default (used while the train group is held) follows the density:
    ``default_weight_decay * f(rho_net)`` with ``f`` piecewise linear through
    ``sparsity.l2_by_density`` (DESIGN §7: 1.1e-4 dense, 5.5e-5 at 40%, 0 at 11%); ``rho_net``
    is the realised network density when the sizes are known, else the mean of the junction
    densities.

    Example:
        >>> space = SparseMLPSpace(core=SparseMLPCore(input_size=64, num_classes=10))
        >>> cand = space.reference_candidate()
        >>> cand["hidden_0"], cand["density_0"], cand["d_out_0"], cand["d_out_1"]
        (128, 1.0, 128, 10)
        >>> round(SparseMLPSpace.default_l2(0.4, 1.1e-4), 7)
        5.5e-05
    """

    name = "sparse_mlp"

    def __init__(
        self,
        *,
        core: SparseMLPCore | Mapping[str, Any] | None = None,
        sparsity: JunctionSparsity | Mapping[str, Any] | None = None,
        arch: SparseMLPArch | Mapping[str, Any] | None = None,
        training: TrainingBounds | Mapping[str, Any] | None = None,
    ) -> None:
        self.core = settings_from(SparseMLPCore, core, "search_space.core")
        self.sparsity = settings_from(JunctionSparsity, sparsity, "search_space.sparsity")
        self.arch = settings_from(SparseMLPArch, arch, "search_space.arch")
        c, a = self.core, self.arch
        # MLPSpace's methods (check, the activation and dropout grids) read its flat attributes
        super().__init__(
            hidden_layers=c.hidden_layers,
            hidden_nodes=(min(c.widths), max(c.widths)),
            default_hidden_layers=c.default_hidden_layers,
            default_hidden_nodes=c.default_hidden_nodes,
            activation=a.activation,
            activations=a.activations,
            dropout=a.dropout,
            dropouts=a.dropouts,
            training=SPARSE_TRAINING if training is None else training,
        )

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, suggest: Suggest) -> Candidate:
        core, sp, a = self.core, self.sparsity, self.arch
        lo, hi = core.hidden_layers
        n = suggest.int(
            "num_hidden_layers",
            lo,
            hi,
            group="core",
            default=min(max(core.default_hidden_layers, lo), hi),
        )
        cand: Candidate = {"num_hidden_layers": n}
        for i in range(n):
            cand[f"hidden_{i}"] = suggest.categorical(
                f"hidden_{i}", core.widths, group="core", default=core.default_hidden_nodes
            )
        sizes = self._sizes(self.widths(cand))
        (low, high), previous = sp.density, 0.0
        for j in range(n + 1):
            rho = suggest.float(
                f"density_{j}",
                low,
                high,
                group="core",
                default=min(max(sp.default_density, low), high),
                log=True,
            )
            cand[f"density_{j}"] = rho
            if sizes is not None:
                d = nearest_out_degree(
                    sizes[j], sizes[j + 1], rho, at_least=previous if sp.nondecreasing else 0.0
                )
                cand[f"d_out_{j}"] = d
                previous = d / sizes[j + 1]
            if sp.nondecreasing:
                low = min(max(low, rho, previous), high)
        cand["pattern"] = suggest.categorical(
            "pattern", sp.patterns, group="arch", default=sp.pattern
        )
        cand["activation"] = suggest.categorical(
            "activation", a.activations, group="arch", default=a.activation
        )
        cand["dropout"] = suggest.categorical(
            "dropout", a.dropouts, group="arch", default=a.dropout
        )
        rho_net = (
            _network_density(sizes, [cand[f"d_out_{j}"] for j in range(n + 1)])
            if sizes is not None
            else sum(cand[f"density_{j}"] for j in range(n + 1)) / (n + 1)
        )
        dense_l2 = self.training.default_weight_decay
        bounds = dataclasses.replace(
            self.training, default_weight_decay=self.default_l2(rho_net, dense_l2, sp.l2_by_density)
        )
        cand.update(suggest_training(suggest, bounds))
        return cand

    @staticmethod
    def default_l2(
        rho_net: float, dense_l2: float, anchors: Sequence[tuple[float, float]] = L2_BY_DENSITY
    ) -> float:
        """``dense_l2 * f(rho_net)``, ``f`` piecewise linear through ``anchors`` (constant
        outside them)."""
        if rho_net <= anchors[0][0]:
            return dense_l2 * anchors[0][1]
        for (x0, f0), (x1, f1) in zip(anchors, anchors[1:], strict=False):
            if rho_net <= x1:
                return dense_l2 * (f0 + (rho_net - x0) / (x1 - x0) * (f1 - f0))
        return dense_l2 * anchors[-1][1]

    def _sizes(self, hidden: Sequence[int]) -> list[int] | None:
        if self.core.input_size is None or self.core.num_classes is None:
            return None
        return [self.core.input_size, *hidden, self.core.num_classes]

    # -- building -------------------------------------------------------------------------------
    def layout(self, candidate: Mapping[str, Any], data: DataSpec) -> tuple[list[int], list[int]]:
        """Layer sizes ``[N_0, ..., N_J]`` and out-degrees ``[d_out_1, ..., d_out_J]`` of
        ``candidate`` on ``data``."""
        n_in, core = math.prod(data.input_shape), self.core
        for key, mine, theirs in (
            ("input_size", core.input_size, n_in),
            ("num_classes", core.num_classes, data.num_classes),
        ):
            if mine is not None and mine != theirs:
                raise UserError(
                    f"search_space.core.{key}={mine} but the data has {theirs}; "
                    "fix it or set it to null"
                )
        sizes = [n_in, *self.widths(candidate), data.num_classes]
        d_out: list[int] = []
        previous = 0.0
        for j in range(len(sizes) - 1):
            if f"d_out_{j}" in candidate:
                d = int(candidate[f"d_out_{j}"])
            else:
                d = nearest_out_degree(
                    sizes[j],
                    sizes[j + 1],
                    float(candidate[f"density_{j}"]),
                    at_least=previous if self.sparsity.nondecreasing else 0.0,
                )
            d_out.append(d)
            previous = d / sizes[j + 1]
        return sizes, d_out

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        from dnc_sparse.network import SparseMLP  # torch: only when a network is built

        sizes, d_out = self.layout(candidate, data)
        sp, a = self.sparsity, self.arch
        return SparseMLP(
            sizes,
            d_out,
            kind=str(candidate.get("pattern", sp.pattern)),
            activation=activation(candidate.get("activation", a.activation)),
            dropout=float(candidate.get("dropout", a.dropout)),
            target_c=sp.target_c,
            cf_type=sp.clash_free_type,
            dither=sp.dither,
            seed=sp.pattern_seed,
            path=sp.path,
        )

    def describe(self, candidate: Mapping[str, Any]) -> str:
        c, a = candidate, self.arch
        n = int(c["num_hidden_layers"])
        dens = ",".join(f"{float(c[f'density_{j}']):.2g}" for j in range(n + 1))
        return (
            f"hidden {self.widths(c)} density [{dens}] {c.get('pattern', self.sparsity.pattern)} "
            f"{c.get('activation', a.activation)} drop {float(c.get('dropout', a.dropout)):g} "
            f"lr {float(c['lr']):.2g} wd {float(c['weight_decay']):.2g} bs {int(c['batch_size'])}"
        )

    # -- grid and kernel ------------------------------------------------------------------------
    def grid_substages(self) -> Sequence[str]:
        return ("activation", "dropout", "pattern")

    def grid(self, substage: str, candidate: Mapping[str, Any]) -> list[Candidate]:
        if substage == "pattern":
            return [{**candidate, "pattern": p} for p in self.sparsity.patterns]
        return super().grid(substage, candidate)

    def kernel_features(self) -> Sequence[Any]:
        """Ramp-kernel features: hidden layers as in the MLP space (total nodes and layer
        count), each junction's density on a log scale, the pattern, and the training
        hyperparameters."""
        from dnc.bo.features import Categorical, MLPHidden, Scalar

        t, layers = self.training, self.core.hidden_layers
        lo, hi = self.sparsity.density
        return (
            MLPHidden(layers=layers, nodes=self.hidden_nodes),
            *(Scalar(f"density_{j}", lo, hi, log=True) for j in range(layers[1] + 1) if hi > lo),
            Categorical("pattern", self.sparsity.patterns),
            Categorical("activation", self.arch.activations),
            Categorical("dropout", self.arch.dropouts),
            Scalar("lr", *t.lr, log=True),
            Scalar("weight_decay", *t.weight_decay, log=True, zero_at_lower=True),
            Scalar("batch_size", *t.batch_size),
        )


def _network_density(sizes: Sequence[int], d_out: Sequence[int]) -> float:
    edges = sum(n * d for n, d in zip(sizes[:-1], d_out, strict=True))
    return edges / sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


__all__ = [
    "L2_BY_DENSITY",
    "SPARSE_TRAINING",
    "JunctionSparsity",
    "SparseMLPArch",
    "SparseMLPCore",
    "SparseMLPSpace",
]
