"""Trainer throughput against a plain ``DataLoader`` loop, in one run.

MLP case: the same 784-400-10 MLP on the same 4,000 random samples at batch 64, one epoch of
Adam each, timed over several epochs; the figure is the ratio of medians
(dnc trainer t_epoch / DataLoader t_epoch), lower is better.

CNN case: one CNN of the CNN space (conv 32-64-128-256, max-pools after layers 1 and 2,
batch-norm and dropout everywhere) on CIFAR-shaped random images ``3 x 32 x 32`` at batch 256,
trained three ways, interleaved epoch by epoch: the dnc trainer without augmentation, the dnc
trainer with ``augment=flip_crop`` (on-device, vectorised, inside the timed epoch), and a
``DataLoader`` over a ``Dataset`` that augments each sample in ``__getitem__``
(torchvision.transforms.v2
``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip`` when torchvision imports, else the
same per-sample crop and flip written in plain torch; the JSON says which ran). The figure is
``cnn_aug_overhead`` = t_epoch with augmentation / without (target on CPU: <= 1.10), the median
over rounds of the ratio of the two epochs run back to back in a round (robust to drifting load
on a shared machine); ``cnn_flip_crop_alone_ms`` times the augmentation by itself.

    python bench/train_throughput.py [--epochs 7] [--samples 4000] [--cnn-samples 1024]
                                     [--cnn-epochs 6] [--workers 0] [--skip-mlp | --skip-cnn]

Last line: one JSON object with ``mlp_ratio_vs_dataloader``, ``cnn_aug_overhead`` and the raw
timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dnc.plugins import DataSpec, TensorData
from dnc.train.augment import flip_crop
from dnc.train.trainer import TrainerSettings, make_adam, train

CNN_WIDTHS = (32, 64, 128, 256)


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}")


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def dataloader_epochs(
    x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, fused: bool = False
) -> list[float]:
    """The baseline: what a typical PyTorch script does for in-memory data (``fused``: with
    the trainer's fused Adam, to separate the data path from the optimiser)."""
    model = mlp(x.shape[1], 400, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    times = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return times[1:]  # the first epoch warms up, as the trainer's t_epoch also leaves it out


def trainer_epochs(x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int) -> list[float]:
    data = TensorData(x, y, x[:256], y[:256], x[:256], y[:256], num_classes=10, name="bench")
    times: list[float] = []
    settings = TrainerSettings(epochs=1, device="cpu")
    model = mlp(x.shape[1], 400, 10)
    for epoch in range(epochs):
        result = train(model, data, lr=1e-3, weight_decay=0.0, batch_size=batch,
                       settings=settings, seed=epoch)
        times.append(result.t_epoch)
    return times[1:]


# -- CNN -------------------------------------------------------------------------------------
def cnn(shape: tuple[int, ...] = (3, 32, 32)) -> tuple[nn.Module, str]:
    """The benchmark CNN, built by the CNN space (the same network every time)."""
    from dnc_cnn.space import CNNSpace

    space = CNNSpace()
    cand = {**space.reference_candidate(), "num_conv_layers": len(CNN_WIDTHS),
            **{f"channels_{i}": w for i, w in enumerate(CNN_WIDTHS)}}
    torch.manual_seed(0)
    return space.build(cand, DataSpec(input_shape=shape, num_classes=10)), space.describe(cand)


class PerSampleAugmented(Dataset):
    """What a typical script does: augment one image at a time in ``__getitem__``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pad: int = 4) -> None:
        self.x, self.y, self.pad = x, y, pad
        self.transform = None
        try:
            from torchvision.transforms import v2

            self.transform = v2.Compose([v2.RandomCrop(x.shape[-1], padding=pad),
                                         v2.RandomHorizontalFlip()])
            self.kind = "torchvision.transforms.v2 RandomCrop+RandomHorizontalFlip"
        except Exception:  # not installed, or the wheel does not import beside this torch
            self.kind = "plain-torch per-sample crop+flip (torchvision not importable)"

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.x[i]
        if self.transform is not None:
            return self.transform(img), self.y[i]
        h, w = img.shape[-2:]
        dy, dx = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
        img = F.pad(img, (self.pad,) * 4)[:, dy : dy + h, dx : dx + w]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        return img, self.y[i]


class DataLoaderRun:
    """The CNN with per-sample augmentation through a ``DataLoader`` (same model, same fused
    Adam as the trainer, so only the data path differs); ``epoch()`` times one epoch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, workers: int) -> None:
        self.model, _ = cnn()
        self.opt = make_adam(self.model, lr=1e-3, weight_decay=0.0)
        self.loss_fn = nn.CrossEntropyLoss()
        self.dataset = PerSampleAugmented(x, y)
        self.loader = DataLoader(self.dataset, batch_size=batch, shuffle=True,
                                 num_workers=workers, persistent_workers=workers > 0)

    def epoch(self) -> float:
        self.model.train()
        start = time.perf_counter()
        for xb, yb in self.loader:
            loss = self.loss_fn(self.model(xb), yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return time.perf_counter() - start


class TrainerRun:
    """The same CNN trained by the dnc trainer, one epoch per ``epoch()`` (its ``t_epoch``:
    the augmentation, when on, is inside the timed epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int, augment: str) -> None:
        self.data = TensorData(x, y, x[:256], y[:256], x[:256], y[:256], num_classes=10,
                               name="bench")
        self.model, _ = cnn()
        self.batch = batch
        self.settings = TrainerSettings(epochs=1, device="cpu", augment=augment)
        self.seed = 0

    def epoch(self) -> float:
        self.seed += 1
        return train(self.model, self.data, lr=1e-3, weight_decay=0.0, batch_size=self.batch,
                     settings=self.settings, seed=self.seed).t_epoch


def bench_mlp(args: argparse.Namespace) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(args.samples, 784, generator=gen)
    y = torch.randint(0, 10, (args.samples,), generator=gen)
    # interleave the two so that machine noise hits both alike
    base, base_fused, ours = [], [], []
    for _ in range(3):
        base += dataloader_epochs(x, y, args.epochs, args.batch)
        base_fused += dataloader_epochs(x, y, args.epochs, args.batch, fused=True)
        ours += trainer_epochs(x, y, args.epochs, args.batch)
    t_base, t_fused, t_ours = (statistics.median(t) for t in (base, base_fused, ours))
    print(f"MLP 784-400-10, {args.samples} samples, batch {args.batch}: "
          f"DataLoader {t_base * 1e3:.1f} ms/epoch (with fused Adam {t_fused * 1e3:.1f}), "
          f"dnc trainer {t_ours * 1e3:.1f} ms/epoch")
    return {
        "mlp_ratio_vs_dataloader": round(t_ours / t_base, 3),
        "mlp_ratio_vs_dataloader_fused_adam": round(t_ours / t_fused, 3),
        "mlp_dataloader_ms": round(t_base * 1e3, 2),
        "mlp_dataloader_fused_adam_ms": round(t_fused * 1e3, 2),
        "mlp_trainer_ms": round(t_ours * 1e3, 2),
    }


def bench_cnn(args: argparse.Namespace) -> dict[str, float | str | int]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.cnn_samples, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.cnn_samples,), generator=gen)
    runs = {"none": TrainerRun(x, y, args.cnn_batch, "none"),
            "flip_crop": TrainerRun(x, y, args.cnn_batch, "flip_crop"),
            "dataloader": DataLoaderRun(x, y, args.cnn_batch, args.workers)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.cnn_epochs + 1):  # round-robin, epoch by epoch: noise hits all alike
        for name, run in runs.items():
            t = run.epoch()
            if round_:  # the first round warms up
                times[name].append(t)
    t_plain, t_aug, t_loader = (statistics.median(times[k]) for k in runs)
    # epochs of one round ran back to back: their ratio cancels slow drifts of machine load
    paired = statistics.median(a / b for a, b in zip(times["flip_crop"], times["none"],
                                                      strict=True))
    kind = runs["dataloader"].dataset.kind  # type: ignore[attr-defined]
    aug_gen = torch.Generator().manual_seed(0)
    alone = []
    for _ in range(11):  # the augmentation by itself, for scale
        start = time.perf_counter()
        flip_crop(x, aug_gen)
        alone.append(time.perf_counter() - start)
    _, described = cnn()
    print(f"CNN {described.split(' lr ')[0]}, {args.cnn_samples} images 3x32x32, batch "
          f"{args.cnn_batch}: dnc trainer {t_plain * 1e3:.0f} ms/epoch without augmentation, "
          f"{t_aug * 1e3:.0f} with flip_crop on the device; DataLoader ({args.workers} workers, "
          f"{kind}) {t_loader * 1e3:.0f}; flip_crop alone {statistics.median(alone) * 1e3:.1f} ms")
    return {
        "cnn_aug_overhead": round(paired, 3),
        "cnn_aug_overhead_ratio_of_medians": round(t_aug / t_plain, 3),
        "cnn_aug_ratio_vs_dataloader": round(t_aug / t_loader, 3),
        "cnn_trainer_ms": round(t_plain * 1e3, 1),
        "cnn_trainer_flip_crop_ms": round(t_aug * 1e3, 1),
        "cnn_dataloader_augment_ms": round(t_loader * 1e3, 1),
        "cnn_flip_crop_alone_ms": round(statistics.median(alone) * 1e3, 2),
        "cnn_dataloader_augment": kind,
        "cnn_dataloader_workers": args.workers,
        "cnn_samples": args.cnn_samples,
        "cnn_batch": args.cnn_batch,
        "cnn_epochs_timed": args.cnn_epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--cnn-samples", type=int, default=1024)
    parser.add_argument("--cnn-batch", type=int, default=256)
    parser.add_argument("--cnn-epochs", type=int, default=6,
                        help="timed epochs of each CNN variant (after one warm-up epoch)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers (CNN case)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 steadies timings on a busy box")
    parser.add_argument("--skip-mlp", action="store_true")
    parser.add_argument("--skip-cnn", action="store_true")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    figures: dict[str, float | str | int] = {}
    if not args.skip_mlp:
        figures.update(bench_mlp(args))
    if not args.skip_cnn:
        figures.update(bench_cnn(args))
    figures["machine"] = machine()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
