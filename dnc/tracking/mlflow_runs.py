"""MLflow runs of a search (its run, a nested run per stage, one per trial), as its Optuna
storage holds them. ``MlflowRuns`` writes to an MLflow tracking store with the client API
(no fluent ``mlflow.start_run`` state), nesting runs explicitly through the
``mlflow.parentRunId`` tag (optuna-integration's MLflowCallback puts trials at the top
level). Run ids are kept on the Optuna studies and trials (``dnc.search.records``); ``sync``
writes whatever the store lacks of a search, so MLflow can always be rebuilt from the storage
(``python -m dnc.sync``).
``dnc.tracking.mlflow_tracker.MlflowTracker`` writes the same runs live, as a search runs.
Their names, tags and metrics: ``dnc.tracking.run_names``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from optuna.trial import FrozenTrial, TrialState

from dnc.plugins import UserError
from dnc.search import coordination, records
from dnc.search.records import metrics_of
from dnc.secrets import mask_url, remember
from dnc.tracking.run_names import (
    PARENT_TAG,
    curve_entries,
    error_line,
    metric_entries,
    param_entries,
    plain_describe,
    runs_link,
    search_label,
    share_trials_view,
    stage_tags,
    trial_run_name,
    trial_tags,
)

if TYPE_CHECKING:
    import optuna

_OWNED_S = 10.0
"""A live ``sync`` leaves the running run of a trial finished less than this ago to the worker
that finished it (closing it takes that worker a few requests); older, its worker died."""

_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def _trial_status(trial: FrozenTrial) -> str:
    """A finished trial's run status: ``FINISHED`` (pruned ones too: their metric
    ``pruned_at_epoch`` says so), ``FAILED`` (on its own) or ``KILLED`` (its worker died or was
    interrupted)."""
    if trial.state == TrialState.COMPLETE or records.pruned(trial):
        return "FINISHED"
    return "KILLED" if records.abandoned(trial) else "FAILED"


def _missing_run(err: BaseException) -> bool:
    """Whether ``err`` says a run is not in the store (another tracking URI), rather than
    that the store cannot be reached."""
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(err, "error_code", "")) or (
        "not found" in str(err).lower()
    )


def _quoted(value: str) -> str:
    """``value`` as a string literal of MLflow's filter syntax."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MlflowRuns:
    """The runs of searches in one MLflow store and experiment.

    Example:
        >>> created, closed = MlflowRuns("http://mlflow:5000").sync(storage, "digits-mlp")
    """

    def __init__(
        self,
        uri: str,
        experiment: str = "dnc",
        *,
        connect: bool = True,
        describe: Callable[[Mapping[str, Any]], str] | None = None,
    ) -> None:
        self.uri = uri
        self.experiment = experiment
        self.describe = describe or plain_describe
        self.search_label = ""  # ``search_label`` of the search followed
        self.wc: Any = None  # its wc
        self._client: Any = None
        self.experiment_id = ""
        if connect:
            self.connect()
        self.search_run = ""
        self._stage_runs: dict[str, str] = {}  # stage name -> run id
        self._open_trials: dict[tuple[str, int], str] = {}  # (stage, trial number) -> run id
        self._live_stages: dict[str, dict[str, Any]] = {}  # stages running here: their params
        self._storage: Any = None  # the search ``sync`` writes by default: storage and name
        self._search = ""

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
                f"({error_line(err)})"
            ) from err
        self._client = client

    def _experiment(self, client: Any) -> str:
        """The experiment's id, created if missing (another worker may create it meanwhile),
        with the UI's view of its trials (``run_names.trials_view``)."""
        found = client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                client.create_experiment(self.experiment)
            except Exception:
                found = client.get_experiment_by_name(self.experiment)
                if found is None:  # not another worker's creation first: the error stands
                    raise
            found = found or client.get_experiment_by_name(self.experiment)
        share_trials_view(client, found)
        return str(found.experiment_id)

    def runs_link(self) -> str:
        """Where the MLflow UI shows this experiment's runs (``run_names.runs_link``)."""
        return runs_link(self.uri, self.experiment_id)

    @property
    def client(self) -> Any:
        self.connect()
        return self._client

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
            settings = dict(first.user_attrs.get(records.SETTINGS) or {})
            search_run = self._ensure(
                first,
                records.MLFLOW_SEARCH_RUN,
                lambda: self._create(
                    self._label(first, search, settings.get("wc", self.wc)),
                    {"dnc.search": search, "dnc.kind": "search"},
                    settings,
                ),
            )
            self.search_run = search_run
            if "wc" in settings:
                self.wc = settings["wc"]
            self.search_label = self._label(first, search, self.wc)
            for name in names:
                study = first if name == names[0] else load(storage, name)
                stage = name.rsplit("/", 1)[1]
                done = [t for t in study.get_trials(deepcopy=False) if records.ended(t)]
                recorded = study.user_attrs.get(records.MLFLOW_STAGE_RUN)
                if live and not done and not recorded and stage not in self._live_stages:
                    continue  # its stage_started makes its run (made here if the store was down)
                stage_run = self._ensure(
                    study,
                    records.MLFLOW_STAGE_RUN,
                    lambda study=study, stage=stage: self._create(  # type: ignore[misc]
                        f"{stage} · {self.search_label}",
                        stage_tags(study.study_name, stage, search_run),
                        {**self._live_stages.get(stage, {}), "wc": settings.get("wc")},
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
                substage = str(t.user_attrs.get(records.SUBSTAGE, ""))
                candidate = records.candidate(t) or dict(t.params)
                run_id = self._create(
                    self._trial_name(stage, substage, t.number, candidate),
                    trial_tags(
                        study.study_name,
                        stage,
                        substage,
                        t.number,
                        worker=str(t.user_attrs.get(records.WORKER, "")),
                        parent=stage_run,
                        search_run=self.search_run,
                    ),
                    self._trial_params(candidate),
                )
                created += 1
            elif run.info.status == "RUNNING" and (
                not live
                or t.number in mine
                or (t.datetime_complete and (now - t.datetime_complete).total_seconds() > _OWNED_S)
            ):
                run_id = run.info.run_id
                closed += 1
            else:
                continue
            self._open_trials.pop((stage, t.number), None)
            figures = {**(records.figures(t) or {}), "search_loss": records.value(t)}
            if records.pruned(t):
                figures[records.PRUNED_AT] = t.user_attrs[records.PRUNED_AT]
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

    # -- names and params ---------------------------------------------------------------------
    def _label(self, first: Any, search: str, wc: Any) -> str:
        """The search's label, recorded on its first study the first time (the caller holds
        the search's lock), so every worker and a later ``sync`` name its runs alike."""
        label = first.user_attrs.get(records.MLFLOW_SEARCH_LABEL)
        if not label:
            label = search_label(search, wc, datetime.now())
            first.set_user_attr(records.MLFLOW_SEARCH_LABEL, label)
        return str(label)

    def _trial_name(self, stage: str, substage: str, number: int, candidate: Any) -> str:
        try:
            text = self.describe(candidate)
        except Exception:  # a candidate the space's describe does not know (an older search)
            text = plain_describe(candidate)
        return trial_run_name(stage, substage, number, text, self.search_label or "")

    def _trial_params(self, candidate: Mapping[str, Any]) -> dict[str, Any]:
        """A trial run's params: its candidate and the search's ``wc`` (so trials of searches
        with different ``wc`` are told apart, and filtered: ``params.wc = '0.1'``)."""
        return {**candidate, "wc": self.wc}

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
                f"{stage} · {self.search_label}",
                stage_tags(study.study_name, stage, self.search_run),
                params,
            ),
        )

    def _write_trial(
        self,
        run: str,
        figures: Mapping[str, float | None],
        curves: Mapping[str, Sequence[float | None]],
        fail_reason: str | None,
        status: str,
    ) -> None:
        """A trial's per-epoch curves, final figures and fail reason, then its status."""
        from mlflow.entities import RunTag

        metrics = curve_entries(curves) + metric_entries(metrics_of(figures))
        tags = [RunTag("fail_reason", fail_reason[:4000])] if fail_reason else []
        for start in range(0, max(len(metrics), 1), 900):  # MLflow's batch limit is 1000
            self.client.log_batch(
                run, metrics=metrics[start : start + 900], tags=tags if start == 0 else []
            )
        self.client.set_terminated(run, status=status)

    def _create(self, name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        run = self.client.create_run(self.experiment_id, run_name=name, tags=dict(tags))
        run_id = str(run.info.run_id)
        items = param_entries(params)
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
        self.client.log_batch(run_id, metrics=metric_entries(metrics))
        self.client.set_terminated(run_id, status=status)

    def _close_unlinked(self, study: str, numbers: set[str]) -> None:
        """Close as ``KILLED`` the running runs of ``study``'s trials in ``numbers`` (by tags)."""
        for run in self._trial_runs(study):
            if run.info.status == "RUNNING" and run.data.tags.get("trial_number") in numbers:
                self._close_if_running(run.info.run_id, "KILLED")

    def _close_if_running(self, run_id: str, status: str) -> None:
        try:
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, status=status)
        except Exception:
            pass


def search_run_id(study: Any) -> str | None:
    """The MLflow run id of the search a study belongs to (kept on its first stage's study)."""
    value = study.user_attrs.get(records.MLFLOW_SEARCH_RUN)
    return str(value) if value else None


__all__ = ["PARENT_TAG", "MlflowRuns", "search_run_id"]
