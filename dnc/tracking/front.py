"""The performance-complexity front of a search, drawn for ``python -m dnc.report``: every
finished trial's best validation accuracy against its complexity ``fc``, the non-dominated
trials joined, and each ``wc``'s pick marked (``dnc.search.rescore`` chooses them)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dnc.plugins import CostEvaluator
from dnc.search.records import Ranked
from dnc.search.rescore import Pick, pareto_front


def plot_front(picks: Sequence[Pick], cost: CostEvaluator, path: Path, title: str) -> Path:
    """Validation accuracy against complexity for every trial; the front as a line, each
    ``wc``'s pick marked."""
    fig, ax = figure((7, 4.5))
    xs = draw_trials(ax, picks[0].ranking, cost)
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
    return save(fig, ax, cost, xs, path, title, legend={"fontsize": 8, "loc": "lower right"})


def figure(size: tuple[float, float]) -> tuple[Any, Any]:
    """A matplotlib figure and axes (the Agg backend: files only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, dpi=120)


def draw_trials(
    ax: Any, trials: Sequence[Ranked], cost: CostEvaluator, who: str = ""
) -> list[float]:
    """Every trial's best validation accuracy against its complexity, and their front as a
    step line (labelled ``<who> trials`` and ``<who> front``); trials the costed target cannot
    run (``cost.feasible``) are crosses, off the front. The complexities drawn."""
    xs = [cost.complexity(r.figures) for r in trials]
    ys = [r.figures["best_val_acc"] for r in trials]
    runs = [cost.feasible(r.figures) for r in trials]
    styles = {True: ("trials", 18, "o", "#9aa5b1"), False: ("infeasible", 24, "x", "#d62728")}
    for ok, (what, size, marker, colour) in styles.items():
        chosen = [i for i, r in enumerate(runs) if r == ok]
        if chosen or ok:
            x, y, label = [xs[i] for i in chosen], [ys[i] for i in chosen], f"{who} {what}"
            ax.scatter(x, y, s=size, marker=marker, c=colour, label=label.strip(), zorder=2)
    feasible = [i for i, ok in enumerate(runs) if ok]
    front = [feasible[i] for i in pareto_front([(xs[i], ys[i]) for i in feasible])]
    ax.step(
        [xs[i] for i in front],
        [ys[i] for i in front],
        where="post",
        color="#1f77b4",
        lw=1.5,
        label=f"{who} front".strip(),
        zorder=3,
    )
    return xs


def save(
    fig: Any,
    ax: Any,
    cost: CostEvaluator,
    xs: Sequence[float],
    path: Path,
    title: str,
    legend: dict[str, Any],
) -> Path:
    """Label the axes (complexity on a log scale when ``xs`` span more than 30x), write the
    figure to ``path`` and close it."""
    import matplotlib.pyplot as plt

    finite = [x for x in xs if math.isfinite(x)]
    wide = finite and min(finite) > 0 and max(finite) / min(finite) > 30
    ax.set_xscale("log" if wide else "linear")
    norm = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in cost.settings().items()
    )
    ax.set_xlabel(f"complexity fc ({cost.name}; {norm})")
    ax.set_ylabel("best validation accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(**legend)
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


__all__ = ["draw_trials", "figure", "picks_json", "plot_front", "save"]
