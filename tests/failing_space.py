"""A search space whose networks cannot be built (as a plugin with a bug): every trial fails.
The command-line tests point ``search_space._target_`` here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dnc_mlp.space import MLPSpace
from torch import nn

from dnc.plugins import DataSpec


class FailingMLP(MLPSpace):
    name = "failing"

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        return 0.5 + None  # type: ignore[operator,return-value]
