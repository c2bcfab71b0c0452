"""``TrainerSettings``: how every candidate is trained (``trainer``), with the one set of
defaults. Importing this module is cheap; torch is loaded when settings are validated."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dnc.plugins import UserError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("auto", "fp32", "bf16")
PRUNERS = ("none", "median", "hyperband")


class TrialDiverged(Exception):
    """Training produced a NaN or infinite loss."""


class TrialTimedOut(Exception):
    """A trial ran longer than ``trainer.timeout_s``."""


@dataclass(frozen=True)
class TrainerSettings:
    """How every candidate is trained.

    ``lr_cuts``: fractions of ``epochs`` after which the learning rate is multiplied by
    ``lr_cut_factor`` (the paper: 0.2 at 50% and 75%). ``patience``: stop after this many
    epochs without a better validation accuracy (0: never stop early).
    ``augment``: a name in ``dnc.train.augment.AUGMENTATIONS`` (``none``, ``flip``, ``crop``,
    ``flip_crop``; all but ``none`` need image data). ``precision``: ``auto`` (bf16 autocast for
    image models on CUDA, else fp32), ``fp32``, or ``bf16`` (autocast on any device).
    ``compile``: train the ``torch.compile``d model (compiling happens in the first epoch,
    which ``t_epoch`` leaves out). ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    ``timeout_s``: a trial (building, training and measuring its candidate) that runs longer
    is stopped and recorded as failed with reason ``timeout`` (0: no limit).
    ``pruner``: stop hopeless trials early with an Optuna pruner (``none``, ``median`` or
    ``hyperband``; ``dnc.search.pruning``): each epoch reports the search loss so far, and a
    pruned trial is recorded ``PRUNED`` with its figures so far.

    Example:
        >>> TrainerSettings(epochs=100, augment="flip_crop", device="cpu").augment
        'flip_crop'
    """

    epochs: int = 15
    patience: int = 0
    device: str = "auto"
    lr_cuts: tuple[float, ...] = (0.5, 0.75)
    lr_cut_factor: float = 0.2
    eval_batch_size: int = 2048
    augment: str = "none"
    precision: str = "auto"
    compile: bool = False
    timeout_s: float = 0.0
    pruner: str = "none"

    def __post_init__(self) -> None:
        from dnc.train.augment import get_augment

        object.__setattr__(self, "lr_cuts", tuple(self.lr_cuts))
        if self.epochs < 1:
            raise UserError(f"trainer.epochs={self.epochs}: must be at least 1")
        if self.patience < 0:
            raise UserError(f"trainer.patience={self.patience}: must be >= 0 (0 disables it)")
        if not all(0 < c < 1 for c in self.lr_cuts):
            raise UserError(f"trainer.lr_cuts={list(self.lr_cuts)}: fractions must lie in (0, 1)")
        if self.eval_batch_size < 1:
            raise UserError("trainer.eval_batch_size must be at least 1")
        get_augment(self.augment)  # UserError naming the choices when unknown
        if self.precision not in PRECISIONS:
            raise UserError(
                f"trainer.precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}"
            )
        if not (self.timeout_s >= 0 and math.isfinite(self.timeout_s)):
            raise UserError(f"trainer.timeout_s={self.timeout_s}: give seconds >= 0 (0: no limit)")
        if self.pruner not in PRUNERS:
            raise UserError(f"trainer.pruner={self.pruner!r}: choose one of {', '.join(PRUNERS)}")
        if not isinstance(self.compile, bool):
            raise UserError(f"trainer.compile={self.compile!r}: use true or false")
        if self.device not in ("auto", "cpu"):  # those need no check (nor torch, yet)
            resolve_device(self.device)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def for_worker(self, index: int | None) -> TrainerSettings:
        """These settings for worker ``index`` of a search (``+worker=N``): with ``device:
        auto`` on a machine with GPUs, worker ``i`` trains on ``cuda:{i % device_count}``,
        so that workers launched together on one machine share its GPUs out."""
        if index is None or self.device != "auto":
            return self
        import torch

        if not torch.cuda.is_available():
            return self
        return dataclasses.replace(self, device=f"cuda:{index % torch.cuda.device_count()}")


def resolve_device(name: str) -> torch.device:
    """The ``torch.device`` for a ``trainer.device`` setting; ``UserError`` for a bad name or
    for CUDA where there is none."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(
            f"trainer.device={name!r} is not a device (use auto, cpu, cuda, cuda:N)"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"trainer.device={name!r} but CUDA is not available here; use auto or cpu")
    return device


__all__ = ["PRECISIONS", "TrainerSettings", "TrialDiverged", "TrialTimedOut", "resolve_device"]
