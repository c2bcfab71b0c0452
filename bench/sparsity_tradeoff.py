"""Two findings of the pre-defined sparsity research, re-run at a small budget on 2 CPU cores.

1. *At equal weight count, a larger sparse net beats a smaller dense one.* One hidden layer:
   dense nets of several widths against a wide sparse net at several densities (digits: the
   output junction at 1/2, the first from 1/64 to 1/4; morse: the second junction 4x as dense
   as the first); each sparse point is compared with the dense curve
   interpolated (linearly in ``log(weights)``) to the same number of weights. On ``digits`` and
   on ``morse`` (baseline).
2. *Later junctions want higher density.* ``64-128-64`` on ``morse``: pairs of density
   allocations with the same total weights, the denser junction first or last.

Every configuration is trained with the dnc trainer (Adam, no weight decay, clash-free
patterns) for ``--seeds`` seeds; figures are mean test accuracy (%) and its standard deviation.
Weights count the edges (no biases). Torch runs single-threaded: these nets are tiny, and on a
shared machine two threads mostly wait for each other.

Usage::

    python bench/sparsity_tradeoff.py [--out bench/results/sparsity_tradeoff.png] [--seeds 3]

Writes the plot (matplotlib, Agg) and prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from dnc_sparse import SparseMLP

from dnc.plugins import TensorData
from dnc.train.datasets import Digits
from dnc.train.morse import Morse
from dnc.train.trainer import TrainerSettings, accuracy, train

DEFAULT_OUT = Path(__file__).parent / "results" / "sparsity_tradeoff.png"


def edges(layers: list[int], d_out: list[int]) -> int:
    return sum(n * d for n, d in zip(layers[:-1], d_out, strict=True))


def test_accuracy(data: TensorData, layers: list[int], d_out: list[int], *, seeds: int,
                  epochs: int, lr: float, batch_size: int) -> tuple[float, float]:
    """Mean and standard deviation over seeds of the test accuracy (%) after training."""
    accs = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        net = SparseMLP(layers, d_out, kind="clash_free", seed=seed)
        train(net, data, lr=lr, weight_decay=0.0, batch_size=batch_size, seed=seed,
              settings=TrainerSettings(epochs=epochs, device="cpu"))
        accs.append(accuracy(net, data.xte, data.yte, 4096))
    return statistics.mean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)


def _interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """Linear interpolation in ``log x`` over sorted ``(x, y)``; None outside their range."""
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= x <= x1:
            t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0)) if x1 > x0 else 0.0
            return y0 + t * (y1 - y0)
    return None


def large_sparse_vs_small_dense(data: TensorData, name: str, *, dense_widths: list[int],
                                sparse_width: int, sparse_d_out: list[tuple[int, int]],
                                **fit: Any) -> dict[str, Any]:
    n_in, n_out = data.xtr[0].numel(), data.num_classes
    dense = []
    for h in dense_widths:
        layers, d_out = [n_in, h, n_out], [h, n_out]
        acc, std = test_accuracy(data, layers, d_out, **fit)
        dense.append({"hidden": h, "weights": edges(layers, d_out), "acc": acc, "std": std})
        print(f"  {name}: dense {layers} weights {dense[-1]['weights']:>6}  {acc:5.1f} ± {std:.1f}",
              flush=True)
    curve = [(float(d["weights"]), d["acc"]) for d in dense]
    sparse = []
    for d1, d2 in sparse_d_out:
        layers, d_out = [n_in, sparse_width, n_out], [d1, d2]
        acc, std = test_accuracy(data, layers, d_out, **fit)
        w = edges(layers, d_out)
        ref = _interpolate(curve, float(w))
        sparse.append({"hidden": sparse_width, "d_out": d_out,
                       "densities": [d1 / sparse_width, d2 / n_out], "weights": w,
                       "acc": acc, "std": std, "dense_acc_at_equal_weights": ref,
                       "advantage": None if ref is None else acc - ref})
        print(f"  {name}: sparse {layers} d_out {d_out} weights {w:>6}  {acc:5.1f} ± {std:.1f}"
              + ("" if ref is None else f"  (dense at equal weights {ref:5.1f})"), flush=True)
    gains = [s["advantage"] for s in sparse if s["advantage"] is not None]
    return {"dataset": name, "dense": dense, "sparse": sparse,
            "compared_points": len(gains), "sparse_wins": sum(g > 0 for g in gains),
            "mean_advantage": statistics.mean(gains) if gains else None,
            "reproduced": bool(gains) and statistics.mean(gains) > 0
            and sum(g > 0 for g in gains) > len(gains) / 2}


def later_junctions_want_density(data: TensorData, *, hidden: int,
                                 pairs: list[tuple[int, int]], **fit: Any) -> dict[str, Any]:
    """``pairs``: (sparser, denser) out-degrees of the two equal-sized junctions."""
    n = data.xtr[0].numel()
    assert n == data.num_classes, "equal-sized junctions need as many classes as inputs"
    rows = []
    for low, high in pairs:  # d_out of 64 -> hidden is hidden * rho, of hidden -> 64 is 64 * rho
        rho_low, rho_high = low / hidden, high / hidden
        later = [n, hidden, n], [low, int(n * rho_high)]
        earlier = [n, hidden, n], [high, int(n * rho_low)]
        acc_later, std_later = test_accuracy(data, *later, **fit)
        acc_earlier, std_earlier = test_accuracy(data, *earlier, **fit)
        row = {"weights": edges(*later), "later_denser": [rho_low, rho_high],
               "acc_later_denser": acc_later, "std_later_denser": std_later,
               "earlier_denser": [rho_high, rho_low], "acc_earlier_denser": acc_earlier,
               "std_earlier_denser": std_earlier}
        assert edges(*earlier) == row["weights"]
        rows.append(row)
        print(f"  morse {later[0]} densities {row['later_denser']}: {acc_later:5.1f} ± "
              f"{std_later:.1f}   {row['earlier_denser']}: {acc_earlier:5.1f} ± "
              f"{std_earlier:.1f}", flush=True)
    wins = sum(r["acc_later_denser"] > r["acc_earlier_denser"] for r in rows)
    return {"dataset": "morse", "hidden": hidden, "pairs": rows, "later_denser_wins": wins,
            "reproduced": wins > len(rows) / 2}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key in zip(axes[:2], ("equal_weights_digits", "equal_weights_morse"), strict=True):
        r = result[key]
        for series, label, marker in ((r["dense"], "dense, width varies", "o"),
                                      (r["sparse"], f"sparse, width {r['sparse'][0]['hidden']}, "
                                       "density varies", "s")):
            ax.errorbar([p["weights"] for p in series], [p["acc"] for p in series],
                        yerr=[p["std"] for p in series], marker=marker, capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xticks(sorted({p["weights"] for p in r["dense"] + r["sparse"]}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.set_xlabel("weights (edges)")
        ax.set_ylabel("test accuracy (%)")
        verdict = "reproduced" if r["reproduced"] else "not reproduced"
        ax.set_title(f"{r['dataset']}: large sparse vs small dense ({verdict})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    r = result["junction_density"]
    ax = axes[2]
    xs = range(len(r["pairs"]))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [p["acc_later_denser"] for p in r["pairs"]], width,
           yerr=[p["std_later_denser"] for p in r["pairs"]], capsize=3, label="later denser")
    ax.bar([x + width / 2 for x in xs], [p["acc_earlier_denser"] for p in r["pairs"]], width,
           yerr=[p["std_earlier_denser"] for p in r["pairs"]], capsize=3, label="earlier denser")
    ax.set_xticks(list(xs), [f"{p['later_denser'][0]:g} / {p['later_denser'][1]:g}\n"
                             f"{p['weights']} weights" for p in r["pairs"]], fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    verdict = "reproduced" if r["reproduced"] else "not reproduced"
    ax.set_title(f"morse 64-{r['hidden']}-64: junction densities ({verdict})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the PNG")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--morse-examples", type=int, default=200, help="examples per class")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    digits = Digits().load(seed=0)
    morse = Morse(preset="baseline", examples_per_class=args.morse_examples).load(seed=0)
    fit_digits = dict(seeds=args.seeds, epochs=30, lr=1e-2, batch_size=64)
    fit_morse = dict(seeds=args.seeds, epochs=20, lr=1e-2, batch_size=64)
    print("finding 1: at equal weights, a larger sparse net beats a smaller dense one", flush=True)
    result: dict[str, Any] = {
        "equal_weights_digits": large_sparse_vs_small_dense(
            digits, "digits", dense_widths=[2, 4, 8, 16, 32], sparse_width=64,
            sparse_d_out=[(1, 5), (2, 5), (4, 5), (8, 5), (16, 5)], **fit_digits),
        "equal_weights_morse": large_sparse_vs_small_dense(
            morse, "morse", dense_widths=[8, 16, 32, 64], sparse_width=256,
            sparse_d_out=[(4, 4), (8, 8), (16, 16), (32, 16)], **fit_morse),
    }
    print("finding 2: later junctions want higher density", flush=True)
    result["junction_density"] = later_junctions_want_density(
        morse, hidden=128, pairs=[(8, 32), (16, 64), (32, 128)], **fit_morse)
    result["settings"] = {"seeds": args.seeds, "digits": fit_digits, "morse": fit_morse,
                          "morse_examples_per_class": args.morse_examples,
                          "pattern": "clash_free", "optimizer": "Adam, no weight decay",
                          "torch_threads": 1}
    result["runtime_s"] = round(time.perf_counter() - start, 1)
    plot(result, args.out)
    result["plot"] = str(args.out)
    summary = {
        "large_sparse_beats_small_dense": {
            k.rsplit("_", 1)[-1]: {"reproduced": result[k]["reproduced"],
                                   "mean_advantage_pct": result[k]["mean_advantage"],
                                   "sparse_wins": f"{result[k]['sparse_wins']}/"
                                                  f"{result[k]['compared_points']}"}
            for k in ("equal_weights_digits", "equal_weights_morse")},
        "later_junctions_want_density": {
            "reproduced": result["junction_density"]["reproduced"],
            "later_denser_wins": f"{result['junction_density']['later_denser_wins']}/"
                                 f"{len(result['junction_density']['pairs'])}"},
    }
    print(json.dumps({"summary": summary, **result}))
    return result


if __name__ == "__main__":
    main()
