"""MLflow mirrors a search: one search run, a run per stage nested under it, a run per trial
nested under its stage, with the settings, candidates and figures a user compares."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import optuna
import pytest
from dnc_mlp.space import MLPSpace
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dnc.search import StageSpec

sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
from searches import make_search  # noqa: E402 - the search tests' small searches

from dnc.tracking.mlflow_runs import MlflowRuns  # noqa: E402
from dnc.tracking.mlflow_tracker import MlflowTracker  # noqa: E402
from dnc.tracking.pictures import SearchPictures  # noqa: E402
from dnc.tracking.run_names import trials_view  # noqa: E402


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{tmp}/mlflow.db"
    stages = (StageSpec("core", groups=("core",), trials=3), StageSpec("arch", kind="grid"))
    tracker = MlflowTracker(uri, register_model="s-best", describe=MLPSpace().describe)
    observers = [SearchPictures(), tracker]  # the pictures first: the tracker logs them
    result = make_search(tmp, stages=stages, final_test=True, num_best=2, observers=observers).run()
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("dnc").experiment_id], max_results=500)
    return tmp, uri, result, client, runs


def kind(runs, name):
    return [r for r in runs if r.data.tags.get("dnc.kind") == name]


def test_search_stage_trial_nesting(tracked):
    tmp, _, _, _, runs = tracked
    (search,) = kind(runs, "search")
    stages = {r.data.tags["stage"]: r for r in kind(runs, "stage")}
    assert set(stages) == {"core", "arch"}
    assert all(r.data.tags["mlflow.parentRunId"] == search.info.run_id for r in stages.values())
    trials = kind(runs, "trial")
    storage = f"sqlite:///{tmp}/s.db"
    count = sum(
        len(optuna.load_study(study_name=f"s/{s}", storage=storage).trials)
        for s in ("core", "arch")
    )
    assert len(trials) == count
    for r in trials:
        assert r.data.tags["mlflow.parentRunId"] == stages[r.data.tags["stage"]].info.run_id
        assert r.data.tags["dnc.search_run_id"] == search.info.run_id
        assert r.info.status == "FINISHED"
        assert {"best_val_acc_pct", "t_epoch_ms", "numparams", "search_loss"} <= set(r.data.metrics)
        assert "lr" in r.data.params and r.data.params["wc"] == "0.1"


def test_runs_are_named_for_their_search_and_figures_carry_units(tracked):
    tmp, _, _, client, runs = tracked
    (search,) = kind(runs, "search")
    label = search.info.run_name
    assert label.startswith("s wc=0.1 ")  # the search, its wc, when it started
    names = [r.info.run_name for r in kind(runs, "trial")]
    assert len(set(names)) == len(names)  # unique: a trial is found by its name
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp}/s.db")
    for t in study.trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.run_name.startswith(f"core#{t.number} hidden [")
        assert run.info.run_name.endswith(f" · {label}")
        figures = t.user_attrs["figures"]
        assert run.data.metrics["t_epoch_ms"] == pytest.approx(figures["t_epoch"] * 1e3, abs=1e-3)
        assert run.data.metrics["best_val_acc_pct"] == pytest.approx(
            figures["best_val_acc"], abs=1e-3
        )
        series = client.get_metric_history(run.info.run_id, "epoch_val_acc_pct")
        assert max(m.value for m in series) == pytest.approx(figures["best_val_acc"])
        assert t.user_attrs["t_epoch_ms"] == pytest.approx(figures["t_epoch"] * 1e3, abs=1e-3)
    assert study.metric_names == ["search_loss"]  # optuna-dashboard's name for the objective


def test_the_best_network_is_an_mlflow_model_with_its_validation_accuracy(tracked):
    import mlflow
    import mlflow.pytorch

    from dnc.train.datasets import Digits
    from dnc.train.trainer import accuracy

    tmp, uri, result, client, runs = tracked
    (search,) = kind(runs, "search")
    (version,) = client.search_model_versions("name = 's-best'")
    assert version.run_id == search.info.run_id
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pytorch.load_model(f"models:/s-best/{version.version}")
    finally:
        mlflow.set_tracking_uri(previous)
    data = Digits().load(7)  # the search's seed: the same validation split
    val = accuracy(model, data.xva, data.yva, 512)
    assert val == pytest.approx(result.best[0].figures["best_val_acc"])
    assert (tmp / "run" / "best_model.pt").is_file()


def test_each_trial_run_is_kept_on_its_optuna_trial(tracked):
    tmp, _, _, client, _ = tracked
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp}/s.db")
    for t in study.trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.data.tags["trial_number"] == str(t.number)
        assert run.data.metrics["search_loss"] == pytest.approx(t.value)


def test_stage_params_say_what_the_stage_did(tracked):
    _, _, _, _, runs = tracked
    stages = {r.data.tags["stage"]: r.data.params for r in kind(runs, "stage")}
    assert stages["core"] == {
        "kind": "bo",
        "groups": '["core"]',
        "sampler": "random",
        "budget": "3",
        "objective": "loss",
        "wc": "0.1",
    }
    arch = stages["arch"]
    assert (arch["kind"], arch["substages"], arch["wc"]) == (
        "grid",
        '["activation", "dropout"]',
        "0.1",
    )
    assert "groups" not in arch and "budget" not in arch  # nothing a grid stage does not have


def test_the_search_run_has_settings_results_and_the_final_test(tracked):
    _, _, result, client, runs = tracked
    (search,) = kind(runs, "search")
    assert search.info.status == "FINISHED"
    assert search.data.params["wc"] == "0.1" and "tbar_epoch" in search.data.params["cost_settings"]
    assert search.data.metrics["best_search_loss"] == pytest.approx(result.best[0].loss)
    assert "results.json" in [a.path for a in client.list_artifacts(search.info.run_id)]
    pictures = {a.path for a in client.list_artifacts(search.info.run_id, "pictures")}
    assert pictures == {
        "pictures/front-s.png",
        "pictures/convergence-s.png",
        "pictures/bo-core-s.png",
    }
    tested = [r for r in kind(runs, "trial") if "final_test_acc_pct" in r.data.metrics]
    assert len(tested) == 2


def test_a_resumed_search_reopens_its_runs_and_closes_dead_trials(tracked):
    tmp, uri, _, client, _ = tracked
    storage = f"sqlite:///{tmp}/s.db"
    core = optuna.load_study(study_name="s/core", storage=storage)
    dead = client.create_run(
        client.get_experiment_by_name("dnc").experiment_id, tags={"dnc.kind": "orphan"}
    )
    trial = core.ask()  # a trial whose worker died while it ran
    trial.set_user_attr("mlflow_run_id", dead.info.run_id)
    core.tell(trial, state=optuna.trial.TrialState.FAIL)
    # a worker killed after creating its trial's run and before recording it on the trial
    unlinked = core.ask()
    lost = client.create_run(
        client.get_experiment_by_name("dnc").experiment_id,
        tags={"dnc.kind": "trial", "study_name": "s/core", "trial_number": str(unlinked.number)},
    )
    core.tell(unlinked, state=optuna.trial.TrialState.FAIL)
    core.set_user_attr("dnc.finished", False)
    stages = (StageSpec("core", groups=("core",), trials=3), StageSpec("arch", kind="grid"))
    make_search(
        tmp, stages=stages, final_test=True, num_best=2, observers=[MlflowTracker(uri)]
    ).run()
    runs = client.search_runs([client.get_experiment_by_name("dnc").experiment_id], max_results=500)
    assert len(kind(runs, "search")) == 1 and len(kind(runs, "stage")) == 2
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    assert client.get_run(lost.info.run_id).info.status == "KILLED"


class _Unpicklable(MLPSpace):
    def build(self, candidate, data):
        model = super().build(candidate, data)
        model.lock = threading.Lock()  # a lock does not pickle: the model cannot be logged
        return model


def test_a_best_network_that_cannot_be_logged_is_a_warning(tmp_path, caplog):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    stages = (StageSpec("core", groups=("core",), trials=1),)
    make_search(
        tmp_path, stages=stages, space=_Unpicklable(), epochs=1, observers=[MlflowTracker(uri)]
    ).run()
    assert "could not be logged as an MLflow model" in caplog.text
    assert "unreachable" not in caplog.text  # not taken for an outage
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("dnc").experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert (tmp_path / "run" / "best_model.pt").is_file()  # the weights are kept all the same


class _SecondToTag(MlflowClient):
    """A worker's client that saves the trials view just after another worker did: PostgreSQL
    refuses the second insert of the tag (``experiment_tag_pk``). ``saved``: whether the other
    worker's insert went through."""

    saved = True

    def set_experiment_tag(self, experiment_id, key, value):
        if self.saved:
            super().set_experiment_tag(experiment_id, key, value)
        raise MlflowException('duplicate key value violates unique constraint "experiment_tag_pk"')


@pytest.mark.parametrize("saved", [True, False])
def test_workers_saving_the_trials_view_at_once_all_open_the_store(
    tmp_path, caplog, monkeypatch, saved
):
    monkeypatch.setattr(_SecondToTag, "saved", saved)
    monkeypatch.setattr("mlflow.tracking.MlflowClient", _SecondToTag)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    runs = MlflowRuns(uri, "race")  # opens the store, or says it cannot
    experiment = MlflowClient(tracking_uri=uri).get_experiment(runs.experiment_id)
    tag, view = trials_view()
    assert experiment.name == "race"
    assert (experiment.tags.get(tag) == view) is saved
    assert ("trials view was not saved" in caplog.text) is not saved
