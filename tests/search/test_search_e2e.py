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
    proc = run_dnc(cwd, *BUDGET, "tracking.pictures=true", check=True)
    return cwd, proc


def test_default_search_prints_progress_and_a_table(finished):
    _, proc = finished
    out = proc.stdout
    for stage in (
        "stage core",
        "stage arch",
        "stage train",
        "sub-stage activation",
        "sub-stage dropout",
    ):
        assert stage in out
    assert out.count("trial ") >= 10
    assert "found by" in out
    assert "runs in MLflow: mlflow ui --backend-store-uri sqlite:///mlflow.db, then " in out
    assert "best" in out and "val acc %" in out and "t_epoch ms" in out and "params" in out
    assert "search loss" in out


def test_every_trial_is_in_the_optuna_storage_with_its_figures(finished):
    cwd, _ = finished
    storage = f"sqlite:///{cwd}/run/optuna.db"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    assert names == ["digits-mlp/core", "digits-mlp/arch", "digits-mlp/train"]
    study = optuna.load_study(study_name="digits-mlp/core", storage=storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 5
    train = optuna.load_study(study_name="digits-mlp/train", storage=storage)
    assert len(train.get_trials(states=(TrialState.COMPLETE,))) == 5
    for t in trials + train.get_trials(states=(TrialState.COMPLETE,)):
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
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/mlflow.db")
    for row in results["best"]:  # each pick links to its trial's MLflow run
        run = client.get_run(row["mlflow_run_id"])
        assert run.data.tags["trial_number"] == str(row["trial"])
        assert run.data.metrics["search_loss"] == pytest.approx(row["search_loss"])


def test_mlflow_has_one_search_run_with_stages_and_nested_trials(finished):
    cwd, _ = finished
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/mlflow.db")
    exp = client.get_experiment_by_name("dnc")
    runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["dnc.kind"] == "search"
    assert parent.data.params["wc"] == "0.1"
    assert "results.json" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    models = client.search_logged_models([exp.experiment_id])  # tracking.log_model: default
    assert [(m.name, m.source_run_id) for m in models] == [("model", parent.info.run_id)]
    drawn = sorted(p.name for p in (cwd / "run").glob("*.png"))  # tracking.pictures=true
    assert drawn == [f"{k}-digits-mlp.png" for k in ("bo-core", "bo-train", "convergence", "front")]
    logged = [a.path for a in client.list_artifacts(parent.info.run_id, "pictures")]
    assert logged == [f"pictures/{name}" for name in drawn]
    stages = {r.info.run_id: r for r in runs if r.data.tags.get("dnc.kind") == "stage"}
    assert sorted(r.data.tags["stage"] for r in stages.values()) == ["arch", "core", "train"]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in stages.values())
    children = [r for r in runs if r.data.tags.get("dnc.kind") == "trial"]
    core = [r for r in children if r.data.tags["stage"] == "core"]
    assert len(core) == 5 and len(children) >= 10
    for child in children:
        tags, params, metrics = child.data.tags, child.data.params, child.data.metrics
        assert stages[tags["mlflow.parentRunId"]].data.tags["stage"] == tags["stage"]
        assert tags["dnc.search_run_id"] == parent.info.run_id
        assert tags["study_name"] == f"digits-mlp/{tags['stage']}"
        for key in ("num_hidden_layers", "lr", "weight_decay", "batch_size"):
            assert key in params
        for key in ("best_val_acc_pct", "t_epoch_ms", "numparams", "search_loss"):
            assert key in metrics
        assert params["wc"] == "0.1"
        assert child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "epoch_val_acc_pct")
        assert [m.step for m in history] == list(range(3))  # one point per epoch
        assert max(m.value for m in history) == pytest.approx(metrics["best_val_acc_pct"], abs=1e-3)
        assert len(client.get_metric_history(child.info.run_id, "epoch_train_loss")) == 3
    assert {int(r.data.tags["trial_number"]) for r in core} == set(range(5))


def test_report_rescores_and_draws_the_front(finished):
    cwd, _ = finished
    proc = run_dnc(
        cwd,
        f"run_dir={cwd}/run",
        "search_name=digits-mlp",
        "wc=[0,0.1,100]",
        module="dnc.report",
        check=True,
    )
    assert "re-scored" in proc.stdout
    png = cwd / "run" / "front-digits-mlp.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    picks = json.loads(png.with_suffix(".json").read_text())["picks"]
    assert [p["wc"] for p in picks] == [0.0, 0.1, 100.0]
    assert all(p["mlflow_run_id"] in proc.stdout for p in picks)  # the table links each pick
    accs = [p["figures"]["best_val_acc"] for p in picks]
    fcs = [p["complexity"] for p in picks]
    assert accs[0] >= accs[2] and fcs[0] >= fcs[2]  # more weight on cost: cheaper, less accurate
    storage = f"sqlite:///{cwd}/run/optuna.db"
    from dnc.search import open_storage, ranked_trials

    assert picks[1]["search_loss"] == pytest.approx(
        ranked_trials(open_storage(storage), "digits-mlp")[0].loss
    )
    client = MlflowClient(tracking_uri=f"sqlite:///{cwd}/mlflow.db")
    parent = client.search_runs(
        [client.get_experiment_by_name("dnc").experiment_id],
        filter_string="tags.`dnc.kind` = 'search'",
    )[0]
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report")] == [
        "report/front-digits-mlp.json",
        "report/front-digits-mlp.png",
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run_dir=/nonexistent/run",), "run_dir='/nonexistent/run': no such directory"),
        (("wcc=[0,1]",), "wcc: unknown key; valid keys: run_dir, storage_url, search_name, wc,"),
        (("num_best=many",), "num_best=many: give an integer"),
    ],
)
def test_report_bad_input_is_one_clear_line(tmp_path: Path, args, needle):
    proc = run_dnc(tmp_path, *args, module="dnc.report")
    assert proc.returncode == 2 and proc.stderr.startswith("dnc: error: ")
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr


def test_tracking_uri_override(tmp_path: Path):
    uri = f"sqlite:///{tmp_path}/elsewhere.db"
    run_dnc(
        tmp_path,
        "search=quick",  # the three stages, one variant per grid sub-stage
        "search.bo.prior_states=1",
        "search.bo.steps=0",
        "trainer.epochs=1",
        f"tracking.uri={uri}",
        "tracking.experiment=other",
        check=True,
    )
    assert not (tmp_path / "mlflow.db").exists()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("other")
    kinds = sorted(r.data.tags["dnc.kind"] for r in client.search_runs([exp.experiment_id]))
    assert kinds.count("search") == 1 and kinds.count("stage") == 3
