"""One search, 1 worker then 2 workers, on PostgreSQL and an MLflow tracking server.

The search is fixed: one random-sampler stage of ``--trials`` trainings of an MLP on digits
(``--epochs`` epochs each, about a second a training on a 2-core CPU; the random sampler, so
that the figures are about storage, tracking and training rather than the GP), a fixed
``tbar_epoch`` (no calibration), no final test. Each
worker is a real ``python -m dnc`` process with torch on one thread. Every run uses a fresh
database and MLflow experiment; the 1-worker baseline runs in the same invocation.

- ``speedup["2"]``: wall time of the 1-worker search / of the 2-worker search, from starting
  the workers until the last exits (process start-up included).
- ``search_speedup["2"]``: the same ratio of the searches' spans, from the first trial's start
  to the last trial's end (read from the storage): the workers' start-up left out.
- ``per_trial_overhead_s[n]``: what storage and tracking cost per trial with ``n`` workers:
  per worker, the span from its first trial's start to its last trial's end minus the time
  spent building, training and measuring candidates (each trial's ``train_seconds``), over its
  trials; the mean over workers.

Needs the servers ``.ci/servers.sh`` starts (``DNC_TEST_POSTGRES_URL``,
``DNC_TEST_MLFLOW_URI``); with neither set, it starts them itself:

    bash .ci/servers.sh python bench/scale_out.py [--trials 30] [--epochs 100] [--repeats 2]
                                                  [--no-tracking]

Last line: one JSON object: ``speedup``, ``per_trial_overhead_s``, ``trials``,
``search_speedup``, ``seconds`` and ``search_seconds`` (per worker count), ``targets`` and
``machine``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fresh_database(base_url: str) -> str:
    """A new empty database on the cluster of ``base_url``; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"dnc_bench_{uuid.uuid4().hex[:8]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def run_search(workers: int, args: argparse.Namespace, cwd: Path) -> dict[str, float]:
    """Run the fixed search with ``workers`` workers; its wall time and per-trial overhead."""
    storage = fresh_database(os.environ["DNC_TEST_POSTGRES_URL"])
    overrides = [
        "search.sampler=random",
        f"search.stages=[{{name: core, groups: [core, train], trials: {args.trials}}}]",
        "search.final_test=false",
        f"trainer.epochs={args.epochs}",
        "cost.tbar_epoch=0.01",
        f"storage.url={storage}",
        f"tracking.uri={'null' if args.no_tracking else os.environ['DNC_TEST_MLFLOW_URI']}",
        f"tracking.experiment=bench-{uuid.uuid4().hex[:8]}",
        "search.name=bench",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dnc",
                f"hydra.run.dir={cwd}/w{workers}-{i}",
                f"+worker={i}",
                *overrides,
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    errors = [p.communicate()[1] for p in procs]
    wall = time.perf_counter() - start
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {errors}")
    overhead, span = trial_figures(storage, args.trials)
    return {"seconds": wall, "overhead": overhead, "search_seconds": span}


def trial_figures(url: str, trials: int) -> tuple[float, float]:
    """The mean per-trial overhead of the workers, and the search's span: from its first
    trial's start to its last trial's end (the wall time without the workers' start-up)."""
    import optuna
    from optuna.trial import TrialState

    from dnc.search import records

    study = optuna.load_study(study_name="bench/core", storage=url)
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if len(done) != trials:
        raise SystemExit(f"expected {trials} finished trials, found {len(done)}")
    per_worker = []
    for worker in {t.user_attrs[records.WORKER] for t in done}:
        mine = [t for t in done if t.user_attrs[records.WORKER] == worker]
        span = max(t.datetime_complete for t in mine) - min(t.datetime_start for t in mine)
        busy = sum(float(t.user_attrs[records.TRAIN_SECONDS]) for t in mine)
        per_worker.append((span.total_seconds() - busy) / len(mine))
    whole = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    return statistics.mean(per_worker), whole.total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="alternating 1/2-worker rounds")
    parser.add_argument(
        "--no-tracking", action="store_true", help="MLflow off: what the storage alone costs"
    )
    args = parser.parse_args()
    if not os.environ.get("DNC_TEST_POSTGRES_URL"):  # start the servers, run again under them
        raise SystemExit(
            subprocess.call(["bash", str(ROOT / ".ci/servers.sh"), sys.executable, *sys.argv])
        )
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for workers in (1, 2):
                runs[workers].append(run_search(workers, args, Path(tmp)))
                print(f"{workers} worker(s): {runs[workers][-1]}", flush=True)
    seconds = {n: statistics.median(r["seconds"] for r in rs) for n, rs in runs.items()}
    overhead = {n: statistics.median(r["overhead"] for r in rs) for n, rs in runs.items()}
    search = {n: statistics.median(r["search_seconds"] for r in rs) for n, rs in runs.items()}
    print(
        json.dumps(
            {
                "speedup": {"2": round(seconds[1] / seconds[2], 3)},
                "per_trial_overhead_s": {str(n): round(v, 4) for n, v in overhead.items()},
                "trials": args.trials,
                "tracking": not args.no_tracking,
                "epochs": args.epochs,
                "search_speedup": {"2": round(search[1] / search[2], 3)},
                "seconds": {str(n): round(v, 2) for n, v in seconds.items()},
                "search_seconds": {str(n): round(v, 2) for n, v in search.items()},
                "targets": {"speedup_2": 1.7, "per_trial_overhead_s": 0.05},
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"{platform.python_version()}, {platform.platform()}",
            }
        )
    )


if __name__ == "__main__":
    main()
