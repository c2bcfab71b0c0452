"""The activation functions every built-in search space may use, by name (torch is imported
only when a network is built, so checking settings stays fast)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dnc.plugins import UserError

if TYPE_CHECKING:
    from torch import nn

ACTIVATIONS: dict[str, str] = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
}
"""Activation name -> its ``torch.nn`` class name."""


def activation(name: str) -> type[nn.Module]:
    """The ``torch.nn`` module class of the activation called ``name``."""
    from torch import nn

    check_activations((name,))
    cls: type[nn.Module] = getattr(nn, ACTIVATIONS[name])
    return cls


def check_activations(names: Iterable[str], key: str = "search_space.activation") -> None:
    """Raise ``UserError`` naming the first unknown activation (as setting ``key``) and the
    known ones."""
    unknown = [a for a in names if a not in ACTIVATIONS]
    if unknown:
        raise UserError(
            f"{key}: unknown activation {unknown[0]!r}; choose from "
            f"{', '.join(sorted(ACTIVATIONS))}"
        )


__all__ = ["ACTIVATIONS", "activation", "check_activations"]
