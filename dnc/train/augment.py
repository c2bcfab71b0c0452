"""Data augmentation as a few vectorised tensor ops on the device (STYLE: airbench).

An augmentation maps a batch of images ``n x C x H x W`` (and a ``torch.Generator`` on the same
device) to a new batch of the same shape; the trainer applies it to the whole training tensor
once per epoch, so there is no per-sample Python and no ``DataLoader``. Pick one by name with
``trainer.augment`` (``AUGMENTATIONS``).

Padding is with zeros; the image datasets are standardised per channel, so a zero is the
training set's mean colour.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dnc.plugins import UserError

if TYPE_CHECKING:  # torch is imported by the functions: choosing one by name stays cheap
    import torch

Augment = Callable[["torch.Tensor", "torch.Generator"], "torch.Tensor"]

_CHUNK = 4096  # images per step: bounds the padded copy's memory


def _flips(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    import torch

    return torch.rand(n, generator=generator, device=device) < 0.5


def hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of ``x`` (``n x C x H x W``) left-right with probability 1/2."""
    import torch

    flip = _flips(len(x), generator, x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def flip_crop(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """The basic augmentation: a random ``H x W`` crop of each image zero-padded by ``pad``
    pixels on every side (a random translation by up to ``pad`` pixels), mirrored left-right
    with probability 1/2. ``x``: ``n x C x H x W``; returns a new tensor of that shape.

    Two gathers on the padded batch (rows, then columns, the flip folded into the column
    index), with index tensors expanded rather than materialised.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> flip_crop(torch.randn(8, 3, 32, 32), g).shape
        torch.Size([8, 3, 32, 32])
    """
    return _translate(x, generator, pad, flip=True)


def crop(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """``flip_crop`` without the flip (for data where mirroring changes the class)."""
    return _translate(x, generator, pad, flip=False)


def _translate(x: torch.Tensor, generator: torch.Generator, pad: int, flip: bool) -> torch.Tensor:
    import torch
    from torch.nn import functional as F

    if x.dim() != 4:
        raise ValueError(f"expected images n x C x H x W, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    dev = x.device
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev)
    cols = torch.arange(w, device=dev).expand(n, w)
    if flip:
        cols = torch.where(_flips(n, generator, dev)[:, None], cols.flip(1), cols)
    rows = dy[:, None] + torch.arange(h, device=dev)  # n x h
    cols = dx[:, None] + cols  # n x w
    out = torch.empty_like(x)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        m = hi - lo
        padded = F.pad(x[lo:hi], (pad, pad, pad, pad))
        picked = padded.gather(2, rows[lo:hi, None, :, None].expand(m, c, h, w + 2 * pad))
        out[lo:hi] = picked.gather(3, cols[lo:hi, None, None, :].expand(m, c, h, w))
    return out


AUGMENTATIONS: dict[str, Augment | None] = {
    "none": None,
    "flip": hflip,
    "crop": crop,
    "flip_crop": flip_crop,
}


def get_augment(name: str) -> Augment | None:
    """The augmentation called ``name`` (``None`` for ``"none"``); ``UserError`` if unknown."""
    try:
        return AUGMENTATIONS[name]
    except (KeyError, TypeError):
        raise UserError(
            f"trainer.augment={name!r}: choose one of {', '.join(AUGMENTATIONS)}"
        ) from None


__all__ = ["AUGMENTATIONS", "Augment", "crop", "flip_crop", "get_augment", "hflip"]
