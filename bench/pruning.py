"""Early stopping with Optuna's pruners: epochs trained and final best loss of the default
search with ``trainer.pruner=median`` and ``hyperband`` against ``none`` (the baseline, in the
same run).

Each seed runs the same command once per pruner, as a user would (``python -m dnc seed=S
trainer.pruner=P tracking.uri=null``: the paper's three stages on digits, 15 epochs per
trial), and with ``--control`` (the default) ``none``'s once more (``none-again``: how far the
measure moves when nothing changes), seed by seed so that background load hits them alike
(each seed's searches in a shuffled order, so that no search always has the same neighbour);
``--jobs`` searches run at once, each on one thread (``--jobs 1``: each search alone, its
``t_epoch`` timed without a neighbour). Then, from each search's Optuna storage:

- ``epochs``: the epochs trained by all its trials (``figures.epochs_run``, pruned ones
  included);
- ``best_loss``: its best completed trial's search loss, re-scored with the cost of that seed's
  ``none`` search (the same ``tbar_epoch`` for all of them: the calibrations differ by timing
  noise);
- per stage (core, arch, train): the mean of its best completed trial's loss, so re-scored
  (``stage_mean_best_loss``): where a pruner's loss arises;
- ``pick_loss`` (``--retrain K``, 3 by default; 0: off): the search's pick trained ``K`` more
  times with seeds no trial used, its mean loss (its recorded cost term, so re-scored). The
  best loss is the best of many noisy trainings, and a pruned search completes fewer, so this
  is what the pick is worth to a user who trains it again.

Last line: one JSON object: ``epochs_ratio`` (a pruner's epochs over ``none``'s, summed over
the seeds), ``best_loss_diff`` (a pruner's mean best loss minus ``none``'s: above 0 is worse),
``best_loss_diff_se`` (the standard error of that mean of paired per-seed differences),
``seeds_worse`` (seeds where the pruner's best loss is above ``none``'s), each also for the
control; the same for the picks trained again (``mean_pick_loss``, ``pick_loss_diff``,
``pick_loss_diff_se``, ``pick_seeds_worse``); the per-seed figures, and the machine. Target
(issue #16): at least 40% fewer epochs with a mean best loss within 0.01.

With ``--cost numparams`` the cost has no timing noise, so a seed's searches train the
same candidates until a pruner first acts, and the differences are the pruners' own.

    python bench/pruning.py [--seeds 10] [--jobs 2] [--search default] [--epochs 15]
                            [--cost t_epoch|numparams] [--keep FOLDER] [--retrain 3]
                            [--no-control]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, retrain_seed, run_dnc  # bench/common.py (this folder is on sys.path)

from dnc.search import records
from dnc.search.ranking import ranked_trials
from dnc.search.storage import load, open_storage, recorded_cost, search_studies

PRUNERS = ("none", "median", "hyperband")
CONTROL = "none-again"
"""The control (``--control``): ``none``'s search run a second time, in a run folder of its
own. It changes nothing, so its difference from ``none`` is how far this measure moves by
chance (with the ``t_epoch`` cost, timing noise steers the two searches apart)."""
SEARCH = "digits-mlp"
WC = 0.1


def overrides(seed: int, pruner: str, args: argparse.Namespace) -> list[str]:
    """The command line of one search (but its run folder)."""
    return [
        f"seed={seed}", f"trainer.pruner={pruner}", f"trainer.epochs={args.epochs}",
        f"search={args.search}", "tracking.uri=null", f"search.wc={WC}", f"cost={args.cost}",
    ]  # fmt: skip


def run_search(folder: Path, seed: int, label: str, args: argparse.Namespace) -> Path:
    """One search, as the command line runs it (``label``: a pruner, or the control); its run
    folder."""
    run = folder / f"seed{seed}-{label}"
    run_dnc([f"hydra.run.dir={run}", *overrides(seed, label.removesuffix("-again"), args)])
    return run


def pick_loss(run: Path, cost_of: Path, seed: int, args: argparse.Namespace) -> float:
    """The mean search loss of the search's pick (its best completed trial) trained again
    ``args.retrain`` times with seeds no trial used (the same for every search of a seed), on
    the data, space and trainer the search used: what a user gets who trains the network the
    search found. The best search loss is the best of many noisy trainings, so a search that
    completes more trials is flattered more. Only the accuracy is retrained: the cost term is
    the pick's recorded one, re-scored with the cost of ``cost_of`` (that seed's ``none``
    search), as ``best_loss`` is; a retraining that diverges counts as zero accuracy."""
    import torch
    from hydra import compose, initialize_config_module

    from dnc.config import instantiate, typed
    from dnc.plugins import Dataset, SearchSpace
    from dnc.search.objective import evaluate, loss_terms, performance_term, search_loss
    from dnc.train.settings import TrainerSettings, TrialDiverged

    torch.set_num_threads(1)
    cost = recorded_cost(load(open_storage(f"sqlite:///{cost_of}/optuna.db"), f"{SEARCH}/core"))
    pick = ranked_trials(open_storage(f"sqlite:///{run}/optuna.db"), SEARCH, wc=WC, cost=cost)[0]
    with initialize_config_module("dnc.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides(seed, "none", args))
    space = instantiate(cfg.search_space, SearchSpace, "search_space")
    data = instantiate(cfg.dataset, Dataset, "dataset").load(seed)
    trainer = typed(cfg.trainer, TrainerSettings)
    fc = loss_terms(pick.figures, cost)[1]
    losses = []
    for k in range(args.retrain):
        try:
            figures = evaluate(
                pick.candidate, space=space, data=data, cost=cost, wc=WC, trainer=trainer,
                seed=retrain_seed(seed, k),
            ).figures  # fmt: skip
            fp = performance_term(figures["best_val_acc"])
        except TrialDiverged:
            fp = 1.0
        losses.append(search_loss(fp, fc, WC))
    return statistics.fmean(losses)


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


def pick_figures(
    per_seed: dict[str, list[dict[str, Any]]], diffs: dict[str, list[float]], others: list[str]
) -> dict[str, Any]:
    """The JSON's figures of the picks trained again: each pruner's mean, and its paired
    difference from ``none``'s (mean, standard error, seeds worse)."""
    return {
        "mean_pick_loss": {
            p: round(statistics.fmean(f["pick_loss"] for f in rows), 4)
            for p, rows in per_seed.items()
        },
        "pick_loss_diff": {p: round(statistics.fmean(diffs[p]), 4) for p in others},
        "pick_loss_diff_se": {p: round(standard_error(diffs[p]), 4) for p in others},
        "pick_seeds_worse": {p: sum(d > 0 for d in diffs[p]) for p in others},
    }


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
        "numparams (no timing noise: a seed's searches start alike)",
    )
    parser.add_argument("--keep", type=Path, help="keep the searches' run folders here")
    parser.add_argument(
        "--control",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"run none's search twice: the second ({CONTROL}) shows how far the measure "
        "moves by chance",
    )
    parser.add_argument(
        "--retrain", type=int, default=3, help="new trainings of each search's pick (0: none)"
    )
    args = parser.parse_args()
    if args.retrain < 0:
        parser.error(f"--retrain {args.retrain}: give 0 or more")
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(
            f"--keep {args.keep}: give a new or empty folder (a run folder there would "
            "resume that search instead of running it)"
        )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dnc-bench-pruning-") as tmp:
        folder = args.keep or Path(tmp)
        labels = [*PRUNERS, CONTROL] if args.control else list(PRUNERS)
        others = labels[1:]  # each compared with none
        # Seed by seed, each seed's searches in an order of their own (seeded): with --jobs 2
        # a search's t_epoch may depend on what runs beside it, and in a fixed order each label
        # would always have the same neighbour (none beside median, the control beside
        # hyperband: the control then differed from none by -0.07, s.e. 0.025).
        jobs = [
            (seed, label)
            for seed in range(args.seeds)
            for label in random.Random(seed).sample(labels, len(labels))
        ]
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            done = pool.map(lambda job: run_search(folder, *job, args), jobs)
            runs = dict(zip(jobs, done, strict=True))
        per_seed = {
            pruner: [figures_of(runs[(s, pruner)], runs[(s, "none")]) for s in range(args.seeds)]
            for pruner in labels
        }
        if args.retrain:
            with concurrent.futures.ProcessPoolExecutor(args.jobs) as procs:
                picks = procs.map(
                    pick_loss,
                    [runs[job] for job in jobs],
                    [runs[(s, "none")] for s, _ in jobs],
                    [s for s, _ in jobs],
                    [args] * len(jobs),
                )
                for (s, pruner), loss in zip(jobs, picks, strict=True):
                    per_seed[pruner][s]["pick_loss"] = loss
    total = {p: sum(f["epochs"] for f in rows) for p, rows in per_seed.items()}
    mean = {p: statistics.fmean(f["best_loss"] for f in rows) for p, rows in per_seed.items()}

    def paired(key: str) -> dict[str, list[float]]:
        """Per pruner, per seed: its figure ``key`` minus ``none``'s."""
        return {
            p: [f[key] - g[key] for f, g in zip(rows, per_seed["none"], strict=True)]
            for p, rows in per_seed.items()
        }

    diffs = paired("best_loss")
    stage_best = {
        p: {
            stage: round(statistics.fmean(f["stages"][stage]["best_loss"] for f in rows), 4)
            for stage in rows[0]["stages"]
        }
        for p, rows in per_seed.items()
    }
    result = {
        "epochs_ratio": {p: round(total[p] / total["none"], 4) for p in others},
        "best_loss_diff": {p: round(mean[p] - mean["none"], 4) for p in others},
        "best_loss_diff_se": {p: round(standard_error(diffs[p]), 4) for p in others},
        "seeds_worse": {p: sum(d > 0 for d in diffs[p]) for p in others},
        "epochs": total,
        "mean_best_loss": {p: round(v, 4) for p, v in mean.items()},
        "stage_mean_best_loss": stage_best,
        **(pick_figures(per_seed, paired("pick_loss"), others) if args.retrain else {}),
        "per_seed": per_seed,
        "settings": {
            "seeds": args.seeds,
            "search": args.search,
            "epochs": args.epochs,
            "cost": args.cost,
            "wc": WC,
            "jobs": args.jobs,
            "retrain": args.retrain,
            "control": args.control,
        },  # fmt: skip
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    for pruner in others:
        print(
            f"{pruner:>9}: {result['epochs_ratio'][pruner]:.3f} of the epochs, mean best loss "
            f"{result['best_loss_diff'][pruner]:+.4f} against none (s.e. "
            f"{result['best_loss_diff_se'][pruner]:.4f}; worse in {result['seeds_worse'][pruner]}"
            f" of {args.seeds} seeds)"
        )
    if args.retrain:
        for pruner in others:
            print(
                f"{pruner:>9}: its pick trained {args.retrain} more times: mean loss "
                f"{result['pick_loss_diff'][pruner]:+.4f} against none's (s.e. "
                f"{result['pick_loss_diff_se'][pruner]:.4f}; worse in "
                f"{result['pick_seeds_worse'][pruner]} of {args.seeds} seeds)"
            )
    for pruner, stages in stage_best.items():
        print(f"{pruner:>9}: mean best loss by stage {stages}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
