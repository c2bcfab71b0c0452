"""One hidden layer whose width is searched on a log scale, with a choice of activation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from dnc.plugins import Candidate, DataSpec, SearchSpace, Suggest, UserError, suggest_training


class TinySpace(SearchSpace):
    name = "tiny"

    def __init__(
        self, width: Sequence[int] = (4, 256), activations: Sequence[str] = ("relu", "tanh")
    ):
        self.width = (int(width[0]), int(width[1]))
        self.activations = tuple(activations)
        if not 1 <= self.width[0] <= self.width[1]:
            raise UserError(f"search_space.width={list(width)}: need 1 <= low <= high")

    def sample(self, suggest: Suggest) -> Candidate:
        return {
            "width": suggest.int("width", *self.width, group="core", default=32, log=True),
            "activation": suggest.categorical(
                "activation", self.activations, group="arch", default=self.activations[0]
            ),
            **suggest_training(suggest),
        }

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[candidate["activation"]]
        n_in = math.prod(data.input_shape)
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_in, candidate["width"]),
            act(),
            nn.Linear(candidate["width"], data.num_classes),
        )

    def grid_substages(self) -> Sequence[str]:
        return ("activation",)

    def grid(self, substage: str, candidate: Mapping[str, Any]) -> list[Candidate]:
        if substage == "activation":
            return [{**candidate, "activation": a} for a in self.activations]
        return super().grid(substage, candidate)
