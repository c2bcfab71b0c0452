"""The activation functions every built-in search space may use, by name."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from dnc.plugins import UserError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def check_activations(names: Iterable[str]) -> None:
    """Raise ``UserError`` naming the first unknown activation and the known ones."""
    unknown = [a for a in names if a not in ACTIVATIONS]
    if unknown:
        raise UserError(
            f"search_space: unknown activation {unknown[0]!r}; choose from {sorted(ACTIVATIONS)}"
        )
