"""The dataset contract (``Dataset``) and the in-memory data it gives (``TensorData``), with
the checks dnc runs on every dataset's data before any training (``TensorData.validate``)."""

from __future__ import annotations

import abc
import logging
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dnc.plugins.base import DataSpec, UserError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

SPLITS = ("tr", "va", "te")
"""The suffixes of ``TensorData``'s splits: ``xtr ytr``, ``xva yva``, ``xte yte``."""


@dataclass
class TensorData:
    """A dataset held in memory: train / validation / test tensors.

    ``x*`` are ``n x *input_shape`` float32 tensors, ``y*`` are ``n`` int64 class labels in
    ``0 .. num_classes - 1``.
    """

    xtr: torch.Tensor
    ytr: torch.Tensor
    xva: torch.Tensor
    yva: torch.Tensor
    xte: torch.Tensor
    yte: torch.Tensor
    num_classes: int
    name: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(input_shape=tuple(self.xtr.shape[1:]), num_classes=self.num_classes)

    def validate(self) -> None:
        """Raise ``UserError``, one line naming the dataset and the split, for data no network
        can be trained on: a split that is not a float32 ``n x ...`` tensor with as many int64
        labels, an empty split, splits whose examples differ in shape, NaN or infinite inputs,
        a label outside ``0 .. num_classes - 1``, fewer than 2 classes. A class the training
        set lacks is a logged warning, not an error.

        dnc calls it once per search, on what ``Dataset.load`` returned, for built-in and
        third-party datasets alike. Vectorised: about 0.1 s for CIFAR-10 (60,000 x 3,072
        inputs) on two CPU cores.
        """
        import torch

        where = f"dataset {self.name!r}" if self.name else "the dataset"
        try:
            k = operator.index(self.num_classes)
        except TypeError:
            k = -1
        if k < 2:
            raise UserError(f"{where}: num_classes={self.num_classes!r}; it needs at least 2")
        for s in SPLITS:
            x, y = getattr(self, f"x{s}"), getattr(self, f"y{s}")
            if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or x.dim() < 2:
                raise UserError(f"{where}: x{s} is {_what(x)}; it must be float32, n x ...")
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
                raise UserError(
                    f"{where}: y{s} is {_what(y)}; it must be int64 class indices, shape n"
                )
            if len(x) != len(y):
                raise UserError(f"{where}: x{s} has {len(x)} rows but y{s} has {len(y)}")
            if len(x) == 0:
                raise UserError(f"{where}: x{s} is empty")
            if x.shape[1:] != self.xtr.shape[1:]:
                raise UserError(
                    f"{where}: x{s} examples have shape {tuple(x.shape[1:])} but xtr "
                    f"examples {tuple(self.xtr.shape[1:])}; every split needs the same shape"
                )
            bad = _first_nonfinite_row(x)
            if bad is not None:
                raise UserError(
                    f"{where}: x{s} holds NaN or infinite values (first in row {bad[0]}: "
                    f"{bad[1]}); drop or repair those rows"
                )
            outside = ((y < 0) | (y >= k)).nonzero()
            if len(outside):
                row = int(outside[0])
                raise UserError(
                    f"{where}: y{s}[{row}] = {int(y[row])}; labels must be class indices "
                    f"0 .. {k - 1} (num_classes={k})"
                )
        missing, n_missing = _missing_classes(self.ytr, k)
        if n_missing:
            log.warning(
                "%s: %s never in the training set (ytr); the networks cannot learn %s",
                where,
                _class_ids(missing, n_missing),
                "it" if n_missing == 1 else "them",
            )


def _missing_classes(y: torch.Tensor, k: int, most: int = 10) -> tuple[list[int], int]:
    """The first ``most`` classes of ``0 .. k - 1`` that the labels ``y`` lack, and how many
    they lack, in memory bounded by ``len(y)`` (or a million counts) however large ``k``."""
    import torch

    if k <= max(len(y), 1 << 20):
        absent = (torch.bincount(y, minlength=k) == 0).nonzero().flatten()
        return absent[:most].tolist(), len(absent)
    present = torch.unique(y)
    ids = torch.ones(min(k, len(present) + most), dtype=torch.bool, device=y.device)
    ids[present[present < len(ids)]] = False
    return ids.nonzero().flatten()[:most].tolist(), k - len(present)


def _first_nonfinite_row(x: torch.Tensor) -> tuple[int, float] | None:
    """The first row of ``x`` (``n x ...``) holding NaN or an infinity, and that value; None
    when every value is finite. One summing pass when all is well (NaN and infinities
    propagate into a sum); only rows whose sum is not finite are looked at closely."""
    import torch

    if not x.is_floating_point() or bool(torch.isfinite(x.sum())):
        return None
    rows = x.reshape(len(x), -1)
    suspects = (~torch.isfinite(rows.sum(dim=1))).nonzero().flatten()  # sums may overflow
    hits = suspects[~torch.isfinite(rows[suspects]).all(dim=1)]
    if not len(hits):
        return None
    row = rows[int(hits[0])]
    return int(hits[0]), float(row[~torch.isfinite(row)][0])


def _class_ids(ids: list[int], total: int, most: int = 10) -> str:
    """``"class 3"``, ``"classes 3, 5"``, or the first ``most`` of ``total`` and how many."""
    if total == 1:
        return f"class {ids[0]}"
    shown = ", ".join(map(str, ids[:most]))
    return f"classes {shown}" + (f", ... ({total} in all)" if total > most else "")


def _what(a: object) -> str:
    """``"an int32 tensor of shape (30,)"``, ``"a list"``: what a split holds, for a message."""
    import torch

    if isinstance(a, torch.Tensor):
        what = f"{str(a.dtype).removeprefix('torch.')} tensor of shape {tuple(a.shape)}"
    else:
        what = type(a).__name__
    return f"{'an' if what[0] in 'aeiou' else 'a'} {what}"


class Dataset(abc.ABC):
    """A source of ``TensorData``. ``load`` raises ``UserError`` when data is missing or
    malformed; ``check`` finds what it can without loading (a missing file), so that the
    command line reports it at once. Whatever ``load`` returns, dnc then checks with
    ``TensorData.validate`` before any training."""

    name: str = ""

    def check(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Raise ``UserError`` when the data cannot be there (a missing file or folder).
        Cheap: it must not load the data. dnc calls it before anything slow."""

    @abc.abstractmethod
    def load(self, seed: int) -> TensorData:
        """Load (or generate) the data; the validation split is fixed by ``seed``."""


__all__ = ["Dataset", "TensorData"]
