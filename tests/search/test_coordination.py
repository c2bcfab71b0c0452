"""The workers' lock (``dnc.search.coordination``) and the claims made under it, with real
processes on a real SQLite storage (the PostgreSQL lock: tests/distributed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dnc.plugins import candidate_key
from dnc.search import records
from dnc.search.coordination import lock, lock_key
from dnc.search.storage import open_storage
from dnc.search.trial import CandidateTaken

COUNTER = textwrap.dedent(
    """
    import sys, time
    import optuna
    from dnc.search.coordination import lock
    from dnc.search.storage import open_storage
    storage = open_storage(sys.argv[1])
    study = optuna.load_study(study_name="counter", storage=storage)
    time.sleep(max(0.0, float(sys.argv[4]) - time.time()))  # all start together
    for _ in range(int(sys.argv[2])):
        with (lock(storage, "counter") if sys.argv[3] == "locked" else open(__file__)):
            value = study.user_attrs["n"]
            time.sleep(0.01)  # read, think, write: the window other workers hit
            study.set_user_attr("n", value + 1)
    """
)


def _count(tmp_path: Path, mode: str, workers: int = 3, each: int = 20) -> int:
    url = f"sqlite:///{tmp_path}/{mode}.db"
    study = optuna.create_study(study_name="counter", storage=open_storage(url))
    study.set_user_attr("n", 0)
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    start = str(time.time() + 5)
    procs = [
        subprocess.Popen([sys.executable, str(script), url, str(each), mode, start])
        for _ in range(workers)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0] * workers
    return int(study.user_attrs["n"])


def test_the_lock_makes_read_modify_write_exact_across_processes(tmp_path):
    assert _count(tmp_path, "locked") == 60
    # the same without the lock loses updates (so the check above can fail)
    assert _count(tmp_path, "unlocked") < 60


def test_the_lock_is_reentrant_and_keys_are_stable(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    with lock(storage, "a"), lock(storage, "a"), lock(storage, "b"):
        pass
    assert lock_key("digits/core") == lock_key("digits/core") != lock_key("digits/arch")
    assert -(2**63) <= lock_key("x") < 2**63


def test_a_bo_candidate_being_trained_elsewhere_is_not_trained_again(tmp_path):
    """Two workers whose samplers propose the same candidate at the same moment: the second
    claim is refused while the first trains it (the stage then asks again); once it has been
    tried, a repeat is refused MAX_REPEATS times in a row, then trained (nothing new is left)."""
    from dnc_mlp.space import MLPSpace

    from dnc.search.settings import SearchSettings, StageSpec
    from dnc.search.stages import MAX_REPEATS, BOStage, StageContext, _BOSteps

    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(study_name="s/core", storage=storage)
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    spec = StageSpec("core", groups=("core",))
    stage = BOStage(spec, SearchSettings(name="s", stages=(spec,)))
    context = StageContext("s", storage, MLPSpace(), None, None, 0, None)  # type: ignore[arg-type]

    def same_as(trial: optuna.Trial) -> optuna.Trial:  # a sampler proposing trial's values
        study.enqueue_trial(dict(trial.params))
        return study.ask()

    a = study.ask()
    candidate, _ = _BOSteps(stage, context, {}).candidate(a)
    b = same_as(a)
    with pytest.raises(CandidateTaken) as taken:
        _BOSteps(stage, context, {}).candidate(b)
    assert taken.value.number == a.number
    assert records.CANDIDATE not in study.trials[b.number].user_attrs
    assert candidate_key(study.trials[a.number].user_attrs[records.CANDIDATE]) == candidate_key(
        candidate
    )

    study.tell(b, state=TrialState.PRUNED)
    study.tell(a, 0.5)
    steps, outcomes = _BOSteps(stage, context, {}), []
    for _ in range(MAX_REPEATS + 1):
        trial = same_as(a)
        try:
            steps.candidate(trial)
            outcomes.append("trained")
        except CandidateTaken:
            outcomes.append("refused")
            study.tell(trial, state=TrialState.PRUNED)
    assert outcomes == ["refused"] * MAX_REPEATS + ["trained"]


BUDGET_WORKER = textwrap.dedent(
    """
    import sys, time
    import optuna
    from dnc_mlp.space import MLPSpace
    from dnc.search.driver import Wait
    from dnc.search.settings import SearchSettings, StageSpec
    from dnc.search.stages import BOStage, StageContext, _BOSteps
    from dnc.search.storage import open_storage
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(sys.argv[1])
    study = optuna.load_study(study_name="s/core", storage=storage)
    study.sampler = optuna.samplers.RandomSampler()
    spec = StageSpec("core", groups=("core",), trials=int(sys.argv[2]))
    stage = BOStage(spec, SearchSettings(name="s", stages=(spec,)))
    steps = _BOSteps(stage, StageContext("s", storage, MLPSpace(), None, None, 0, None), {})
    time.sleep(max(0.0, float(sys.argv[3]) - time.time()))  # all start together
    while (step := steps.next(study)) is not Wait.DONE:
        if step is Wait.LATER:
            time.sleep(0.01)
        else:
            study.tell(step, 0.5)  # a trial that trains in no time: the race is at its widest
    """
)


def test_a_trial_past_the_budget_gives_up_its_slot(tmp_path):
    """A database restart drops the lock with its connection, so two workers may both pass a
    stage's budget check: the trial numbered past the budget gives its slot up when it claims
    its candidate (every worker ranks the trials alike), and nothing runs over budget."""
    from dnc_mlp.space import MLPSpace

    from dnc.search.settings import BOSettings, SearchSettings, StageSpec
    from dnc.search.stages import BOStage, StageContext, _BOSteps

    storage = open_storage(f"sqlite:///{tmp_path}/s.db")
    study = optuna.create_study(study_name="s/core", storage=storage)
    study.sampler = optuna.samplers.RandomSampler(seed=0)
    spec = StageSpec("core", groups=("core",))
    settings = SearchSettings(name="s", stages=(spec,), bo=BOSettings(prior_states=2, steps=0))
    stage = BOStage(spec, settings)
    assert stage.budget == 2
    context = StageContext("s", storage, MLPSpace(), None, None, 0, None)  # type: ignore[arg-type]
    first, second, third = study.ask(), study.ask(), study.ask()  # both passed the check
    _BOSteps(stage, context, {}).candidate(first)
    _BOSteps(stage, context, {}).candidate(second)
    with pytest.raises(CandidateTaken) as taken:
        _BOSteps(stage, context, {}).candidate(third)
    assert taken.value.number == second.number  # the trial holding the last slot


def test_workers_asking_at_once_run_a_bo_stage_exactly_to_its_budget(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="s/core", storage=open_storage(url))
    script = tmp_path / "budget.py"
    script.write_text(BUDGET_WORKER)
    start = str(time.time() + 5)
    procs = [subprocess.Popen([sys.executable, str(script), url, "24", start]) for _ in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0] * 4
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.COMPLETE) == 24 and len(states) == 24
