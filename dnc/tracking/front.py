"""The performance-complexity front of a search, drawn for ``python -m dnc.report``: every
finished trial's best validation accuracy against its complexity ``fc``, the non-dominated
trials joined, and each ``wc``'s pick marked (``dnc.search.rescore`` chooses them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from dnc.plugins import CostEvaluator
from dnc.search.rescore import Pick, pareto_front


def plot_front(picks: Sequence[Pick], cost: CostEvaluator, path: Path, title: str) -> Path:
    """Validation accuracy against complexity for every trial; the front as a line, each
    ``wc``'s pick marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = picks[0].ranking
    xs = [cost.complexity(r.figures) for r in rows]
    ys = [r.figures["best_val_acc"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.scatter(xs, ys, s=18, c="#9aa5b1", label="trials", zorder=2)
    front = pareto_front(list(zip(xs, ys, strict=True)))
    ax.step(
        [xs[i] for i in front],
        [ys[i] for i in front],
        where="post",
        color="#1f77b4",
        lw=1.5,
        label="front",
        zorder=3,
    )
    markers = "*DPXos^v<>"
    for k, pick in enumerate(picks):
        ax.scatter(
            [pick.complexity],
            [pick.best.figures["best_val_acc"]],
            s=140,
            marker=markers[k % len(markers)],
            zorder=4,
            edgecolors="black",
            label=f"wc={pick.wc:g}: {pick.best.found_by} #{pick.best.number}",
        )
    ax.set_xscale("log" if min(xs) > 0 and max(xs) / max(min(xs), 1e-12) > 30 else "linear")
    norm = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in cost.settings().items()
    )
    ax.set_xlabel(f"complexity fc ({cost.name}; {norm})")
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def picks_json(picks: Sequence[Pick], search: str, cost: CostEvaluator) -> str:
    return json.dumps(
        {
            "search": search,
            "cost": {"name": cost.name, **cost.settings()},
            "picks": [
                {
                    "wc": p.wc,
                    "stage": p.best.found_by,
                    "trial": p.best.number,
                    "search_loss": p.best.loss,
                    "complexity": p.complexity,
                    "figures": dict(p.best.figures),
                    "candidate": dict(p.best.candidate),
                    "mlflow_run_id": p.best.run_id,
                }
                for p in picks
            ],
        },
        indent=2,
    )


__all__ = ["picks_json", "plot_front"]
