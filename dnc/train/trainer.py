"""The trainer: data on the device, batches as ``randperm`` slices, training-only epoch timing.

No ``DataLoader``: a dataset that fits in memory lives on the device as one tensor, and a batch
is an index slice of a random permutation (STYLE: airbench). Augmentation (``trainer.augment``)
is a few vectorised ops on the whole training tensor once per epoch, inside the timed epoch.
Validation runs in eval mode under ``torch.inference_mode`` (dropout off: a pitfall of the
original tool). On CUDA, image models (``n x C x H x W`` inputs) run channels-last under bf16
autocast (``trainer.precision``); ``trainer.compile`` wraps the model in ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from dnc.plugins import TensorData, UserError
from dnc.train.augment import get_augment

PRECISIONS = ("auto", "fp32", "bf16")


class TrialDiverged(Exception):
    """Training produced a NaN or infinite loss."""


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
    which ``t_epoch`` leaves out).

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

    def __post_init__(self) -> None:
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
        if not isinstance(self.compile, bool):
            raise UserError(f"trainer.compile={self.compile!r}: use true or false")
        resolve_device(self.device)

    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


@dataclass
class TrainResult:
    """What one training run measured. ``t_epoch`` is seconds per epoch of training only."""

    best_val_acc: float
    best_epoch: int
    t_epoch: float
    epochs_run: int
    train_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
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


def count_params(model: nn.Module) -> int:
    """Trainable parameters (for sparse layers: the ones that may be nonzero, see their own)."""
    counter = getattr(model, "count_params", None)
    if callable(counter):
        return int(counter())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_adam(model: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, fused where PyTorch has a fused kernel for the parameters (CPU and CUDA float
    tensors): about half the optimiser time of the per-tensor loop on a small MLP."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    *,
    amp: torch.dtype | None = None,
) -> float:
    """Percentage of ``x`` (``n x ...``) classified as ``y`` (``n``), in eval mode
    (under autocast to ``amp`` when given)."""
    was_training = model.training
    model.eval()
    correct = 0
    autocast = _autocast(x.device, amp)
    for start in range(0, len(x), batch_size):
        with autocast:
            logits = model(x[start : start + batch_size])
        correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    model.train(was_training)
    return 100.0 * correct / max(len(x), 1)


def _autocast(device: torch.device, amp: torch.dtype | None) -> contextlib.AbstractContextManager:
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp)


def autocast_dtype(
    settings: TrainerSettings, device: torch.device, image: bool
) -> torch.dtype | None:
    """The autocast dtype for ``settings.precision`` (``None``: plain fp32)."""
    if settings.precision == "bf16" or (
        settings.precision == "auto" and image and device.type == "cuda"
    ):
        return torch.bfloat16
    return None


def place(data: TensorData, settings: TrainerSettings) -> TensorData:
    """``data`` on the trainer's device, images channels-last on CUDA: done once per search,
    so that ``train`` copies nothing per trial."""
    device = settings.torch_device()
    fmt = torch.channels_last if data.xtr.dim() == 4 and device.type == "cuda" else None

    def move(x: torch.Tensor) -> torch.Tensor:
        return x.to(device) if fmt is None else x.to(device, memory_format=fmt)

    return dataclasses.replace(
        data,
        xtr=move(data.xtr),
        ytr=data.ytr.to(device),
        xva=move(data.xva),
        yva=data.yva.to(device),
        xte=move(data.xte),
        yte=data.yte.to(device),
    )


def train(
    model: nn.Module,
    data: TensorData,
    *,
    lr: float,
    weight_decay: float,
    batch_size: int,
    settings: TrainerSettings,
    seed: int = 0,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` with Adam on ``data.xtr``; validate on ``data.xva`` after every epoch.

    Tensors already on the right device are not copied. Raises ``TrialDiverged`` when the loss
    becomes NaN or infinite, ``UserError`` when ``settings.augment`` needs images and the data
    are not ``n x C x H x W``.
    """
    device = settings.torch_device()
    image = data.xtr.dim() == 4
    augment = get_augment(settings.augment)
    if augment is not None and not image:
        raise UserError(
            f"trainer.augment={settings.augment} needs image data (n x C x H x W), but "
            f"{data.name or 'the data'} has examples of shape {tuple(data.xtr.shape[1:])}; "
            "use trainer.augment=none"
        )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)
    # channels-last suits cuDNN's convolutions (and tensor cores under bf16)
    channels_last = image and device.type == "cuda"
    fmt = torch.channels_last if channels_last else torch.preserve_format
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    xtr, ytr = data.xtr.to(device, memory_format=fmt), data.ytr.to(device)
    xva, yva = data.xva.to(device, memory_format=fmt), data.yva.to(device)
    amp = autocast_dtype(settings, device, image)
    net = cast(nn.Module, torch.compile(model)) if settings.compile else model
    opt = make_adam(model, lr=lr, weight_decay=weight_decay)
    milestones = sorted({max(1, round(c * settings.epochs)) for c in settings.lr_cuts})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=settings.lr_cut_factor)
    loss_fn = nn.CrossEntropyLoss()
    n = len(xtr)
    batch_size = max(1, min(int(batch_size), n))
    aug_gen = torch.Generator(device=device).manual_seed(seed) if augment is not None else None

    result = TrainResult(best_val_acc=-math.inf, best_epoch=-1, t_epoch=math.nan, epochs_run=0)
    epoch_times: list[float] = []
    for epoch in range(settings.epochs):
        net.train()
        _sync(device)
        start = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(device)
        xs = xtr if augment is None else augment(xtr, aug_gen)  # type: ignore[arg-type]
        total = torch.zeros((), device=device)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if amp is None:
                loss = loss_fn(net(xs[idx]), ytr[idx])
            else:
                with torch.autocast(device_type=device.type, dtype=amp):
                    loss = loss_fn(net(xs[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        sched.step()
        _sync(device)
        epoch_times.append(time.perf_counter() - start)
        mean_loss = float(total) / n
        if not math.isfinite(mean_loss):
            raise TrialDiverged(f"training loss became {mean_loss} in epoch {epoch + 1}")
        val = accuracy(net, xva, yva, settings.eval_batch_size, amp=amp)
        result.train_loss.append(mean_loss)
        result.val_acc.append(val)
        result.epochs_run = epoch + 1
        if on_epoch is not None:
            on_epoch(epoch, mean_loss, val)
        if val > result.best_val_acc:
            result.best_val_acc, result.best_epoch = val, epoch
        elif settings.patience and epoch - result.best_epoch >= settings.patience:
            break
    result.t_epoch = _typical(epoch_times)
    return result


def _typical(times: Sequence[float]) -> float:
    """Median epoch time; the first epoch (warm-up) is left out when there are others."""
    kept = sorted(times[1:] if len(times) > 1 else times)
    mid = len(kept) // 2
    return kept[mid] if len(kept) % 2 else 0.5 * (kept[mid - 1] + kept[mid])
