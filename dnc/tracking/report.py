"""Re-scoring a finished search for other ``wc`` values, and its performance-complexity front.

Everything is computed from the raw figures recorded on the trials; nothing is trained.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from dnc.plugins import CostEvaluator, UserError
from dnc.search.storage import PARENT_RUN_ATTR, ranked_trials, recorded_cost, search_studies
from dnc.tracking.console import Ranked


@dataclass(frozen=True)
class Pick:
    """The candidate a given ``wc`` selects, and what it ranks like."""

    wc: float
    best: Ranked
    complexity: float
    ranking: list[Ranked]


def searches_in(storage: optuna.storages.BaseStorage) -> list[str]:
    """Names of the searches in a storage (study names are ``<search>/<stage>``)."""
    names = [s.study_name.rsplit("/", 1)[0] for s in optuna.get_all_study_summaries(storage, False)]
    return sorted(set(names))


def resolve_search(storage: optuna.storages.BaseStorage, search: str | None) -> str:
    found = searches_in(storage)
    if search is None:
        if len(found) != 1:
            raise UserError(
                f"the storage holds {len(found)} searches ({', '.join(found) or 'none'}); "
                "name one with search=NAME"
            )
        return found[0]
    if search not in found:
        raise UserError(
            f"search {search!r} is not in the storage; it holds: {', '.join(found) or 'none'}"
        )
    return search


def search_cost(storage: optuna.storages.BaseStorage, search: str) -> CostEvaluator:
    first = search_studies(storage, search)[0]
    return recorded_cost(optuna.load_study(study_name=first, storage=storage))


def search_run_id(storage: optuna.storages.BaseStorage, search: str) -> str | None:
    first = search_studies(storage, search)[0]
    return optuna.load_study(study_name=first, storage=storage).user_attrs.get(PARENT_RUN_ATTR)


def rescore(
    storage: optuna.storages.BaseStorage,
    search: str,
    wcs: Sequence[float],
    cost: CostEvaluator | None = None,
) -> list[Pick]:
    """For each ``wc``, the ranking of every finished trial under ``log10(fp + wc * fc)``."""
    cost = cost or search_cost(storage, search)
    picks = []
    for wc in wcs:
        if wc < 0:
            raise UserError(f"wc={wc}: must be >= 0")
        ranking = ranked_trials(storage, search, wc=wc, cost=cost)
        if not ranking:
            raise UserError(f"search {search!r} has no finished trial to re-score")
        picks.append(Pick(wc, ranking[0], cost.complexity(ranking[0].figures), ranking))
    return picks


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and accuracy (higher),
    sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_acc = [], -float("inf")
    for i in order:
        if points[i][1] > best_acc:
            front.append(i)
            best_acc = points[i][1]
    return front


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
                }
                for p in picks
            ],
        },
        indent=2,
    )
