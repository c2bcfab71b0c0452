"""The layer plan of the Deep-n-Cheap CNN (DESIGN §3): the paper's placement rules, as pure
functions of the widths (no torch), and ``ConvPlan``, everything needed to build one network
(``dnc_cnn.network.ConvNet``).

A network is ``num_conv_layers`` blocks ``conv 3x3 -> [2x2 max-pool] -> [batch-norm] ->
[+ shortcut] -> activation -> [dropout]``, then global average pooling and one linear layer.

Placement rules (DESIGN §3, as in the paper's code):

- **Pools.** Walking the widths from layer 1, the first layer wider than 64 puts a pool after the
  layer before it; then the first wider than 128, then 256 (``pool_thresholds``). A pool location
  may instead give that layer's conv stride 2 (the downsampling grid sub-stage). Inputs too small
  for every pool keep only the first ``ceil(log2(min(H, W)))`` (each halving rounds up, so the
  last one reaches 1 x 1): an 8 x 8 input keeps 3, a 4 x 4 input 2.
- **Batch-norm / dropout fractions** ``f`` of ``n`` layers: ``k = ceil(f n)`` layers, as late as
  possible: layers ``ceil(j n / k) - 1`` for ``j = 1..k``.
- **Dropout** probability ``drop_in`` on the first layer (if it has dropout), ``drop_other`` else.
- **Shortcuts** every ``e`` layers start after layers ``0, e, 2e, ... < n - 2``; each adds the
  output of layer ``s`` to layer ``s + 2`` before its activation, average-pooled for every
  downsampling in between and zero-padded to the wider channel count. The paper's rule: none for
  ``n <= 8``, every 4 for 9-14 layers, every 2 for 15 or more.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def pool_locations(
    channels: Sequence[int], thresholds: Sequence[int] = (64, 128, 256)
) -> list[int]:
    """Layers after which the paper's rule puts a 2x2 max-pool (before the first width past each
    threshold, thresholds taken in order).

    Example:
        >>> pool_locations([32, 64, 96, 128, 200, 300])
        [1, 3, 4]
    """
    locs: list[int] = []
    for i in range(1, len(channels)):
        if len(locs) < len(thresholds) and channels[i] > thresholds[len(locs)]:
            locs.append(i - 1)
    return locs


def max_halvings(height: int, width: int) -> int:
    """How many round-up halvings bring ``min(height, width)`` to 1."""
    size, count = min(height, width), 0
    while size > 1:
        size = -(-size // 2)
        count += 1
    return count


def late_layers(fraction: float, n: int) -> list[int]:
    """``ceil(fraction n)`` of ``n`` layers, spread evenly and as late as possible.

    Example:
        >>> late_layers(0.5, 7)
        [1, 3, 5, 6]
    """
    if n <= 0 or fraction <= 0:
        return []
    k = min(n, math.ceil(fraction * n - 1e-9))
    return [-(-j * n // k) - 1 for j in range(1, k + 1)]


def paper_shortcut_every(n: int) -> int:
    """The paper's default: no shortcuts up to 8 layers, every 4 for 9-14, every 2 beyond."""
    return 0 if n <= 8 else 4 if n <= 14 else 2


def shortcut_starts(n: int, every: int) -> list[int]:
    """Layers after which a shortcut starts (each rejoins two layers later)."""
    return list(range(0, n - 2, every)) if every > 0 else []


@dataclass(frozen=True)
class ConvPlan:
    """Everything needed to build one network; per-layer tuples have ``n`` entries.

    ``pool[i]``: a 2x2 max-pool after conv ``i``; ``stride[i]``: conv ``i``'s stride (1 or 2);
    ``bn[i]``: batch-norm after it; ``dropout[i]``: its drop probability (0: none);
    ``shortcuts``: layers after which a shortcut starts; ``kernel_taps``: nonzero taps per 3x3
    kernel of layers 1.. (9: dense).
    """

    in_channels: int
    num_classes: int
    channels: tuple[int, ...]
    pool: tuple[bool, ...]
    stride: tuple[int, ...]
    bn: tuple[bool, ...]
    dropout: tuple[float, ...]
    shortcuts: tuple[int, ...]
    activation: str = "relu"
    kernel_taps: int = 9
    kernel_dense_every: int = 0

    @property
    def downsamples(self) -> tuple[bool, ...]:
        return tuple(p or s > 1 for p, s in zip(self.pool, self.stride, strict=True))


__all__ = [
    "ConvPlan",
    "late_layers",
    "max_halvings",
    "paper_shortcut_every",
    "pool_locations",
    "shortcut_starts",
]
