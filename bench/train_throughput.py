"""Trainer throughput against a plain ``DataLoader(TensorDataset)`` loop, in one run.

MLP case: the same 784-400-10 MLP on the same 4,000 random samples at batch 64, one epoch of
Adam each, timed over several epochs; the figure is the ratio of medians
(dnc trainer t_epoch / DataLoader t_epoch), lower is better.

    python bench/train_throughput.py [--epochs 7] [--samples 4000]

Last line: one JSON object with ``mlp_ratio_vs_dataloader`` and the raw timings.
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
from torch.utils.data import DataLoader, TensorDataset

from dnc.plugins import TensorData
from dnc.train.trainer import TrainerSettings, train


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

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
    print(json.dumps({
        "mlp_ratio_vs_dataloader": round(t_ours / t_base, 3),
        "mlp_ratio_vs_dataloader_fused_adam": round(t_ours / t_fused, 3),
        "mlp_dataloader_ms": round(t_base * 1e3, 2),
        "mlp_dataloader_fused_adam_ms": round(t_fused * 1e3, 2),
        "mlp_trainer_ms": round(t_ours * 1e3, 2),
        "machine": machine(),
    }))


if __name__ == "__main__":
    main()
