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
from dnc.search.transfer import Scored, TransferRow
from dnc.tracking.front import draw_trials, figure, save


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
    import matplotlib.pyplot as plt

    fig, ax = figure((9.5, 4.8))
    xs = draw_trials(ax, trials, cost, "target")
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
    legend = {"fontsize": 7, "loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}
    return save(fig, ax, cost, xs, path, title, legend)


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
