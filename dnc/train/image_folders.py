"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 read from torchvision's on-disk layout in a
local folder, without torchvision (``TorchvisionFolder``). A truncated or corrupt file is
refused with one line naming it; the number of classes is fixed (10, or 100 for CIFAR-100).
"""

from __future__ import annotations

import gzip
import math
import pickle
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dnc.plugins import Dataset, TensorData, UserError
from dnc.train.datasets import _check_split, split_validation, to_tensor_data

if TYPE_CHECKING:
    pass

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
_NUM_CLASSES = {"mnist": 10, "fmnist": 10, "cifar10": 10, "cifar100": 100}


class _Damaged(Exception):
    """A file of torchvision's layout that is not what it should be: ``path`` and ``why``."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def _read_idx(path: Path, ndim: int, classes: int | None = None) -> np.ndarray:
    """An IDX file (MNIST's format: a big-endian header, then unsigned bytes), optionally
    gzipped, holding an ``ndim``-dimensional array (``classes``: labels, each below it);
    ``_Damaged`` when it is truncated, corrupt or something else."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zlib.error) as err:  # e.g. a truncated or corrupt gzip stream
        raise _Damaged(path, f"cannot be read: {err}") from err
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise _Damaged(path, "not an IDX file of unsigned bytes (it does not start 00 00 08)")
    if raw[3] != ndim:
        raise _Damaged(path, f"holds a {raw[3]}-dimensional array, not {ndim}-dimensional")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise _Damaged(path, f"truncated: {len(raw)} bytes, shorter than its header")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    want, have = math.prod(dims), len(raw) - offset
    if have != want:
        shape = " x ".join(map(str, dims))
        raise _Damaged(
            path,
            f"{'truncated' if have < want else 'too long'}: its header promises {shape} = "
            f"{want} bytes of data, it holds {have}",
        )
    a = np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)
    if classes is not None:
        _check_labels(path, a, classes)
    return a


def _check_labels(path: Path, labels: np.ndarray, classes: int) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if len(bad):
        raise _Damaged(
            path, f"label {labels[bad[0]]} in row {bad[0]}; the classes are 0 .. {classes - 1}"
        )


def _idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(2, "not found", str(folder / stem))


def _cifar_batch(path: Path, key: bytes, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: ``n x 3 x 32 x 32`` uint8 images and ``n`` labels under
    ``key``; ``_Damaged`` when it is truncated, corrupt or something else."""
    try:
        with open(path, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
    except FileNotFoundError:
        raise
    except Exception as err:  # a damaged pickle can raise almost anything
        raise _Damaged(path, f"not a readable pickle: {type(err).__name__}: {err}") from err
    if not isinstance(batch, dict) or b"data" not in batch or key not in batch:
        raise _Damaged(path, f"not a CIFAR batch (no b'data' and {key!r} entries)")
    try:
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[key])
    except ValueError as err:  # a ragged list
        raise _Damaged(path, f"not a CIFAR batch ({err})") from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise _Damaged(path, f"its data is {data.dtype}, shape {data.shape}: not n x 3072 bytes")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise _Damaged(
            path, f"it has {len(data)} images but labels of {labels.dtype}, shape {labels.shape}"
        )
    _check_labels(path, labels, classes)
    return data.reshape(-1, 3, 32, 32), labels


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
    for trying a search on a laptop. A truncated or corrupt file is refused, by name.
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

    def _damaged(self, path: Path, why: str) -> UserError:
        tv = _TV_CLASSES[self.name]
        return UserError(
            f"{self.name}: {path} is damaged ({why}); delete {self.folder} and fetch the "
            f"files again (dataset.download=true, or torchvision.datasets.{tv}"
            f"('{self.root}', download=True))"
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
                return self._read_mnist(folder)
            return self._read_cifar(folder)
        except FileNotFoundError as err:
            raise self._missing(Path(err.filename or folder)) from err
        except _Damaged as err:
            raise self._damaged(err.path, err.why) from err

    def _read_mnist(self, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        parts: list[np.ndarray] = []
        shapes: dict[Path, tuple[int, ...]] = {}
        for split in ("train", "t10k"):
            images = _idx_file(folder, f"{split}-images-idx3-ubyte")
            labels = _idx_file(folder, f"{split}-labels-idx1-ubyte")
            x, y = _read_idx(images, 3), _read_idx(labels, 1, _NUM_CLASSES[self.name])
            if len(x) != len(y):
                raise _Damaged(
                    images, f"it holds {len(x)} images but {labels.name} {len(y)} labels"
                )
            shapes[images] = x.shape[1:]
            parts += [x[:, None], y.astype(np.int64)]
        (train, shape), (test, other) = shapes.items()
        if shape != other:
            raise _Damaged(test, f"its images are {other}, those of {train.name} {shape}")
        xtr, ytr, xte, yte = parts
        return xtr, ytr, xte, yte

    def _read_cifar(self, folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.name == "cifar10":
            train, test, key = [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels"
        else:
            train, test, key = ["train"], "test", b"fine_labels"
        classes = _NUM_CLASSES[self.name]
        batches = [_cifar_batch(folder / name, key, classes) for name in train]
        xte, yte = _cifar_batch(folder / test, key, classes)
        xtr = np.concatenate([x for x, _ in batches])
        ytr = np.concatenate([y for _, y in batches])
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
            self.name,
            *split_validation(xtr, ytr, self.val_split, seed),
            xte,
            yte,
            num_classes=_NUM_CLASSES[self.name],
        )


__all__ = ["TorchvisionFolder"]
