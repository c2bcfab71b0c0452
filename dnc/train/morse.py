"""``morse``: generated Morse-code symbol frames of tunable difficulty (DESIGN §8).

After Dey, Chugg, Beerel, "Morse Code Datasets for Machine Learning" (ICCCNT 2018). Each example
is one symbol (a letter, digit, punctuation mark or extended letter: up to 64 classes) written
into a frame of ``frame_len`` values: optional leading spaces, then each dot (a run of 1s of a
length drawn from ``dot``), dash (from ``dash``) and the spaces between them (runs of 0s from
``space``), then 0s to the end. Lengths are drawn uniformly per element, like a human sender
who keeps dots and spaces about the same length and dashes longer. Then, per example:

- ``dilation`` ``> 1``: the written symbol is stretched by a factor drawn from
  ``[1, dilation]`` (nearest-neighbour, never past the frame's end);
- ``flip_prob``: every value flips 0 <-> 1 with this probability;
- ``noise_std``: additive Gaussian noise of this standard deviation.

Presets: ``baseline`` (dots 1-3, dashes 4-9, spaces 1-3, no leading spaces, no noise: the
paper's baseline) and ``difficult`` (overlapping dot and dash lengths, leading spaces, dilation,
bit flips and Gaussian noise). Any knob given explicitly overrides the preset.

Generation is deterministic for a given ``seed`` and set of knobs, and cached on disk as
``.npz`` under ``cache_dir`` (default ``$DNC_CACHE/morse`` or ``~/.cache/dnc/morse``).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dnc.plugins import Dataset, TensorData, UserError
from dnc.train.datasets import _check_split, split_validation, to_tensor_data

# International Morse code, then extended letters, to 64 symbols with distinct codewords.
SYMBOLS: tuple[tuple[str, str], ...] = (
    ("A", ".-"), ("B", "-..."), ("C", "-.-."), ("D", "-.."), ("E", "."), ("F", "..-."),
    ("G", "--."), ("H", "...."), ("I", ".."), ("J", ".---"), ("K", "-.-"), ("L", ".-.."),
    ("M", "--"), ("N", "-."), ("O", "---"), ("P", ".--."), ("Q", "--.-"), ("R", ".-."),
    ("S", "..."), ("T", "-"), ("U", "..-"), ("V", "...-"), ("W", ".--"), ("X", "-..-"),
    ("Y", "-.--"), ("Z", "--.."),
    ("0", "-----"), ("1", ".----"), ("2", "..---"), ("3", "...--"), ("4", "....-"),
    ("5", "....."), ("6", "-...."), ("7", "--..."), ("8", "---.."), ("9", "----."),
    (".", ".-.-.-"), (",", "--..--"), ("?", "..--.."), ("'", ".----."), ("!", "-.-.--"),
    ("/", "-..-."), ("(", "-.--."), (")", "-.--.-"), ("&", ".-..."), (":", "---..."),
    (";", "-.-.-."), ("=", "-...-"), ("+", ".-.-."), ("-", "-....-"), ("_", "..--.-"),
    ('"', ".-..-."), ("$", "...-..-"), ("@", ".--.-."),
    ("Ä", ".-.-"), ("Á", ".--.-"), ("É", "..-.."), ("È", ".-..-"), ("Ñ", "--.--"),
    ("Ö", "---."), ("Ü", "..--"), ("CH", "----"), ("Ĝ", "--.-."), ("Ĵ", ".---."),
)


@dataclass(frozen=True)
class MorseKnobs:
    """Everything that determines the generated frames (the cache key)."""

    frame_len: int
    classes: int
    examples_per_class: int
    dot: tuple[int, int]
    dash: tuple[int, int]
    space: tuple[int, int]
    leading: tuple[int, int]
    dilation: float
    flip_prob: float
    noise_std: float
    seed: int

    def worst_length(self) -> int:
        """The longest a symbol can be written (before dilation), over the chosen classes."""
        worst = 0
        for _, code in SYMBOLS[: self.classes]:
            marks = sum(self.dot[1] if c == "." else self.dash[1] for c in code)
            worst = max(worst, self.leading[1] + marks + (len(code) - 1) * self.space[1])
        return worst


PRESETS: dict[str, dict[str, object]] = {
    "baseline": dict(frame_len=64, classes=64, examples_per_class=200, dot=(1, 3), dash=(4, 9),
                     space=(1, 3), leading=(0, 0), dilation=1.0, flip_prob=0.0, noise_std=0.0),
    "difficult": dict(frame_len=64, classes=64, examples_per_class=200, dot=(1, 4),
                      dash=(3, 9), space=(1, 3), leading=(0, 4), dilation=1.5, flip_prob=0.02,
                      noise_std=0.1),
}


def _range(name: str, value: Sequence[int], minimum: int) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise UserError(f"dataset.{name}={value!r}: give [low, high] integers") from err
    if not minimum <= lo <= hi:
        raise UserError(f"dataset.{name}=[{lo}, {hi}]: must satisfy {minimum} <= low <= high")
    return lo, hi


def default_cache_dir() -> Path:
    """``$DNC_CACHE/morse`` if ``DNC_CACHE`` is set, else ``~/.cache/dnc/morse``."""
    root = os.environ.get("DNC_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "dnc") / "morse"


def generate(knobs: MorseKnobs) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``n x frame_len`` (float32) and labels ``n`` (int64), class by class."""
    rng = np.random.default_rng(knobs.seed)
    n = knobs.classes * knobs.examples_per_class
    x = np.zeros((n, knobs.frame_len), dtype=np.float32)
    y = np.repeat(np.arange(knobs.classes, dtype=np.int64), knobs.examples_per_class)
    row = 0
    for _, code in SYMBOLS[: knobs.classes]:
        for _ in range(knobs.examples_per_class):
            pos = int(rng.integers(knobs.leading[0], knobs.leading[1] + 1))
            start = pos
            for k, mark in enumerate(code):
                if k:
                    pos += int(rng.integers(knobs.space[0], knobs.space[1] + 1))
                lo, hi = knobs.dot if mark == "." else knobs.dash
                length = int(rng.integers(lo, hi + 1))
                x[row, pos : pos + length] = 1.0
                pos += length
            if knobs.dilation > 1.0:
                span = pos - start
                most = min(knobs.dilation, (knobs.frame_len - start) / span)
                factor = float(rng.uniform(1.0, most)) if most > 1.0 else 1.0
                width = min(int(round(span * factor)), knobs.frame_len - start)
                src = start + np.minimum((np.arange(width) / factor).astype(np.int64), span - 1)
                x[row, start : start + width] = x[row, src].copy()
            row += 1
    if knobs.flip_prob > 0:
        flips = rng.random(x.shape) < knobs.flip_prob
        x[flips] = 1.0 - x[flips]
    if knobs.noise_std > 0:
        x += rng.normal(0.0, knobs.noise_std, size=x.shape).astype(np.float32)
    return x, y


class Morse(Dataset):
    """Morse-code symbol frames (module docstring): inputs ``n x frame_len``, up to 64 classes.

    ``test_split`` of the generated examples (fixed) is the test set; ``val_split`` of the rest
    is validation, fixed by the ``load`` seed. ``seed`` fixes the generated examples.

    Example:
        >>> data = Morse(preset="baseline", examples_per_class=10, cache_dir=None).load(seed=0)
        >>> data.xtr.shape[1], data.num_classes
        (64, 64)
    """

    name = "morse"

    def __init__(
        self,
        preset: str = "baseline",
        frame_len: int | None = None,
        classes: int | None = None,
        examples_per_class: int | None = None,
        dot: Sequence[int] | None = None,
        dash: Sequence[int] | None = None,
        space: Sequence[int] | None = None,
        leading: Sequence[int] | None = None,
        dilation: float | None = None,
        flip_prob: float | None = None,
        noise_std: float | None = None,
        seed: int = 0,
        val_split: float = 0.2,
        test_split: float = 0.2,
        cache_dir: str | None = "default",
    ) -> None:
        if preset not in PRESETS:
            raise UserError(f"dataset.preset={preset!r}: choose one of {', '.join(PRESETS)}")
        given = dict(frame_len=frame_len, classes=classes, examples_per_class=examples_per_class,
                     dot=dot, dash=dash, space=space, leading=leading, dilation=dilation,
                     flip_prob=flip_prob, noise_std=noise_std)
        k = {**PRESETS[preset], **{key: v for key, v in given.items() if v is not None}}
        self.preset = preset
        self.knobs = MorseKnobs(
            frame_len=int(k["frame_len"]), classes=int(k["classes"]),  # type: ignore[call-overload]
            examples_per_class=int(k["examples_per_class"]),  # type: ignore[call-overload]
            dot=_range("dot", k["dot"], 1), dash=_range("dash", k["dash"], 1),  # type: ignore[arg-type]
            space=_range("space", k["space"], 1), leading=_range("leading", k["leading"], 0),  # type: ignore[arg-type]
            dilation=float(k["dilation"]), flip_prob=float(k["flip_prob"]),  # type: ignore[arg-type]
            noise_std=float(k["noise_std"]), seed=int(seed),  # type: ignore[arg-type]
        )
        self._check()
        self.val_split = _check_split(val_split)
        self.test_split = _check_split(test_split)
        if cache_dir == "default":
            self.cache_dir: Path | None = default_cache_dir()
        else:
            self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None

    @property
    def frame_len(self) -> int:
        return self.knobs.frame_len

    @property
    def num_classes(self) -> int:
        return self.knobs.classes

    def _check(self) -> None:
        k = self.knobs
        if not 2 <= k.classes <= len(SYMBOLS):
            raise UserError(f"dataset.classes={k.classes}: must lie in [2, {len(SYMBOLS)}]")
        if k.examples_per_class < 2:
            raise UserError(f"dataset.examples_per_class={k.examples_per_class}: must be >= 2")
        if not k.dilation >= 1.0:
            raise UserError(f"dataset.dilation={k.dilation}: must be >= 1 (1: none)")
        if not 0.0 <= k.flip_prob < 1.0:
            raise UserError(f"dataset.flip_prob={k.flip_prob}: must lie in [0, 1)")
        if not k.noise_std >= 0.0:
            raise UserError(f"dataset.noise_std={k.noise_std}: must be >= 0")
        if k.frame_len < k.worst_length():
            raise UserError(
                f"dataset.frame_len={k.frame_len} is too short: with these dot, dash, space and "
                f"leading ranges a symbol can take {k.worst_length()} values; lengthen the frame "
                f"or shorten the ranges"
            )

    def cache_path(self) -> Path | None:
        """Where the generated frames are cached (None: no cache)."""
        if self.cache_dir is None:
            return None
        key = json.dumps({"v": 1, **asdict(self.knobs)}, sort_keys=True)
        return self.cache_dir / f"morse-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"

    def frames(self) -> tuple[np.ndarray, np.ndarray]:
        """All generated frames and labels, from the cache when present."""
        path = self.cache_path()
        if path is not None and path.is_file():
            try:
                with np.load(path) as f:
                    return f["x"], f["y"]
            except (OSError, ValueError, KeyError):
                pass  # damaged: generate again
        x, y = generate(self.knobs)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz",
                                                 delete=False) as tmp:
                    np.savez_compressed(tmp, x=x, y=y)
                os.replace(tmp.name, path)  # atomic: parallel workers never read half a file
            except OSError:
                pass  # an unwritable cache only costs regeneration
        return x, y

    def load(self, seed: int) -> TensorData:
        x, y = self.frames()
        xrest, yrest, xte, yte = split_validation(x, y, self.test_split, seed=0)
        data = to_tensor_data(self.name, *split_validation(xrest, yrest, self.val_split, seed),
                              xte, yte)
        data.num_classes = self.knobs.classes
        return data


__all__ = ["PRESETS", "SYMBOLS", "Morse", "MorseKnobs", "default_cache_dir", "generate"]
