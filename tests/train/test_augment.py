"""On-device augmentation: each output image is a padded crop (and maybe a mirror) of its input."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from dnc.plugins import UserError
from dnc.train.augment import AUGMENTATIONS, crop, flip_crop, get_augment, hflip


def reference_views(image: torch.Tensor, pad: int, flips: bool) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flip) whose crop of the zero-padded ``image`` (C x H x W) is some view."""
    padded = F.pad(image, (pad, pad, pad, pad))
    h, w = image.shape[1:]
    views = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            for flip in (False, True) if flips else (False,):
                view = padded[:, dy : dy + h, dx : dx + w]
                views.append(((dy, dx, flip), view.flip(2) if flip else view))
    return views


def identify(out: torch.Tensor, image: torch.Tensor, pad: int, flips: bool):
    matches = [key for key, view in reference_views(image, pad, flips) if torch.equal(view, out)]
    assert matches, "the output is no crop of the padded input"
    return matches[0]


def test_flip_crop_output_is_a_padded_crop_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 6, 7)
    out = flip_crop(x, g, pad=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    keys = [identify(out[i], x[i], 2, flips=True) for i in range(len(x))]
    assert len({k[:2] for k in keys}) > 10  # many different translations
    assert 10 < sum(k[2] for k in keys) < 54  # about half mirrored


def test_all_offsets_and_both_flips_occur():
    """One bright pixel at (4, 3) of a 9 x 9 image, pad 4: it lands on row 8 - dy and, unmirrored,
    column 7 - dx, mirrored 1 + dx (off the image when dx = 8): all 81 places are reached only
    if every row offset, every column offset and both flips occur."""
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(4000, 1, 9, 9)
    x[:, 0, 4, 3] = 1.0
    out = flip_crop(x, g, pad=4)
    on = out.flatten(1).amax(1) > 0
    places = {divmod(int(p), 9) for p in out[on].flatten(1).argmax(1)}
    assert places == {(r, c) for r in range(9) for c in range(9)}
    assert 300 < int((~on).sum()) < 600  # off the image: dx = 8, one in 9


def test_crop_never_mirrors_and_pad_zero_is_identity():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 2, 5, 5)
    for i, img in enumerate(crop(x, g, pad=1)):
        assert not identify(img, x[i], 1, flips=False)[2]
    assert torch.equal(crop(x, g, pad=0), x)


def test_hflip_mirrors_about_half():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(200, 1, 4, 5)
    out = hflip(x, g)
    same = [torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    mirrored = [torch.equal(o, i.flip(2)) for o, i in zip(out, x, strict=True)]
    assert all(a or b for a, b in zip(same, mirrored, strict=True))
    assert 60 < sum(mirrored) < 140


def test_same_seed_same_augmentation():
    x = torch.randn(32, 3, 8, 8)
    a = flip_crop(x, torch.Generator().manual_seed(5))
    b = flip_crop(x, torch.Generator().manual_seed(5))
    c = flip_crop(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_large_batches_are_chunked_alike():
    x = torch.randn(5000, 1, 4, 4)  # more than one chunk
    out = flip_crop(x, torch.Generator().manual_seed(7), pad=1)
    for i in (0, 4095, 4096, 4999):
        identify(out[i], x[i], 1, flips=True)


def test_registry_and_unknown_names():
    assert get_augment("none") is None and get_augment("flip_crop") is flip_crop
    assert set(AUGMENTATIONS) >= {"none", "flip", "crop", "flip_crop"}
    with pytest.raises(UserError, match="flip_crop"):
        get_augment("cutout")
    with pytest.raises(ValueError):
        flip_crop(torch.randn(4, 16), torch.Generator())
