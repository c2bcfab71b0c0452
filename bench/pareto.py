"""The accuracy-cost front found with the same number of trainings: dnc's Pareto search against
a single-``wc`` dnc search re-scored, Optuna's NSGA-II, TPE and GPSampler in multi-objective
mode, and random candidates (all in the same run, on the same problems and seeds).

Each search is one BO stage over the core architecture and the training hyperparameters
(``--trials`` trainings; dnc's samplers take ``--trials / 2`` Sobol prior states, Optuna's the
same number of start-up trials), run as a user would (``python -m dnc ... tracking.uri=null``):

- ``dnc-pareto``: ``objective: pareto``, the ramp GPs of fp and fc with qLogNEHVI;
- ``dnc-wc``: ``objective: loss`` for ``search.wc=0.1`` (the default search), its trials'
  front re-scored afterwards;
- ``nsga2``, ``tpe``, ``gp``, ``random``: the same Pareto stage with ``search.sampler=...``;
- ``dnc-NAME`` for each ``--variant NAME:OVERRIDE,...``: ``dnc-pareto`` with those overrides.

Problems: ``mlp-digits`` (the MLP space on digits, ``cost=numparams``: deterministic, so the
front does not move with timings) and ``sparse-morse-hw`` (``+experiment=morse``: sparse MLPs on
generated Morse code, ``cost=hardware``, clocks per sample).

Hypervolume: of each search's completed trials that the costed target can run (the hardware
cost's infeasible mappings cost a penalty of 100 but are on no front), in the plane of
``log10 fp`` and ``log10 fc`` (an error of 2% against 4% counts as 20% against 40%, as the
front's picture shows cost), each scaled to [0, 1] by the least and greatest value seen in any
search of that problem; reference point (1, 1); larger is better.

Last line: one JSON object: ``{"hypervolume": {problem: {sampler: {"mean", "median"}}},
"per_seed": ..., "settings": ..., "machine": ...}``. Target (issue #16): ``dnc-pareto`` has
the highest mean on both problems.

    python bench/pareto.py [--seeds 10] [--jobs 2] [--trials 30] [--problems mlp-digits ...]
        [--samplers dnc-pareto gp ...] [--variant fit:search.bo.fit_kernel=true ...]
    python bench/pareto.py --quick     # 2 seeds, 12 trials, digits only: a try-out
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import machine, run_dnc  # bench/common.py (this folder is on sys.path)

from dnc.search import records
from dnc.search.objective import performance_term
from dnc.search.pareto import hypervolume
from dnc.search.storage import load, open_storage, recorded_cost, search_studies

PROBLEMS = {
    "mlp-digits": ["cost=numparams", "trainer.epochs=15"],
    "sparse-morse-hw": ["+experiment=morse", "trainer.epochs=10"],
}
SAMPLERS = ("dnc-pareto", "dnc-wc", "nsga2", "tpe", "gp", "random")
WC = 0.1


def run_search(
    folder: Path, problem: str, sampler: str, seed: int, trials: int, extra: Sequence[str] = ()
) -> Path:
    """One search, as the command line runs it (``extra``: a variant's overrides); its run
    folder."""
    run = folder / f"{problem}-{sampler}-{seed}"
    objective = "loss" if sampler == "dnc-wc" else "pareto"
    prior = trials // 2
    run_dnc([
        *PROBLEMS[problem], f"hydra.run.dir={run}", f"seed={seed}",
        f"search.stages=[{{name:core,groups:[core,train],objective:{objective}}}]",
        f"search.sampler={'ramp' if sampler.startswith('dnc') else sampler}",
        f"search.wc={WC if objective == 'loss' else 'null'}", "search.name=bench",
        f"search.bo.prior_states={prior}", f"search.bo.steps={trials - prior}",
        "tracking.uri=null", *extra,
    ])  # fmt: skip
    return run


def parts_of(run: Path) -> list[tuple[float, float]]:
    """``(fp, fc)`` of every completed trial of the search in ``run`` that the costed target
    can run (``cost.feasible``: the hardware cost's infeasible mappings are not on a front)."""
    storage = open_storage(f"sqlite:///{run}/optuna.db")
    (name,) = search_studies(storage, "bench")
    study = load(storage, name)
    cost = recorded_cost(study)
    out = []
    for t in study.get_trials(deepcopy=False):
        figures = records.figures(t)
        if t.state.name == "COMPLETE" and figures is not None and cost.feasible(figures):
            out.append((performance_term(figures["best_val_acc"]), cost.complexity(figures)))
    return out


def scaled_volume(parts: list[tuple[float, float]], bounds: list[tuple[float, float]]) -> float:
    """Hypervolume of ``(log10 fp, log10 fc)``, each scaled to [0, 1] by its ``bounds`` (the
    least and greatest seen), reference point (1, 1)."""

    def scale(v: float, low: float, high: float) -> float:
        span = max(math.log10(high) - math.log10(low), 1e-12)
        return (math.log10(max(v, low)) - math.log10(low)) / span

    scaled = [(scale(fp, *bounds[0]), scale(fc, *bounds[1])) for fp, fc in parts]
    return hypervolume(scaled, ref=(1.0 + 1e-9, 1.0 + 1e-9))


def parse_variant(text: str, parser: argparse.ArgumentParser) -> tuple[str, list[str]]:
    """``NAME:OVERRIDE[,OVERRIDE...]`` as the variant's name and Hydra overrides."""
    name, _, overrides = text.partition(":")
    if not name or not overrides or "dnc-" + name in SAMPLERS:
        parser.error(f"--variant {text!r}: give NAME:OVERRIDE[,OVERRIDE...], NAME not a sampler")
    return "dnc-" + name, overrides.split(",")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:OVERRIDE[,OVERRIDE...]",
        help="also run dnc-pareto with these overrides, e.g. fit:search.bo.fit_kernel=true",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 12 trials, digits only")
    args = parser.parse_args()
    variants = dict(parse_variant(v, parser) for v in args.variant)
    if args.quick:
        args.seeds, args.trials, args.problems = 2, 12, ["mlp-digits"]
    started = time.perf_counter()
    samplers = [*args.samplers, *variants]
    jobs = [(p, s, seed) for p in args.problems for seed in range(args.seeds) for s in samplers]
    with tempfile.TemporaryDirectory(prefix="dnc-bench-pareto-") as tmp:
        folder = Path(tmp)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            runs = pool.map(
                lambda job: run_search(folder, *job, args.trials, variants.get(job[1], ())), jobs
            )
            parts = {job: parts_of(run) for job, run in zip(jobs, runs, strict=True)}
    volumes: dict[str, dict[str, list[float]]] = {}
    for problem in args.problems:
        seen = [pt for (p, _, _), pts in parts.items() if p == problem for pt in pts]
        bounds = [
            (min(v for v in values if v > 0), max(values))
            for values in ([fp for fp, _ in seen], [fc for _, fc in seen])
        ]
        volumes[problem] = {
            s: [
                round(scaled_volume(parts[(problem, s, seed)], bounds), 5)
                for seed in range(args.seeds)
            ]
            for s in samplers
        }
    summary = {
        problem: {
            s: {"mean": round(statistics.fmean(v), 5), "median": round(statistics.median(v), 5)}
            for s, v in rows.items()
        }
        for problem, rows in volumes.items()
    }
    for problem, rows in summary.items():
        print(f"{problem}: hypervolume after {args.trials} trainings, {args.seeds} seeds")
        for s, row in sorted(rows.items(), key=lambda kv: -kv[1]["mean"]):
            print(f"  {s:<11} mean {row['mean']:.4f}  median {row['median']:.4f}")
    result = {
        "hypervolume": summary,
        "best": {p: max(rows, key=lambda s: rows[s]["mean"]) for p, rows in summary.items()},
        "per_seed": volumes,
        "settings": {
            "seeds": args.seeds,
            "trials": args.trials,
            "jobs": args.jobs,
            "wc": WC,
            "variants": variants,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
