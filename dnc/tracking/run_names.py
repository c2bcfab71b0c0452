"""How dnc's MLflow runs are named and tagged, and what they carry, so that a person tells
apart in the UI several searches in one experiment (``python -m dnc -m search.wc=0.01,0.1,1``),
their stages and their trials.

- the search run: ``digits-mlp wc=0.1 11-30 00:50:12`` (``search_label``: search, wc, start);
- a stage run: ``core · <label>``;
- a trial run: ``core#12 hidden [172] relu drop 0 lr 0.035... · <label>`` (``trial_run_name``);
- tags: ``dnc.kind`` (search / stage / trial; filter ``tags.`dnc.kind` = 'trial'`` to compare
  every trial), ``dnc.search``, ``stage``, ``substage``, ``trial_number``, ``study_name``,
  ``dnc.search_run_id``, ``worker``, and ``fail_reason`` on failed trials;
- metrics carry their unit (``dnc.search.records.metrics_of``); per-epoch series are ``CURVES``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dnc.secrets import mask_url, scrub

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"

CURVES = {"train_loss": "epoch_train_loss", "val_acc": "epoch_val_acc_pct"}
"""Per-epoch series, named apart from the final figures (``best_val_acc_pct`` is the best epoch,
``epoch_val_acc_pct`` a step per epoch)."""


def search_label(search: str, wc: Any, started: datetime) -> str:
    """How a search's runs are told apart in an experiment: ``digits-mlp wc=0.1 11-30
    00:50:12`` (the search run's name, and the end of its stages' and trials' names)."""
    try:
        wc_text = f"{float(wc):g}"
    except (TypeError, ValueError):
        wc_text = str(wc)
    return f"{search} wc={wc_text} {started:%m-%d %H:%M:%S}"


def short(text: str, width: int = 40) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters (``...`` when cut)."""
    if len(text) <= width:
        return text
    cut = text[: width - 3].rsplit(" ", 1)[0]
    return f"{cut}..."


def trial_run_name(stage: str, substage: str, number: int, candidate: str, label: str) -> str:
    """``core#12 hidden [172] relu drop 0 lr 0.035... · digits-mlp wc=0.1 11-30 00:50:12``:
    where the trial ran, what it trained, which search."""
    where = f"{stage}:{substage}" if substage else stage
    return f"{where}#{number} {short(candidate)} · {label}"


def plain_describe(candidate: Mapping[str, Any]) -> str:
    """``key value`` pairs, floats to two significant digits: a candidate without its space's
    ``describe``."""
    return " ".join(
        f"{k} {v:.2g}" if isinstance(v, float) else f"{k} {v}" for k, v in candidate.items()
    )


def stage_tags(study_name: str, stage: str, search_run: str) -> dict[str, str]:
    """A stage run's tags (nested under the search run)."""
    return {
        PARENT_TAG: search_run,
        "dnc.search": study_name.rsplit("/", 1)[0],
        "dnc.kind": "stage",
        "stage": stage,
        "study_name": study_name,
    }


def trial_tags(
    study_name: str,
    stage: str,
    substage: str,
    number: int,
    *,
    worker: str,
    parent: str,
    search_run: str,
) -> dict[str, str]:
    """A trial run's tags (nested under ``parent``, its stage's run)."""
    tags = {
        PARENT_TAG: parent,
        "dnc.search": study_name.rsplit("/", 1)[0],
        "dnc.kind": "trial",
        "dnc.search_run_id": search_run,
        "stage": stage,
        "trial_number": str(number),
        "study_name": study_name,
    }
    if worker:
        tags["worker"] = worker
    if substage:
        tags["substage"] = substage
    return tags


def param_entries(params: Mapping[str, Any]) -> list[Any]:
    """``params`` as MLflow ``Param``s (lists and mappings as JSON, cut to MLflow's limit)."""
    from mlflow.entities import Param

    def text(value: Any) -> str:
        return json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)

    return [Param(k, text(v)[:6000]) for k, v in params.items()]


def metric_entries(values: Mapping[str, float | None]) -> list[Any]:
    """The finite ``values`` as MLflow ``Metric``s at step 0 (``None`` and NaN left out)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(k, float(v), now, 0)
        for k, v in values.items()
        if v is not None and math.isfinite(float(v))
    ]


def curve_entries(curves: Mapping[str, Sequence[float | None]]) -> list[Any]:
    """Per-epoch series as MLflow ``Metric``s, a step per epoch, under their ``CURVES`` names."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(CURVES.get(name, name), float(v), now, step)
        for name, values in curves.items()
        for step, v in enumerate(values)
        if v is not None and math.isfinite(float(v))
    ]


TRIALS_VIEW = "dnc-trials"
"""The key of the experiment's shared view of the MLflow UI that lists every trial flat, by
search loss, with the columns people compare (``trials_view``)."""


def trials_view() -> tuple[str, str]:
    """The experiment tag (name, value) that defines ``TRIALS_VIEW``: MLflow's UI opens a view
    shared as ``mlflow.sharedViewState.<key>`` from ``...runs?viewStateShareKey=<key>``. The UI
    nests runs under their parents unless the table is filtered and sorted by something other
    than the start time, and shows no metric or param column by default: this view does both."""
    state = {
        "searchFilter": "tags.`dnc.kind` = 'trial'",
        "orderByKey": "metrics.`search_loss`",
        "orderByAsc": True,
        "selectedColumns": [
            "metrics.`search_loss`",
            "metrics.`best_val_acc_pct`",
            "metrics.`t_epoch_ms`",
            "metrics.`numparams`",
            "params.`wc`",
            "tags.`stage`",
        ],
    }
    return f"mlflow.sharedViewState.{TRIALS_VIEW}", json.dumps(state, sort_keys=True)


def error_line(err: BaseException) -> str:
    """The first line of an MLflow error (its ``repr`` when it says nothing), passwords
    scrubbed."""
    text = str(err).strip()
    return scrub(text.splitlines()[0] if text else repr(err))


def share_trials_view(client: Any, experiment: Any) -> None:
    """Save ``trials_view`` on ``experiment`` (an MLflow ``Experiment``) with ``client``.
    Workers starting together all try it, and a store on PostgreSQL refuses all but the first
    insert of the tag: the view another worker saved is as good, and a view that cannot be
    saved costs the UI a default, not the search (a warning)."""
    tag, view = trials_view()
    if experiment.tags.get(tag) == view:
        return
    try:
        client.set_experiment_tag(experiment.experiment_id, tag, view)
    except Exception as err:
        if client.get_experiment(experiment.experiment_id).tags.get(tag) != view:
            log.warning(
                "the MLflow trials view was not saved on experiment %s (%s)",
                experiment.experiment_id,
                error_line(err),
            )


def runs_link(uri: str, experiment_id: str) -> str:
    """Where the MLflow UI shows an experiment's trials (``TRIALS_VIEW``): the URL for a tracking
    server; for a local store, the ``mlflow ui`` command and the URL it serves."""
    path = (
        f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={TRIALS_VIEW}"
    )
    if uri.startswith(("http://", "https://")):
        return f"{mask_url(uri).rstrip('/')}/{path}"
    return f"mlflow ui --backend-store-uri {uri}, then http://127.0.0.1:5000/{path}"


__all__ = [
    "CURVES",
    "PARENT_TAG",
    "TRIALS_VIEW",
    "curve_entries",
    "error_line",
    "metric_entries",
    "param_entries",
    "plain_describe",
    "runs_link",
    "search_label",
    "share_trials_view",
    "short",
    "stage_tags",
    "trial_run_name",
    "trial_tags",
    "trials_view",
]
