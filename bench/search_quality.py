"""Search quality: the best search loss ``log10(fp + wc fc)`` each sampler finds with the same
budget, on a suite of problems where the architecture matters (issue #13).

Problems (each one BO stage; prior states = half the trials, the rest guided; the epochs keep
a trial short on a 2-core CPU while the accuracy still depends on the architecture):

- ``mlp-digits-numparams``: the MLP space on digits, groups core + train, 30 trials,
  ``cost=numparams``, ``wc=0.01`` (deterministic cost), 10 epochs;
- ``mlp-digits-time``: the same with ``cost=t_epoch`` and ``wc=0.1``;
- ``sparse-morse-hw``: what ``python -m dnc +experiment=morse dataset.preset=difficult``
  composes (sparse MLPs on generated Morse code, ``cost=hardware``), groups core + train,
  30 trials, 8 epochs (the validation accuracy of 64 classes reaches about 13%);
- ``cnn-digits``: the CNN space's core stage on digits, 1-3 conv layers of 8-32 channels
  (a max-pool before the first width past 16), training held at batch 64 and learning rate
  3e-3 (the space's defaults, 256 and 1e-3, barely learn in so few steps), ``cost=numparams``,
  ``wc=0.01`` (deterministic: with ``t_epoch`` one seed's best moved by 0.06 between runs), 20
  trials, 5 epochs.

Samplers: ``ramp`` (dnc's default ``search.sampler=ramp``), ``ramp_paper`` (the paper's one GP
on the search loss, uniform candidates: ``search.bo.model=loss at_bounds=0 omega=3``), ``gp``
(Optuna's GPSampler), ``tpe_group`` (TPE, multivariate and grouped), ``tpe`` and ``random``;
``--variant NAME:key=value,...`` adds a ramp sampler with those ``search.bo`` fields changed.

Fairness: a problem is built (as the command line composes it), its data split loaded and its
cost calibrated once (``t_epoch``: the median of 5 runs of the reference network), and shared
by all its searches; seed ``s`` is every sampler's search seed (so trial ``i`` trains with the
same seed whichever sampler proposed it); runs go seed by seed, each seed through every
sampler, so that background load hits the samplers alike. Torch uses one thread per search.

Rough times on a 2-core x86_64 CPU, one search at a time: 7-15 s on mlp-digits-* (GPSampler's
and the ramp BO's proposals are part of it), about 50 s on sparse-morse-hw and 13-20 s on
cnn-digits, plus the ``--retrain`` trainings of its pick (0.1-2 s each). The full suite (4
problems, 6 samplers, 20 seeds) takes about 3 hours: use ``--jobs`` where there are cores to
spare.

    python bench/search_quality.py [--seeds 20] [--jobs 1] [--problems cnn-digits ...]
        [--samplers ramp gp ...] [--variant ramp_o2:omega=2.0 ...] [--trials N] [--retrain 3]
    python bench/search_quality.py --quick     # a try-out in about 3 minutes

Report per problem and sampler: the mean, median and per-seed best search loss (lower is
better); for ``ramp`` against every other sampler, the paired win rate (seeds where ramp's
best is lower; ties count half) and a bootstrap 95% interval of the mean difference
ramp - other (seeds resampled 10,000 times); with variants, each variant against ``gp`` too.
Last line: one JSON object ``{"problems": {name: {"mean", "median", "per_seed",
"win_rate_vs", "mean_diff_ci95_vs", ["variant_vs_gp"]}}, "targets", ["picks",
"targets_picks"], "seeds", "settings", "retrain", "seconds", "machine"}``.

What the pick is worth (``--retrain K``, 3 by default; 0: off): the best search loss is the
best of noisy trainings and rewards luck (``pick_loss`` says how), so each search's pick is also
trained ``K`` more times with seeds no trial used, and its mean search loss is reported under
``picks``, with the same statistics and targets (``targets_picks``).

Targets (issue #13): on each problem ramp has the lowest mean (of the six samplers) and a win
rate of at least 0.55 against ``gp``; on at least 2 problems the interval against ``gp`` lies
below zero. ``targets`` states each.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import json
import multiprocessing
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from common import machine, retrain_seed  # bench/common.py (this folder is on sys.path)
from quality_report import RESAMPLES, summarise, table, targets

from dnc.bo.settings import BOSettings
from dnc.plugins import CostEvaluator, SearchSpace, TensorData, UserError, calibrate_cost
from dnc.search import Search, SearchSettings, StageSpec
from dnc.search.records import Ranked
from dnc.train.settings import TrainerSettings


@dataclasses.dataclass(frozen=True)
class Problem:
    """A benchmark problem: the ``python -m dnc`` overrides that compose it, and its one BO
    stage (``trials`` over ``groups``, half of them prior states) for ``wc``."""

    overrides: tuple[str, ...]
    trials: int
    groups: tuple[str, ...] = ("core", "train")
    wc: float = 0.1


PROBLEMS = {
    "mlp-digits-numparams": Problem(("cost=numparams", "trainer.epochs=10"), 30, wc=0.01),
    "mlp-digits-time": Problem(("cost=t_epoch", "trainer.epochs=10"), 30),
    "sparse-morse-hw": Problem(
        ("+experiment=morse", "dataset.preset=difficult", "trainer.epochs=8"), 30
    ),
    "cnn-digits": Problem(
        (
            "search_space=cnn",
            "search_space.core.conv_layers=[1,3]",
            "search_space.core.first_channels=[8,32]",
            "search_space.core.max_channels=32",
            "search_space.core.default_channels=[16,32]",
            "search_space.core.pool_thresholds=[16]",
            "search_space.training.default_batch_size=64",  # held: the core stage's training
            "search_space.training.default_lr=3e-3",  # learns in 5 epochs
            "trainer.epochs=5",
            "cost=numparams",  # deterministic: t_epoch moved one seed's best by 0.06 between runs
        ),
        20,
        groups=("core",),
        wc=0.01,
    ),
}
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ramp": ("ramp", {}),
    "ramp_paper": ("ramp", {"model": "loss", "at_bounds": 0.0, "omega": 3.0}),
    "gp": ("gp", {}),
    "tpe_group": ("tpe_group", {}),
    "tpe": ("tpe", {}),
    "random": ("random", {}),
}
"""Bench name: (``search.sampler``, the ``search.bo`` fields it changes)."""
QUICK: dict[str, Any] = {
    "seeds": 2,
    "problems": ["mlp-digits-numparams", "cnn-digits"],
    "samplers": ["ramp", "ramp_paper", "gp", "tpe_group", "random"],
    "trials": 12,
}


@dataclasses.dataclass(frozen=True)
class Setup:
    """A problem's objects, built, loaded and calibrated once, shared by all its searches."""

    problem: Problem
    space: SearchSpace
    data: TensorData
    cost: CostEvaluator
    trainer: TrainerSettings


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value,...`` as ``(NAME, {field: value})`` for any ``BOSettings`` field;
    values are read as bool (``true``/``false``), int, float or else str. ``ValueError`` for a
    malformed spec, an unknown field or a value ``BOSettings`` refuses."""
    name, sep, body = text.partition(":")
    if not sep or not name or not body:
        raise ValueError(f"--variant {text!r}: give NAME:key=value[,key=value...]")
    known = {f.name: f for f in dataclasses.fields(BOSettings)}
    changes: dict[str, Any] = {}
    for item in body.split(","):
        key, eq, raw = (s.strip() for s in item.partition("="))
        if not eq:
            raise ValueError(f"--variant {text!r}: {item!r} is not key=value")
        if key not in known:
            raise ValueError(
                f"--variant {text!r}: {key!r} is not a field of BOSettings; "
                f"choose from {', '.join(known)}"
            )
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(raw)
                    break
                except ValueError:
                    pass
        if isinstance(known[key].default, float) and type(value) is int:
            value = float(value)  # omega=2 means 2.0
        changes[key] = value
    try:
        BOSettings(**changes)
    except UserError as err:
        raise ValueError(f"--variant {text!r}: {err}") from None
    return name, changes


def build(name: str, problem: Problem) -> Setup:
    """The problem's space, data (split with seed 0), cost and trainer, as ``python -m dnc``
    builds them from its overrides; an auto cost normaliser is calibrated here once (a cost
    that trains: the median of 5 reference runs after a warm-up)."""
    from hydra import compose, initialize_config_module

    from dnc.config import instantiate, typed
    from dnc.plugins import Dataset
    from dnc.search.calibration import reference_figures

    with initialize_config_module("dnc.conf", version_base="1.3"):
        cfg = compose("config", overrides=list(problem.overrides))
        dataset = instantiate(cfg.dataset, Dataset, "dataset")
        space = instantiate(cfg.search_space, SearchSpace, "search_space")
        cost = instantiate(cfg.cost, CostEvaluator, "cost")
        trainer = typed(cfg.trainer, TrainerSettings)
    dataset.check()
    space.check()
    data = dataset.load(seed=0)
    if cost.needs_calibration:
        runs = [
            reference_figures(cost, space=space, data=data, trainer=trainer, seed=s)
            for s in range(6 if cost.calibrate_by_training else 1)
        ]
        runs = runs[1:] if len(runs) > 1 else runs
        calibrate_cost(cost, {k: statistics.median(r[k] for r in runs) for k in runs[0]})
    print(f"{name}: cost {cost.name} {cost.settings()}", flush=True)
    return Setup(problem, space, data, cost, trainer)


_SETUPS: dict[str, Setup] = {}
"""The problems of this process (a pool's worker gets them once, from its initializer)."""


def _install(setups: dict[str, Setup]) -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # GPSampler warns on every trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    _SETUPS.update(setups)


def best_loss(
    job: tuple[str, str, int],
    samplers: dict[str, tuple[str, dict[str, Any]]],
    folder: str,
    retrain: int = 0,
) -> tuple[float, float | None, float]:
    """The lowest search loss of one search (``(problem, sampler, seed)``), the mean search
    loss of its pick trained again ``retrain`` times (``pick_loss``; ``None`` with 0), and the
    search's seconds."""
    problem, sampler, seed = job
    setup = _SETUPS[problem]
    trials = setup.problem.trials
    algorithm, changes = samplers[sampler]
    bo = BOSettings(prior_states=trials // 2, steps=trials - trials // 2)
    name = f"{problem}-{sampler}-{seed}"
    settings = SearchSettings(
        name=name,
        wc=setup.problem.wc,
        sampler=algorithm,
        bo=dataclasses.replace(bo, **changes),
        stages=(StageSpec("bo", groups=setup.problem.groups, trials=trials),),
    )
    start = time.perf_counter()
    result = Search(
        settings,
        space=setup.space,
        dataset=setup.data,
        cost=setup.cost,
        trainer=setup.trainer,
        storage=f"sqlite:///{Path(folder) / name}.db",
        seed=seed,
    ).run()
    seconds = time.perf_counter() - start
    pick = pick_loss(setup, result.best[0], seed, retrain) if retrain else None
    return result.best[0].loss, pick, seconds


def pick_loss(setup: Setup, pick: Ranked, seed: int, retrain: int) -> float:
    """The mean search loss of the search's ``pick`` (its best ``Ranked`` row) trained
    ``retrain`` times with seeds no trial used: what the pick is worth to a user who trains it
    again (a retraining that diverges counts as zero accuracy). The best search loss alone
    rewards luck: a sampler that proposes one candidate again and again (the stage trains a
    repeat after ``MAX_REPEATS`` refusals) keeps that candidate's best training."""
    from dnc.search.objective import evaluate, loss_terms, search_loss
    from dnc.train.settings import TrialDiverged

    losses = []
    for k in range(retrain):
        try:
            losses.append(
                evaluate(
                    pick.candidate,
                    space=setup.space,
                    data=setup.data,
                    cost=setup.cost,
                    wc=setup.problem.wc,
                    trainer=setup.trainer,
                    seed=retrain_seed(seed, k),
                ).loss
            )
        except TrialDiverged:
            fc = loss_terms(pick.figures, setup.cost)[1]
            losses.append(search_loss(1.0, fc, setup.problem.wc))
    return statistics.fmean(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=1, help="searches at once (processes)")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--samplers", nargs="+", help="a subset (default: all six + variants)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:key=value,...",
        help="a ramp sampler named NAME with these BOSettings fields changed (repeatable)",
    )
    parser.add_argument("--trials", type=int, help="every problem's budget (default: its own)")
    parser.add_argument("--quick", action="store_true", help=f"a try-out: {QUICK}")
    parser.add_argument(
        "--retrain",
        type=int,
        default=3,
        metavar="K",
        help="train each search's pick again K times with unused seeds (0: off)",
    )
    args = parser.parse_args()
    samplers = dict(SAMPLERS)
    try:
        for spec in args.variant:
            name, changes = parse_variant(spec)
            if name in samplers:
                raise ValueError(f"--variant {spec!r}: the name {name!r} is taken")
            samplers[name] = ("ramp", changes)
    except ValueError as err:
        raise SystemExit(f"search_quality.py: error: {err}") from None
    if args.retrain < 0:
        raise SystemExit(f"search_quality.py: error: --retrain {args.retrain}: give 0 or more")
    variants = list(samplers)[len(SAMPLERS) :]
    if args.quick:
        args.seeds, args.problems, args.trials = QUICK["seeds"], QUICK["problems"], QUICK["trials"]
        args.samplers = args.samplers or [*QUICK["samplers"], *variants]
        print(
            f"--quick: {args.seeds} seeds, {args.trials} trials, {args.problems}, {args.samplers}"
        )
    chosen = args.samplers or list(samplers)
    unknown = [s for s in chosen if s not in samplers]
    if unknown:
        raise SystemExit(f"search_quality.py: error: unknown samplers {unknown}; {list(samplers)}")
    variants = [v for v in variants if v in chosen]
    _install({})
    started = time.perf_counter()
    problems = {
        p: dataclasses.replace(PROBLEMS[p], trials=args.trials or PROBLEMS[p].trials)
        for p in args.problems
    }
    setups = {p: build(p, problem) for p, problem in problems.items()}
    jobs = [(p, s, seed) for p in problems for seed in range(args.seeds) for s in chosen]
    losses: dict[str, dict[str, list[float]]] = {p: {s: [] for s in chosen} for p in problems}
    picks: dict[str, dict[str, list[float]]] = {p: {s: [] for s in chosen} for p in problems}
    with tempfile.TemporaryDirectory(prefix="dnc-bench-quality-") as tmp:
        args_of = (jobs, [samplers] * len(jobs), [tmp] * len(jobs), [args.retrain] * len(jobs))
        with contextlib.ExitStack() as stack:
            if args.jobs > 1:
                pool = concurrent.futures.ProcessPoolExecutor(
                    args.jobs,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_install,
                    initargs=(setups,),
                )
                runs = stack.enter_context(pool).map(best_loss, *args_of)
            else:  # in this thread: torch's thread setting holds for it
                _install(setups)
                runs = map(best_loss, *args_of)
            for (p, s, seed), (loss, pick, seconds) in zip(jobs, runs, strict=True):
                losses[p][s].append(loss)
                if pick is not None:
                    picks[p][s].append(pick)
                again = "" if pick is None else f"  pick trained again {pick:.4f}"
                print(
                    f"{p}  seed {seed}  {s:<12} best {loss:.4f}{again}  ({seconds:.0f} s)",
                    flush=True,
                )
    entries = {p: summarise(rows, variants) for p, rows in losses.items()}
    for p, entry in entries.items():
        table(p, entry, f"best search loss after {problems[p].trials} trials", args.seeds)
    result: dict[str, Any] = {"problems": entries, "targets": targets(entries, SAMPLERS)}
    if args.retrain:
        entries_pick = {p: summarise(rows, variants) for p, rows in picks.items()}
        for p, entry in entries_pick.items():
            table(p, entry, f"pick's mean loss over {args.retrain} new trainings", args.seeds)
        result.update(picks=entries_pick, targets_picks=targets(entries_pick, SAMPLERS))
    result |= {
        "seeds": args.seeds,
        "settings": {
            "problems": {
                p: {
                    "overrides": list(problem.overrides),
                    "trials": problem.trials,
                    "prior_states": problem.trials // 2,
                    "groups": list(problem.groups),
                    "wc": problem.wc,
                    "epochs": setups[p].trainer.epochs,
                    "cost": {setups[p].cost.name: setups[p].cost.settings()},
                }
                for p, problem in problems.items()
            },
            "samplers": {s: samplers[s] for s in chosen},
            "jobs": args.jobs,
            "resamples": RESAMPLES,
        },
        "retrain": args.retrain,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine("CPU only, one torch thread per search"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
