"""One trial: record the candidate on the Optuna trial, train and score it, tell the study.

A trial that fails on its own (a NaN loss, ``out of memory``, a ``timeout`` past
``trainer.timeout_s``, an exception in a plugin) is told ``FAIL`` with its ``fail_reason``, its
traceback goes to the log (the run's log file under ``python -m dnc``), and the search goes on.
A ``UserError`` (a setting that cannot work) and an interruption stop the search; the trial is
told ``FAIL`` without a reason of its own (``interrupted`` for Ctrl-C or SIGTERM), so a resumed
search runs its slot again.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import optuna
from optuna.trial import TrialState

from dnc import optuna_compat
from dnc.plugins import Candidate, CostEvaluator, SearchSpace, TensorData, UserError
from dnc.search import pareto, records
from dnc.search.best_model import BestWeights
from dnc.search.events import SearchObserver, TrialProgress, TrialStarted
from dnc.search.objective import evaluate, score
from dnc.train.settings import TrainerSettings, TrialDiverged, TrialTimedOut

log = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
"""This process, as recorded on the trials it runs (``worker``)."""


def worker_name(index: int | None = None) -> str:
    """How trials name the worker that trains them: ``host:pid``, after the worker's index
    when it has one (``w3@host:pid``: ``+worker=3`` on the command line)."""
    return WORKER_ID if index is None else f"w{index}@{WORKER_ID}"


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial did: completed with ``figures`` and ``loss`` (and the per-epoch
    ``curves``; pruned after epoch ``pruned_at``: those of the epochs it ran), or failed with
    ``fail_reason``."""

    stage: str
    number: int
    candidate: Candidate
    substage: str = ""
    figures: Mapping[str, float] | None = None
    loss: float | None = None
    fail_reason: str | None = None
    curves: Mapping[str, Sequence[float]] = field(default_factory=dict)
    pruned_at: int | None = None  # the epoch after which a pruner stopped it
    front: bool = False  # a Pareto stage's: told accuracy and cost; ``loss`` for the wc now

    @property
    def failed(self) -> bool:
        return self.fail_reason is not None


OUT_OF_MEMORY = "out of memory"
TIMEOUT = "timeout"


def failure_reason(err: BaseException) -> str:
    """One line saying why a trial failed: ``out of memory`` (CUDA's or the CPU allocator's),
    ``timeout`` (``trainer.timeout_s``), the divergence, or the exception's first line."""
    if isinstance(err, TrialDiverged):
        return str(err)
    if isinstance(err, TrialTimedOut):
        return TIMEOUT
    if _out_of_memory(err):
        return OUT_OF_MEMORY
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


class CandidateTaken(Exception):
    """The candidate sampled for a trial is being trained (or was tried) by trial ``number``
    of the stage: the trial is given up (``PRUNED``, with ``duplicate_of``) and the stage asks
    again."""

    def __init__(self, number: int) -> None:
        super().__init__(f"the candidate is taken by trial {number}")
        self.number = number


class TrialLost(Exception):
    """The trial was failed by another worker (its heartbeat stopped while this worker could
    not reach the storage): its result is dropped and the stage goes on."""

    def __init__(self, number: int) -> None:
        super().__init__(f"trial {number} was given up by another worker")
        self.number = number


class TrialRunner:
    """Trains and scores candidates as Optuna trials of one search.

    Example:
        >>> runner = TrialRunner(space=space, data=data, cost=cost, wc=0.1,
        ...                      trainer=TrainerSettings(epochs=3), seed=0)
        >>> outcome = runner.run(study, study.ask(), "core", lambda trial: (candidate, ""))
    """

    def __init__(
        self,
        *,
        space: SearchSpace,
        data: TensorData,
        cost: CostEvaluator,
        wc: float | Callable[[], float],
        trainer: TrainerSettings,
        seed: int,
        observer: SearchObserver | None = None,
        worker: str = WORKER_ID,
        best_weights: BestWeights | None = None,
    ) -> None:
        self.worker = worker
        self.best_weights = best_weights
        self._state: Any = None  # the weights of the last trial's best epoch
        self.space = space
        self.data = data
        self.cost = cost
        self._wc = wc
        self.trainer = trainer
        self.seed = seed
        self.observer = observer or SearchObserver()

    @property
    def wc(self) -> float:
        """The ``wc`` of the search loss now (a callable ``wc``: asked each time, as a search
        ranking by the knee of a Pareto stage's front so far does)."""
        return self._wc() if callable(self._wc) else self._wc

    def run(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        stage: str,
        candidate_of: Callable[[optuna.Trial], tuple[Candidate, str]],
    ) -> TrialOutcome:
        """Train the candidate ``candidate_of(trial)`` gives (with its grid sub-stage) as
        ``trial`` of ``study``, and tell the study how it went. The trial beats Optuna's
        heartbeat from its first moment, so a worker that dies anywhere in it is noticed."""
        trial.set_user_attr(records.WORKER, self.worker)
        try:
            with optuna_compat.heartbeat(study, trial):
                try:
                    candidate, substage = candidate_of(trial)
                except CandidateTaken as taken:
                    trial.set_user_attr(records.DUPLICATE_OF, taken.number)
                    study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
                    raise
                if trial.user_attrs.get(records.CANDIDATE) != candidate:  # a BO claim set it
                    trial.set_user_attr(records.CANDIDATE, candidate)
                trial.set_user_attr(records.STAGE, stage)
                if substage:
                    trial.set_user_attr(records.SUBSTAGE, substage)
                self.observer.trial_started(
                    TrialStarted(stage, substage, trial, candidate, self.worker)
                )
                started = time.perf_counter()
                self._state = None
                try:
                    with time_limit(self.trainer.timeout_s):
                        ev = evaluate(
                            candidate,
                            space=self.space,
                            data=self.data,
                            cost=self.cost,
                            wc=self.wc,
                            trainer=self.trainer,
                            seed=self.seed * 100_003 + trial.number,
                            on_epoch=self._progress(stage, trial.number),
                            keep_best=self.best_weights is not None,
                            should_stop=self._pruning(study, trial),
                        )
                except UserError:  # the settings cannot work: stop the search
                    raise
                except Exception as err:  # the trial failed on its own: the search goes on
                    reason = failure_reason(err)
                    log.info(
                        "trial %d of stage %s failed: %s", trial.number, stage, reason, exc_info=err
                    )
                    _release_memory(err)
                    trial.set_user_attr(records.FAIL_REASON, reason)
                    study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                    return TrialOutcome(
                        stage, trial.number, candidate, substage, fail_reason=reason
                    )
        except BaseException as err:  # stopped, or interrupted: a resumed search runs the slot
            # again (a trial given up for a taken candidate is PRUNED already: tell skips it)
            if isinstance(err, KeyboardInterrupt):
                with contextlib.suppress(Exception):
                    trial.set_user_attr(records.FAIL_REASON, records.INTERRUPTED)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        curves = {"train_loss": ev.result.train_loss, "val_acc": ev.result.val_acc}
        pruned = ev.result.stopped
        try:
            trial.set_user_attr(records.TRAIN_SECONDS, round(time.perf_counter() - started, 4))
            if pruned:
                trial.set_user_attr(records.PRUNED_AT, ev.result.epochs_run)
            trial.set_user_attr(records.FIGURES, ev.figures)
            for name, value in records.metrics_of(ev.figures).items():  # sortable in dashboards
                if value is not None and math.isfinite(value):
                    trial.set_user_attr(name, value)
            trial.set_user_attr(records.CURVES, _finite_curves(curves))
            if pareto.is_pareto(study):  # a candidate the target cannot run: off the front
                pareto.record_feasibility(study, trial, ev.figures, self.cost)
        except optuna.exceptions.UpdateFinishedTrialError as err:
            # cut off from the storage past the grace period: another worker failed the trial
            # as its worker's, and runs its slot again
            log.warning(
                "trial %d of stage %s was given up by another worker while this one could not "
                "reach the storage: its result is dropped, its slot run again",
                trial.number,
                stage,
            )
            raise TrialLost(trial.number) from err
        # a Pareto stage's trial is told accuracy and complexity (dnc.search.pareto)
        values = pareto.objectives(ev.figures, self.cost) if pareto.is_pareto(study) else None
        if pruned:  # its value: the search loss it last reported (Optuna records it)
            study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        else:
            study.tell(trial, values or ev.loss, skip_if_finished=True)
            self._state = ev.result.best_state
        return TrialOutcome(
            stage,
            trial.number,
            candidate,
            substage,
            figures=ev.figures,
            loss=ev.loss,
            curves=curves,
            pruned_at=ev.result.epochs_run if pruned else None,
            front=values is not None,
        )

    def _pruning(
        self, study: optuna.Study, trial: optuna.Trial
    ) -> Callable[[dict[str, float]], bool] | None:
        """With ``trainer.pruner``, what the trainer asks after each epoch: the trial reports
        its search loss so far and the stage study's pruner (``Search`` makes the study with
        it: ``dnc.search.pruning``) says whether to stop. Not in a Pareto stage: Optuna's
        pruners take one objective."""
        if self.trainer.pruner == "none" or pareto.is_pareto(study):
            return None
        wc = self.wc

        def should_stop(figures: dict[str, float]) -> bool:
            trial.report(score(figures, wc, self.cost), int(figures["epochs_run"]))
            return trial.should_prune()

        return should_stop

    def _progress(self, stage: str, number: int) -> Callable[[int, float, float], None]:
        def tell(epoch: int, train_loss: float, val_acc: float) -> None:
            self.observer.trial_progress(
                TrialProgress(stage, number, epoch + 1, self.trainer.epochs, train_loss, val_acc)
            )

        return tell

    def keep_if_best(self, outcome: TrialOutcome, best: float) -> None:
        """Hand the weights of the trial just run to ``best_weights`` when it is the search's
        best so far (``best``, its loss included); drop them either way."""
        state, self._state = self._state, None
        if (
            self.best_weights is not None
            and state is not None
            and outcome.loss is not None
            and outcome.loss <= best
        ):
            self.best_weights.offer(
                f"{outcome.stage}/{outcome.number}",
                outcome.loss,
                outcome.candidate,
                state,
            )


def _finite_curves(curves: Mapping[str, Sequence[float]]) -> dict[str, list[float | None]]:
    """``curves`` as JSON can hold them (a NaN as ``None``), rounded to what a plot shows."""
    return {
        k: [round(float(v), 6) if math.isfinite(v) else None for v in values]
        for k, values in curves.items()
    }


def _out_of_memory(err: BaseException) -> bool:
    import torch

    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text.lower()
    )


def _release_memory(err: BaseException) -> None:
    """After an out-of-memory error, free what the failed trial held (its model, optimiser
    and activations, kept alive by the traceback until now) before the next trial."""
    if not _out_of_memory(err):
        return
    import torch

    err.__traceback__ = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``TrialTimedOut`` in the block once it has run ``seconds`` (0: no limit).

    A timer signal (``SIGALRM``) interrupts Python code anywhere in the block (but not an
    import: it waits for it), so a trial stuck in a loop of its own is stopped too; a single
    native call (one CUDA kernel) finishes first.
    Signals reach only the main thread: elsewhere the limit is not enforced (a warning says so).
    """
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        log.warning("trainer.timeout_s is enforced only in a main thread on POSIX; not here")
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        if _importing(frame):  # an import cut short leaves a broken module for every trial
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            return
        raise TrialTimedOut(f"the trial ran past trainer.timeout_s={seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)  # a timer of the caller's, if any
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # give the caller's timer back, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


__all__ = [
    "OUT_OF_MEMORY",
    "TIMEOUT",
    "WORKER_ID",
    "CandidateTaken",
    "TrialLost",
    "TrialOutcome",
    "TrialRunner",
    "failure_reason",
    "time_limit",
    "worker_name",
]
