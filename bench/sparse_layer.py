"""Forward + backward time of ``dnc_sparse.SparseLinear`` against a dense ``nn.Linear``.

For every size ``N x N`` and density, times one training step of the layer (forward, then
backward with a fixed output gradient, computing the input gradient as a hidden layer does)
for four implementations: ``dense`` (``nn.Linear``, the baseline), ``auto`` (the path
``SparseLinear`` picks by itself), ``masked`` (dense GEMMs on a zero-filled weight) and
``sparse`` (CSR kernels). Every repetition times all four back to back, in a rotated order;
repetitions go on for at least ``--repeats`` and ``--min-seconds`` (the sparse-kernel path,
which is not part of the ratio and takes seconds at high density, stops after ``--repeats``).
``ratio_vs_dense`` is the ratio of minimum times over repetitions (on a shared machine the
minimum is the run least disturbed by other processes); the median over repetitions of the
paired per-repetition ratio is given beside it, with per-path minimum and median times.

Usage::

    python bench/sparse_layer.py                      # 1024 and 4096, densities 1 ... 0.02
    python bench/sparse_layer.py --sizes 256 512 --densities 0.2 0.1 --repeats 5

The last line is JSON: ``ratio_vs_dense`` (auto / dense per size and density), ``times_ms``
(every path), ``auto_path``, ``machine``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from dnc_sparse.layer import SparseLinear
from dnc_sparse.patterns import adjacency
from torch import nn

PATHS = ("dense", "auto", "masked", "sparse")


def _step(layer: nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
    x.grad = None
    for p in layer.parameters():
        p.grad = None
    layer(x).backward(g)


def time_paths(n: int, density: float, batch: int, repeats: int, min_seconds: float,
               seed: int = 0) -> tuple[dict[str, list[float]], str]:
    """Seconds per forward+backward of each path for one ``n x n`` layer, one entry per
    repetition (at least ``repeats``, more until ``min_seconds`` have passed); and the path
    ``auto`` chose."""
    torch.manual_seed(seed)
    d_out = max(1, round(density * n))
    mask = adjacency("random", n, n, d_out, seed=seed)
    layers: dict[str, nn.Module] = {"dense": nn.Linear(n, n)}
    for path in ("auto", "masked", "sparse"):  # (a full mask makes "masked" plain dense)
        layers[path] = SparseLinear(mask, path=path)
    x = torch.randn(batch, n, requires_grad=True)
    g = torch.randn(batch, n)
    for layer in layers.values():  # warm-up (allocations, MKL handles)
        _step(layer, x, g)
    runs: dict[str, list[float]] = {k: [] for k in layers}
    names = list(layers)
    start_all = time.perf_counter()
    rep = 0
    while rep < repeats or time.perf_counter() - start_all < min_seconds:
        rep += 1
        for name in names[rep % 4:] + names[: rep % 4]:
            if name == "sparse" and rep > repeats:
                continue  # not part of the ratio; at high density one run can take seconds
            start = time.perf_counter()
            _step(layers[name], x, g)
            runs[name].append(time.perf_counter() - start)
    return runs, str(layers["auto"].path)


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "mkl": torch.backends.mkl.is_available(),
            "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--densities", type=float, nargs="+",
                    default=[1.0, 0.5, 0.25, 0.1, 0.05, 0.02])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=15, help="at least this many repetitions")
    ap.add_argument("--min-seconds", type=float, default=4.0,
                    help="and repeat until this much time has passed per size and density")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ratios: dict[str, dict[str, float]] = {}
    times: dict[str, dict[str, dict[str, float]]] = {}
    auto: dict[str, dict[str, str]] = {}
    paired: dict[str, dict[str, float]] = {}
    path_ratios: dict[str, dict[str, dict[str, float]]] = {"masked": {}, "sparse": {}}
    for n in args.sizes:
        for rho in args.densities:
            runs, chosen = time_paths(n, rho, args.batch, args.repeats, args.min_seconds)
            key, dk = str(n), f"{rho:g}"
            best = {p: min(runs[p]) for p in PATHS}
            ratio = best["auto"] / best["dense"]
            ratios.setdefault(key, {})[dk] = round(ratio, 3)
            paired.setdefault(key, {})[dk] = round(statistics.median(
                a / d for a, d in zip(runs["auto"], runs["dense"], strict=False)), 3)
            for p in path_ratios:
                path_ratios[p].setdefault(key, {})[dk] = round(best[p] / best["dense"], 3)
            times.setdefault(key, {})[dk] = {
                **{p: round(1000 * best[p], 3) for p in PATHS},
                **{f"{p}_median": round(1000 * statistics.median(runs[p]), 3) for p in PATHS},
            }
            auto.setdefault(key, {})[dk] = chosen
            print(f"{n}x{n} density {rho:<5g} " + "  ".join(
                f"{p} {1000 * best[p]:8.2f} ms" for p in PATHS) +
                f"  auto={chosen:<6} auto/dense {ratio:.2f}", flush=True)
    result = {"ratio_vs_dense": ratios, "ratio_paired_median": paired,
              "masked_vs_dense": path_ratios["masked"], "sparse_vs_dense": path_ratios["sparse"],
              "times_ms": times,
              "auto_path": auto, "batch": args.batch, "repeats": args.repeats,
              "min_seconds": args.min_seconds,
              "statistic": "ratios: minimum times; ratio_paired_median: median of paired "
                           "per-repetition ratios",
              "machine": machine()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
