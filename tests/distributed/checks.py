"""What a user checks after several workers shared one search, read from the Optuna storage and
the MLflow store alone (no worker's own account of what it did)."""

from __future__ import annotations

import collections
import itertools
import subprocess
import sys
import time
from pathlib import Path

from optuna.trial import TrialState

from dnc.plugins import candidate_key
from dnc.search import records
from dnc.search.storage import load, open_storage, search_studies

BO_BUDGET = 4  # prior_states + steps
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def start_workers(
    cwd: Path, n: int, *overrides: str, env: dict[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    """``n`` ``python -m dnc`` workers of one search, started together, each with its own run
    folder and ``+worker=i``; stdout and stderr go to ``cwd/worker<i>.log``."""
    import os

    procs = []
    for i in range(n):
        log = open(cwd / f"worker{i}.log", "w")  # noqa: SIM115 - closed with the process
        args = [sys.executable, "-m", "dnc", f"hydra.run.dir={cwd}/run{i}", f"+worker={i}"]
        procs.append(
            subprocess.Popen(
                [*args, *overrides],
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, **THREADS, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        )
    return procs


def wait_all(procs: list[subprocess.Popen[str]], cwd: Path, timeout: float = 600) -> None:
    """Wait for every worker; fail with their logs when one exits non-zero."""
    deadline = time.monotonic() + timeout
    for p in procs:
        p.wait(timeout=max(1.0, deadline - time.monotonic()))
    bad = [i for i, p in enumerate(procs) if p.returncode != 0]
    if bad:
        logs = "\n".join(f"--- worker {i}:\n{(cwd / f'worker{i}.log').read_text()}" for i in bad)
        raise AssertionError(f"workers {bad} failed:\n{logs}")


def check_search(url: str, search: str, *, stages: tuple[str, ...] = ("core", "arch", "train")):
    """Check the search in ``url`` as its user would, and return its studies' trials by stage:

    - each BO stage has exactly its budget of finished trials;
    - no candidate was trained twice in the whole search (grid variants included);
    - no trial of stage k+1 started before the last trial of stage k finished;
    - nothing is left running or queued.
    """
    storage = open_storage(url)
    try:
        names = search_studies(storage, search)
        by_stage = {n.rsplit("/", 1)[1]: load(storage, n).get_trials(deepcopy=False) for n in names}
    finally:
        storage.engine.dispose()  # not left to the garbage collector (see _running_of)
    assert [n.rsplit("/", 1)[1] for n in names] == list(stages)
    for name in names:
        trials = by_stage[name.rsplit("/", 1)[1]]
        assert not [t.number for t in trials if t.state in (TrialState.RUNNING,)], name
        assert not [t.number for t in trials if t.state == TrialState.WAITING], name
    for stage in ("core", "train"):
        if stage in by_stage:
            done = sum(records.counts_against_budget(t) for t in by_stage[stage])
            assert done == BO_BUDGET, f"stage {stage}: {done} finished trials, budget {BO_BUDGET}"
    trained = collections.Counter(
        candidate_key(t.user_attrs[records.CANDIDATE])
        for trials in by_stage.values()
        for t in trials
        if records.counts_against_budget(t)
    )
    twice = {k: c for k, c in trained.items() if c > 1}
    assert not twice, f"{len(twice)} candidates trained more than once"
    ordered = [by_stage[s] for s in stages if by_stage.get(s)]
    for before, after in itertools.pairwise(ordered):
        last_end = max(t.datetime_complete for t in before if t.datetime_complete)
        starts = [t.datetime_start for t in after if t.datetime_start]
        assert starts and min(starts) >= last_end, "a stage started before the last ended"
    return by_stage


def workers_of(by_stage) -> set[str]:
    """The workers that trained the search's finished trials."""
    return {
        str(t.user_attrs[records.WORKER])
        for trials in by_stage.values()
        for t in trials
        if records.counts_against_budget(t)
    }


def check_mlflow(uri: str, experiment: str, search: str, by_stage) -> None:
    """One search run; one run per stage nested under it; one run per finished trial nested
    under its stage's run, naming the worker that trained it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs(
        [exp.experiment_id], f"tags.`dnc.search` = '{search}'", max_results=5000
    )
    kinds = collections.defaultdict(list)
    for run in runs:
        kinds[run.data.tags.get("dnc.kind")].append(run)
    assert len(kinds["search"]) == 1, f"{len(kinds['search'])} search runs"
    search_run = kinds["search"][0].info.run_id
    stage_runs = {r.data.tags["stage"]: r.info.run_id for r in kinds["stage"]}
    assert len(kinds["stage"]) == len(by_stage) == len(stage_runs)
    assert all(r.data.tags["mlflow.parentRunId"] == search_run for r in kinds["stage"])
    trial_runs = collections.Counter()
    for run in kinds["trial"]:
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == stage_runs[tags["stage"]]
        if run.info.status == "FINISHED":
            assert tags.get("worker"), "a trial run does not name its worker"
            trial_runs[(tags["stage"], int(tags["trial_number"]))] += 1
    finished = {
        (stage, t.number)
        for stage, trials in by_stage.items()
        for t in trials
        if t.state == TrialState.COMPLETE
    }
    assert set(trial_runs) == finished
    assert max(trial_runs.values()) == 1
