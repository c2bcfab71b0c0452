"""The generated Morse-code dataset: contract, rendering, knobs, presets, determinism, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnc.plugins import UserError
from dnc.testing import DatasetContract
from dnc.train.morse import PRESETS, SYMBOLS, Morse, MorseKnobs, default_cache_dir, generate


class TestMorseContract(DatasetContract):
    def make_dataset(self) -> Morse:
        return Morse(examples_per_class=10, cache_dir=None)


class TestDifficultMorseContract(DatasetContract):
    def make_dataset(self) -> Morse:
        return Morse(preset="difficult", classes=20, examples_per_class=10, cache_dir=None)


def _runs(frame: np.ndarray) -> list[tuple[float, int]]:
    """``(value, length)`` runs of a binary frame."""
    out: list[tuple[float, int]] = []
    for v in frame:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((float(v), 1))
    return out


def _decode(frame: np.ndarray, dot_max: int) -> str:
    """Read a clean frame back: marks longer than ``dot_max`` are dashes."""
    return "".join("." if n <= dot_max else "-" for v, n in _runs(frame) if v == 1.0)


def test_the_symbol_table_has_64_distinct_codewords():
    codes = [code for _, code in SYMBOLS]
    assert len(SYMBOLS) == 64 and len(set(codes)) == 64
    assert set("".join(codes)) == {".", "-"}


def test_baseline_frames_are_the_codewords_within_the_ranges():
    ds = Morse(preset="baseline", examples_per_class=15, cache_dir=None)
    x, y = ds.frames()
    assert x.shape == (64 * 15, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(x)) <= {0.0, 1.0}
    for frame, label in zip(x, y, strict=True):
        code = SYMBOLS[label][1]
        assert frame[0] == 1.0  # baseline: no leading spaces
        assert _decode(frame, dot_max=3) == code  # dots 1-3, dashes 4-9: unambiguous
        runs = _runs(frame)
        marks = [n for v, n in runs if v == 1.0]
        gaps = [n for v, n in runs[:-1] if v == 0.0]  # the last run is the trailing padding
        for mark, n in zip(code, marks, strict=True):
            assert (1 <= n <= 3) if mark == "." else (4 <= n <= 9)
        assert all(1 <= g <= 3 for g in gaps)


def test_knobs_change_the_frames_as_described():
    clean = Morse(examples_per_class=20, classes=10, cache_dir=None).frames()[0]
    lead = Morse(examples_per_class=20, classes=10, leading=[5, 8], cache_dir=None).frames()[0]
    first = [int(np.argmax(f > 0.5)) for f in lead]
    assert min(first) >= 5 and max(first) <= 8
    flips = Morse(examples_per_class=20, classes=10, flip_prob=0.1, cache_dir=None).frames()[0]
    assert set(np.unique(flips)) <= {0.0, 1.0}
    assert 0.05 < float((flips != clean).mean()) < 0.15
    noisy = Morse(examples_per_class=20, classes=10, noise_std=0.3, cache_dir=None).frames()[0]
    assert float((noisy - clean).std()) == pytest.approx(0.3, rel=0.1)
    dilated = Morse(examples_per_class=20, classes=10, dilation=2.0, cache_dir=None).frames()[0]
    assert dilated.sum() > 1.2 * clean.sum()  # marks get longer
    long_ranges = Morse(examples_per_class=5, classes=5, dash=[8, 9], cache_dir=None).frames()
    assert _decode(long_ranges[0][0], dot_max=3) == SYMBOLS[0][1]


def test_presets_and_overrides():
    base, hard = Morse(cache_dir=None), Morse(preset="difficult", cache_dir=None)
    assert base.knobs.dash == tuple(PRESETS["baseline"]["dash"])
    assert hard.knobs.noise_std > 0 and hard.knobs.flip_prob > 0 and hard.knobs.leading[1] > 0
    assert Morse(preset="difficult", noise_std=0.0, cache_dir=None).knobs.noise_std == 0.0
    assert base.frame_len == 64 and base.num_classes == 64


def test_generation_is_deterministic_by_seed():
    a = Morse(examples_per_class=5, preset="difficult", cache_dir=None)
    b = Morse(examples_per_class=5, preset="difficult", cache_dir=None)
    c = Morse(examples_per_class=5, preset="difficult", seed=1, cache_dir=None)
    assert np.array_equal(a.frames()[0], b.frames()[0])
    assert not np.array_equal(a.frames()[0], c.frames()[0])
    d0, d1 = a.load(seed=0), a.load(seed=1)
    assert torch.equal(d0.xte, d1.xte)  # the test set does not depend on the split seed
    assert not torch.equal(d0.yva, d1.yva)


def test_frames_are_cached_on_disk(tmp_path):
    ds = Morse(examples_per_class=5, cache_dir=str(tmp_path))
    path = ds.cache_path()
    assert path is not None and not path.exists()
    x, _ = ds.frames()
    assert path.is_file() and path.parent == tmp_path
    with np.load(path) as f:  # the cache is what a later load reads
        f_x = f["x"].copy()
    assert np.array_equal(f_x, x)
    np.savez(path, x=np.ones_like(x), y=np.zeros(len(x), dtype=np.int64))
    assert np.array_equal(Morse(examples_per_class=5, cache_dir=str(tmp_path)).frames()[0],
                          np.ones_like(x))
    other = Morse(examples_per_class=5, noise_std=0.1, cache_dir=str(tmp_path))
    assert other.cache_path() != path
    path.write_bytes(b"damaged")
    assert np.array_equal(Morse(examples_per_class=5, cache_dir=str(tmp_path)).frames()[0], x)


def test_default_cache_folder_follows_dnc_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("DNC_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "morse"
    assert Morse(examples_per_class=5).cache_path().parent == tmp_path / "morse"


def test_worst_case_length_fits_in_the_frame_for_both_presets():
    for preset in PRESETS:
        knobs = Morse(preset=preset, cache_dir=None).knobs
        assert knobs.worst_length() <= knobs.frame_len
        x, _ = generate(MorseKnobs(**{**knobs.__dict__, "examples_per_class": 3}))
        assert x.shape[1] == knobs.frame_len


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"preset": "hard"}, "dataset.preset='hard'"),
        ({"classes": 65}, "dataset.classes=65"),
        ({"classes": 1}, "dataset.classes=1"),
        ({"examples_per_class": 1}, "examples_per_class"),
        ({"dot": [3, 1]}, "dataset.dot=\\[3, 1\\]"),
        ({"dash": [0, 4]}, "dataset.dash"),
        ({"leading": "x"}, "dataset.leading"),
        ({"frame_len": 32}, "frame_len=32 is too short"),
        ({"dilation": 0.5}, "dilation"),
        ({"flip_prob": 1.0}, "flip_prob"),
        ({"noise_std": -1}, "noise_std"),
        ({"val_split": 1.0}, "val_split"),
    ],
)
def test_bad_knobs_are_refused_in_one_line(kwargs, needle):
    with pytest.raises(UserError, match=needle) as info:
        Morse(cache_dir=None, **kwargs)
    assert "\n" not in str(info.value)
