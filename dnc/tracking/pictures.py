"""Pictures of a search, drawn from its Optuna storage into the run folder when it ends:

- ``front-<search>.png``: the performance-complexity front (``dnc.tracking.front``), each pick
  marked for ``wc = 0``, the search's own ``wc`` and ten times it;
- ``convergence-<search>.png``: per stage, in order, the search loss of each completed trial
  against its number and the search's best so far (a step line); failed trials as crosses at
  the bottom, grid sub-stages separated and named;
- ``bo-<stage>-<search>.png``: per BO stage, the completed trials in its two leading numeric
  parameters (``leading_params``: the largest absolute Spearman correlation with the loss),
  coloured by search loss, the best starred (one leading parameter: a 1-D slice).

A search name's ``/`` becomes ``_`` in file names. A picture with nothing to show (no completed
trial, no numeric parameter) is not drawn. ``SearchPictures`` draws them as a search ends and
hands them to later observers (the MLflow tracker logs ``SearchFinished.artifacts``).

Example:
    >>> draw_search(open_storage("sqlite:///outputs/digits-mlp/<date>/optuna.db"),
    ...             "digits-mlp", Path("outputs/digits-mlp/<date>"))
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from dnc import optuna_compat
from dnc.search import records
from dnc.search.events import SearchFinished, SearchObserver, SearchStarted
from dnc.search.objective import score
from dnc.search.ranking import ranked_trials, search_wc
from dnc.search.rescore import rescore, search_cost
from dnc.search.storage import load, search_studies
from dnc.tracking.front import plot_front

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)


Loss = Callable[[FrozenTrial], float]
"""A Pareto stage's trial's search loss (for the search's ``wc``), from its figures."""


def completed(study: optuna.Study, loss: Loss | None = None) -> list[FrozenTrial]:
    """The study's completed trials with a finite search loss, by number; a Pareto stage's
    (two values) as copies whose value is ``loss(trial)``."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if loss is not None and len(study.directions) > 1:
        trials = [_with_value(t, loss(t)) for t in trials if records.figures(t)]
    return [t for t in trials if t.value is not None and math.isfinite(t.value)]


def _with_value(trial: FrozenTrial, value: float) -> FrozenTrial:
    view = copy.copy(trial)  # shares the attributes: read-only
    view.values = [value]
    return view


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (ties share their mean rank); 0 when
    either is constant or there are fewer than three points (two always give +-1)."""
    if len(x) < 3:
        return 0.0
    rx, ry = _ranks(np.asarray(x, float)), _ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v))
    _, inverse = np.unique(v, return_inverse=True)
    return (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]  # type: ignore[no-any-return]


def leading_params(trials: Sequence[FrozenTrial], k: int = 2) -> list[tuple[str, float]]:
    """Up to ``k`` numeric parameters (``IntDistribution``, ``FloatDistribution``) of the
    completed ``trials`` that tell most about the loss, with their Spearman correlation with it.

    Each is chosen in turn among the trials that have all those chosen before: a parameter
    present in at least half of them (and, after the first, not constant there) with the
    largest absolute correlation on them; ties go to the more often present, then to the first
    seen. So the second is one that can be drawn against the first (``hidden_1`` is not paired
    with ``num_hidden_layers``, which is 2 wherever ``hidden_1`` exists).
    """
    pool = [t for t in trials if t.value is not None and math.isfinite(t.value)]
    names: list[str] = []
    for t in pool:
        numeric = (IntDistribution, FloatDistribution)
        names += [
            n for n, d in t.distributions.items() if isinstance(d, numeric) and n not in names
        ]
    chosen: list[tuple[str, float]] = []
    while len(chosen) < k and pool:
        scored = []
        for i, name in enumerate(names):
            having = [t for t in pool if name in t.params]
            values = [float(t.params[name]) for t in having]
            if 2 * len(having) < len(pool) or (chosen and len(set(values)) < 2):
                continue
            rho = spearman(values, [float(t.value) for t in having])  # type: ignore[arg-type]
            scored.append((-abs(rho), -len(having), i, name, rho))
        if not scored:
            break
        *_, name, rho = min(scored)
        chosen.append((name, rho))
        names.remove(name)
        pool = [t for t in pool if name in t.params]
    return chosen


def draw_search(storage: optuna.storages.BaseStorage, search: str, out_dir: Path) -> list[Path]:
    """Draw the pictures of ``search`` into ``out_dir``; the files written. A picture that
    cannot be drawn is skipped with a warning (one line)."""
    names = search_studies(storage, search)
    if not names:
        return []
    studies = {n.rsplit("/", 1)[1]: load(storage, n) for n in names}
    settings = dict(next(iter(studies.values())).user_attrs.get(records.SETTINGS) or {})
    planned = json.loads(settings.get("stages") or "[]")
    kinds = {str(s["name"]): str(s.get("kind", "bo")) for s in planned}
    for stage, study in studies.items():  # a stage the settings do not name: guess its kind
        grid = any(records.SUBSTAGE in t.user_attrs for t in study.get_trials(deepcopy=False))
        kinds.setdefault(stage, "grid" if grid else "bo")
    wc = float(settings["wc"]) if settings.get("wc") is not None else None
    loss = None
    if any(len(s.directions) > 1 for s in studies.values()):  # a Pareto stage
        cost = search_cost(storage, search)
        wc = search_wc(list(studies.values()), cost)

        def loss(t: FrozenTrial) -> float:
            return score(records.figures(t) or {}, wc, cost)

    tag = search.replace("/", "_")
    jobs: dict[str, Callable[[Path], Path | None]] = {
        f"front-{tag}": partial(_front, storage, search, wc),
        f"convergence-{tag}": partial(_convergence, studies, kinds, search, wc, loss=loss),
    }
    for stage, study in studies.items():
        if kinds[stage] == "bo":
            jobs[f"bo-{stage}-{tag}"] = partial(_bo, study, stage, search, wc, loss=loss)
    written = []
    for name, job in jobs.items():
        try:
            drawn = job(out_dir / f"{name}.png")
        except Exception as err:
            log.warning("picture %s of search %s not drawn: %s", name, search, _first_line(err))
            continue
        if drawn is not None:
            written.append(drawn)
    return written


def _front(
    storage: optuna.storages.BaseStorage, search: str, wc: float | None, path: Path
) -> Path | None:
    if not ranked_trials(storage, search):
        return None
    mine = 0.1 if wc is None else wc
    wcs = sorted({0.0, mine, 10 * mine if mine > 0 else 1.0})
    cost = search_cost(storage, search)
    return plot_front(
        rescore(storage, search, wcs, cost), cost, path, f"{search}: performance vs complexity"
    )


def _loss_label(wc: float | None) -> str:
    weight = "wc" if wc is None else f"{wc:g}"
    return f"search loss log10(fp + {weight}·fc), lower is better"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure  # no pyplot: no global state, always the Agg canvas

    return Figure(figsize=(width, height), dpi=120)


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _convergence(
    studies: dict[str, optuna.Study],
    kinds: dict[str, str],
    search: str,
    wc: float | None,
    path: Path,
    loss: Loss | None = None,
) -> Path | None:
    trials = {s: study.get_trials(deepcopy=False) for s, study in studies.items()}
    done = {s: completed(study, loss) for s, study in studies.items()}
    if not any(done.values()):
        return None
    from matplotlib.ticker import MaxNLocator

    stages = list(kinds)  # as planned, then any stage the settings do not name
    widths = [max(len(trials.get(s, [])), 4) for s in stages]

    fig = _figure(min(4 + 0.18 * sum(widths) + 1.2 * len(stages), 18), 4.5)
    axes = fig.subplots(1, len(stages), sharey=True, squeeze=False, width_ratios=widths)[0]
    best = math.inf
    for ax, stage in zip(axes, stages, strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        best = _stage_convergence(ax, trials.get(stage, []), done.get(stage, []), best)
        ax.set_title(f"{stage} ({kinds[stage]}): {len(done.get(stage, []))} completed", fontsize=9)
        ax.set_xlabel("trial number in the stage")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(_loss_label(wc), fontsize=9)
    labelled: dict[str, Artist] = {}  # one entry per label, from every panel
    for ax in axes:
        labelled.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    axes[0].legend(list(labelled.values()), list(labelled), fontsize=7, loc="best")
    fig.suptitle(f"{search}: search loss of each trial and the best so far", fontsize=11)
    return _save(fig, path)


_FAILED: dict[str, Any] = {"marker": "x", "c": "#d62728", "s": 20, "label": "failed trial"}
_SUBSTAGE: dict[str, Any] = {"va": "top", "fontsize": 7, "color": "#555555", "rotation": 90}
_BEST: dict[str, Any] = {"marker": "*", "s": 380, "zorder": 4, "linewidths": 1.6}
_BEST |= {"facecolors": "none", "edgecolors": "#d62728"}  # a ring: the dot's colour shows


def _stage_convergence(
    ax: Axes, trials: list[FrozenTrial], done: list[FrozenTrial], carry: float
) -> float:
    """One stage's panel; the search's best loss after it."""
    if not trials:
        ax.text(0.5, 0.5, "no trial yet", transform=ax.transAxes, ha="center", color="gray")
        ax.set_xticks([])
        return carry
    xs = [t.number for t in done]
    ys = [float(t.value) for t in done]  # type: ignore[arg-type]
    ax.set_xlim(-0.5, max(t.number for t in trials) + 0.5)
    if math.isfinite(carry):
        ax.axhline(carry, color="gray", ls=":", lw=1, label="best of earlier stages")
    if done:
        running = np.minimum.accumulate(np.minimum(ys, carry))
        ax.step(
            [*xs, xs[-1] + 0.5],
            [*running, running[-1]],
            where="post",
            color="#1f77b4",
            label="best so far",
        )
        ax.scatter(xs, ys, s=16, c="#444444", zorder=3, label="completed trial")
        carry = float(running[-1])
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    if failed:  # at the bottom: a failed trial has no loss
        ax.scatter(failed, [0.03] * len(failed), transform=ax.get_xaxis_transform(), **_FAILED)
    sub = None
    for t in trials:  # grid sub-stages: a separator and the name at each change
        now = t.user_attrs.get(records.SUBSTAGE)
        if now is not None and now != sub:
            if sub is not None:
                ax.axvline(t.number - 0.5, color="#999999", lw=0.8, ls="--")
            at = ax.get_xaxis_transform()
            ax.text(t.number - 0.4, 0.98, str(now), transform=at, **_SUBSTAGE)
            sub = now
    return carry


def _bo(
    study: optuna.Study,
    stage: str,
    search: str,
    wc: float | None,
    path: Path,
    loss: Loss | None = None,
) -> Path | None:
    done = completed(study, loss)
    lead = leading_params(done)
    if not lead:  # no completed trial, or no numeric parameter
        return None
    pts = [t for t in done if all(n in t.params for n, _ in lead)]
    best = min(pts, key=lambda t: float(t.value))  # type: ignore[arg-type]
    losses = [float(t.value) for t in pts]  # type: ignore[arg-type]
    fig = _figure(6.5, 4.8)
    ax = fig.subplots()
    x = [float(t.params[lead[0][0]]) for t in pts]
    if len(lead) == 2:
        y = [float(t.params[lead[1][0]]) for t in pts]
        dots = ax.scatter(x, y, c=losses, cmap="viridis", s=40, edgecolors="white", lw=0.5)
        fig.colorbar(dots, ax=ax).set_label(_loss_label(wc), fontsize=8)
        best_y = float(best.params[lead[1][0]])
        _axis(ax, "y", pts, lead[1])
    else:
        ax.scatter(x, losses, s=30, c="#444444")
        best_y = float(best.value)  # type: ignore[arg-type]
        ax.set_ylabel(_loss_label(wc), fontsize=8)
    acc = (records.figures(best) or {}).get("best_val_acc", math.nan)
    which = "best" if best.value == min(float(t.value) for t in done) else "best shown"  # type: ignore[arg-type]
    label = f"{which}: trial {best.number}, val acc {acc:.2f} %, loss {best.value:.4f}"
    ax.scatter([float(best.params[lead[0][0]])], [best_y], label=label, **_BEST)
    _axis(ax, "x", pts, lead[0])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    shown = f"{len(pts)} of {len(done)}" if len(pts) < len(done) else f"{len(pts)}"
    what = "the two leading parameters" if len(lead) == 2 else "the leading parameter"
    trials = "trial" if len(done) == 1 else "trials"
    ax.set_title(f"{search}, stage {stage} (BO): {shown} completed {trials} in {what}", fontsize=9)
    return _save(fig, path)


def _axis(ax: Axes, which: str, pts: list[FrozenTrial], lead: tuple[str, float]) -> None:
    """Label the ``x`` or ``y`` axis with the parameter and its correlation; log scale for a
    log-distributed parameter."""
    name, rho = lead
    dist = next(t.distributions[name] for t in pts if name in t.distributions)
    log_scale = bool(getattr(dist, "log", False))
    label = f"{name}{' (log scale)' if log_scale else ''}; Spearman ρ with loss {rho:+.2f}"
    getattr(ax, f"set_{which}label")(label)
    if log_scale:
        getattr(ax, f"set_{which}scale")("log")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200]}" if text else type(err).__name__


class SearchPictures(SearchObserver):
    """Draws a search's pictures (``draw_search``) when it ends, finished or stopped, into
    ``out_dir`` (``None``: the folder of the results file; no results file: nothing), and
    appends each file to ``SearchFinished.artifacts`` for later observers to log. Drawing never
    stops a search: a failure is one warning in the log.

    Example:
        >>> Search(settings, ..., observers=[SearchPictures(), MlflowTracker(uri)]).run()
    """

    def __init__(
        self, *, out_dir: Path | None = None, storage: optuna.storages.BaseStorage | None = None
    ) -> None:
        self.out_dir = out_dir
        self.storage = storage

    def search_started(self, event: SearchStarted) -> None:
        if self.storage is None:
            self.storage = optuna_compat.storage_of(event.study)

    def search_finished(self, event: SearchFinished) -> None:
        folder = self.out_dir or (event.results.parent if event.results is not None else None)
        if folder is None or self.storage is None:
            return
        try:
            event.artifacts.extend(draw_search(self.storage, event.name, folder))
        except Exception as err:
            log.warning("pictures of search %s not drawn: %s", event.name, _first_line(err))


__all__ = ["SearchPictures", "completed", "draw_search", "leading_params", "spearman"]
