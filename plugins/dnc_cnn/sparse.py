"""Pre-defined kernel sparsity for 3x3 convolutions: periodic tap patterns, fixed before training.

Each ``3 x 3`` kernel keeps ``taps`` of its 9 weights (4 or 2; 9 is dense). The kept taps follow a
base pattern rotated by the kernel's position: kernel ``(o, c)`` (filter ``o``, input channel
``c``) uses pattern ``(o + c) mod K`` of the ``K`` rotations, so neighbouring filters and
channels see different taps and every tap position is covered within a period. Every
``dense_every``-th kernel in (filter, channel) order stays dense (``0``: none). The network's
first layer is always dense (it sees the raw input).

- 4 of 9: a 2 x 2 quadrant (always holding the centre), rotated by 90 degrees: 4 patterns.
- 2 of 9: the centre plus one of its 8 neighbours, rotated by 45 degrees: 8 patterns.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dnc.plugins import UserError
from dnc_cnn.settings import TAPS

# (row, col) taps of the base patterns, in rotation order (clockwise).
_QUADRANTS = (
    ((0, 0), (0, 1), (1, 0), (1, 1)),  # top-left
    ((0, 1), (0, 2), (1, 1), (1, 2)),  # top-right
    ((1, 1), (1, 2), (2, 1), (2, 2)),  # bottom-right
    ((1, 0), (1, 1), (2, 0), (2, 1)),  # bottom-left
)
_NEIGHBOURS = ((0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0), (0, 0))  # N, NE, E, ...
PATTERNS: dict[int, tuple[tuple[tuple[int, int], ...], ...]] = {
    4: _QUADRANTS,
    2: tuple(((1, 1), n) for n in _NEIGHBOURS),
}


def check_taps(taps: int) -> int:
    """``taps`` as an int, or ``UserError`` unless it is 9 (dense), 4 or 2."""
    if int(taps) not in TAPS:
        raise UserError(
            f"kernel taps {taps!r}: choose 9 (dense), 4 or 2 nonzero taps per 3x3 kernel"
        )
    return int(taps)


def kernel_mask(
    out_channels: int, in_channels: int, taps: int, dense_every: int = 0
) -> torch.Tensor:
    """The fixed ``out_channels x in_channels x 3 x 3`` bool mask of the nonzero-able weights.

    Example:
        >>> m = kernel_mask(2, 3, taps=4)
        >>> m.sum(dim=(2, 3)).tolist()
        [[4, 4, 4], [4, 4, 4]]
        >>> kernel_mask(1, 8, taps=2, dense_every=4).sum(dim=(2, 3)).tolist()
        [[2, 2, 2, 9, 2, 2, 2, 9]]
    """
    taps = check_taps(taps)
    if dense_every < 0:
        raise UserError(f"kernel_dense_every={dense_every}: must be >= 0 (0: no dense kernels)")
    if taps == 9:
        return torch.ones(out_channels, in_channels, 3, 3, dtype=torch.bool)
    patterns = PATTERNS[taps]
    table = torch.zeros(len(patterns), 3, 3, dtype=torch.bool)
    for k, pattern in enumerate(patterns):
        for r, c in pattern:
            table[k, r, c] = True
    o = torch.arange(out_channels)[:, None]
    c = torch.arange(in_channels)[None, :]
    mask = table[(o + c) % len(patterns)]  # out x in x 3 x 3
    if dense_every:
        dense = (o * in_channels + c + 1) % dense_every == 0
        mask[dense] = True
    return mask


class KernelSparseConv2d(nn.Conv2d):
    """A 3x3 ``Conv2d`` whose weights outside a fixed ``kernel_mask`` are exactly zero.

    The masked weights start at zero and the forward pass uses ``weight * mask``, so their
    gradient is exactly zero; Adam (with or without weight decay, coupled or decoupled) then
    never moves them: they stay exactly zero through training.

    Example:
        >>> conv = KernelSparseConv2d(16, 32, taps=4, dense_every=8, padding=1)
        >>> conv.nonzero_weights() == int(kernel_mask(32, 16, 4, 8).sum())
        True
    """

    mask: torch.Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        taps: int,
        dense_every: int = 0,
        stride: int = 1,
        padding: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, 3, stride=stride, padding=padding, bias=bias)
        mask = kernel_mask(out_channels, in_channels, taps, dense_every)
        self.register_buffer("mask", mask.to(self.weight.dtype))
        with torch.no_grad():
            self.weight.mul_(self.mask)
        self.taps = taps
        self.dense_every = dense_every

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            x,
            self.weight * self.mask,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )

    def nonzero_weights(self) -> int:
        """How many weights may be nonzero (the mask's ones)."""
        return int(self.mask.sum())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, taps={self.taps}, dense_every={self.dense_every}"
