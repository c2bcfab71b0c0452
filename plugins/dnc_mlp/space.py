"""Multilayer perceptrons: 0-2 hidden layers of 20-400 nodes (DESIGN §3, MLP space)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dnc.plugins import (
    Candidate,
    DataSpec,
    SearchSpace,
    Suggest,
    TrainingBounds,
    UserError,
    settings_from,
    suggest_training,
)
from dnc.train.activations import activation, check_activations

if TYPE_CHECKING:
    from torch import nn


class MLPSpace(SearchSpace):
    """MLPs with a searched number of hidden layers and nodes per layer.

    Parameters (group): ``num_hidden_layers`` (core), ``hidden_{i}`` (core),
    ``activation`` and ``dropout`` (arch; held at their defaults until a grid stage tunes them),
    ``lr``, ``weight_decay``, ``batch_size`` (train).

    Example:
        >>> space = MLPSpace(hidden_layers=(0, 2), hidden_nodes=(20, 400))
        >>> cand = space.reference_candidate()
        >>> cand["num_hidden_layers"], cand["hidden_0"]
        (1, 200)
    """

    name = "mlp"

    def __init__(
        self,
        hidden_layers: Sequence[int] = (0, 2),
        hidden_nodes: Sequence[int] = (20, 400),
        default_hidden_layers: int = 1,
        default_hidden_nodes: int = 200,
        activation: str = "relu",
        activations: Sequence[str] = ("relu", "tanh", "sigmoid", "elu"),
        dropout: float = 0.2,
        dropouts: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
        training: TrainingBounds | Mapping[str, Any] | None = None,
    ) -> None:
        self.hidden_layers = (int(hidden_layers[0]), int(hidden_layers[1]))
        self.hidden_nodes = (int(hidden_nodes[0]), int(hidden_nodes[1]))
        self.default_hidden_layers = int(default_hidden_layers)
        self.default_hidden_nodes = int(default_hidden_nodes)
        self.activation = activation
        self.activations = tuple(activations)
        self.dropout = float(dropout)
        self.dropouts = tuple(float(p) for p in dropouts)
        self.training = settings_from(TrainingBounds, training, "search_space.training")
        self.check()

    def check(self) -> None:
        lo, hi = self.hidden_layers
        if not 0 <= lo <= hi:
            raise UserError(
                f"search_space.hidden_layers=[{lo}, {hi}] must satisfy 0 <= low <= high"
            )
        lo_n, hi_n = self.hidden_nodes
        if not 1 <= lo_n <= hi_n:
            raise UserError(
                f"search_space.hidden_nodes=[{lo_n}, {hi_n}] must satisfy 1 <= low <= high"
            )
        check_activations((self.activation, *self.activations))
        if not all(0.0 <= p < 1.0 for p in (self.dropout, *self.dropouts)):
            raise UserError("search_space dropout probabilities must lie in [0, 1)")
        self.training.check()

    def sample(self, suggest: Suggest) -> Candidate:
        lo, hi = self.hidden_layers
        default_layers = min(max(self.default_hidden_layers, lo), hi)
        n = suggest.int("num_hidden_layers", lo, hi, group="core", default=default_layers)
        cand: Candidate = {"num_hidden_layers": n}
        for i in range(n):
            cand[f"hidden_{i}"] = suggest.int(
                f"hidden_{i}",
                *self.hidden_nodes,
                group="core",
                default=min(
                    max(self.default_hidden_nodes, self.hidden_nodes[0]), self.hidden_nodes[1]
                ),
            )
        cand["activation"] = suggest.categorical(
            "activation", self.activations, group="arch", default=self.activation
        )
        cand["dropout"] = suggest.categorical(
            "dropout", self.dropouts, group="arch", default=self.dropout
        )
        cand.update(suggest_training(suggest, self.training))
        return cand

    @staticmethod
    def widths(candidate: Mapping[str, Any]) -> list[int]:
        """Hidden-layer widths of a candidate."""
        return [int(candidate[f"hidden_{i}"]) for i in range(int(candidate["num_hidden_layers"]))]

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        from torch import nn  # only when a network is built: checking settings stays fast

        act = activation(candidate.get("activation", self.activation))
        p = float(candidate.get("dropout", self.dropout))
        layers: list[nn.Module] = [nn.Flatten()]
        n_in = math.prod(data.input_shape)
        for width in self.widths(candidate):
            layers += [nn.Linear(n_in, width), act()]
            if p > 0:
                layers.append(nn.Dropout(p))
            n_in = width
        layers.append(nn.Linear(n_in, data.num_classes))
        return nn.Sequential(*layers)

    def describe(self, candidate: Mapping[str, Any]) -> str:
        c = candidate
        return (
            f"hidden {self.widths(c)} {c.get('activation', self.activation)} "
            f"drop {float(c.get('dropout', self.dropout)):g} lr {float(c['lr']):.2g} "
            f"wd {float(c['weight_decay']):.2g} bs {int(c['batch_size'])}"
        )

    def kernel_features(self) -> Sequence[Any]:
        """What the ramp kernel compares (``dnc.bo``): hidden layers by total nodes (root 2) and
        layer count; lr and weight decay in ``log10`` (weight decay 0 at its lower bound); batch
        size; the activation as a categorical choice and the dropout probability as a number
        over the grid's range, so grid-stage variants are told apart. A stage compares only the
        features it searches."""
        from dnc.bo.features import Categorical, MLPHidden, Scalar

        t = self.training
        dropouts = (self.dropout, *self.dropouts)
        return (
            MLPHidden(
                count="num_hidden_layers",
                widths="hidden_{i}",
                layers=self.hidden_layers,
                nodes=self.hidden_nodes,
            ),
            Scalar("lr", *t.lr, log=True),
            Scalar("weight_decay", *t.weight_decay, log=True, zero_at_lower=True),
            Scalar("batch_size", *t.batch_size),
            Categorical("activation", tuple(dict.fromkeys((self.activation, *self.activations)))),
            Scalar("dropout", min(dropouts), max(dropouts)),
        )

    def grid_substages(self) -> Sequence[str]:
        return ("activation", "dropout")

    def grid(self, substage: str, candidate: Mapping[str, Any]) -> list[Candidate]:
        if substage == "activation":
            return [{**candidate, "activation": a} for a in self.activations]
        if substage == "dropout":
            return [{**candidate, "dropout": p} for p in self.dropouts]
        return super().grid(substage, candidate)
