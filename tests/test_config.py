"""Every shipped configuration composes **and instantiates** (without training): every
experiment, and every option of every config group, through ``dnc.config.build``; and the
typed groups carry one set of defaults."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from dnc.config import SCHEMAS, build
from dnc.plugins import CostEvaluator, Dataset, SearchSpace
from dnc.search import Search, SearchSettings, StorageSettings
from dnc.train.settings import TrainerSettings

GROUPS = ("dataset", "search_space", "cost", "search", "trainer", "storage", "tracking")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """What the image datasets' ``check()`` looks for (building loads nothing)."""
    root = tmp_path_factory.mktemp("data")
    for folder in ("MNIST/raw", "FashionMNIST/raw", "cifar-10-batches-py", "cifar-100-python"):
        (root / folder).mkdir(parents=True)
    np.savez(
        root / "d.npz", xtr=np.zeros((4, 2)), ytr=np.zeros(4), xte=np.zeros((2, 2)), yte=np.zeros(2)
    )
    return root


def options(group: str) -> list[str]:
    with initialize_config_module("dnc.conf", version_base="1.3"):
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


def compose_and_build(tmp: Path, root: Path, *overrides: str) -> Search:
    extra = [f"storage.url=sqlite:///{tmp}/optuna.db", "tracking.uri=null"]
    with initialize_config_module("dnc.conf", version_base="1.3"):
        dataset = list(compose("config", overrides=list(overrides)).dataset.keys())
        extra += [f"dataset.root={root}"] if "root" in dataset else []
        extra += [f"dataset.path={root / 'd.npz'}"] if "path" in dataset else []
        cfg = compose("config", overrides=[*overrides, *extra], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        search, tracker = build(cfg)
    assert tracker is None
    return search


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), group
    assert {"digits", "npz", "mnist", "fmnist", "cifar10", "cifar100", "morse"} <= set(
        options("dataset")
    )
    assert {"mlp", "cnn", "sparse_mlp"} <= set(options("search_space"))
    assert {"t_epoch", "numparams", "hardware"} <= set(options("cost"))


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_of_every_group_builds(group, tmp_path, data_root):
    for option in options(group):
        search = compose_and_build(tmp_path, data_root, f"{group}={option}")
        assert isinstance(search.space, SearchSpace)
        assert isinstance(search.dataset, Dataset)
        assert isinstance(search.cost, CostEvaluator)
        assert isinstance(search.settings, SearchSettings)
        assert isinstance(search.trainer, TrainerSettings)
        assert isinstance(search.storage_settings, StorageSettings)
        assert search.stages and search.settings.name


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_builds(experiment, tmp_path, data_root):
    search = compose_and_build(tmp_path, data_root, f"+experiment={experiment}")
    assert search.settings.name == f"{search.dataset.name}-{search.space.name}"


def test_the_yaml_files_repeat_no_default():
    """One source of defaults: no typed group's YAML sets a value equal to its dataclass
    default (they carry only what differs)."""
    conf = Path(__file__).parents[1] / "conf"
    typed = {"search": SearchSettings, "trainer": TrainerSettings, "storage": StorageSettings}
    for group, cls in typed.items():
        defaults = {f.name: f.default for f in fields(cls)}
        for path in (conf / group).glob("*.yaml"):
            node = OmegaConf.load(path)
            items = OmegaConf.to_container(node, resolve=False).items() if node else ()
            for key, value in items:
                if key != "defaults" and key in defaults:
                    assert value != defaults[key], f"{path.name} repeats {group}.{key}={value}"
    assert set(SCHEMAS) >= {
        "SearchSettings",
        "StageSpec",
        "BOSettings",
        "TrainerSettings",
        "StorageSettings",
        "TrackingSettings",
    }


CHECK = """
import sys
from hydra import compose, initialize_config_module
from dnc.config import build
from dnc.plugins import UserError
with initialize_config_module("dnc.conf", version_base="1.3"):
    cfg = compose("config", overrides=sys.argv[1:] + ["storage.url=sqlite://", "tracking.uri=null"])
try:
    build(cfg)
except UserError as err:
    print("error:", err)
print("torch imported:", "torch" in sys.modules)
"""


@pytest.mark.parametrize(
    "overrides",
    [
        ("dataset=npz", "dataset.path=/nonexistent.npz"),
        ("search_space.hidden_layers=[3,1]",),
        ("search_space=cnn", "search_space.core.conv_layers=[5,4]"),
        ("search_space=sparse_mlp", "search_space.sparsity.density=[0.5,0.1]"),
        ("cost=hardware", "cost.metric=speed"),
        ("trainer.epochs=0",),
        ("trainer.augment=blur",),
    ],
)
def test_bad_settings_are_found_before_torch_is_imported(overrides):
    """What makes ``python -m dnc`` report them in about a second (``bench/cli_errors.py``
    times it): torch, most of the start-up time, loads only once every setting is checked."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", CHECK, *overrides], capture_output=True, text=True, check=True
    ).stdout
    assert "error: " in out and "torch imported: False" in out, out


def test_the_worker_index_is_checked_and_spreads_workers_over_gpus(monkeypatch):
    import torch
    from omegaconf import OmegaConf

    from dnc.config import worker_index
    from dnc.plugins import UserError
    from dnc.train.settings import TrainerSettings

    assert worker_index(OmegaConf.create({})) is None
    assert worker_index(OmegaConf.create({"worker": 3})) == 3
    for bad in (-1, "a", True, 1.5):
        with pytest.raises(UserError, match="worker="):
            worker_index(OmegaConf.create({"worker": bad}))
    auto = TrainerSettings()
    assert auto.for_worker(None) is auto
    if not torch.cuda.is_available():
        assert auto.for_worker(5).device == "auto"  # no GPU: trains where auto says (the CPU)
    # a machine with 4 GPUs (which this one is not): worker i takes cuda:i % 4
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [auto.for_worker(i).device for i in (0, 1, 5)] == ["cuda:0", "cuda:1", "cuda:1"]
    assert TrainerSettings(device="cpu").for_worker(2).device == "cpu"  # an explicit device holds


@pytest.mark.parametrize(
    ("launcher", "expected"),
    [("local", "JoblibLauncher"), ("slurm", "SlurmLauncher")],
)
def test_the_shipped_launcher_configs_compose(dnc_cli, launcher, expected):
    proc = dnc_cli(
        f"hydra/launcher={launcher}", "+worker=0", flags=("--cfg", "hydra", "-p", "hydra.launcher")
    )
    assert proc.returncode == 0, proc.stderr
    assert expected in proc.stdout
    if launcher == "slurm":
        assert "gpus_per_task: 1" in proc.stdout and "max_num_timeout: 3" in proc.stdout
