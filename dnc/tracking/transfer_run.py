"""The MLflow run of a transfer study (``python -m dnc.transfer``): nested under the target
search's run (``mlflow.parentRunId``, in that run's experiment), or at the top of the
configured experiment when the store lacks the target's run. It carries the study's settings
as params, per ``wc`` the transferred and the native pick's figures as metrics
(``wc_0.1/transferred_best_val_acc_pct``), and the plot and JSON as artifacts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dnc.plugins import UserError
from dnc.search.transfer import Scored, TransferRow
from dnc.secrets import mask_url, remember
from dnc.tracking.run_names import PARENT_TAG, error_line, metric_entries, param_entries

KIND = "transfer"
"""The ``dnc.kind`` tag of a transfer study's run (a search's are search / stage / trial)."""


@dataclass(frozen=True)
class LoggedRun:
    """Where the study went: the run, its experiment, and whether it is nested under the
    target search's run."""

    run_id: str
    experiment_id: str
    nested: bool


def transfer_metrics(rows: Sequence[TransferRow]) -> dict[str, float | None]:
    """Per ``wc``, the transferred and native pick's accuracy, ``fc`` and search loss under
    ``wc_<wc>/``; and how many ``wc`` the transferred pick wins (``transferred_better``)."""
    out: dict[str, float | None] = {
        "transferred_better": float(sum(r.transferred_better for r in rows))
    }

    def add(prefix: str, s: Scored) -> None:
        out[f"{prefix}_best_val_acc_pct"] = s.best_val_acc  # NaN (not logged) when it failed
        out[f"{prefix}_fc"] = s.complexity
        out[f"{prefix}_search_loss"] = s.loss

    for r in rows:
        add(f"wc_{r.wc:g}/transferred", r.transferred)
        add(f"wc_{r.wc:g}/native", r.native)
    return out


def log_transfer(
    uri: str,
    experiment: str,
    *,
    parent_run_id: str | None,
    name: str,
    tags: Mapping[str, str],
    params: Mapping[str, Any],
    rows: Sequence[TransferRow],
    files: Sequence[Path],
) -> LoggedRun:
    """Log the study as a finished MLflow run; ``UserError`` (one line) when the store
    cannot be written."""
    from mlflow.tracking import MlflowClient

    remember(uri)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    run_id = ""
    try:
        client = MlflowClient(tracking_uri=uri)
        parent = _run_or_none(client, parent_run_id)
        if parent is not None:
            experiment_id = str(parent.info.experiment_id)
        else:
            found = client.get_experiment_by_name(experiment)
            experiment_id = str(
                found.experiment_id if found else client.create_experiment(experiment)
            )
        nest = {PARENT_TAG: str(parent_run_id)} if parent is not None else {}
        run = client.create_run(
            experiment_id, run_name=name, tags={**tags, "dnc.kind": KIND, **nest}
        )
        run_id = str(run.info.run_id)
        client.log_batch(
            run_id, metrics=metric_entries(transfer_metrics(rows)), params=param_entries(params)
        )
        for path in files:
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, status="FINISHED")
    except Exception as err:
        if run_id:
            try:
                client.set_terminated(run_id, status="FAILED")
            except Exception:
                pass
        raise UserError(
            f"tracking.uri={mask_url(uri)!r}: cannot log the transfer study to MLflow "
            f"({error_line(err)}); its files: {', '.join(map(str, files))}"
        ) from err
    return LoggedRun(run_id, experiment_id, parent is not None)


def _run_or_none(client: Any, run_id: str | None) -> Any:
    """The run ``run_id`` of the store, or ``None`` when there is none (or no id)."""
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:
        return None


__all__ = ["KIND", "LoggedRun", "log_transfer", "transfer_metrics"]
