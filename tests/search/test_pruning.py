"""Early stopping with Optuna's pruners (``trainer.pruner``): a real search on digits whose
hopeless trials stop after a few epochs, are recorded ``PRUNED`` with their figures so far, use
up budget, feed the BO, are never picks, and say so in MLflow and on the console."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from searches import make_search

from dnc.bo.sampler import PHASE_ATTR
from dnc.plugins import TensorData, UserError
from dnc.search import BOSettings, StageSpec, records
from dnc.search.cost import NumParams
from dnc.search.objective import score
from dnc.search.pruning import make_pruner
from dnc.search.ranking import ranked_trials
from dnc.search.storage import open_storage, recorded_cost
from dnc.tracking.mlflow_tracker import MlflowTracker
from dnc.train.settings import TrainerSettings
from dnc.train.trainer import train

EPOCHS = 6


def test_training_stops_when_asked_with_the_figures_so_far():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    data = TensorData(x, y, x, y, x, y, num_classes=2)
    seen = []

    def stop(so_far):
        seen.append((so_far.epochs_run, len(so_far.val_acc), math.isfinite(so_far.t_epoch)))
        return so_far.epochs_run == 2

    result = train(
        torch.nn.Linear(4, 2), data, lr=0.01, weight_decay=0.0, batch_size=16,
        settings=TrainerSettings(epochs=5), should_stop=stop,
    )  # fmt: skip
    assert result.stopped and result.epochs_run == 2 and len(result.val_acc) == 2
    assert seen == [(1, 1, True), (2, 2, True)]
    never = train(
        torch.nn.Linear(4, 2), data, lr=0.01, weight_decay=0.0, batch_size=16,
        settings=TrainerSettings(epochs=3), should_stop=lambda r: False,
    )  # fmt: skip
    assert not never.stopped and never.epochs_run == 3


def test_an_unknown_pruner_is_a_clear_error():
    with pytest.raises(UserError, match="trainer.pruner='asha': choose one of none, median"):
        TrainerSettings(pruner="asha")
    assert make_pruner(TrainerSettings()) is None
    median = make_pruner(TrainerSettings(epochs=12, pruner="median"))
    assert isinstance(median, optuna.pruners.MedianPruner)


@pytest.fixture(scope="module")
def pruned_search(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pruned")
    uri = f"sqlite:///{tmp}/mlflow.db"
    search = make_search(
        tmp,
        stages=(StageSpec("core", groups=("core", "train")),),
        sampler="ramp",
        bo=BOSettings(prior_states=4, steps=4),
        cost=NumParams(),  # a loss that does not depend on timings: the same trials prune
        trainer=TrainerSettings(epochs=EPOCHS, pruner="hyperband"),
        observers=[MlflowTracker(uri)],
    )
    result = search.run()
    study = optuna.load_study(study_name="s/core", storage=f"sqlite:///{tmp}/s.db")
    return tmp, uri, result, study


def test_pruned_trials_are_recorded_with_their_figures_so_far(pruned_search):
    _, _, _, study = pruned_search
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "hyperband pruned no trial"
    cost = recorded_cost(study)  # calibrated by the search
    for t in pruned:
        figures = records.figures(t)
        epochs = t.user_attrs[records.PRUNED_AT]
        assert 1 <= epochs < EPOCHS and figures["epochs_run"] == epochs
        assert len(t.user_attrs[records.CURVES]["val_acc"]) == epochs
        assert t.intermediate_values[epochs] == t.value  # Optuna keeps its last report
        assert t.value == pytest.approx(score(figures, 0.1, cost), abs=1e-9)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(records.figures(t)["epochs_run"] == EPOCHS for t in complete)
    assert len(complete) + len(pruned) == 8  # pruned trials use up the budget


def test_the_bo_learns_from_pruned_trials_and_never_picks_them(pruned_search):
    tmp, _, result, study = pruned_search
    learnt = 0
    for t in study.trials:
        info = t.system_attrs.get(PHASE_ATTR, {})
        if info.get("phase") != "bo":
            continue
        before = [u for u in study.trials if u.number < t.number]
        observations = [u for u in before if u.state == TrialState.COMPLETE or records.pruned(u)]
        assert info["observed"] == len(observations)  # pruned trials at their last value
        learnt += any(records.pruned(u) for u in before)
    assert learnt, "no BO step came after a pruned trial"
    rows = ranked_trials(open_storage(f"sqlite:///{tmp}/s.db"), "s")
    pruned = {t.number for t in study.trials if t.state == TrialState.PRUNED}
    assert rows and not {r.number for r in rows} & pruned
    assert result.best[0].number not in pruned


def test_pruned_trial_runs_say_when_they_stopped(pruned_search):
    _, uri, _, study = pruned_search
    client = MlflowClient(tracking_uri=uri)
    for t in study.trials:
        run = client.get_run(t.user_attrs[records.MLFLOW_RUN])
        assert run.info.status == "FINISHED"
        if t.state == TrialState.PRUNED:
            assert run.data.metrics[records.PRUNED_AT] == t.user_attrs[records.PRUNED_AT]
            assert run.data.metrics["search_loss"] == pytest.approx(t.value)
        else:
            assert records.PRUNED_AT not in run.data.metrics
