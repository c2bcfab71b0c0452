"""A diverging or crashing trial is recorded as failed with its reason; the search goes on."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from dnc_mlp.space import MLPSpace
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from searches import make_search
from torch import nn

from dnc.plugins import DataSpec
from dnc.search import BOSettings, StageSpec, TrialsFailed
from dnc.search.cost import NumParams
from dnc.tracking.mlflow_tracker import MlflowTracker
from dnc.train.settings import TrainerSettings


class _Blowup(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan")


class _Hang(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        while True:  # a plugin's bug: the forward pass never returns
            time.sleep(0.05)


class DeepNetsBreak(MLPSpace):
    """Networks with two hidden layers end in ``tail()`` (a plugin's bug: NaN logits, a hang,
    a 512 TB weight matrix); the others train normally."""

    name = "breaking"

    def __init__(self, tail: Callable[[], nn.Module], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tail = tail

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        model = super().build(candidate, data)
        if candidate["num_hidden_layers"] == 2:
            return nn.Sequential(model, self.tail())
        return model


def DivergingMLP(hidden_layers: tuple[int, int]) -> DeepNetsBreak:
    return DeepNetsBreak(_Blowup, hidden_layers=hidden_layers)


def HangingMLP(hidden_layers: tuple[int, int]) -> DeepNetsBreak:
    return DeepNetsBreak(_Hang, hidden_layers=hidden_layers)


def HugeMLP(hidden_layers: tuple[int, int]) -> DeepNetsBreak:
    # 512 TB: past the 128 TB a Linux process can address, so the CPU allocator refuses it at
    # once whatever vm.overcommit_memory says (4 TB was granted, and thrashed, where it is 1)
    return DeepNetsBreak(lambda: nn.Linear(2**25, 2**22), hidden_layers=hidden_layers)


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow store with its tables made (seconds, each time), to copy."""
    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_db(tmp_path: Path, empty_store: Path) -> None:
    """The test's MLflow store, ``tmp_path/mlflow.db``, made a copy of an empty one."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")


def _search(tmp_path, space, trials=6, max_failures=10, trainer=None):
    return make_search(
        tmp_path,
        name="fail",
        stages=(StageSpec("core", groups=("core",), trials=trials),),
        bo=BOSettings(prior_states=trials, steps=0),
        seed=1,
        max_failures_in_a_row=max_failures,
        space=space,
        cost=NumParams(),
        epochs=1,
        trainer=trainer,
        observers=[MlflowTracker(f"sqlite:///{tmp_path}/mlflow.db")],
    )


@pytest.mark.parametrize(
    ("space", "reason", "trainer"),
    [
        (DivergingMLP(hidden_layers=(1, 2)), "training loss became nan", None),
        # a normal trial takes a tenth of a second; each hung one holds the search timeout_s
        (HangingMLP(hidden_layers=(1, 2)), "timeout", TrainerSettings(epochs=1, timeout_s=2)),
        (HugeMLP(hidden_layers=(1, 2)), "out of memory", None),
    ],
    ids=["diverged", "hung", "out-of-memory"],
)
@pytest.mark.usefixtures("mlflow_db")
def test_a_broken_trial_is_failed_with_its_reason_and_the_search_goes_on(
    tmp_path, space, reason, trainer
):
    result = _search(tmp_path, space, trials=8, trainer=trainer).run()
    study = optuna.load_study(study_name="fail/core", storage=f"sqlite:///{tmp_path}/s.db")
    failed = study.get_trials(states=(TrialState.FAIL,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert failed and complete and len(failed) + len(complete) == 8
    for t in failed:
        assert t.user_attrs["candidate"]["num_hidden_layers"] == 2
        assert t.user_attrs["fail_reason"].startswith(reason)
    assert all(r.candidate["num_hidden_layers"] == 1 for r in result.best)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("dnc").experiment_id])
    failed_runs = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed_runs) == len(failed)
    assert all(r.data.tags["fail_reason"].startswith(reason) for r in failed_runs)


@pytest.mark.usefixtures("mlflow_db")
def test_a_search_where_every_trial_fails_stops_with_a_clear_error(tmp_path):
    search = _search(tmp_path, DivergingMLP(hidden_layers=(2, 2)), trials=6, max_failures=3)
    with pytest.raises(TrialsFailed, match="3 trials in a row failed"):
        search.run()
    study = optuna.load_study(study_name="fail/core", storage=f"sqlite:///{tmp_path}/s.db")
    assert len(study.get_trials(states=(TrialState.FAIL,))) == 3


def test_a_stage_in_which_every_trial_failed_stops_the_search_before_the_next(tmp_path):
    """Fewer failures than max_failures_in_a_row, but nothing completed: the search stops
    after the stage with the most common reason, and no later stage's study is created."""
    search = make_search(
        tmp_path,
        name="fail",
        stages=(StageSpec("core", groups=("core",), trials=2), StageSpec("arch", kind="grid")),
        bo=BOSettings(prior_states=2, steps=0),
        space=DivergingMLP(hidden_layers=(2, 2)),
        cost=NumParams(),
        epochs=1,
    )
    with pytest.raises(TrialsFailed, match=r"all 2 trials failed; the most common reason \(2 of"):
        search.run()
    names = [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{tmp_path}/s.db")]
    assert names == ["fail/core"]
