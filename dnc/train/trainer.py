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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from dnc.plugins import DataSpec, SearchSpace, TensorData, UserError
from dnc.train.augment import get_augment
from dnc.train.settings import TrainerSettings, TrialDiverged


@dataclass
class TrainResult:
    """What one training run measured. ``t_epoch`` is seconds per epoch of training only;
    ``best_state`` the model's ``state_dict`` after its best epoch (on the device; kept only
    when ``train(..., keep_best=True)``); ``stopped``: ``should_stop`` ended training early."""

    best_val_acc: float
    best_epoch: int
    t_epoch: float
    epochs_run: int
    train_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    stopped: bool = False


def count_params(model: nn.Module) -> int:
    """Trainable parameters (for sparse layers: the ones that may be nonzero, see their own)."""
    counter = getattr(model, "count_params", None)
    if callable(counter):
        return int(counter())
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_seeded(
    space: SearchSpace, candidate: Mapping[str, Any], spec: DataSpec, seed: int
) -> nn.Module:
    """``space.build(candidate, spec)`` with its initial weights drawn from ``seed`` alone, so
    that a trial's seed reproduces it whatever the process drew before (a sampler's GP, another
    trial, a cost measurement)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return space.build(candidate, spec)


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
    keep_best: bool = False,
    should_stop: Callable[[TrainResult], bool] | None = None,
) -> TrainResult:
    """Train ``model`` with Adam on ``data.xtr``; validate on ``data.xva`` after every epoch.
    ``on_epoch(epoch, train_loss, val_acc)`` is called after each (``epoch`` from 0);
    ``keep_best`` keeps a copy of the weights of the best epoch (``TrainResult.best_state``),
    copied on the device, outside the timed epoch. ``should_stop(result so far)``, after each
    epoch but the last: true ends training there (``TrainResult.stopped``; a pruner's call).

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
            if keep_best:
                result.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif settings.patience and epoch - result.best_epoch >= settings.patience:
            break
        if should_stop is not None and epoch + 1 < settings.epochs:
            result.t_epoch = _typical(epoch_times)
            if should_stop(result):
                result.stopped = True
                break
    result.t_epoch = _typical(epoch_times)
    return result


def _typical(times: Sequence[float]) -> float:
    """Median epoch time; the first epoch (warm-up) is left out when there are others."""
    kept = sorted(times[1:] if len(times) > 1 else times)
    mid = len(kept) // 2
    return kept[mid] if len(kept) % 2 else 0.5 * (kept[mid - 1] + kept[mid])
