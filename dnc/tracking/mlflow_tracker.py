"""MLflow logging as a search runs: ``MlflowTracker``, a ``SearchObserver`` that writes the
runs of ``dnc.tracking.mlflow_runs`` live. A trial's run is created when the trial starts (the
UI shows it running) and closed with its figures; a resumed search reopens its runs and closes
those of trials whose worker died as ``KILLED``; workers sharing a search share its search and
stage runs (the first creates each, under the search's lock).

A tracking store that goes away never stops a search: the tracker says so once, probes it again
after ``OUTAGE_RETRY_S``, and writes what it missed when it is back (``MlflowRuns.sync``), or
says how to (``python -m dnc.sync``) if the search ends first.
"""

from __future__ import annotations

import logging
import random
import shlex
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dnc import optuna_compat
from dnc.search import records
from dnc.search.events import (
    FinalTested,
    SearchFinished,
    SearchObserver,
    SearchStarted,
    StageFinished,
    StageStarted,
    TrialFinished,
    TrialsAbandoned,
    TrialStarted,
)
from dnc.search.records import metrics_of
from dnc.secrets import mask_url, scrub
from dnc.tracking.mlflow_runs import MlflowRuns, search_run_id
from dnc.tracking.run_names import metric_entries, trial_tags

if TYPE_CHECKING:
    from dnc.search.best_model import BestModel

log = logging.getLogger(__name__)
_JITTER = random.SystemRandom()  # not the global generator a user may have seeded


def _status(event: StageFinished | SearchFinished) -> str:
    """A search's or stage's run status: ``FINISHED``, ``KILLED`` (Ctrl-C, SIGTERM) or
    ``FAILED`` (stopped by an error)."""
    if event.finished:
        return "FINISHED"
    return "KILLED" if event.interrupted else "FAILED"


OUTAGE_RETRY_S = (5.0, 10.0, 20.0, 40.0, 80.0, 120.0)
"""Seconds between probes of a tracking store that went down (then 120 s until it is back)."""


def _first_line(err: BaseException) -> str:
    """Why a request failed, in a few words."""
    text = str(err).strip()
    if "Failed to establish a new connection" in text or "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(err).__name__


class MlflowTracker(MlflowRuns, SearchObserver):
    """Writes a search, its stages and its trials to an MLflow tracking store as it runs, and
    the best network to the search's run as an MLflow model (unless ``log_model`` is false),
    registered as ``register_model`` when that names a model.

    Example:
        >>> Search(settings, ..., observers=[MlflowTracker("sqlite:///mlflow.db")]).run()
    """

    def __init__(
        self,
        uri: str,
        experiment: str = "dnc",
        *,
        connect: bool = True,
        describe: Callable[[Mapping[str, Any]], str] | None = None,
        register_model: str | None = None,
        log_model: bool = True,
    ) -> None:
        super().__init__(uri, experiment, connect=connect, describe=describe)
        self.register_model = register_model
        self.log_model = log_model
        self._storage_url = ""  # the search's, password masked, for the hint to dnc.sync
        self._down_since: float | None = None  # monotonic time the store went down
        self._probes = 0
        self._next_probe = 0.0

    # -- events: each a no-op while the store is down (see ``_guard``) --------------------------
    def search_started(self, event: SearchStarted) -> None:
        self._storage = optuna_compat.storage_of(event.study)
        self._storage_url = event.storage  # password masked
        self._search = event.name
        self._guard(self._search_started, event)

    def _search_started(self, event: SearchStarted) -> None:
        self.wc = event.params.get("wc")
        self.search_run = self._run_of(
            event.study,
            records.MLFLOW_SEARCH_RUN,
            lambda: self._create(
                self._label(event.study, event.name, self.wc),
                {"dnc.search": event.name, "dnc.kind": "search"},
                event.params,
            ),
        )
        self.search_label = self._label(event.study, event.name, self.wc)
        self.sync(live=True)  # what an earlier run of the search could not write

    def stage_started(self, event: StageStarted) -> None:
        self._live_stages[event.spec.name] = dict(event.params)
        self._guard(self._stage_started, event)

    def _stage_started(self, event: StageStarted) -> None:
        params = {**event.params, "wc": self.wc}
        self._stage_runs[event.spec.name] = self._stage_run(event.study, params)

    def trial_started(self, event: TrialStarted) -> None:
        self._guard(self._trial_started, event)

    def _trial_started(self, event: TrialStarted) -> None:
        trial = event.trial
        tags = trial_tags(
            trial.study.study_name,
            event.stage,
            event.substage,
            trial.number,
            worker=event.worker,
            parent=self._stage_runs.get(event.stage) or self.search_run,
            search_run=self.search_run,
        )
        origin = trial.user_attrs.get(records.WARM_START_FROM)
        if origin:  # a warm-started trial: the source trial it came from
            tags["dnc.warm_start_from"] = str(origin)
        run = self._create(
            self._trial_name(event.stage, event.substage, trial.number, event.candidate),
            tags,
            self._trial_params(event.candidate),
        )
        trial.set_user_attr(records.MLFLOW_RUN, run)
        self._open_trials[(event.stage, trial.number)] = run

    def trial_finished(self, event: TrialFinished) -> None:
        self._guard(self._trial_finished, event)

    def _trial_finished(self, event: TrialFinished) -> None:
        o = event.outcome
        run = self._open_trials.get((o.stage, o.number))
        if run is None:
            return
        # a Pareto stage's trial has no loss of its own (it depends on the wc picked later)
        figures = {**(o.figures or {}), "search_loss": None if o.front else o.loss}
        if o.pruned_at is not None:
            figures[records.PRUNED_AT] = o.pruned_at
        self._write_trial(
            run, figures, o.curves, o.fail_reason, "FAILED" if o.failed else "FINISHED"
        )
        del self._open_trials[(o.stage, o.number)]  # kept until written, for ``sync``

    def trials_abandoned(self, event: TrialsAbandoned) -> None:
        self._guard(self._trials_abandoned, event)

    def _trials_abandoned(self, event: TrialsAbandoned) -> None:
        unlinked = set()
        for trial in event.trials:
            run = trial.user_attrs.get(records.MLFLOW_RUN)
            if run:
                self._close_if_running(str(run), "KILLED")
            else:
                unlinked.add(str(trial.number))
        if unlinked:  # a worker killed between creating a trial's run and recording it
            self._close_unlinked(event.study.study_name, unlinked)

    def stage_finished(self, event: StageFinished) -> None:
        self._live_stages.pop(event.spec.name, None)
        self._guard(self._stage_finished, event)

    def _stage_finished(self, event: StageFinished) -> None:
        run = self._stage_runs.pop(event.spec.name, "")
        if run:
            self._end(run, {"best_search_loss": event.best}, _status(event))

    def final_tested(self, event: FinalTested) -> None:
        self._guard(self._final_tested, event)

    def _final_tested(self, event: FinalTested) -> None:
        run = event.trial.user_attrs.get(records.MLFLOW_RUN)
        if run:
            self.client.log_batch(
                str(run), metrics=metric_entries(metrics_of({"final_test_acc": event.test_acc}))
            )

    def search_finished(self, event: SearchFinished) -> None:
        if self._down_since is not None:
            self._next_probe = 0.0  # the last chance to write this search: try now
        self._guard(self._search_finished, event)
        if self._down_since is not None:
            log.warning(
                "MLflow at %s is still unreachable: runs of this search are missing there; "
                "when it is back, write them with: python -m dnc.sync storage_url=%s "
                "search_name=%s tracking.uri=%s tracking.experiment=%s",
                mask_url(self.uri),
                shlex.quote(self._storage_url),
                shlex.quote(self._search),
                shlex.quote(mask_url(self.uri)),
                shlex.quote(self.experiment),
            )

    def _search_finished(self, event: SearchFinished) -> None:
        self.sync(live=True)  # e.g. runs a killed worker left open after its trial finished
        for run in self._open_trials.values():  # a trial the search stopped in
            self._close_if_running(run, "KILLED")
        self._open_trials.clear()
        if not self.search_run:
            return
        if event.results is not None and event.finished:
            self.client.log_artifact(self.search_run, str(event.results))
        for path in event.artifacts:  # pictures other observers drew
            self.client.log_artifact(self.search_run, str(path), artifact_path="pictures")
        if event.best_model is not None and event.finished and self.log_model:
            try:
                self._log_model(event.best_model)
            except Exception as err:  # e.g. a model that does not pickle: not an outage
                if not self._reachable():
                    raise
                log.warning(
                    "the best network (trial %s) could not be logged as an MLflow model: %s; "
                    "its weights are in the run folder (best_model.pt)",
                    event.best_model.key,
                    scrub(_first_line(err)),
                )
        best = {"best_search_loss": event.best[0].loss} if event.best else {}
        self._end(self.search_run, best, _status(event))

    def _log_model(self, best: BestModel) -> None:
        """The best candidate's network as an MLflow model of the search run (``model``), with
        a signature and an input example; registered as ``register_model`` when set."""
        import mlflow
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        example = best.input_example.numpy()
        with torch.no_grad():
            output = best.model(best.input_example).numpy()
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(self.uri)  # the fluent API logs models; restored below
        try:
            with mlflow.start_run(run_id=self.search_run):
                mlflow.pytorch.log_model(
                    best.model,
                    name="model",
                    signature=infer_signature(example, output),
                    input_example=example,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                    serialization_format="pickle",  # the nn.Module back (pt2: a graph)
                    registered_model_name=self.register_model,
                    params={"trial": best.key, "search_loss": best.loss},
                )
        finally:
            mlflow.set_tracking_uri(previous)

    def _reachable(self) -> bool:
        try:
            self.client.get_experiment(self.experiment_id)
        except Exception:
            return False
        return True

    # -- outages --------------------------------------------------------------------------------
    def _guard(self, handler: Callable[[Any], None], event: Any) -> None:
        """Run ``handler(event)`` unless the store is down; an error in it (the server gone,
        a timeout) marks the store down: the search goes on, the Optuna storage keeps every
        trial, and once a probe finds the store back ``sync`` writes what it missed."""
        if self._down_since is not None and not self._back():
            return
        try:
            handler(event)
        except Exception as err:  # tracking never stops a search
            self._went_down(err)

    def _went_down(self, err: BaseException) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since, self._probes = now, 0
            log.warning(
                "MLflow at %s is unreachable (%s): the search goes on, the Optuna storage "
                "keeps every trial, and their runs are written when MLflow is back",
                mask_url(self.uri),
                scrub(_first_line(err)),
            )
        wait = OUTAGE_RETRY_S[min(self._probes, len(OUTAGE_RETRY_S) - 1)]
        self._probes += 1
        self._next_probe = now + wait * _JITTER.uniform(0.8, 1.2)

    def _back(self) -> bool:
        """Whether the store answers again (probed at most as often as ``OUTAGE_RETRY_S``
        allows); when it does, what it missed is written first."""
        if time.monotonic() < self._next_probe or self._down_since is None:
            return self._down_since is None
        since = self._down_since
        try:
            self.client.get_experiment(self.experiment_id)
            self._down_since = None
            created, closed = self.sync(live=True)
        except Exception as err:
            self._down_since = since  # the same outage: said once
            self._went_down(err)
            return False
        down_for = time.monotonic() - since
        log.warning(
            "MLflow at %s is back after %.0f s: %d missing trial runs written, %d closed",
            mask_url(self.uri),
            down_for,
            created,
            closed,
        )
        return True


__all__ = ["OUTAGE_RETRY_S", "MlflowTracker", "search_run_id"]
