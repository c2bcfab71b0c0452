"""The CNN space's settings groups: ``search_space.core``, ``search_space.arch`` and
``search_space.kernel_sparsity`` (``search_space.training`` is ``dnc.plugins.TrainingBounds``).

Each group is a frozen dataclass that normalises and checks its own fields (lists become tuples,
numbers get their type) and names the config key in its ``UserError``; ``CNNSpace`` checks what
spans groups.

Example:
    >>> CNNCore(conv_layers=[4, 8]).conv_layers
    (4, 8)
    >>> CNNCore(conv_layers=(5, 4))
    Traceback (most recent call last):
    ...
    dnc.plugins.UserError: search_space.core.conv_layers=[5, 4] must satisfy 1 <= low <= high
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dnc.plugins import UserError, as_bounds, as_tuple
from dnc.train.activations import check_activations

TAPS = (9, 4, 2)
"""Nonzero taps per 3x3 kernel: 9 (dense), 4 or 2 (``dnc_cnn.sparse``)."""

SUBSTAGES = ("activation", "downsampling", "batchnorm", "dropout", "shortcuts", "kernel_sparsity")
"""Every grid sub-stage of the CNN space."""


@dataclass(frozen=True)
class CNNCore:
    """The core architecture the BO stages search: the depth and each layer's channels.

    ``channels_0`` lies in ``first_channels``, ``channels_i`` in
    ``[c_{i-1}, min(2 c_{i-1}, max_channels)]``. ``default_channels`` is the reference network
    (the default candidate, also used for calibration). A 2x2 max-pool goes before the first
    width past each of ``pool_thresholds``, in order (``dnc_cnn.network.pool_locations``).
    """

    conv_layers: tuple[int, int] = (4, 16)
    first_channels: tuple[int, int] = (16, 64)
    max_channels: int = 512
    default_channels: tuple[int, ...] = (32, 32, 64, 64, 128, 128, 256, 256)
    pool_thresholds: tuple[int, ...] = (64, 128, 256)

    def __post_init__(self) -> None:
        key = "search_space.core."
        _set(
            self,
            conv_layers=as_bounds(int, self.conv_layers, key + "conv_layers"),
            first_channels=as_bounds(int, self.first_channels, key + "first_channels"),
            max_channels=int(self.max_channels),
            default_channels=as_tuple(int, self.default_channels, key + "default_channels"),
            pool_thresholds=as_tuple(int, self.pool_thresholds, key + "pool_thresholds"),
        )
        lo, hi = self.conv_layers
        if not 1 <= lo <= hi:
            raise UserError(f"{key}conv_layers=[{lo}, {hi}] must satisfy 1 <= low <= high")
        c_lo, c_hi = self.first_channels
        if not 1 <= c_lo <= c_hi <= self.max_channels:
            raise UserError(
                f"{key}first_channels=[{c_lo}, {c_hi}] must satisfy "
                f"1 <= low <= high <= max_channels ({self.max_channels})"
            )
        if not self.default_channels or min(self.default_channels) < 1:
            raise UserError(f"{key}default_channels must list one or more positive widths")
        if list(self.pool_thresholds) != sorted(set(self.pool_thresholds)):
            raise UserError(
                f"{key}pool_thresholds={list(self.pool_thresholds)} must increase strictly"
            )


@dataclass(frozen=True)
class CNNArch:
    """The rest of the architecture: held at the defaults (``activation``, ``bn_fraction``, ...)
    until the grid stage tries the choices (``activations``, ``bn_fractions``, ...), one
    sub-stage at a time in ``grid_order``.

    ``bn_fraction`` / ``dropout_fraction``: the fraction of layers with batch-norm / dropout,
    placed as late as possible; ``drop_in`` / ``drop_other``: the drop probability of the first
    layer / of the others; ``shortcut_everys``: the spacings the shortcuts sub-stage tries
    (0: none) besides the default ``"auto"`` (the paper's rule for the depth).
    """

    grid_order: tuple[str, ...] = (
        "activation",
        "downsampling",
        "batchnorm",
        "dropout",
        "shortcuts",
    )
    activation: str = "relu"
    activations: tuple[str, ...] = ("relu", "leaky_relu", "elu", "gelu")
    bn_fraction: float = 1.0
    bn_fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    dropout_fraction: float = 1.0
    dropout_fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    drop_in: float = 0.1
    drop_ins: tuple[float, ...] = (0.1, 0.2)
    drop_other: float = 0.3
    drop_others: tuple[float, ...] = (0.15, 0.3, 0.45)
    shortcut_everys: tuple[int, ...] = (0, 4, 2)

    def __post_init__(self) -> None:
        key = "search_space.arch."
        _set(
            self,
            grid_order=as_tuple(str, self.grid_order, key + "grid_order"),
            activation=str(self.activation),
            activations=as_tuple(str, self.activations, key + "activations"),
            bn_fraction=float(self.bn_fraction),
            bn_fractions=as_tuple(float, self.bn_fractions, key + "bn_fractions"),
            dropout_fraction=float(self.dropout_fraction),
            dropout_fractions=as_tuple(float, self.dropout_fractions, key + "dropout_fractions"),
            drop_in=float(self.drop_in),
            drop_ins=as_tuple(float, self.drop_ins, key + "drop_ins"),
            drop_other=float(self.drop_other),
            drop_others=as_tuple(float, self.drop_others, key + "drop_others"),
            shortcut_everys=as_tuple(int, self.shortcut_everys, key + "shortcut_everys"),
        )
        unknown_sub = [s for s in self.grid_order if s not in SUBSTAGES]
        if unknown_sub:
            raise UserError(
                f"{key}grid_order: unknown sub-stage {unknown_sub[0]!r}; choose from "
                f"{', '.join(SUBSTAGES)}"
            )
        check_activations((self.activation,), key + "activation")
        check_activations(self.activations, key + "activations")
        fractions = {
            "bn_fraction": (self.bn_fraction, *self.bn_fractions),
            "dropout_fraction": (self.dropout_fraction, *self.dropout_fractions),
        }
        for name, numbers in fractions.items():
            if not all(0.0 <= f <= 1.0 for f in numbers):
                raise UserError(f"{key}{name}(s) must lie in [0, 1], got {list(numbers)}")
        probs = (self.drop_in, *self.drop_ins, self.drop_other, *self.drop_others)
        if not all(0.0 <= p < 1.0 for p in probs):
            raise UserError(
                f"{key}drop_in(s) / drop_other(s): dropout probabilities must lie in [0, 1), "
                f"got {list(probs)}"
            )
        if not self.shortcut_everys or any(e < 0 for e in self.shortcut_everys):
            raise UserError(
                f"{key}shortcut_everys={list(self.shortcut_everys)}: give numbers >= 0 "
                "(0: no shortcuts)"
            )


@dataclass(frozen=True)
class KernelSparsity:
    """Pre-defined kernel sparsity (``dnc_cnn.sparse``): nonzero taps per 3x3 kernel of layers
    1.. (layer 0 is always dense).

    Kernels have ``taps`` (9: dense) until the ``kernel_sparsity`` grid sub-stage, which
    ``enabled`` adds (last, unless ``arch.grid_order`` names it) and which tries
    ``tap_choices``. Every ``dense_every``-th kernel stays dense (0: none).
    """

    enabled: bool = False
    taps: int = 9
    tap_choices: tuple[int, ...] = (9, 4, 2)
    dense_every: int = 8

    def __post_init__(self) -> None:
        key = "search_space.kernel_sparsity."
        if not isinstance(self.enabled, bool):
            raise UserError(f"{key}enabled={self.enabled!r}: use true or false")
        _set(
            self,
            taps=int(self.taps),
            tap_choices=as_tuple(int, self.tap_choices, key + "tap_choices"),
            dense_every=int(self.dense_every),
        )
        for name, values in (("taps", (self.taps,)), ("tap_choices", self.tap_choices)):
            bad = [t for t in values if t not in TAPS]
            if bad:
                raise UserError(
                    f"{key}{name}: {bad[0]} taps; choose 9 (dense), 4 or 2 nonzero taps"
                )
        if self.dense_every < 0:
            raise UserError(f"{key}dense_every must be >= 0 (0: no dense kernels)")


def _set(settings: object, **values: Any) -> None:
    """Store normalised field values on a frozen dataclass (from its ``__post_init__``)."""
    for name, value in values.items():
        object.__setattr__(settings, name, value)


__all__ = ["SUBSTAGES", "CNNArch", "CNNCore", "KernelSparsity"]
