"""The dataset contract (``Dataset``) and the in-memory data it gives (``TensorData``)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dnc.plugins.base import DataSpec

if TYPE_CHECKING:
    import torch


@dataclass
class TensorData:
    """A dataset held in memory: train / validation / test tensors.

    ``x*`` are ``n x *input_shape`` float tensors, ``y*`` are ``n`` int64 class labels.
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


class Dataset(abc.ABC):
    """A source of ``TensorData``. ``load`` raises ``UserError`` when data is missing or
    malformed; ``check`` finds what it can without loading (a missing file), so that the
    command line reports it at once."""

    name: str = ""

    def check(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Raise ``UserError`` when the data cannot be there (a missing file or folder).
        Cheap: it must not load the data. dnc calls it before anything slow."""

    @abc.abstractmethod
    def load(self, seed: int) -> TensorData:
        """Load (or generate) the data; the validation split is fixed by ``seed``."""


__all__ = ["Dataset", "TensorData"]
