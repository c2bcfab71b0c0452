"""MLflow logging: the search's run, one nested run per stage, one nested run per trial.

``MlflowTracker`` is a ``SearchObserver``. It uses the client API directly (no fluent
``mlflow.start_run`` state) and nests runs explicitly through the ``mlflow.parentRunId`` tag
(optuna-integration's MLflowCallback puts trials at the top level). A trial's run is created
when the trial starts (the UI shows it running) and closed with its figures. Run ids are kept
on the Optuna studies and trials (``dnc.search.records``), so a resumed search reopens its runs
and closes those of trials whose worker died as ``KILLED``; workers sharing a search share its
search and stage runs (the first creates each, under the search's lock).

Tags: ``dnc.kind`` (search / stage / trial; filter ``tags.dnc.kind = 'trial'`` to compare every
trial of every stage side by side), ``dnc.search``, ``stage``, ``substage``, ``trial_number``,
``study_name``, ``dnc.search_run_id``, ``worker`` (who trained the trial), and ``fail_reason``
on failed trials.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from dnc.plugins import UserError
from dnc.search import coordination, records
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
from dnc.secrets import mask_url, remember, scrub

PARENT_TAG = "mlflow.parentRunId"


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text[:6000]


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


class MlflowTracker(SearchObserver):
    """Writes a search, its stages and its trials to an MLflow tracking store.

    Example:
        >>> Search(settings, ..., observers=[MlflowTracker("sqlite:///mlflow.db")]).run()
    """

    def __init__(self, uri: str, experiment: str = "dnc", *, connect: bool = True) -> None:
        self.uri = uri
        self.experiment = experiment
        self._client: Any = None
        self.experiment_id = ""
        if connect:
            self.connect()
        self.search_run = ""
        self._stage_runs: dict[str, str] = {}  # stage name -> run id
        self._open_trials: dict[tuple[str, int], str] = {}  # (stage, trial number) -> run id

    def connect(self) -> None:
        """Open the tracking store and the experiment (created if missing); ``UserError`` when
        that fails. Events connect on first use."""
        if self._client is not None:
            return
        from mlflow.tracking import MlflowClient

        remember(self.uri)
        # MLflow prints a link (with any password in the URI) each time a run ends: dnc's
        # console says where the runs are, once.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        try:
            # Workers started together on a fresh SQLite store would all create its tables.
            with coordination.sqlite_lock(self.uri):
                client = MlflowClient(tracking_uri=self.uri)
                self.experiment_id = self._experiment(client)
        except Exception as err:  # unreachable server, unwritable file, bad scheme ...
            raise UserError(
                f"tracking.uri={mask_url(self.uri)!r}: cannot open the MLflow store "
                f"({scrub(str(err).strip().splitlines()[0] if str(err).strip() else repr(err))})"
            ) from err
        self._client = client

    def _experiment(self, client: Any) -> str:
        """The experiment's id, created if missing (another worker may create it meanwhile)."""
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(self.experiment))
        except Exception:
            found = client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return str(found.experiment_id)

    @property
    def client(self) -> Any:
        self.connect()
        return self._client

    # -- events -------------------------------------------------------------------------------
    def search_started(self, event: SearchStarted) -> None:
        self.search_run = self._run_of(
            event.study,
            records.MLFLOW_SEARCH_RUN,
            lambda: self._create(
                event.name, {"dnc.search": event.name, "dnc.kind": "search"}, event.params
            ),
        )

    def stage_started(self, event: StageStarted) -> None:
        study, name = event.study, event.spec.name
        self._stage_runs[name] = self._run_of(
            study,
            records.MLFLOW_STAGE_RUN,
            lambda: self._create(
                name,
                {
                    PARENT_TAG: self.search_run,
                    "dnc.search": study.study_name.rsplit("/", 1)[0],
                    "dnc.kind": "stage",
                    "stage": name,
                    "study_name": study.study_name,
                },
                event.params,
            ),
        )

    def trial_started(self, event: TrialStarted) -> None:
        trial = event.trial
        study = trial.study.study_name
        tags = {
            PARENT_TAG: self._stage_runs.get(event.stage) or self.search_run,
            "dnc.search": study.rsplit("/", 1)[0],
            "dnc.kind": "trial",
            "dnc.search_run_id": self.search_run,
            "stage": event.stage,
            "trial_number": str(trial.number),
            "study_name": study,
        }
        if event.worker:
            tags["worker"] = event.worker
        if event.substage:
            tags["substage"] = event.substage
        name = f"{event.stage}{'-' + event.substage if event.substage else ''}-{trial.number:03d}"
        run = self._create(name, tags, event.candidate)
        trial.set_user_attr(records.MLFLOW_RUN, run)
        self._open_trials[(event.stage, trial.number)] = run

    def trial_finished(self, event: TrialFinished) -> None:
        from mlflow.entities import Metric, RunTag

        o = event.outcome
        run = self._open_trials.pop((o.stage, o.number), None)
        if run is None:
            return
        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(v), now, step)
            for name, values in o.curves.items()
            for step, v in enumerate(values)
            if math.isfinite(float(v))
        ]
        metrics += self._metrics({**(o.figures or {}), "search_loss": o.loss})
        tags = [RunTag("fail_reason", o.fail_reason[:4000])] if o.fail_reason else []
        for start in range(0, max(len(metrics), 1), 900):  # MLflow's batch limit is 1000
            self.client.log_batch(
                run, metrics=metrics[start : start + 900], tags=tags if start == 0 else []
            )
        self.client.set_terminated(run, status="FAILED" if o.failed else "FINISHED")

    def trials_abandoned(self, event: TrialsAbandoned) -> None:
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
        run = self._stage_runs.pop(event.spec.name, "")
        if run:
            self._end(run, {"best_search_loss": event.best}, event.finished)

    def final_tested(self, event: FinalTested) -> None:
        run = event.trial.user_attrs.get(records.MLFLOW_RUN)
        if run:
            self.client.log_batch(
                str(run), metrics=self._metrics({"final_test_acc": event.test_acc})
            )

    def search_finished(self, event: SearchFinished) -> None:
        for run in self._open_trials.values():  # a trial the search stopped in
            self._close_if_running(run, "FAILED")
        self._open_trials.clear()
        if not self.search_run:
            return
        if event.results is not None and event.finished:
            self.client.log_artifact(self.search_run, str(event.results))
        best = {"best_search_loss": event.best[0].loss} if event.best else {}
        self._end(self.search_run, best, event.finished)

    # -- helpers ------------------------------------------------------------------------------
    def _run_of(self, study: Any, attr: str, create: Callable[[], str]) -> str:
        """The run recorded on ``study`` under ``attr`` (marked running again), or a new one
        recorded there: one per search (or stage) whichever worker gets there first."""
        search = study.study_name.rsplit("/", 1)[0]
        with coordination.lock(study, f"{search}:mlflow"):
            run = self._reopen(study.user_attrs.get(attr)) or create()
            if study.user_attrs.get(attr) != run:
                study.set_user_attr(attr, run)
        return run

    def _create(self, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        run_id = str(run.info.run_id)
        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 90):  # MLflow's batch limit for params is 100
            self.client.log_batch(run_id, params=items[start : start + 90])
        return run_id

    def _reopen(self, run_id: str | None) -> str | None:
        """Mark a resumed search's (or stage's) run running again; ``None`` when it is not in
        this store (another tracking URI)."""
        if not run_id:
            return None
        try:
            self.client.update_run(run_id, status="RUNNING")
        except Exception:
            return None
        return run_id

    def _end(self, run_id: str, metrics: Mapping[str, float | None], finished: bool) -> None:
        self.client.log_batch(run_id, metrics=self._metrics(metrics))
        self.client.set_terminated(run_id, status="FINISHED" if finished else "FAILED")

    def _close_unlinked(self, study: str, numbers: set[str]) -> None:
        """Close as ``KILLED`` the running trial runs of ``study`` numbered in ``numbers``:
        found by their tags, as no trial records them."""
        if "'" in study:  # not expressible in MLflow's filter syntax: left open
            return
        try:
            runs = self.client.search_runs(
                [self.experiment_id],
                f"tags.study_name = '{study}' and tags.`dnc.kind` = 'trial' "
                "and attributes.status = 'RUNNING'",
                max_results=1000,
            )
        except Exception:  # closing runs is bookkeeping: never stop a search for it
            return
        for run in runs:
            if run.data.tags.get("trial_number") in numbers:
                self._close_if_running(run.info.run_id, "KILLED")

    def _close_if_running(self, run_id: str, status: str) -> None:
        try:
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, status=status)
        except Exception:
            pass

    @staticmethod
    def _metrics(values: Mapping[str, float | None]) -> list[Any]:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        return [Metric(k, v, now, 0) for k, v in _finite(values).items()]  # type: ignore[arg-type]


def search_run_id(study: Any) -> str | None:
    """The MLflow run id of the search a study belongs to (kept on its first stage's study)."""
    value = study.user_attrs.get(records.MLFLOW_SEARCH_RUN)
    return str(value) if value else None


__all__ = ["MlflowTracker", "search_run_id"]
