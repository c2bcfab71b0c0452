"""CNN searches end to end through the CLI: a CIFAR-10 folder in torchvision's format written
here (random images), and digits through every stage; experiment configs compose."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import run_dnc, write_cifar10
from optuna.trial import TrialState

# What these tests check is in the Optuna storage and results.json: MLflow (its store made, the
# best network logged at the end: seconds each) is tested in tests/tracking.
NO_TRACKING = "tracking.uri=null"

# A small corner of the CNN space, so that a CPU trains it in seconds.
SMALL_CNN = (
    "search_space.core.conv_layers=[4,5]",
    "search_space.core.first_channels=[8,16]",
    "search_space.core.max_channels=64",
    "search_space.core.default_channels=[8,16,32,64]",
    "search_space.core.pool_thresholds=[8,16,32]",
)


def trials_of(cwd: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    storage = f"sqlite:///{cwd}/run/optuna.db"
    out = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        out[summary.study_name] = study.get_trials(states=(TrialState.COMPLETE,))
    return out


@pytest.mark.slow
def test_one_trial_cifar10_search_from_a_torchvision_folder(tmp_path: Path):
    write_cifar10(tmp_path / "data")
    proc = run_dnc(
        tmp_path,
        "+experiment=cifar10",
        f"dataset.root={tmp_path}/data",
        *SMALL_CNN,
        "search.stages=[{name: core, kind: bo, groups: [core, train], trials: 1}]",
        "trainer.epochs=1",
        NO_TRACKING,
        check=True,
        timeout=300,
    )
    assert "cifar10-cnn" in proc.stdout
    studies = trials_of(tmp_path)
    assert list(studies) == ["cifar10-cnn/core"]
    (trial,) = studies["cifar10-cnn/core"]
    figures, cand = trial.user_attrs["figures"], trial.user_attrs["candidate"]
    assert 0 <= figures["best_val_acc"] <= 100 and figures["t_epoch"] > 0
    assert figures["numparams"] > 0 and 4 <= cand["num_conv_layers"] <= 5
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["finished"] is True and len(results["best"]) == 1
    assert results["best"][0]["candidate"] == cand


def test_experiments_compose(dnc_cli):
    for name, dataset, augment in (
        ("mnist", "mnist", "none"),
        ("fmnist", "fmnist", "flip_crop"),
        ("cifar10", "cifar10", "flip_crop"),
        ("cifar100", "cifar100", "flip_crop"),
    ):
        proc = dnc_cli(f"+experiment={name}", flags=("--cfg", "job"), check=True)
        out = proc.stdout
        assert "dnc_cnn.space.CNNSpace" in out and f"name: {dataset}\n" in out
        assert "epochs: 100" in out and f"augment: {augment}" in out
        assert "wc: 0.1" in out and "prior_states: 15" in out and "steps: 15" in out
        assert "explore: 1000" in out
    quick = dnc_cli(
        "+experiment=cifar10",
        "search=quick",
        "trainer.epochs=2",
        flags=("--cfg", "job"),
        check=True,
    ).stdout
    assert "prior_states: 15" not in quick and "epochs: 2\n" in quick
    assert "augment: flip_crop" in quick


def test_nested_overrides_reach_the_space_and_unknown_keys_are_named():
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    with initialize_config_module("dnc.conf", version_base=None):
        cfg = compose("config", overrides=["+experiment=cifar10", *SMALL_GRID])
        space = instantiate(cfg.search_space, _convert_="all")
    assert space.core.conv_layers == (4, 5) and space.arch.activations == ("relu", "elu")
    assert space.kernel_sparsity.enabled and space.kernel_sparsity.tap_choices == (9, 4)
    assert space.grid_substages()[-1] == "kernel_sparsity"


def test_an_unknown_search_space_key_is_a_clear_error(dnc_cli):
    proc = dnc_cli("search_space=cnn", "+search_space.core.conv_layer=[4,6]", timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "search_space.core.conv_layer: unknown key; valid keys: conv_layers" in proc.stderr


@pytest.mark.slow
def test_search_space_cnn_on_flat_data_is_a_clear_error(dnc_cli, tmp_path: Path):
    flat = tmp_path / "flat.npz"
    rng = np.random.default_rng(0)
    np.savez(
        flat,
        xtr=rng.random((50, 12)),
        ytr=rng.integers(0, 2, 50),
        xte=rng.random((20, 12)),
        yte=rng.integers(0, 2, 20),
    )
    proc = dnc_cli(
        "search_space=cnn",
        "dataset=npz",
        f"dataset.path={flat}",
        "search.bo.prior_states=1",
        "search.bo.steps=0",
        "trainer.epochs=1",
        timeout=120,
    )
    assert proc.returncode != 0
    assert "C x H x W" in proc.stderr and "Traceback" not in proc.stderr


# Every sub-stage of the grid, each with few variants; kernel sparsity on.
SMALL_GRID = (
    "search_space.core.conv_layers=[4,5]",
    "search_space.core.first_channels=[8,16]",
    "search_space.core.max_channels=32",
    "search_space.core.default_channels=[8,16,16,32]",
    "search_space.core.pool_thresholds=[8,16]",
    "search_space.arch.activations=[relu,elu]",
    "search_space.arch.bn_fractions=[0.5,1.0]",
    "search_space.arch.dropout_fractions=[0.0,1.0]",
    "search_space.arch.drop_ins=[0.1]",
    "search_space.arch.drop_others=[0.3]",
    "search_space.arch.shortcut_everys=[0,2]",
    "search_space.kernel_sparsity.enabled=true",
    "search_space.kernel_sparsity.tap_choices=[9,4]",
)


@pytest.mark.slow
def test_digits_cnn_search_runs_all_three_stages(tmp_path: Path):
    proc = run_dnc(
        tmp_path,
        "search_space=cnn",
        "dataset=digits",
        *SMALL_GRID,
        "search.bo.prior_states=2",
        "search.bo.steps=1",
        "search.bo.explore=50",
        "trainer.epochs=1",
        NO_TRACKING,
        check=True,
        timeout=600,
    )
    studies = trials_of(tmp_path)
    assert set(studies) == {"digits-cnn/core", "digits-cnn/arch", "digits-cnn/train"}
    assert len(studies["digits-cnn/core"]) == 3 and len(studies["digits-cnn/train"]) == 3
    grid = studies["digits-cnn/arch"]
    subs = {t.user_attrs["substage"] for t in grid}
    assert subs == {
        "activation",
        "downsampling",
        "batchnorm",
        "dropout",
        "shortcuts",
        "kernel_sparsity",
    }, proc.stdout
    assert any(t.user_attrs["candidate"]["kernel_taps"] == 4 for t in grid)
    # the train stage holds the architecture of the best candidate after the grid
    core = {
        k
        for k in studies["digits-cnn/core"][0].user_attrs["candidate"]
        if k.startswith(("num_conv", "channels_"))
    }
    arch_keys = core | {
        "activation",
        "downsample",
        "bn_fraction",
        "dropout_fraction",
        "shortcut_every",
        "kernel_taps",
    }
    train_archs = {
        json.dumps({k: t.user_attrs["candidate"].get(k) for k in sorted(arch_keys)})
        for t in studies["digits-cnn/train"]
    }
    assert len(train_archs) == 1
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["finished"] is True
