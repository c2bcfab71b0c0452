"""Warm start (``search.warm_start``): how many trials a search on Morse ``difficult`` needs to
reach the final best loss of a cold search, when it starts from a finished search on Morse
``baseline`` (the paper's CIFAR-10 -> CIFAR-100 transfer, offline), against the cold search
itself (the baseline, measured in the same run).

Per seed, through the Python API (what ``python -m dnc`` builds), one process per seed, three
searches in one SQLite storage, each the same single ramp-BO stage over the core architecture
and the training hyperparameters (``search.stages=[{name:core,kind:bo,groups:[core,train]}]``),
MLP space, ``cost=numparams`` (a loss without timing noise, so that the cold and warm losses
compare exactly), ``wc=0.1``, ``--prior-states`` Sobol prior states + ``--steps`` BO steps,
``--epochs`` epochs per trial; data generated offline, ``dataset=morse`` (64 classes, frames of
64, 200 examples per class):

1. ``src``: on ``dataset.preset=baseline``;
2. ``cold``: on ``dataset.preset=difficult``;
3. ``warm``: on ``dataset.preset=difficult`` with ``search.warm_start.search=src`` (the same
   storage) and ``search.warm_start.candidates`` = ``--candidates``: the first trials are
   ``src``'s best distinct candidates, then Sobol points; the same budget;
4. ``oracle`` (a control, ``--oracle``, on by default): the same as ``warm``, but started from
   ``cold`` itself, so its first trials are the cold search's own best candidates trained
   again (other training seeds). How soon it reaches the cold search's final best loss is
   how soon any warm start could: that loss is the best of ``budget`` noisy trainings.

Figures per seed: ``cold``: the trial (1-based, in trial order) at which the cold search found
its final best loss; ``warm`` (and ``oracle``): the first trial at which that search's loss is
at most that loss (``budget + 1`` when it never is: counted as a miss); and the best loss after
each trial. Last line: one JSON object with ``trials_to_cold_best`` (the means over seeds),
the medians, ``missed``, the mean best loss after 1, 2, 5, budget/2 and budget trials,
per-seed figures, the settings and the machine. Target (issue #16): warm needs at most half
the trials of cold.

``--classes`` takes fewer Morse classes (both presets); ``--warm-prior-states`` gives the warm
searches fewer prior states (their warm candidates, then Sobol) and as many more BO steps;
``--observations`` lets the warm search's GPs learn from the source's trials too
(``search.warm_start.observations=true``); ``--keep`` keeps each seed's storage.

    python bench/warm_start.py [--seeds 10] [--jobs 2] [--quick] [--classes 64]
                               [--warm-prior-states N] [--observations] [--no-oracle]
                               [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine  # bench/common.py (this folder is on sys.path)

WC = 0.1
STAGE = "core"


def _search(
    name: str, preset: str, seed: int, url: str, args: dict[str, Any], prior: int = 0, **extra: Any
):
    from dnc_mlp.space import MLPSpace

    from dnc.search import BOSettings, Search, SearchSettings, StageSpec
    from dnc.search.cost import NumParams
    from dnc.train.morse import Morse
    from dnc.train.settings import TrainerSettings

    prior = prior or args["prior_states"]  # the same budget whatever the prior states
    settings = SearchSettings(
        name=name,
        wc=WC,
        stages=(StageSpec(STAGE, groups=("core", "train")),),
        bo=BOSettings(prior_states=prior, steps=args["prior_states"] + args["steps"] - prior),
        **extra,
    )
    return Search(
        settings,
        space=MLPSpace(),
        dataset=Morse(preset=preset, classes=args["classes"]),
        cost=NumParams(),
        trainer=TrainerSettings(epochs=args["epochs"]),
        storage=url,
        seed=seed,
    )


def run_seed(seed: int, folder: str, args: dict[str, Any]) -> dict[str, Any]:
    """The three searches of one seed; its figures."""
    import optuna
    import torch

    from dnc.search.settings import WarmStartSettings

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{folder}/seed{seed}.db"
    started = time.perf_counter()
    _search("src", "baseline", seed, url, args).run()
    _search("cold", "difficult", seed, url, args).run()
    warm = WarmStartSettings(
        search="src", candidates=args["candidates"], observations=args["observations"]
    )
    _search("warm", "difficult", seed, url, args, args["warm_prior"], warm_start=warm).run()
    if args["oracle"]:
        oracle = WarmStartSettings(search="cold", candidates=args["candidates"], observations=False)
        _search("oracle", "difficult", seed, url, args, args["warm_prior"], warm_start=oracle).run()
    row = figures(url, ("warm", "oracle") if args["oracle"] else ("warm",))
    return {"seed": seed, **row, "seconds": round(time.perf_counter() - started, 1)}


def figures(url: str, searches: tuple[str, ...] = ("warm",)) -> dict[str, Any]:
    """Trials to the cold search's final best loss, for the cold search and ``searches``."""
    from dnc.search import records
    from dnc.search.objective import score
    from dnc.search.storage import load, open_storage, recorded_cost

    storage = open_storage(url)
    cold_study = load(storage, f"cold/{STAGE}")
    cost = recorded_cost(cold_study)  # all on the same data: one normaliser for all

    def losses(search: str) -> list[float]:
        out = []
        for t in load(storage, f"{search}/{STAGE}").get_trials(deepcopy=False):
            if not records.counts_against_budget(t):
                continue
            figs = records.figures(t)
            out.append(score(figs, WC, cost) if figs else math.inf)
        return out

    cold = losses("cold")
    best = min(cold)
    row: dict[str, Any] = {
        "cold": next(i for i, loss in enumerate(cold, 1) if loss <= best),
        "cold_best_loss": round(best, 4),
        "cold_first_trial_loss": round(cold[0], 4),
        "best_so_far": {"cold": _running_min(cold)},
    }
    for name in searches:
        mine = losses(name)
        reached = [i for i, loss in enumerate(mine, 1) if loss <= best + 1e-12]
        row[name] = reached[0] if reached else len(mine) + 1
        row["best_so_far"][name] = _running_min(mine)
        row[f"{name}_reached"] = bool(reached)
        row[f"{name}_best_loss"] = round(min(mine), 4)
        row[f"{name}_first_trial_loss"] = round(mine[0], 4)
    return row


def _running_min(losses: list[float]) -> list[float]:
    """The best loss after each trial."""
    out, best = [], math.inf
    for loss in losses:
        best = min(best, loss)
        out.append(round(best, 4))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="default 10 (--quick: 2)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--prior-states", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--classes", type=int, default=64, help="Morse classes (at most 64)")
    parser.add_argument(
        "--warm-prior-states",
        type=int,
        default=0,
        help="the warm search's prior states (default: --prior-states), the same budget",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 seeds, 3 epochs, 5 + 5 trials: a smoke run"
    )
    parser.add_argument(
        "--observations",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the warm search's GPs learn from the source's trials too "
        "(search.warm_start.observations)",
    )
    parser.add_argument(
        "--oracle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also warm-start a search from the cold search itself (the control)",
    )
    parser.add_argument(
        "--keep", type=Path, help="keep each seed's storage (seed<N>.db) in this folder"
    )
    ns = parser.parse_args()
    if ns.keep is not None and ns.keep.exists() and any(ns.keep.iterdir()):
        parser.error(
            f"--keep {ns.keep}: give a new or empty folder (a storage there would resume its "
            "searches instead of running them)"
        )
    if ns.quick:
        ns.epochs, ns.prior_states, ns.steps = 3, 5, 5
    ns.seeds = ns.seeds or (2 if ns.quick else 10)
    args = {
        "epochs": ns.epochs,
        "prior_states": ns.prior_states,
        "steps": ns.steps,
        "candidates": ns.candidates,
        "classes": ns.classes,
        "warm_prior": ns.warm_prior_states,
        "observations": ns.observations,
        "oracle": ns.oracle,
    }
    from dnc.train.morse import Morse

    for preset in ("baseline", "difficult"):  # generated once, before the workers read the cache
        Morse(preset=preset, classes=ns.classes).load(0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dnc-bench-warm-") as tmp:
        if ns.keep is not None:
            ns.keep.mkdir(parents=True, exist_ok=True)
            tmp = str(ns.keep.resolve())
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(ns.jobs, mp_context=context) as pool:
            jobs = [pool.submit(run_seed, seed, tmp, args) for seed in range(ns.seeds)]
            per_seed = [job.result() for job in jobs]
    warm = ("warm", "oracle") if ns.oracle else ("warm",)
    names = (*warm, "cold")
    for row in per_seed:
        print(
            f"seed {row['seed']:2d}: cold reached its best {row['cold_best_loss']:+.4f} at trial "
            f"{row['cold']:2d}; "
            + "; ".join(
                f"{n} at trial {row[n]:2d}"
                + ("" if row[f"{n}_reached"] else " (never: counted as budget + 1)")
                + f" (its best {row[f'{n}_best_loss']:+.4f})"
                for n in warm
            )
        )
    mean = {k: statistics.fmean(r[k] for r in per_seed) for k in names}
    median = {k: statistics.median(r[k] for r in per_seed) for k in names}
    budget = ns.prior_states + ns.steps
    marks = sorted({1, 2, 5, budget // 2, budget})
    after = {  # the mean over seeds of the best loss after k trials
        k: {
            s: round(statistics.fmean(r["best_so_far"][s][k - 1] for r in per_seed), 4)
            for s in names
        }
        for k in marks
    }
    result = {
        "trials_to_cold_best": {k: round(v, 2) for k, v in mean.items()},
        "median_trials_to_cold_best": median,
        "ratio": round(mean["warm"] / mean["cold"], 3),
        "target_ratio": 0.5,
        "missed": {n: sum(not r[f"{n}_reached"] for r in per_seed) for n in warm},
        "mean_best_loss": {
            n: round(statistics.fmean(r[f"{n}_best_loss"] for r in per_seed), 4) for n in names
        },
        "mean_best_loss_after_trials": after,
        "per_seed": per_seed,
        "settings": {
            "seeds": ns.seeds,
            "source": "morse baseline",
            "target": "morse difficult",
            "space": "mlp",
            "stage": "one ramp-BO stage over core + train",
            "cost": "numparams",
            "wc": WC,
            "budget": budget,
            **args,
            "jobs": ns.jobs,
        },
        "machine": machine(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"trials to the cold search's final best loss, mean over {ns.seeds} seeds: "
        + ", ".join(f"{n} {mean[n]:.2f}" for n in names)
        + f" (ratio warm/cold {result['ratio']:.2f}; target <= 0.5); never reached it: "
        + ", ".join(f"{n} in {m} seeds" for n, m in result["missed"].items())
    )
    for k, v in after.items():
        each = ", ".join(f"{n} {v[n]:+.4f}" for n in names)
        print(f"mean best loss after {k:2d} trials: {each}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
