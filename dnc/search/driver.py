"""The worker loop: ask the stage for a trial, run it, tell the study; until the stage is done.

Nothing that decides the next trial lives only in this process: how many trials a stage still
owes, which are running (here or in another worker) and which workers died are read from the
storage at every step, so a killed search resumes where it stopped and several workers can
share one storage (DESIGN §6).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from dnc import optuna_compat
from dnc.plugins import Candidate, UserError
from dnc.search import pareto, records
from dnc.search.events import SearchObserver, TrialFinished, TrialsAbandoned
from dnc.search.trial import CandidateTaken, TrialLost, TrialOutcome, TrialRunner


class TrialsFailed(UserError):
    """Trials keep failing: the search cannot go on (one line, with the reason)."""


class Wait(enum.Enum):
    """What a stage answers when it has no trial to run now."""

    DONE = "done"  # the stage has all it needs
    LATER = "later"  # other workers' trials are in flight: look again in a moment


class Steps(Protocol):
    """Where a stage's trials come from (``dnc.search.stages`` has the two kinds)."""

    def next(self, study: optuna.Study) -> optuna.Trial | Wait:
        """A new trial (``study.ask()``), or why there is none now."""

    def candidate(self, trial: optuna.Trial) -> tuple[Candidate, str]:
        """The candidate ``trial`` trains, and its grid sub-stage (or ""); ``CandidateTaken``
        when another trial holds it (the driver asks again)."""

    def budget(self, trials: list[FrozenTrial]) -> int:
        """How many trials the stage runs, for progress (given the study's trials)."""


class Driver:
    """Runs the trials of a stage, one at a time in this worker.

    ``max_failures_in_a_row`` trials failing one after the other stop the search with a
    ``UserError``; a running trial of a dead worker is failed (Optuna's heartbeat), so its slot
    is run again; ``best`` gives the search's best loss so far (for progress; read when a stage
    or sub-stage starts, then kept up to date from the study's own trials).
    """

    def __init__(
        self,
        *,
        runner: TrialRunner,
        observer: SearchObserver,
        best: Callable[[], float],
        max_failures_in_a_row: int,
        grace_period: float,
        poll_seconds: float = 1.0,
    ) -> None:
        self.runner = runner
        self.observer = observer
        self.best = best
        self.max_failures_in_a_row = max_failures_in_a_row
        self.grace_period = grace_period
        self.poll_seconds = poll_seconds

    def run(self, study: optuna.Study, stage: str, steps: Steps) -> list[TrialOutcome]:
        """Run ``steps`` until the stage says ``Wait.DONE``; the outcomes of this worker's
        trials, in order."""
        outcomes: list[TrialOutcome] = []
        failures = 0
        earlier = self.best()  # the search's best so far, plus this study's as it goes
        while True:
            self.fail_dead_trials(study)
            step = steps.next(study)
            if step is Wait.DONE:
                return outcomes
            if step is Wait.LATER:
                time.sleep(self.poll_seconds)
                continue
            assert isinstance(step, optuna.Trial)
            try:
                outcome = self.runner.run(study, step, stage, steps.candidate)
            except (CandidateTaken, TrialLost):  # another worker holds the candidate, or
                continue  # gave the trial up while this one was cut off: ask again
            outcomes.append(outcome)
            trials = study.get_trials(deepcopy=False)
            # a Pareto stage's trials have no loss of their own: rank them for the search's wc
            best = self.best() if pareto.is_pareto(study) else min(earlier, _best_value(trials))
            self.runner.keep_if_best(outcome, best)
            self.observer.trial_finished(
                TrialFinished(
                    outcome,
                    done=sum(records.counts_against_budget(t) for t in trials),
                    budget=steps.budget(trials),
                    best=best,
                )
            )
            failures = failures + 1 if outcome.failed else 0
            if failures >= self.max_failures_in_a_row:
                raise TrialsFailed(
                    f"{failures} trials in a row failed in stage {stage}; last: "
                    f"{outcome.fail_reason}. Check the data, bounds and trainer settings"
                )

    def fail_dead_trials(self, study: optuna.Study) -> None:
        """Fail the running trials of dead workers, so their slots are run again: Optuna's
        heartbeat catches those that died while training; a worker killed in the instant
        between creating a trial and marking it leaves a trial without a heartbeat and without
        the ``worker`` mark, which this catches after ``grace_period``."""
        optuna_compat.fail_stale_trials(study)
        now = datetime.now()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            started = t.datetime_start or now
            if (
                records.WORKER not in t.user_attrs
                and (now - started).total_seconds() > self.grace_period
            ):
                optuna_compat.fail_trial(study, t)

    def report_abandoned(self, study: optuna.Study) -> None:
        """Tell observers about trials whose worker died or was interrupted (failed without a
        reason of their own), e.g. so the tracker closes their runs."""
        dead = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if records.abandoned(t)
        ]
        if dead:
            self.observer.trials_abandoned(TrialsAbandoned(study, dead))


def _best_value(trials: list[FrozenTrial]) -> float:
    done = (records.value(t) for t in trials if t.state == TrialState.COMPLETE)
    return min((v for v in done if v is not None and math.isfinite(v)), default=math.inf)


def best_loss(rows: list[records.Ranked]) -> float:
    """The lowest finite loss of ranked rows (``inf`` when there is none)."""
    return min((r.loss for r in rows if math.isfinite(r.loss)), default=math.inf)


__all__ = ["Driver", "Steps", "TrialsFailed", "Wait", "best_loss"]
