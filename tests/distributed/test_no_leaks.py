"""No credentials leak: the passwords of ``storage.url`` and ``tracking.uri`` appear nowhere a
search prints or writes (console, log file, results.json, MLflow params and tags, the resume
hint), with the storage URL passed through the environment as the README says."""

from __future__ import annotations

import uuid
from pathlib import Path

from conftest import TINY

from dnc.secrets import password

from .checks import start_workers, wait_all


def _texts(folder: Path, skip: str = "") -> dict[str, str]:
    return {
        str(p): p.read_text(errors="replace")
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in ("", ".txt", ".log", ".json", ".yaml")
        and skip not in p.parts
    }


def test_passwords_never_leak(tmp_path, postgres_url, mlflow_uri):
    from mlflow.tracking import MlflowClient

    storage_pw = password(postgres_url)
    tracking_pw = "tr4ck-" + uuid.uuid4().hex[:8]
    tracking = mlflow_uri.replace("http://", f"http://alice:{tracking_pw}@")
    experiment = f"dnc-{uuid.uuid4().hex[:8]}"
    procs = start_workers(
        tmp_path,
        1,
        "search=quick",  # the paper's three stages, one variant per grid sub-stage
        *TINY,
        "storage.url=${oc.env:DNC_STORAGE_URL}",
        f"tracking.uri={tracking}",
        f"tracking.experiment={experiment}",
        env={"DNC_STORAGE_URL": postgres_url},
    )
    wait_all(procs, tmp_path)
    assert storage_pw and (tmp_path / "run0/results.json").exists()
    console = (tmp_path / "worker0.log").read_text()
    assert "postgresql://dnc:***@" in console and "alice:***@" in console  # masked, not dropped
    assert "to resume if stopped:" in console
    # Hydra keeps the command line in .hydra/: the tracking password typed there is the user's;
    # the storage password, passed through the environment, is nowhere
    for path, text in _texts(tmp_path).items():
        assert storage_pw not in text, path
    for path, text in _texts(tmp_path, skip=".hydra").items():
        assert tracking_pw not in text, path
    client = MlflowClient(tracking_uri=mlflow_uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert runs
    for run in runs:
        logged = str(run.data.params) + str(run.data.tags)
        assert storage_pw not in logged and tracking_pw not in logged
