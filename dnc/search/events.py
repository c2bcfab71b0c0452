"""What a search tells the world while it runs.

A ``SearchObserver`` receives one event per step of the search; the console view and the
MLflow tracker (``dnc.tracking``) are observers, and so is anything a user adds
(``Search(..., observers=[...])``). Each method has a do-nothing default, so an observer
implements only the events it cares about; each event is a small frozen dataclass, so new
fields do not break existing observers. The search layer does not import ``dnc.tracking``.

Example::

    class Count(SearchObserver):
        finished = 0
        def trial_finished(self, event):
            self.finished += not event.outcome.failed
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from dnc.plugins import Candidate
    from dnc.search.best_model import BestModel
    from dnc.search.records import Ranked
    from dnc.search.settings import StageSpec
    from dnc.search.trial import TrialOutcome


@dataclass(frozen=True)
class SearchStarted:
    """Before the first stage: ``storage`` is the URL with its password masked; ``notes`` are
    lines for a person (data, space, cost, how to resume); ``params`` the search's settings for
    a tracker; ``study`` the first stage's study, where a tracker may keep its run's id."""

    name: str
    storage: str
    notes: tuple[str, ...]
    params: Mapping[str, Any]
    study: optuna.Study


@dataclass(frozen=True)
class StageStarted:
    """A stage starts (or resumes after ``done`` finished trials); ``budget`` is ``None`` for a
    grid stage (as many trials as there are variants); ``label`` says how it searches and
    ``params`` what it does (kind, groups or sub-stages, budget), for a tracker."""

    spec: StageSpec
    study: optuna.Study
    label: str
    budget: int | None
    done: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SubstageStarted:
    """A grid sub-stage starts: ``variants`` of its base, ``base`` the candidate it varies."""

    stage: str
    substage: str
    variants: int
    base: Mapping[str, Any]


@dataclass(frozen=True)
class TrialStarted:
    """A trial is about to train ``candidate`` (``trial`` is the live Optuna trial, on which an
    observer may record attributes)."""

    stage: str
    substage: str
    trial: optuna.Trial
    candidate: Candidate
    worker: str = ""  # the process training it (``dnc.search.trial.worker_name``)


@dataclass(frozen=True)
class TrialProgress:
    """A trial finished epoch ``epoch`` (1-based) of at most ``epochs`` (patience may stop it
    sooner): its mean training loss and validation accuracy (%) in that epoch."""

    stage: str
    number: int
    epoch: int
    epochs: int
    train_loss: float
    val_acc: float


@dataclass(frozen=True)
class TrialFinished:
    """A trial finished (completed or failed on its own): ``done`` of ``budget`` trials of its
    stage have finished; ``best`` is the search's best loss so far (``inf``: none yet)."""

    outcome: TrialOutcome
    done: int
    budget: int
    best: float


@dataclass(frozen=True)
class TrialsAbandoned:
    """Trials whose worker died while they ran (failed by the heartbeat; their slots are run
    again)."""

    study: optuna.Study
    trials: Sequence[FrozenTrial]


@dataclass(frozen=True)
class StageFinished:
    """A stage ended: ``finished`` (its budget used) or not (an error, or ``interrupted`` by
    Ctrl-C or SIGTERM); ``best`` is the stage's best loss (``None``: no trial completed)."""

    spec: StageSpec
    study: optuna.Study
    finished: bool
    best: float | None
    interrupted: bool = False


@dataclass(frozen=True)
class FinalTested:
    """One of the best candidates was retrained on train + validation: its test accuracy."""

    row: Ranked
    test_acc: float
    trial: FrozenTrial


@dataclass(frozen=True)
class SearchFinished:
    """The search ended (``finished``: every stage done; else stopped by an error, or
    ``interrupted`` by Ctrl-C or SIGTERM): its best candidates, their test accuracies
    (``final_test``), and the results file written (``None``: no run directory).
    ``artifacts`` collects the files observers write for the search (its pictures): an observer
    that writes one appends it, and later observers (the MLflow tracker) log them.
    ``best_model``: the best candidate's trained network, when this process trained it."""

    name: str
    finished: bool
    best: Sequence[Ranked]
    test_acc: Mapping[str, float] = field(default_factory=dict)
    results: Path | None = None
    interrupted: bool = False
    artifacts: list[Path] = field(default_factory=list)
    best_model: BestModel | None = None


class SearchObserver:
    """Receives the events of a search; override the ones you need."""

    def search_started(self, event: SearchStarted) -> None:
        """Before the first stage."""

    def stage_started(self, event: StageStarted) -> None:
        """A stage starts or resumes."""

    def substage_started(self, event: SubstageStarted) -> None:
        """A grid sub-stage starts."""

    def trial_started(self, event: TrialStarted) -> None:
        """A trial is about to train."""

    def trial_progress(self, event: TrialProgress) -> None:
        """A trial finished an epoch."""

    def trial_finished(self, event: TrialFinished) -> None:
        """A trial completed or failed."""

    def trials_abandoned(self, event: TrialsAbandoned) -> None:
        """Trials of dead workers were found."""

    def stage_finished(self, event: StageFinished) -> None:
        """A stage ended."""

    def final_tested(self, event: FinalTested) -> None:
        """A best candidate's test accuracy is known."""

    def search_finished(self, event: SearchFinished) -> None:
        """The search ended (also when it stopped on an error)."""

    def message(self, text: str) -> None:
        """A line for a person (a skipped stage, the final test starting, ...)."""


class Observers(SearchObserver):
    """Several observers as one, called in order."""

    def __init__(self, observers: Sequence[SearchObserver] = ()) -> None:
        self.observers = tuple(observers)

    def _all(self, method: str, *args: Any) -> None:
        for observer in self.observers:
            getattr(observer, method)(*args)

    def search_started(self, event: SearchStarted) -> None:
        self._all("search_started", event)

    def stage_started(self, event: StageStarted) -> None:
        self._all("stage_started", event)

    def substage_started(self, event: SubstageStarted) -> None:
        self._all("substage_started", event)

    def trial_started(self, event: TrialStarted) -> None:
        self._all("trial_started", event)

    def trial_progress(self, event: TrialProgress) -> None:
        self._all("trial_progress", event)

    def trial_finished(self, event: TrialFinished) -> None:
        self._all("trial_finished", event)

    def trials_abandoned(self, event: TrialsAbandoned) -> None:
        self._all("trials_abandoned", event)

    def stage_finished(self, event: StageFinished) -> None:
        self._all("stage_finished", event)

    def final_tested(self, event: FinalTested) -> None:
        self._all("final_tested", event)

    def search_finished(self, event: SearchFinished) -> None:
        self._all("search_finished", event)

    def message(self, text: str) -> None:
        self._all("message", text)


__all__ = [
    "FinalTested",
    "Observers",
    "SearchFinished",
    "SearchObserver",
    "SearchStarted",
    "StageFinished",
    "StageStarted",
    "SubstageStarted",
    "TrialFinished",
    "TrialProgress",
    "TrialStarted",
    "TrialsAbandoned",
]
