"""Built-in datasets: ``digits`` (bundled with scikit-learn), ``npz`` files, and (in
``dnc.train.image_folders``) MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 read from
torchvision's on-disk layout in a local folder.

Each returns ``TensorData``: float inputs, int64 labels, a validation split of the training set
fixed by the seed (``val_split``), unless the file provides its own validation set.

Hostile files are refused with one line naming the file and what is wrong: NaN or infinite
inputs, labels that are not class indices, splits whose examples differ in shape, object
arrays in an ``.npz``, a truncated or corrupt MNIST or CIFAR file. The number of classes is
``npz``: one more than the largest label of the file's training set (``ytr``, before a
validation split is held out of it), so a validation or test label above every training label
is an error (no network output could predict it); ``mnist``, ``fmnist``, ``cifar10``: 10;
``cifar100``: 100. A class below that which the training set lacks is a warning
(``TensorData.validate``, which dnc runs on every dataset's data).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dnc.plugins import Dataset, TensorData, UserError

if TYPE_CHECKING:
    import torch


def _check_split(val_split: float) -> float:
    if not 0.0 < float(val_split) < 1.0:
        raise UserError(f"dataset.val_split={val_split}: must lie strictly between 0 and 1")
    return float(val_split)


def split_validation(
    x: np.ndarray, y: np.ndarray, val_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``val_split`` of ``(x, y)`` at random, fixed by ``seed``.

    Returns ``xtr, ytr, xva, yva``."""
    n = len(x)
    n_val = max(1, round(n * val_split))
    if n_val >= n:
        raise UserError(f"dataset has {n} training examples: too few to hold out {val_split:.0%}")
    perm = np.random.default_rng(seed).permutation(n)
    va, tr = perm[:n_val], perm[n_val:]
    return x[tr], y[tr], x[va], y[va]


def to_tensor_data(
    name: str,
    xtr: np.ndarray,
    ytr: np.ndarray,
    xva: np.ndarray,
    yva: np.ndarray,
    xte: np.ndarray,
    yte: np.ndarray,
    *,
    num_classes: int | None = None,
) -> TensorData:
    """Convert numpy arrays to ``TensorData`` (float32 inputs, int64 labels). ``num_classes``:
    by default one more than the largest label of any split. It checks nothing: dnc checks
    every dataset's data with ``TensorData.validate`` once loaded."""
    import torch

    if num_classes is None:
        num_classes = 1 + max((int(y.max()) for y in (ytr, yva, yte) if len(y)), default=-1)

    def f(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)

    def i(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.int64)

    return TensorData(
        f(xtr), i(ytr), f(xva), i(yva), f(xte), i(yte), num_classes=num_classes, name=name
    )


def _first_nonfinite_row(x: np.ndarray) -> int | None:
    """The first row of ``x`` (``n x ...``) holding NaN or an infinity; None when every value
    is finite. One summing pass when all is well (NaN and infinities propagate into a sum);
    only rows whose sum is not finite are looked at closely."""
    if not np.issubdtype(x.dtype, np.floating):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(x.sum()):
            return None
        rows = x.reshape(len(x), -1)
        suspects = np.flatnonzero(~np.isfinite(rows.sum(axis=1)))  # sums may overflow
    hits = suspects[~np.isfinite(rows[suspects]).all(axis=1)]
    return int(hits[0]) if len(hits) else None


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (images ``n x 8 x 8``, labels), read from the file it bundles:
    ``sklearn.datasets`` takes seconds to import (SciPy and more), which each worker of a search
    would pay; ``load_digits`` where that file is not where scikit-learn keeps it."""
    spec = importlib.util.find_spec("sklearn")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                table = np.loadtxt(f, delimiter=",")
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


class Digits(Dataset):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), scaled to [0, 1].

    A fixed ``test_split`` (seed 0) is the test set; ``val_split`` of the rest is validation.
    """

    name = "digits"

    def __init__(self, val_split: float = 0.2, test_split: float = 0.2) -> None:
        self.val_split = _check_split(val_split)
        self.test_split = _check_split(test_split)

    def load(self, seed: int) -> TensorData:
        images, target = _digits()
        x = (images / 16.0).astype(np.float32)[:, None, :, :]  # n x 1 x 8 x 8
        y = target.astype(np.int64)
        xrest, yrest, xte, yte = split_validation(x, y, self.test_split, seed=0)
        return to_tensor_data(
            self.name, *split_validation(xrest, yrest, self.val_split, seed), xte, yte
        )


class Npz(Dataset):
    """A ``.npz`` file with keys ``xtr ytr xte yte`` and optionally ``xva yva`` (the original
    tool's format; other keys are not read). ``x*`` are numeric ``n x ...`` arrays; ``y*``
    class indices ``0, 1, ...`` (integers, or integral floats such as ``3.0``), one-hot rows,
    or an ``n x 1`` column of indices. The classes are ``0 .. max(ytr)``: a validation or
    test label above every training label is refused, as are NaN or infinite inputs and
    object arrays (never unpickled)."""

    name = "npz"
    REQUIRED = ("xtr", "ytr", "xte", "yte")
    OPTIONAL = ("xva", "yva")

    def __init__(self, path: str, val_split: float = 0.2) -> None:
        self.path = Path(path).expanduser()
        self.val_split = _check_split(val_split)

    def check(self) -> None:
        if not self.path.is_file():
            raise UserError(f"dataset.path={str(self.path)!r}: no such file")

    def load(self, seed: int) -> TensorData:
        self.check()
        arrays = self._arrays()
        splits = [s for s in ("tr", "va", "te") if f"x{s}" in arrays]
        xs: dict[str, np.ndarray] = {}
        ys: dict[str, np.ndarray] = {}
        for s in splits:
            xs[s], ys[s] = self._split(s, arrays[f"x{s}"], arrays[f"y{s}"])
        for s in splits[1:]:
            if xs[s].shape[1:] != xs["tr"].shape[1:]:
                raise UserError(
                    f"{self.path}: xtr examples have shape {xs['tr'].shape[1:]} but x{s} "
                    f"examples {xs[s].shape[1:]}; every split needs the same shape"
                )
        num_classes = self._num_classes(ys)
        if "va" in xs:
            parts = (xs["tr"], ys["tr"], xs["va"], ys["va"])
        else:
            parts = split_validation(xs["tr"], ys["tr"], self.val_split, seed)
        return to_tensor_data(self.path.stem, *parts, xs["te"], ys["te"], num_classes=num_classes)

    def _arrays(self) -> dict[str, np.ndarray]:
        """The file's arrays under the keys dnc reads (other keys are not loaded)."""
        try:
            npz = np.load(self.path, allow_pickle=False)
        except Exception as err:  # zipfile.BadZipFile, ValueError, OSError ...
            raise UserError(
                f"dataset.path={str(self.path)!r} is not a readable .npz file ({err})"
            ) from err
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise UserError(
                f"dataset.path={str(self.path)!r} is a .npy file (one array); an npz dataset "
                "is an archive with arrays xtr ytr xte yte (np.savez)"
            )
        with npz:
            found = list(npz.files)
            missing = [k for k in self.REQUIRED if k not in found]
            if missing:
                raise UserError(
                    f"{self.path}: missing key(s) {', '.join(missing)}; an npz dataset needs "
                    "xtr ytr xte yte (and optionally xva yva), found "
                    f"{', '.join(sorted(found)) or 'none'}"
                )
            if ("xva" in found) != ("yva" in found):
                raise UserError(f"{self.path}: give both xva and yva, or neither")
            return {k: self._array(npz, k) for k in self.REQUIRED + self.OPTIONAL if k in found}

    def _array(self, npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
        try:
            value = npz[key]
        except ValueError as err:
            if "allow_pickle" in str(err):  # numpy refused to unpickle it
                raise UserError(
                    f"{self.path}: {key} is an object array; object arrays are not allowed "
                    f"(reading one would unpickle, which can run code): save {key} as a "
                    "numeric array"
                ) from err
            raise UserError(f"{self.path}: {key} cannot be read ({err})") from err
        except Exception as err:  # a damaged member: zipfile.BadZipFile, OSError, EOFError ...
            raise UserError(f"{self.path}: {key} cannot be read ({err})") from err
        if not isinstance(value, np.ndarray):  # a member that is not a .npy file
            raise UserError(f"{self.path}: {key} is not a numpy array")
        return value

    def _split(self, s: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One split's inputs as float32 and labels as int64 class indices, checked."""
        for key, a in ((f"x{s}", x), (f"y{s}", y)):
            if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
                raise UserError(f"{self.path}: {key} holds {a.dtype} values; it must be numeric")
        if x.ndim < 2:
            raise UserError(f"{self.path}: x{s} has shape {x.shape}; it must be n x features")
        if y.ndim == 2 and y.shape[1] == 1:  # a column of class indices
            y = y[:, 0]
        elif y.ndim == 2 and y.shape[1] > 1:  # one-hot rows, as the original tool stored them
            y = y.argmax(axis=1)
        if y.ndim != 1:
            raise UserError(
                f"{self.path}: y{s} has shape {y.shape}; it must hold n class indices or n "
                "one-hot rows"
            )
        if len(x) != len(y):
            raise UserError(
                f"{self.path}: x{s} has {len(x)} rows but y{s} has {len(y)}; they must match"
            )
        if len(x) == 0:
            raise UserError(f"{self.path}: x{s} is empty")
        y = self._labels(f"y{s}", y)
        with np.errstate(over="ignore"):
            x32 = x.astype(np.float32, copy=False)
        row = _first_nonfinite_row(x32)
        if row is not None:
            value = x32[row].flat[int(np.argmin(np.isfinite(x32[row])))]
            if np.isfinite(x[row]).all():
                raise UserError(
                    f"{self.path}: x{s} holds values too large for float32 (first in row "
                    f"{row}); rescale them"
                )
            raise UserError(
                f"{self.path}: x{s} holds NaN or infinite values (first in row {row}: "
                f"{value}); drop or repair those rows"
            )
        return x32, y

    def _labels(self, key: str, y: np.ndarray) -> np.ndarray:
        """``y`` as int64 class indices: refused unless whole numbers, 0 or more."""
        if np.issubdtype(y.dtype, np.floating):
            bad = np.flatnonzero(~np.isfinite(y) | (y != np.floor(y)))
            if len(bad):
                raise UserError(
                    f"{self.path}: {key}[{bad[0]}] = {y[bad[0]]}; labels must be whole-number "
                    "class indices (3.0 is fine, 1.5 is not)"
                )
        if y.min() < 0:
            row = int(y.argmin())
            raise UserError(
                f"{self.path}: {key}[{row}] = {y[row]}; labels must be class indices 0, 1, "
                "2, ..., not negative"
            )
        if y.max() >= 2**31:
            row = int(y.argmax())
            raise UserError(
                f"{self.path}: {key}[{row}] = {y[row]} is not a class index; number the "
                "classes 0, 1, 2, ..."
            )
        return y.astype(np.int64)

    def _num_classes(self, ys: dict[str, np.ndarray]) -> int:
        """``1 + max(ytr)``, refused when a validation or test label is above it."""
        top = int(ys["tr"].max())
        if top == 0:
            raise UserError(f"{self.path}: ytr holds only class 0; a classifier needs two or more")
        if top >= len(ys["tr"]):
            raise UserError(
                f"{self.path}: ytr's largest label is {top} but it has {len(ys['tr'])} rows: "
                "the labels are not class indices; number the classes 0, 1, 2, ..."
            )
        for s, y in ys.items():
            row = int(y.argmax())
            if y[row] > top:
                raise UserError(
                    f"{self.path}: y{s}[{row}] = {y[row]}, a class the training set lacks: "
                    f"the classes are 0 .. {top} (ytr's largest label), so the networks have "
                    "no output for it; drop those rows or add training examples of it"
                )
        return top + 1
