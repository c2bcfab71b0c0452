"""The default search end to end through the CLI, read back from the real Optuna storage and
the real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from conftest import run_dnc
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

BUDGET = ("search.bo.prior_states=3", "search.bo.steps=2", "trainer.epochs=3")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("e2e")
    proc = run_dnc(cwd, *BUDGET, check=True)
    return cwd, proc


def test_default_search_prints_progress_and_a_table(finished):
    _, proc = finished
    out = proc.stdout
    assert "stage core" in out
    assert out.count("trial ") >= 5
    assert "best" in out and "val acc %" in out and "t_epoch ms" in out and "params" in out
    assert "search loss" in out


def test_every_trial_is_in_the_optuna_storage_with_its_figures(finished):
    cwd, _ = finished
    storage = f"sqlite:///{cwd}/run/optuna.db"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    assert names == ["digits-mlp/core"]
    study = optuna.load_study(study_name="digits-mlp/core", storage=storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 5
    for t in trials:
        figures = t.user_attrs["figures"]
        assert 0 <= figures["best_val_acc"] <= 100
        assert figures["t_epoch"] > 0 and figures["numparams"] > 0
        assert t.user_attrs["candidate"]["num_hidden_layers"] in (0, 1, 2)
    assert "tbar_epoch" in study.user_attrs["dnc.cost"]["kwargs"]


def test_results_json_in_the_run_directory(finished):
    cwd, _ = finished
    results = json.loads((cwd / "run" / "results.json").read_text())
    assert results["finished"] is True
    losses = [r["search_loss"] for r in results["best"]]
    assert losses == sorted(losses) and len(losses) == 5


def test_mlflow_has_one_parent_run_with_nested_trials(finished):
    cwd, _ = finished
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/mlflow.db")
    exp = client.get_experiment_by_name("dnc")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 5
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["wc"] == "0.1"
    assert "results.json" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    numbers = set()
    for child in children:
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["stage"] == "core" and tags["study_name"] == "digits-mlp/core"
        numbers.add(int(tags["trial_number"]))
        for key in ("num_hidden_layers", "lr", "weight_decay", "batch_size"):
            assert key in params
        for key in ("best_val_acc", "t_epoch", "numparams", "search_loss"):
            assert key in metrics
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "val_acc")
        assert [m.step for m in history] == list(range(3))  # one point per epoch
        assert max(m.value for m in history) == pytest.approx(metrics["best_val_acc"])
        assert len(client.get_metric_history(child.info.run_id, "train_loss")) == 3
    assert numbers == set(range(5))


def test_tracking_uri_override(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/elsewhere.db"
    run_dnc(tmp_path, "search.bo.prior_states=1", "search.bo.steps=0", "trainer.epochs=1",
            f"tracking.uri={uri}", "tracking.experiment=other", check=True)
    assert not (tmp_path / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("other")
    assert len(client.search_runs([exp.experiment_id])) == 2  # the search and its one trial
