"""Small real searches on digits for the search tests: 2-epoch trials, tiny budgets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from dnc_mlp.space import MLPSpace
from optuna.trial import FrozenTrial, TrialState

from dnc.plugins import CostEvaluator, SearchSpace
from dnc.search import BOSettings, Search, SearchSettings, StageSpec
from dnc.search.cost import TEpoch
from dnc.search.events import SearchObserver
from dnc.train.datasets import Digits
from dnc.train.settings import TrainerSettings

PAPER = (
    StageSpec("core", groups=("core",)),
    StageSpec("arch", kind="grid"),
    StageSpec("train", groups=("train",)),
)


def make_search(
    tmp_path: Path,
    *,
    stages: Sequence[StageSpec] = PAPER,
    name: str = "s",
    space: SearchSpace | None = None,
    cost: CostEvaluator | None = None,
    observers: Sequence[SearchObserver] = (),
    epochs: int = 2,
    trainer: TrainerSettings | None = None,
    seed: int = 7,
    storage: str | None = None,
    **settings: Any,
) -> Search:
    """A search of ``stages`` on digits with the random sampler, stored in ``tmp_path/s.db``
    (or ``storage``); trained for ``epochs`` (or as ``trainer`` says)."""
    settings.setdefault("bo", BOSettings(prior_states=3, steps=1))
    settings.setdefault("sampler", "random")
    return Search(
        SearchSettings(name=name, stages=tuple(stages), **settings),
        space=space or MLPSpace(activations=("relu", "tanh", "elu")),
        dataset=Digits(),
        cost=cost or TEpoch(),
        trainer=trainer or TrainerSettings(epochs=epochs),
        storage=storage or f"sqlite:///{tmp_path}/s.db",
        seed=seed,
        observers=observers,
        output_dir=tmp_path / "run",
    )


def trials(
    tmp_path: Path, study: str, states: tuple[TrialState, ...] | None = (TrialState.COMPLETE,)
) -> list[FrozenTrial]:
    """The trials of ``study`` in ``tmp_path/s.db``."""
    return optuna.load_study(study_name=study, storage=f"sqlite:///{tmp_path}/s.db").get_trials(
        states=states
    )
