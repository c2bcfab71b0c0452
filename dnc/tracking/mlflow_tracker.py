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
import logging
import math
import os
import random
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from dnc import optuna_compat
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

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"


def _status(event: StageFinished | SearchFinished) -> str:
    """A search's or stage's run status: ``FINISHED``, ``KILLED`` (Ctrl-C, SIGTERM) or
    ``FAILED`` (stopped by an error)."""
    if event.finished:
        return "FINISHED"
    return "KILLED" if event.interrupted else "FAILED"


_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}

OUTAGE_RETRY_S = (5.0, 10.0, 20.0, 40.0, 80.0, 120.0)
"""Seconds between probes of a tracking store that went down (then 120 s until it is back)."""


def _trial_run_name(stage: str, substage: str, number: int) -> str:
    return f"{stage}{'-' + substage if substage else ''}-{number:03d}"


def _trial_status(trial: FrozenTrial) -> str:
    """A finished trial's run status: ``FINISHED``, ``FAILED`` (on its own) or ``KILLED``
    (its worker died or was interrupted)."""
    if trial.state == TrialState.COMPLETE:
        return "FINISHED"
    return "KILLED" if records.abandoned(trial) else "FAILED"


def _first_line(err: BaseException) -> str:
    """Why a request failed, in a few words."""
    text = str(err).strip()
    if "Failed to establish a new connection" in text or "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(err).__name__


def _missing_run(err: BaseException) -> bool:
    """Whether ``err`` says a run is not in the store (another tracking URI), rather than
    that the store cannot be reached."""
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(err, "error_code", "")) or (
        "not found" in str(err).lower()
    )


def _quoted(value: str) -> str:
    """``value`` as a string literal of MLflow's filter syntax."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
        self._live_stages: set[str] = set()  # stages running in this process
        self._storage: Any = None  # the search's Optuna storage and name, for ``sync``
        self._search = ""
        self._storage_url = ""
        self._down_since: float | None = None  # monotonic time the store went down
        self._probes = 0
        self._next_probe = 0.0

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
        # MLflow's default (7 retries, backoff up to 2 min, 120 s timeout) holds a search for
        # minutes at each request when the server is down: fail sooner, and let ``_guard``
        # retry later (a user's own settings win).
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
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

    # -- events: each a no-op while the store is down (see ``_guard``) --------------------------
    def search_started(self, event: SearchStarted) -> None:
        self._storage = optuna_compat.storage_of(event.study)
        self._storage_url = event.storage  # password masked
        self._search = event.name
        self._guard(self._search_started, event)

    def _search_started(self, event: SearchStarted) -> None:
        self.search_run = self._run_of(
            event.study,
            records.MLFLOW_SEARCH_RUN,
            lambda: self._create(
                event.name, {"dnc.search": event.name, "dnc.kind": "search"}, event.params
            ),
        )
        self.sync(live=True)  # what an earlier run of the search could not write

    def stage_started(self, event: StageStarted) -> None:
        self._live_stages.add(event.spec.name)
        self._guard(self._stage_started, event)

    def _stage_started(self, event: StageStarted) -> None:
        self._stage_runs[event.spec.name] = self._stage_run(event.study, event.params)

    def trial_started(self, event: TrialStarted) -> None:
        self._guard(self._trial_started, event)

    def _trial_started(self, event: TrialStarted) -> None:
        trial = event.trial
        tags = self._trial_tags(
            trial.study.study_name,
            event.stage,
            event.substage,
            trial.number,
            event.worker,
            self._stage_runs.get(event.stage) or self.search_run,
        )
        run = self._create(
            _trial_run_name(event.stage, event.substage, trial.number), tags, event.candidate
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
        figures = {**(o.figures or {}), "search_loss": o.loss}
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
        self._live_stages.discard(event.spec.name)
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
                str(run), metrics=self._metrics({"final_test_acc": event.test_acc})
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
        for run in self._open_trials.values():  # a trial the search stopped in
            self._close_if_running(run, "KILLED")
        self._open_trials.clear()
        if not self.search_run:
            return
        if event.results is not None and event.finished:
            self.client.log_artifact(self.search_run, str(event.results))
        best = {"best_search_loss": event.best[0].loss} if event.best else {}
        self._end(self.search_run, best, _status(event))

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
        self._next_probe = now + wait * random.uniform(0.8, 1.2)

    def _back(self) -> bool:
        """Whether the store answers again (probed at most as often as ``OUTAGE_RETRY_S``
        allows); when it does, what it missed is written first."""
        if time.monotonic() < self._next_probe or self._down_since is None:
            return self._down_since is None
        try:
            self.client.get_experiment(self.experiment_id)
            down_for = time.monotonic() - self._down_since
            self._down_since = None
            created, closed = self.sync(live=True)
        except Exception as err:
            self._went_down(err)
            return False
        log.warning(
            "MLflow at %s is back after %.0f s: %d missing trial runs written, %d closed",
            mask_url(self.uri),
            down_for,
            created,
            closed,
        )
        return True

    # -- writing what the storage holds ---------------------------------------------------------
    def sync(
        self,
        storage: optuna.storages.BaseStorage | None = None,
        search: str | None = None,
        *,
        live: bool = False,
    ) -> tuple[int, int]:
        """Make the store hold what ``storage`` holds of ``search`` (default: the search this
        tracker follows): its run, a run per stage, and a finished run per trial that
        completed or failed on its own, with its figures, curves and status. Runs are found by
        the ids the studies record, else by their tags, so nothing is written twice; the work
        runs under the search's lock, so workers syncing at once do not race. ``live``: the
        search is running here, so trial runs that other workers are still closing are left to
        them. Returns how many trial runs were created and how many left running were closed.
        """
        from dnc.search.storage import load, search_studies

        storage = storage if storage is not None else self._storage
        search = search if search is not None else self._search
        if storage is None or not search:
            return 0, 0
        names = search_studies(storage, search)
        if not names:
            return 0, 0
        first = load(storage, names[0])
        created = closed = finished = 0
        with coordination.lock(first, f"{search}:mlflow"):
            search_run = self._ensure(
                first,
                records.MLFLOW_SEARCH_RUN,
                lambda: self._create(
                    search,
                    {"dnc.search": search, "dnc.kind": "search"},
                    dict(first.user_attrs.get(records.SETTINGS) or {}),
                ),
            )
            self.search_run = search_run
            for name in names:
                study = first if name == names[0] else load(storage, name)
                stage = name.rsplit("/", 1)[1]
                done = study.get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)
                )
                if live and not done and not study.user_attrs.get(records.MLFLOW_STAGE_RUN):
                    continue  # its stage_started creates its run, with the stage's params
                stage_run = self._ensure(
                    study,
                    records.MLFLOW_STAGE_RUN,
                    lambda study=study, stage=stage: self._create(  # type: ignore[misc]
                        stage, self._stage_tags(study.study_name, stage, search_run), {}
                    ),
                )
                if live and stage in self._live_stages:
                    self._stage_runs[stage] = stage_run
                c, k = self._sync_trials(study, stage, stage_run, done, live)
                created, closed = created + c, closed + k
                finished += bool(study.user_attrs.get(records.FINISHED))
                if not live and study.user_attrs.get(records.FINISHED):
                    self._close_if_running(stage_run, "FINISHED")
            stages = json.loads((first.user_attrs.get(records.SETTINGS) or {}).get("stages", "[]"))
            if not live and finished == len(names) == len(stages):
                self._close_if_running(search_run, "FINISHED")
        return created, closed

    def _sync_trials(
        self, study: Any, stage: str, stage_run: str, done: Sequence[FrozenTrial], live: bool
    ) -> tuple[int, int]:
        if not done:
            return 0, 0
        runs = self._trial_runs(study.study_name)
        by_id = {r.info.run_id: r for r in runs}
        by_number = {r.data.tags.get("trial_number"): r for r in runs}
        mine = {n for (s, n) in self._open_trials if s == stage}
        now = datetime.now()
        created = closed = 0
        for t in done:
            run = by_id.get(str(t.user_attrs.get(records.MLFLOW_RUN))) or by_number.get(
                str(t.number)
            )
            status = _trial_status(t)
            if run is None:
                if status == "KILLED":  # its worker died: the slot was run again
                    continue
                run_id = self._create(
                    _trial_run_name(stage, str(t.user_attrs.get(records.SUBSTAGE, "")), t.number),
                    self._trial_tags(
                        study.study_name,
                        stage,
                        str(t.user_attrs.get(records.SUBSTAGE, "")),
                        t.number,
                        str(t.user_attrs.get(records.WORKER, "")),
                        stage_run,
                    ),
                    records.candidate(t) or dict(t.params),
                )
                created += 1
            elif run.info.status == "RUNNING" and (
                not live
                or t.number in mine
                or (t.datetime_complete and (now - t.datetime_complete).total_seconds() > 60)
            ):
                run_id = run.info.run_id
                closed += 1
            else:
                continue
            self._open_trials.pop((stage, t.number), None)
            figures = {**(records.figures(t) or {}), "search_loss": t.value}
            curves = t.user_attrs.get(records.CURVES) or {}
            self._write_trial(run_id, figures, curves, records.fail_reason(t), status)
        return created, closed

    def _trial_runs(self, study_name: str) -> list[Any]:
        """Every trial run of ``study_name`` in the experiment, found by its tags."""
        found: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id],
                f"tags.study_name = {_quoted(study_name)} and tags.`dnc.kind` = 'trial'",
                max_results=1000,
                page_token=token,
            )
            found += list(page)
            token = page.token
            if not token:
                return found

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

    def _ensure(self, study: Any, attr: str, create: Callable[[], str]) -> str:
        """The run recorded on ``study`` under ``attr`` if the store has it, else a new one
        recorded there (the caller holds the search's lock)."""
        run = study.user_attrs.get(attr)
        if run:
            try:
                self.client.get_run(str(run))
                return str(run)
            except Exception as err:
                if not _missing_run(err):
                    raise
        run = create()
        study.set_user_attr(attr, run)
        return run

    def _stage_run(self, study: Any, params: Mapping[str, Any]) -> str:
        search, stage = study.study_name.rsplit("/", 1)
        return self._run_of(
            study,
            records.MLFLOW_STAGE_RUN,
            lambda: self._create(
                stage, self._stage_tags(study.study_name, stage, self.search_run), params
            ),
        )

    @staticmethod
    def _stage_tags(study_name: str, stage: str, search_run: str) -> dict[str, str]:
        return {
            PARENT_TAG: search_run,
            "dnc.search": study_name.rsplit("/", 1)[0],
            "dnc.kind": "stage",
            "stage": stage,
            "study_name": study_name,
        }

    def _trial_tags(
        self, study_name: str, stage: str, substage: str, number: int, worker: str, parent: str
    ) -> dict[str, str]:
        tags = {
            PARENT_TAG: parent,
            "dnc.search": study_name.rsplit("/", 1)[0],
            "dnc.kind": "trial",
            "dnc.search_run_id": self.search_run,
            "stage": stage,
            "trial_number": str(number),
            "study_name": study_name,
        }
        if worker:
            tags["worker"] = worker
        if substage:
            tags["substage"] = substage
        return tags

    def _write_trial(
        self,
        run: str,
        figures: Mapping[str, float | None],
        curves: Mapping[str, Sequence[float | None]],
        fail_reason: str | None,
        status: str,
    ) -> None:
        """A trial's per-epoch curves, final figures and fail reason, then its status."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        metrics = [
            Metric(name, float(v), now, step)
            for name, values in curves.items()
            for step, v in enumerate(values)
            if v is not None and math.isfinite(float(v))
        ]
        metrics += self._metrics(figures)
        tags = [RunTag("fail_reason", fail_reason[:4000])] if fail_reason else []
        for start in range(0, max(len(metrics), 1), 900):  # MLflow's batch limit is 1000
            self.client.log_batch(
                run, metrics=metrics[start : start + 900], tags=tags if start == 0 else []
            )
        self.client.set_terminated(run, status=status)

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

    def _end(self, run_id: str, metrics: Mapping[str, float | None], status: str) -> None:
        self.client.log_batch(run_id, metrics=self._metrics(metrics))
        self.client.set_terminated(run_id, status=status)

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
