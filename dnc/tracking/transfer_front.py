"""The transfer study drawn on the target search's own performance-complexity front (for
``python -m dnc.transfer``): every finished target trial, the front, and for each ``wc`` the
target's own pick beside the source's pick retrained on the target data, joined by a line."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dnc.plugins import CostEvaluator
from dnc.search.records import Ranked
from dnc.search.rescore import pareto_front
from dnc.search.transfer import Scored, TransferRow


def plot_transfer(
    rows: Sequence[TransferRow],
    trials: Sequence[Ranked],
    cost: CostEvaluator,
    path: Path,
    title: str,
) -> Path:
    """Validation accuracy against complexity ``fc`` (the target's cost) for the target's
    ``trials`` with their front; per ``wc`` the target's own pick (a circle) and the source's
    pick trained on the target data (a star of the same colour), joined by a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [cost.complexity(r.figures) for r in trials]
    ys = [r.figures["best_val_acc"] for r in trials]
    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=120)
    ax.scatter(xs, ys, s=18, c="#9aa5b1", label="target trials", zorder=2)
    front = pareto_front(list(zip(xs, ys, strict=True)))
    ax.step(
        [xs[i] for i in front],
        [ys[i] for i in front],
        where="post",
        color="#1f77b4",
        lw=1.5,
        label="target front",
        zorder=3,
    )
    colours = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    for k, group in enumerate(_same_points(rows)):
        colour, row = colours[k % len(colours)], group[0]
        wcs = ", ".join(f"{r.wc:g}" for r in group)
        native = (row.native.complexity, row.native.best_val_acc)
        own = f"wc={wcs} own pick: {row.native_pick.found_by} #{row.native_pick.number}"
        ax.scatter(*native, s=80, marker="o", color=colour, edgecolors="black", zorder=4, label=own)
        xs.append(native[0])
        if row.transferred.failure:
            continue
        moved = (row.transferred.complexity, row.transferred.best_val_acc)
        ax.plot(*zip(native, moved, strict=True), ls="--", lw=1, color=colour, zorder=3)
        label = f"wc={wcs} source pick: {row.source.found_by} #{row.source.number}"
        ax.scatter(
            *moved, s=170, marker="*", color=colour, edgecolors="black", zorder=5, label=label
        )
        xs.append(moved[0])
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
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _same_points(rows: Sequence[TransferRow]) -> list[list[TransferRow]]:
    """The rows grouped by the two picks they show (several ``wc`` often pick the same)."""
    groups: dict[tuple[str, str], list[TransferRow]] = {}
    for row in rows:
        groups.setdefault((row.native_pick.key, row.source.key), []).append(row)
    return list(groups.values())


def transfer_json(
    rows: Sequence[TransferRow], cost: CostEvaluator, header: Mapping[str, Any]
) -> str:
    """The study as JSON: ``header`` (the searches, trainer, seed), the target's ``cost``, and
    per ``wc`` the transferred and the native pick (non-finite numbers as ``null``)."""

    def scored(s: Scored) -> dict[str, Any]:
        out = {
            "figures": dict(s.figures),
            "complexity": _finite(s.complexity),
            "search_loss": _finite(s.loss),
        }
        return {**out, "failure": s.failure} if s.failure else out

    def pick(r: Ranked) -> dict[str, Any]:
        return {
            "stage": r.found_by,
            "trial": r.number,
            "candidate": dict(r.candidate),
            "mlflow_run_id": r.run_id or None,
        }

    content = {
        **header,
        "cost": {"name": cost.name, **cost.settings()},
        "rows": [
            {
                "wc": r.wc,
                "transferred": {
                    **pick(r.source),
                    "source_figures": dict(r.source.figures),
                    "source_search_loss": _finite(r.source.loss),
                    **scored(r.transferred),
                },
                "native": {**pick(r.native_pick), **scored(r.native), "retrained": r.retrained},
                "transferred_better": r.transferred_better,
            }
            for r in rows
        ],
    }
    return json.dumps(content, indent=2)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


__all__ = ["plot_transfer", "transfer_json"]
