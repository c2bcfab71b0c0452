"""The pictures a search leaves in its run folder: the front, the convergence of each stage,
and each BO stage's trials in its leading parameters; drawn for a real small search, for odd
storages (a stopped search, failed trials, one trial, nothing at all), never stopping one."""

from __future__ import annotations

import json
import logging
import math
import random
import struct
import sys
from pathlib import Path

import optuna
import pytest
from dnc_mlp.space import MLPSpace
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from dnc.search import BOSettings, StageSpec, open_storage, records
from dnc.search.cost import NumParams
from dnc.search.events import SearchFinished, SearchObserver
from dnc.search.storage import record_cost

sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
from searches import make_search  # noqa: E402 - the search tests' small searches

from dnc.tracking.pictures import SearchPictures, draw_search, leading_params, spearman  # noqa: E402


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, checking its signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def assert_pictures(paths: list[Path], names: set[str]) -> None:
    assert {p.name for p in paths} == names
    for p in paths:
        width, height = png_size(p)
        assert p.stat().st_size > 10_000 and width >= 600 and height >= 400, p


class Artifacts(SearchObserver):
    """Keeps the artifacts observers before it added to ``SearchFinished``."""

    def search_finished(self, event: SearchFinished) -> None:
        self.artifacts = list(event.artifacts)


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A real search: a BO stage (3 trials), then a grid stage over activations (1 trial)."""
    tmp = tmp_path_factory.mktemp("pictures")
    seen = Artifacts()
    stages = (
        StageSpec("core", groups=("core", "train")),
        StageSpec("arch", kind="grid", substages=("activation",)),
    )
    make_search(
        tmp,
        stages=stages,
        epochs=1,
        space=MLPSpace(activations=("relu", "tanh")),
        cost=NumParams(numparams_bar=10_000.0),
        bo=BOSettings(prior_states=2, steps=1),
        observers=[SearchPictures(), seen],
    ).run()
    return tmp, seen.artifacts


def test_a_finished_search_leaves_its_pictures_in_the_run_folder(real):
    tmp, artifacts = real
    names = {"front-s.png", "convergence-s.png", "bo-core-s.png"}  # no picture for the grid
    assert_pictures(artifacts, names)
    assert {p.parent for p in artifacts} == {tmp / "run"}  # beside results.json


# -- odd storages, made without training ------------------------------------------------------
INT = IntDistribution(16, 512)
LOG = FloatDistribution(1e-5, 1e-1, log=True)


def trial(value: float | None, state: TrialState = TrialState.COMPLETE, **attrs) -> FrozenTrial:
    params = {k: v for k, v in attrs.items() if k in ("width", "lr", "activation")}
    dists = {"width": INT, "lr": LOG, "activation": CategoricalDistribution(("relu", "tanh"))}
    figures = {"best_val_acc": 90.0, "t_epoch": 0.01, "numparams": 500.0, "epochs_run": 2.0}
    user = {records.FIGURES: figures} if state == TrialState.COMPLETE else {}
    if "substage" in attrs:
        user[records.SUBSTAGE] = attrs["substage"]
    return create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs=user,
    )


def fake_search(
    storage: optuna.storages.BaseStorage,
    name: str,
    stages: list[tuple[str, str, list[FrozenTrial] | None]],
) -> None:
    """A search's studies as a search leaves them (``None``: the stage was never started)."""
    plan = json.dumps([{"name": s, "kind": kind} for s, kind, _ in stages])
    for i, (stage, _, trials) in enumerate(stages):
        if trials is None:
            continue
        study = optuna.create_study(study_name=f"{name}/{stage}", storage=storage)
        study.set_user_attr(records.SETTINGS, {"search": name, "wc": 0.1, "stages": plan})
        if i == 0:
            record_cost(study, NumParams(numparams_bar=1000.0))
        study.add_trials(trials)


@pytest.fixture(scope="module")
def odd(tmp_path_factory) -> optuna.storages.BaseStorage:
    """One storage, several odd searches."""
    storage = open_storage(f"sqlite:///{tmp_path_factory.mktemp('odd')}/f.db")
    core = [trial(-0.5 - i / 10, width=20 * (i + 1), lr=10.0 ** -(i % 4 + 1)) for i in range(5)]
    core.insert(2, trial(None, TrialState.FAIL, width=64, lr=1e-3))
    arch = [trial(-0.8, activation="tanh", substage="activation"), trial(None, TrialState.FAIL)]
    words = [trial(-0.4, activation="relu"), trial(-0.5, activation="tanh")]  # no numbers
    stopped = [("core", "bo", core), ("arch", "grid", arch), ("pick", "bo", words)]
    stopped.append(("train", "bo", None))
    fake_search(storage, "stopped", stopped)
    fake_search(
        storage, "one/trial", [("core", "bo", [trial(-0.3, width=32)]), ("train", "bo", [])]
    )
    failed = [("core", "bo", [trial(None, TrialState.FAIL, width=32)]), ("arch", "grid", [])]
    fake_search(storage, "failed", failed)
    return storage


def test_a_stopped_search_with_failed_trials_and_stages_not_run_is_drawn(odd, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="dnc.tracking.pictures"):
        paths = draw_search(odd, "stopped", tmp_path)
    # none for the grid stage, "pick" (no numeric parameter) or "train" (not run)
    pictures = {"front-stopped.png", "convergence-stopped.png", "bo-core-stopped.png"}
    assert_pictures(paths, pictures)
    assert not caplog.records  # every picture drawn, none skipped on an error


def test_one_trial_and_a_started_stage_without_trials(odd, tmp_path):
    paths = draw_search(odd, "one/trial", tmp_path)  # "/" in a search name: "_" in file names
    names = {"front-one_trial.png", "convergence-one_trial.png", "bo-core-one_trial.png"}
    assert_pictures(paths, names)


def test_nothing_to_draw_draws_nothing(odd, tmp_path):
    assert draw_search(odd, "failed", tmp_path) == []  # no completed trial
    assert draw_search(odd, "another", tmp_path) == []  # no such search
    assert list(tmp_path.iterdir()) == []


# -- the leading parameters -------------------------------------------------------------------
def test_the_leading_parameters_are_the_ones_the_loss_follows():
    rng = random.Random(0)

    def objective(t: optuna.Trial) -> float:
        lr = t.suggest_float("lr", 1e-5, 1e-1, log=True)
        width = t.suggest_int("width", 16, 512)
        t.suggest_float("noise", 0, 1)
        t.suggest_categorical("activation", ["relu", "tanh"])
        if t.suggest_int("layers", 1, 2) == 2:
            t.suggest_int("rare", 1, 10)  # in about half the trials
        return math.log10(lr) / 40 - width / 5000 + rng.random() / 50

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=60)
    lead = leading_params(study.trials)
    assert {name for name, _ in lead} == {"width", "lr"}
    assert all(abs(rho) > 0.3 for _, rho in lead)
    assert [n for n, _ in leading_params(study.trials, k=1)] == [lead[0][0]]

    def monotone(t: optuna.Trial) -> float:
        return -t.suggest_float("x", 0, 1) + 0.01 * t.suggest_float("y", 0, 1)

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    study.optimize(monotone, n_trials=20)
    (x, rho), (y, _) = leading_params(study.trials)
    assert (x, y) == ("x", "y") and rho == pytest.approx(-1.0)


def test_a_parameter_in_fewer_than_half_the_trials_is_not_leading():
    trials = [trial(-i / 10, width=16 + i) for i in range(6)]
    trials += [trial(-0.1, width=20, lr=1e-3), trial(-0.2, width=21, lr=1e-2)]
    assert [n for n, _ in leading_params(trials)] == ["width"]
    assert leading_params([trial(-0.3, width=40)]) == [("width", 0.0)]  # one trial: a slice


def test_the_second_parameter_is_one_that_can_be_drawn_against_the_first():
    layers, width = IntDistribution(1, 2), IntDistribution(16, 512)
    trials = []
    for i in range(8):  # hidden_1 exists for two layers only, and the loss follows it
        params = {"layers": 1 + i % 2, "hidden_0": 16 + 37 * i % 97}
        if params["layers"] == 2:
            params["hidden_1"] = 16 + 10 * i
        value = -params.get("hidden_1", 0) / 100 - 0.01 * i
        dists = {"layers": layers, "hidden_0": width, "hidden_1": width}
        trials.append(
            create_trial(value=value, params=params, distributions={k: dists[k] for k in params})
        )
    (first, rho), (second, _) = leading_params(trials)
    assert (first, second) == ("hidden_1", "hidden_0") and rho == pytest.approx(-1.0)


def test_spearman_is_a_rank_correlation():
    assert spearman([1, 2, 3, 4], [10, 20, 35, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 2], [1, 2, 3, 4]) == pytest.approx(0.894, abs=1e-3)  # ties
    assert spearman([1, 2], [2, 1]) == 0.0 and spearman([5, 5, 5], [1, 2, 3]) == 0.0


# -- the observer -----------------------------------------------------------------------------
def event(results: Path | None) -> SearchFinished:
    return SearchFinished("f", finished=False, best=(), results=results, interrupted=True)


def test_the_observer_draws_where_it_is_told_or_beside_the_results(tmp_path, monkeypatch):
    def draw(storage, search, out_dir):
        return [out_dir / f"front-{search}.png"]

    monkeypatch.setattr("dnc.tracking.pictures.draw_search", draw)
    storage = object()  # not read: drawing is stubbed
    beside = event(tmp_path / "run" / "results.json")
    SearchPictures(storage=storage).search_finished(beside)  # type: ignore[arg-type]
    told = event(tmp_path / "run" / "results.json")
    SearchPictures(storage=storage, out_dir=tmp_path / "pics").search_finished(told)  # type: ignore[arg-type]
    nowhere = event(None)
    SearchPictures(storage=storage).search_finished(nowhere)  # type: ignore[arg-type]
    assert beside.artifacts == [tmp_path / "run" / "front-f.png"]
    assert told.artifacts == [tmp_path / "pics" / "front-f.png"]
    assert nowhere.artifacts == []


def test_drawing_never_stops_a_search(tmp_path, caplog):
    finished = event(tmp_path / "results.json")
    broken = SearchPictures(storage=object())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="dnc.tracking.pictures"):
        broken.search_finished(finished)
    assert finished.artifacts == []
    (line,) = [r.getMessage() for r in caplog.records]
    assert "pictures of search f not drawn" in line and "\n" not in line
