"""MLflow logging: one parent run per search, one nested run per trial.

The client API is used directly (no fluent ``mlflow.start_run`` state), so trials are nested
explicitly through the ``mlflow.parentRunId`` tag — optuna-integration's MLflowCallback is known
to put trials at the top level. A trial's run is created when the trial starts (the UI shows it
running) and closed with its figures; its id is kept on the Optuna trial.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dnc.plugins import UserError

PARENT_TAG = "mlflow.parentRunId"


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text[:6000]


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


class Tracker:
    """Writes a search and its trials to an MLflow tracking store.

    ``uri``: any MLflow tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``, a folder).
    """

    def __init__(self, uri: str, experiment: str = "dnc") -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self._mlflow = mlflow
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = (
                found.experiment_id
                if found is not None
                else self.client.create_experiment(experiment)
            )
        except Exception as err:  # unreachable server, unwritable file, bad scheme ...
            raise UserError(f"tracking.uri={uri!r}: cannot open the MLflow store ({err})") from err

    # -- search (parent run) ------------------------------------------------------------------
    def start_search(self, name: str, params: Mapping[str, Any], run_id: str | None = None) -> str:
        """Open (or, with ``run_id``, reopen for a resumed search) the search's parent run."""
        if run_id is not None:
            try:
                self.client.update_run(run_id, status="RUNNING")
                return run_id
            except Exception:
                pass  # the parent run is gone (another tracking store): start a new one
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={"dnc.search": name, "dnc.kind": "search"}
        )
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def end_run(self, run_id: str, metrics: Mapping[str, float], status: str = "FINISHED") -> None:
        self.client.log_batch(run_id, metrics=self._metrics(metrics))
        self.client.set_terminated(run_id, status=status)

    # -- stages and trials (nested runs) ------------------------------------------------------
    def start_stage(
        self,
        search_run: str,
        *,
        search: str,
        stage: str,
        study: str,
        params: Mapping[str, Any],
        run_id: str | None = None,
    ) -> str:
        """Open (or reopen) a stage's run, nested under the search's run."""
        if run_id:
            try:
                self.client.update_run(run_id, status="RUNNING")
                return run_id
            except Exception:
                pass
        run = self.client.create_run(
            self.experiment_id,
            run_name=stage,
            tags={
                PARENT_TAG: search_run,
                "dnc.search": search,
                "dnc.kind": "stage",
                "stage": stage,
                "study_name": study,
            },
        )
        self._log_params(run.info.run_id, params)
        return run.info.run_id

    def start_trial(
        self,
        parent_id: str,
        *,
        search: str,
        stage: str,
        study: str,
        number: int,
        candidate: Mapping[str, Any],
        search_run: str = "",
        substage: str = "",
    ) -> str:
        """Open a trial's run, nested under ``parent_id`` (its stage's run)."""
        tags = {
            PARENT_TAG: parent_id,
            "dnc.search": search,
            "dnc.kind": "trial",
            "dnc.search_run_id": search_run or parent_id,
            "stage": stage,
            "trial_number": str(number),
            "study_name": study,
        }
        if substage:
            tags["substage"] = substage
        run = self.client.create_run(
            self.experiment_id,
            tags=tags,
            run_name=f"{stage}{'-' + substage if substage else ''}-{number:03d}",
        )
        self._log_params(run.info.run_id, candidate)
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        self.client.log_batch(run_id, metrics=self._metrics(metrics))

    def end_trial(
        self,
        run_id: str,
        *,
        figures: Mapping[str, float] | None = None,
        loss: float | None = None,
        curves: Mapping[str, Sequence[float]] | None = None,
        fail_reason: str | None = None,
    ) -> None:
        from mlflow.entities import Metric

        metrics: list[Metric] = []
        for key, values in (curves or {}).items():
            now = int(time.time() * 1000)
            metrics += [
                Metric(key, float(v), now, step)
                for step, v in enumerate(values)
                if math.isfinite(float(v))
            ]
        final = dict(figures or {})
        if loss is not None:
            final["search_loss"] = loss
        metrics += self._metrics(final)
        tags = []
        if fail_reason is not None:
            from mlflow.entities import RunTag

            tags.append(RunTag("fail_reason", fail_reason[:4000]))
        for start in range(0, len(metrics), 900):  # MLflow's batch limit is 1000
            self.client.log_batch(
                run_id, metrics=metrics[start : start + 900], tags=tags if start == 0 else []
            )
        if not metrics and tags:
            self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, status="FAILED" if fail_reason else "FINISHED")

    def mark_killed(self, run_id: str) -> None:
        """Close a trial run whose process died (found when a search resumes)."""
        try:
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, status="KILLED")
        except Exception:
            pass

    def log_artifact(self, run_id: str, path: Path) -> None:
        self.client.log_artifact(run_id, str(path))

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, _param_value(value))

    # -- helpers ------------------------------------------------------------------------------
    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for start in range(0, len(items), 90):  # MLflow's batch limit for params is 100
            self.client.log_batch(run_id, params=items[start : start + 90])

    @staticmethod
    def _metrics(values: Mapping[str, float]) -> list[Any]:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        return [Metric(k, v, now, 0) for k, v in _finite(values).items()]


class NullTracker(Tracker):
    """Tracking switched off (``tracking.uri=null``)."""

    def __init__(self) -> None:  # noqa: D107 - nothing to open
        self.uri = ""

    def start_search(self, name: str, params: Mapping[str, Any], run_id: str | None = None) -> str:
        return ""

    def end_run(self, run_id: str, metrics: Mapping[str, float], status: str = "FINISHED") -> None:
        return None

    def start_stage(self, search_run: str, **kwargs: Any) -> str:  # type: ignore[override]
        return ""

    def start_trial(self, parent_id: str, **kwargs: Any) -> str:  # type: ignore[override]
        return ""

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        return None

    def end_trial(self, run_id: str, **kwargs: Any) -> None:  # type: ignore[override]
        return None

    def mark_killed(self, run_id: str) -> None:
        return None

    def log_artifact(self, run_id: str, path: Path) -> None:
        return None

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        return None
