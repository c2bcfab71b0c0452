"""The command line: help, config printing, experiments, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import TINY


def test_help_lists_the_config_groups(dnc_cli):
    proc = dnc_cli(flags=("--help",), check=True)
    for group in (
        "dataset:",
        "search_space:",
        "cost:",
        "search:",
        "trainer:",
        "storage:",
        "tracking:",
        "experiment:",
    ):
        assert group in proc.stdout
    assert "digits" in proc.stdout and "mlp" in proc.stdout and "t_epoch" in proc.stdout


def test_cfg_job_prints_the_composed_config(dnc_cli):
    proc = dnc_cli("search.wc=0.5", flags=("--cfg", "job"), check=True)
    assert "dnc.train.datasets.Digits" in proc.stdout
    assert "dnc_mlp.space.MLPSpace" in proc.stdout
    assert "wc: 0.5" in proc.stdout


def test_experiment_can_be_added_with_plus(dnc_cli):
    proc = dnc_cli("+experiment=digits", flags=("--cfg", "job"), check=True)
    assert "dnc.train.datasets.Digits" in proc.stdout


def _assert_clear_error(proc, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        (("search_space=nosuchspace",), ("search_space/nosuchspace",)),
        (("dataset=nosuchdata",), ("dataset/nosuchdata",)),
        (("+experiment=nosuchexp",), ("experiment/nosuchexp",)),
        (("search.wc=-1",), ("search.wc=-1", ">= 0")),
        (("trainer.epochs=0",), ("trainer.epochs=0",)),
        (("search.nosuchkey=1",), ("nosuchkey",)),
        (("dataset=npz",), ("dataset.path",)),
        (
            ("dataset=npz", "dataset.path=/nonexistent/file.npz"),
            ("/nonexistent/file.npz", "no such file"),
        ),
        (
            ("dataset=cifar10", "dataset.root=/nonexistent/cifar"),
            ("/nonexistent/cifar", "cifar-10-batches-py", "download"),
        ),
        (("dataset=mnist", "dataset.root=/nonexistent/mnist"), ("MNIST",)),
        (("search.sampler=nosuch",), ("search.sampler",)),
        (("search.bo.model=nosuch",), ("search.bo.model", "split or loss")),
        (("search.bo.omega=0",), ("search.bo.omega=0", "positive")),
        (("trainer.device=cuda",), ("CUDA",)),
    ],
)
def test_bad_input_gives_one_clear_line(dnc_cli, tmp_path: Path, overrides, needles):
    proc = dnc_cli(*TINY, *overrides, timeout=120)
    _assert_clear_error(proc, *needles)
    assert not (tmp_path / "mlflow.db").exists() or "trial" not in proc.stdout


def test_malformed_npz_is_refused(dnc_cli, tmp_path: Path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive")
    _assert_clear_error(dnc_cli(*TINY, "dataset=npz", f"dataset.path={bad}"), "bad.npz", "npz")


def test_npz_missing_keys_is_refused(dnc_cli, tmp_path: Path):
    path = tmp_path / "keys.npz"
    np.savez(path, xtr=np.zeros((10, 4)), ytr=np.zeros(10))
    _assert_clear_error(dnc_cli(*TINY, "dataset=npz", f"dataset.path={path}"), "xte", "yte")


def test_npz_with_mismatched_lengths_is_refused(dnc_cli, tmp_path: Path):
    path = tmp_path / "mismatch.npz"
    np.savez(path, xtr=np.zeros((10, 4)), ytr=np.zeros(9), xte=np.zeros((5, 4)), yte=np.zeros(5))
    _assert_clear_error(
        dnc_cli(*TINY, "dataset=npz", f"dataset.path={path}"), "xtr has 10 rows", "ytr has 9"
    )
