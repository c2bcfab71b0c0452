"""Search quality of the ramp-kernel BO against Optuna's GP, TPE and random samplers.

``ramp`` is dnc's default ramp BO: the split model (one GP on log10 fp, one on log10 fc) and
10% of each parameter's explored values at its bounds. ``ramp_paper`` is the paper's method with
the same kernel: one GP on the search loss, uniform random candidates
(``search.bo.model=loss search.bo.at_bounds=0``).

One problem: the MLP space on scikit-learn's digits, 3 epochs per trial, one BO stage over the
core architecture and the training hyperparameters (``core`` + ``train``), 12 trials, search
loss ``log10(fp + 0.1 fc)`` with ``fc = t_epoch / tbar_epoch``. Each sampler runs 5 seeds. With
12 trials the paper's 15 prior states would leave no BO step, so every model-based sampler gets
6 prior (start-up) trials and 6 model-guided ones (``--prior-states``).

For a fair comparison every run shares one data split and one ``tbar_epoch`` (calibrated once
on the space's reference network), a seed trains trial ``i`` with the same seed whichever
sampler proposed it, and the runs are interleaved seed by seed, so that background load on the
machine hits all samplers alike. ``t_epoch`` is still measured per trial, so the search loss
carries timing noise, as in a real search; torch runs on one thread (``--threads``), which keeps
that noise small for networks this tiny on a shared machine.

    python bench/search_quality.py [--seeds 5] [--trials 12] [--prior-states 6]

Last line: one JSON object; ``median_best_loss`` per sampler (lower is better), the per-seed
best losses, and the settings and machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from dnc_mlp.space import MLPSpace

from dnc.plugins import TensorData
from dnc.search import BOSettings, Search, SearchSettings, StageSpec
from dnc.search.cost import TEpoch
from dnc.search.objective import evaluate
from dnc.train.datasets import Digits
from dnc.train.settings import TrainerSettings

SAMPLERS = ("ramp", "ramp_paper", "gp", "tpe", "random")
VARIANTS = {"ramp_paper": ("ramp", {"model": "loss", "at_bounds": 0.0})}
"""Bench names that run a sampler with other ``search.bo`` settings."""
WC = 0.1


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), CPU only"
    )


def calibrate(space: MLPSpace, data: TensorData, trainer: TrainerSettings) -> float:
    """``tbar_epoch``: the reference network's seconds per epoch (after a warm-up run, the
    median of 5 runs)."""
    ref = space.reference_candidate()
    times = [
        evaluate(
            ref, space=space, data=data, cost=TEpoch(1.0), wc=0.0, trainer=trainer, seed=s
        ).figures["t_epoch"]
        for s in range(6)
    ]
    return statistics.median(times[1:])


def best_loss(
    sampler: str,
    seed: int,
    *,
    space: MLPSpace,
    data: TensorData,
    tbar: float,
    trainer: TrainerSettings,
    bo: BOSettings,
    trials: int,
    folder: Path,
) -> float:
    """The lowest search loss one 12-trial search finds."""
    name = f"quality-{sampler}-{seed}"
    algorithm, changes = VARIANTS.get(sampler, (sampler, {}))
    settings = SearchSettings(
        name=name,
        wc=WC,
        sampler=algorithm,
        bo=dataclasses.replace(bo, **changes),
        stages=(StageSpec("core", groups=("core", "train"), trials=trials),),
    )
    result = Search(
        settings,
        space=space,
        dataset=data,
        cost=TEpoch(tbar),
        trainer=trainer,
        storage=f"sqlite:///{folder / name}.db",
        seed=seed,
    ).run()
    return result.best[0].loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--prior-states", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--noise",
        type=float,
        default=1e-4,
        help="ramp BO noise variance on the standardised outcome (search.bo.noise)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: t_epoch of these tiny MLPs is far steadier on a busy machine)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # GPSampler warns on every MLP trial
    start = time.perf_counter()
    space = MLPSpace()
    data = Digits().load(seed=0)
    trainer = TrainerSettings(epochs=args.epochs)
    bo = BOSettings(
        prior_states=args.prior_states, steps=args.trials - args.prior_states, noise=args.noise
    )
    tbar = calibrate(space, data, trainer)
    print(f"tbar_epoch = {tbar:.4f} s (reference network)", flush=True)
    losses: dict[str, list[float]] = {s: [] for s in SAMPLERS}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for sampler in SAMPLERS:
                t0 = time.perf_counter()
                loss = best_loss(
                    sampler,
                    seed,
                    space=space,
                    data=data,
                    tbar=tbar,
                    trainer=trainer,
                    bo=bo,
                    trials=args.trials,
                    folder=Path(tmp),
                )
                losses[sampler].append(loss)
                print(
                    f"seed {seed}  {sampler:<10}  best search loss {loss:.4f}  "
                    f"({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
    medians = {s: statistics.median(v) for s, v in losses.items()}
    winner = min(medians, key=lambda s: medians[s])
    result: dict[str, Any] = {
        "median_best_loss": {s: round(v, 4) for s, v in medians.items()},
        "mean_best_loss": {s: round(statistics.mean(v), 4) for s, v in losses.items()},
        "best_loss_per_seed": {s: [round(x, 4) for x in v] for s, v in losses.items()},
        "lowest_median": winner,
        "problem": {
            "space": "mlp",
            "dataset": "digits",
            "epochs": args.epochs,
            "torch_threads": args.threads,
            "trials": args.trials,
            "prior_states": args.prior_states,
            "wc": WC,
            "groups": ["core", "train"],
            "seeds": args.seeds,
            "explore": bo.explore,
            "tbar_epoch": round(tbar, 5),
            "ramp_noise": bo.noise,
            "ramp_omega": bo.omega,
            "ramp_model": bo.model,
            "ramp_at_bounds": bo.at_bounds,
        },
        "seconds": round(time.perf_counter() - start, 1),
        "machine": machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
