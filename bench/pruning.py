"""Early stopping with Optuna's pruners: epochs trained and final best loss of the default
search with ``trainer.pruner=median`` and ``hyperband`` against ``none`` (the baseline, in the
same run).

Each seed runs the same command three times, once per pruner, as a user would (``python -m
dnc seed=S trainer.pruner=P tracking.uri=null``: the paper's three stages on digits, 15 epochs
per trial), seed by seed so that background load hits the three alike; ``--jobs`` searches run
at once, each on one thread. Then, from each search's Optuna storage:

- ``epochs``: the epochs trained by all its trials (``figures.epochs_run``, pruned ones
  included);
- ``best_loss``: its best completed trial's search loss, re-scored with the cost of that seed's
  ``none`` search (the same ``tbar_epoch`` for the three: the calibrations differ by timing
  noise);
- per stage (core, arch, train): the mean of its best completed trial's loss, so re-scored
  (``stage_mean_best_loss``): where a pruner's loss arises.

Last line: one JSON object: ``epochs_ratio`` (a pruner's epochs over ``none``'s, summed over
the seeds), ``best_loss_diff`` (a pruner's mean best loss minus ``none``'s: above 0 is worse),
``best_loss_diff_se`` (the standard error of that mean of paired per-seed differences),
``seeds_worse`` (seeds where the pruner's best loss is above ``none``'s),
the per-seed figures, and the machine. Target (issue #16): at least 40% fewer epochs with a
mean best loss within 0.01.

With ``--cost numparams`` the cost has no timing noise, so a seed's three searches train the
same candidates until a pruner first acts, and the differences are the pruners' own.

    python bench/pruning.py [--seeds 10] [--jobs 2] [--search default] [--epochs 15]
                            [--cost t_epoch|numparams] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, run_dnc  # bench/common.py (this folder is on sys.path)

from dnc.search import records
from dnc.search.ranking import ranked_trials
from dnc.search.storage import load, open_storage, recorded_cost, search_studies

PRUNERS = ("none", "median", "hyperband")
SEARCH = "digits-mlp"
WC = 0.1


def run_search(folder: Path, seed: int, pruner: str, args: argparse.Namespace) -> Path:
    """One search, as the command line runs it; its run folder."""
    run = folder / f"seed{seed}-{pruner}"
    run_dnc([
        f"hydra.run.dir={run}", f"seed={seed}",
        f"trainer.pruner={pruner}", f"trainer.epochs={args.epochs}", f"search={args.search}",
        "tracking.uri=null", f"search.wc={WC}", f"cost={args.cost}",
    ])  # fmt: skip
    return run


def figures_of(run: Path, cost_of: Path) -> dict[str, Any]:
    """Epochs trained, trials, pruned trials and the best loss (re-scored with the cost of the
    search in ``cost_of``) of the search in ``run``; per stage (``stages``), its best completed
    trial's loss so re-scored and its pruned trials."""
    storage = open_storage(f"sqlite:///{run}/optuna.db")
    cost = recorded_cost(load(open_storage(f"sqlite:///{cost_of}/optuna.db"), f"{SEARCH}/core"))
    ranked = ranked_trials(storage, SEARCH, wc=WC, cost=cost)  # completed trials, best first
    epochs = trials = pruned = 0
    stages: dict[str, dict[str, float]] = {}
    for name in search_studies(storage, SEARCH):
        stage, stage_pruned = name.rsplit("/", 1)[-1], 0
        for t in load(storage, name).get_trials(deepcopy=False):
            figures = records.figures(t)
            if figures is not None:
                epochs += int(figures["epochs_run"])
                trials += 1
                stage_pruned += records.pruned(t)
        pruned += stage_pruned
        # nan: every trial of the stage pruned
        best_stage = next((r.loss for r in ranked if r.stage == stage), math.nan)
        stages[stage] = {"best_loss": best_stage, "pruned": stage_pruned}
    return {
        "epochs": epochs,
        "trials": trials,
        "pruned": pruned,
        "best_loss": ranked[0].loss,
        "stages": stages,
    }


def standard_error(values: list[float]) -> float:
    """The standard error of the mean of ``values`` (0 for fewer than two)."""
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--search", default="default")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--cost",
        default="t_epoch",
        help="t_epoch (the default search's) or "
        "numparams (no timing noise: a seed's three searches start alike)",
    )
    parser.add_argument("--keep", type=Path, help="keep the searches' run folders here")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(
            f"--keep {args.keep}: give a new or empty folder (a run folder there would "
            "resume that search instead of running it)"
        )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dnc-bench-pruning-") as tmp:
        folder = args.keep or Path(tmp)
        jobs = [(seed, pruner) for seed in range(args.seeds) for pruner in PRUNERS]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            done = pool.map(lambda job: run_search(folder, *job, args), jobs)
            runs = dict(zip(jobs, done, strict=True))
        per_seed = {
            pruner: [figures_of(runs[(s, pruner)], runs[(s, "none")]) for s in range(args.seeds)]
            for pruner in PRUNERS
        }
    total = {p: sum(f["epochs"] for f in rows) for p, rows in per_seed.items()}
    mean = {p: statistics.fmean(f["best_loss"] for f in rows) for p, rows in per_seed.items()}
    paired = {  # per seed: a pruner's best loss minus none's
        p: [f["best_loss"] - g["best_loss"] for f, g in zip(rows, per_seed["none"], strict=True)]
        for p, rows in per_seed.items()
    }
    stage_best = {
        p: {
            stage: round(statistics.fmean(f["stages"][stage]["best_loss"] for f in rows), 4)
            for stage in rows[0]["stages"]
        }
        for p, rows in per_seed.items()
    }
    result = {
        "epochs_ratio": {p: round(total[p] / total["none"], 4) for p in PRUNERS[1:]},
        "best_loss_diff": {p: round(mean[p] - mean["none"], 4) for p in PRUNERS[1:]},
        "best_loss_diff_se": {p: round(standard_error(paired[p]), 4) for p in PRUNERS[1:]},
        "seeds_worse": {p: sum(d > 0 for d in paired[p]) for p in PRUNERS[1:]},
        "epochs": total,
        "mean_best_loss": {p: round(v, 4) for p, v in mean.items()},
        "stage_mean_best_loss": stage_best,
        "per_seed": per_seed,
        "settings": {
            "seeds": args.seeds,
            "search": args.search,
            "epochs": args.epochs,
            "cost": args.cost,
            "wc": WC,
            "jobs": args.jobs,
        },  # fmt: skip
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for pruner in PRUNERS[1:]:
        print(
            f"{pruner:>9}: {result['epochs_ratio'][pruner]:.3f} of the epochs, mean best loss "
            f"{result['best_loss_diff'][pruner]:+.4f} against none (s.e. "
            f"{result['best_loss_diff_se'][pruner]:.4f}; worse in {result['seeds_worse'][pruner]}"
            f" of {args.seeds} seeds)"
        )
    for pruner, stages in stage_best.items():
        print(f"{pruner:>9}: mean best loss by stage {stages}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
