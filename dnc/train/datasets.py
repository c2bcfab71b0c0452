"""Built-in datasets: ``digits`` (bundled with scikit-learn), ``npz`` files, and MNIST,
Fashion-MNIST, CIFAR-10 and CIFAR-100 read from torchvision's on-disk layout in a local folder.

Each returns ``TensorData``: float inputs, int64 labels, a validation split of the training set
fixed by the seed (``val_split``), unless the file provides its own validation set.
"""

from __future__ import annotations

import gzip
import pickle
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
) -> TensorData:
    """Convert numpy arrays to ``TensorData`` (float32 inputs, int64 labels 0..k-1)."""
    labels = np.concatenate([ytr, yva, yte])
    if labels.min() < 0:
        raise UserError(f"dataset {name}: labels must be non-negative class indices")

    import torch

    def f(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)

    def i(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.int64)

    return TensorData(
        f(xtr), i(ytr), f(xva), i(yva), f(xte), i(yte), num_classes=int(labels.max()) + 1, name=name
    )


class Digits(Dataset):
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), scaled to [0, 1].

    A fixed ``test_split`` (seed 0) is the test set; ``val_split`` of the rest is validation.
    """

    name = "digits"

    def __init__(self, val_split: float = 0.2, test_split: float = 0.2) -> None:
        self.val_split = _check_split(val_split)
        self.test_split = _check_split(test_split)

    def load(self, seed: int) -> TensorData:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # n x 1 x 8 x 8
        y = bunch.target.astype(np.int64)
        xrest, yrest, xte, yte = split_validation(x, y, self.test_split, seed=0)
        return to_tensor_data(
            self.name, *split_validation(xrest, yrest, self.val_split, seed), xte, yte
        )


class Npz(Dataset):
    """A ``.npz`` file with keys ``xtr ytr xte yte`` and optionally ``xva yva`` (the original
    tool's format). ``x*`` are ``n x ...`` arrays, ``y*`` class indices (or one-hot rows)."""

    name = "npz"
    REQUIRED = ("xtr", "ytr", "xte", "yte")

    def __init__(self, path: str, val_split: float = 0.2) -> None:
        self.path = Path(path).expanduser()
        self.val_split = _check_split(val_split)

    def check(self) -> None:
        if not self.path.is_file():
            raise UserError(f"dataset.path={str(self.path)!r}: no such file")

    def load(self, seed: int) -> TensorData:
        self.check()
        try:
            with np.load(self.path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except Exception as err:  # zipfile.BadZipFile, ValueError, OSError ...
            raise UserError(
                f"dataset.path={str(self.path)!r} is not a readable .npz file ({err})"
            ) from err
        missing = [k for k in self.REQUIRED if k not in arrays]
        if missing:
            raise UserError(
                f"{self.path}: missing key(s) {', '.join(missing)}; an npz dataset needs "
                "xtr ytr xte yte (and optionally xva yva), found "
                f"{', '.join(sorted(arrays)) or 'none'}"
            )
        if ("xva" in arrays) != ("yva" in arrays):
            raise UserError(f"{self.path}: give both xva and yva, or neither")
        for split in ("tr", "va", "te"):
            if f"x{split}" not in arrays:
                continue
            x, y = arrays[f"x{split}"], arrays[f"y{split}"]
            if y.ndim == 2:  # one-hot labels, as the original tool stored them
                y = arrays[f"y{split}"] = y.argmax(axis=1)
            if len(x) != len(y):
                raise UserError(
                    f"{self.path}: x{split} has {len(x)} rows but y{split} has {len(y)}; "
                    "they must match"
                )
            if len(x) == 0:
                raise UserError(f"{self.path}: x{split} is empty")
            if not np.issubdtype(x.dtype, np.number) or not np.issubdtype(y.dtype, np.number):
                raise UserError(f"{self.path}: x{split} and y{split} must be numeric arrays")
        if arrays["xtr"].shape[1:] != arrays["xte"].shape[1:]:
            raise UserError(
                f"{self.path}: xtr examples have shape {arrays['xtr'].shape[1:]} but xte "
                f"examples {arrays['xte'].shape[1:]}"
            )
        if "xva" in arrays:
            parts = (arrays["xtr"], arrays["ytr"], arrays["xva"], arrays["yva"])
        else:
            parts = split_validation(arrays["xtr"], arrays["ytr"], self.val_split, seed)
        return to_tensor_data(self.path.stem, *parts, arrays["xte"], arrays["yte"])


# --------------------------------------------------------------------------------------------
# torchvision's on-disk layouts, read without torchvision
# --------------------------------------------------------------------------------------------
_LAYOUTS = {
    "mnist": "MNIST/raw",
    "fmnist": "FashionMNIST/raw",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
}
_TV_CLASSES = {
    "mnist": "MNIST",
    "fmnist": "FashionMNIST",
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
}


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), optionally gzipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(folder / stem)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="bytes")


class TorchvisionFolder(Dataset):
    """MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 from ``root`` in torchvision's layout
    (what ``torchvision.datasets.CIFAR10(root, download=True)`` leaves there):

    - ``mnist``: ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``
    - ``fmnist``: the same under ``root/FashionMNIST/raw``
    - ``cifar10``: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch}``
    - ``cifar100``: ``root/cifar-100-python/{train,test}``

    Inputs are ``n x C x H x W``, scaled to [0, 1] and standardised per channel with the
    training set's statistics. ``download=true`` fetches through torchvision (if installed).
    ``max_train``: keep only that many training examples (a random subset fixed by the seed),
    for trying a search on a laptop.
    """

    def __init__(
        self,
        name: str,
        root: str = "data",
        val_split: float = 0.2,
        download: bool = False,
        normalize: bool = True,
        max_train: int | None = None,
    ) -> None:
        if max_train is not None and int(max_train) < 2:
            raise UserError(f"dataset.max_train={max_train}: give at least 2, or null for all")
        self.max_train = None if max_train is None else int(max_train)
        if name not in _LAYOUTS:
            raise UserError(f"dataset.name={name!r}: choose one of {sorted(_LAYOUTS)}")
        self.name = name
        self.root = Path(root).expanduser()
        self.val_split = _check_split(val_split)
        self.download = bool(download)
        self.normalize = bool(normalize)

    @property
    def folder(self) -> Path:
        return self.root / _LAYOUTS[self.name]

    def _missing(self, what: Path) -> UserError:
        tv = _TV_CLASSES[self.name]
        return UserError(
            f"{self.name}: {what} not found under dataset.root={str(self.root)!r}; place "
            f"torchvision's {tv} files in {self.folder} (e.g. "
            f"torchvision.datasets.{tv}('{self.root}', download=True) on a machine with "
            f"internet), or add dataset.download=true here if this machine is online"
        )

    def _fetch(self) -> None:
        try:
            import torchvision.datasets as tvd
        except ImportError as err:
            raise UserError(
                "dataset.download=true needs torchvision: pip install torchvision"
            ) from err
        cls = getattr(tvd, _TV_CLASSES[self.name])
        for train in (True, False):
            cls(str(self.root), train=train, download=True)

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        folder = self.folder
        if not folder.is_dir():
            raise self._missing(folder)
        try:
            if self.name in ("mnist", "fmnist"):
                parts = [
                    _read_idx(_idx_file(folder, f"{s}-{k}"))
                    for s in ("train", "t10k")
                    for k in ("images-idx3-ubyte", "labels-idx1-ubyte")
                ]
                xtr, ytr, xte, yte = parts
                return xtr[:, None], ytr, xte[:, None], yte
            if self.name == "cifar10":
                batches = [_unpickle(folder / f"data_batch_{i}") for i in range(1, 6)]
                test = _unpickle(folder / "test_batch")
                key = b"labels"
            else:
                batches = [_unpickle(folder / "train")]
                test = _unpickle(folder / "test")
                key = b"fine_labels"
        except FileNotFoundError as err:
            raise self._missing(Path(err.filename or folder)) from err
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, IndexError) as err:
            raise UserError(
                f"{self.name}: files in {folder} are damaged ({err!r}); fetch them again"
            ) from err
        try:
            xtr = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
            ytr = np.concatenate([np.asarray(b[key]) for b in batches])
            xte = np.asarray(test[b"data"]).reshape(-1, 3, 32, 32)
            yte = np.asarray(test[key])
        except (KeyError, ValueError) as err:
            raise UserError(
                f"{self.name}: files in {folder} are damaged ({err!r}); fetch them again"
            ) from err
        return xtr, ytr, xte, yte

    def check(self) -> None:
        if not self.download and not self.folder.is_dir():
            raise self._missing(self.folder)

    def load(self, seed: int) -> TensorData:
        if self.download and not self.folder.is_dir():
            self._fetch()
        xtr, ytr, xte, yte = self._read()
        if self.max_train is not None and self.max_train < len(xtr):
            keep = np.sort(np.random.default_rng(seed).permutation(len(xtr))[: self.max_train])
            xtr, ytr = xtr[keep], ytr[keep]
        xtr = xtr.astype(np.float32) / 255.0
        xte = xte.astype(np.float32) / 255.0
        if self.normalize:
            mean = xtr.mean(axis=(0, 2, 3), keepdims=True)
            std = xtr.std(axis=(0, 2, 3), keepdims=True) + 1e-8
            xtr, xte = (xtr - mean) / std, (xte - mean) / std
        return to_tensor_data(
            self.name, *split_validation(xtr, ytr, self.val_split, seed), xte, yte
        )
