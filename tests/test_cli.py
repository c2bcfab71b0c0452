"""The command line: help, config printing, experiments, and clear errors for bad input."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, run_dnc


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
    """A non-zero exit and exactly one line on stderr, ``dnc: error: ...``, with ``needles``."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err
    assert err.count("\n") == 1 and err.startswith("dnc: error: "), err
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
        (("search.bo.local_search=-1",), ("search.bo", "local_search >= 0")),
        (("trainer.device=cuda",), ("CUDA",)),
        # a misspelt key anywhere: one line naming it and the valid keys
        (
            ("search.bo.stepz=3",),
            ("search.bo.stepz: unknown key; valid keys: prior_states, steps, explore",),
        ),
        (("trainer.epochz=3",), ("trainer.epochz: unknown key; valid keys: epochs, patience",)),
        (("tracking.url=x",), ("tracking.url: unknown key; valid keys: uri, experiment",)),
        (
            ("tracking.register_model=best", "tracking.log_model=false"),
            ("tracking.register_model needs the model logged", "tracking.log_model=false"),
        ),
        (
            ("search.stages=[{name:core,kindd:grid}]",),
            ("search.stages[i].kindd: unknown key; valid keys: name, kind, groups",),
        ),
        (
            ("search_space.hidden_layer=[1,2]",),
            ("search_space.hidden_layer: unknown key", "valid keys: hidden_layers, hidden_nodes"),
        ),
        (
            ("+search_space.hidden_layer=[1,2]",),
            ("search_space.hidden_layer: unknown key", "valid keys: hidden_layers, hidden_nodes"),
        ),
        (("search.stages=[{name:x,kind:anneal}]",), ("kind='anneal': choose one of bo, grid",)),
        (("seed=notanumber",), ("seed=notanumber: give an integer",)),
        (("search.wc=abc",), ("search.wc=abc: give a number",)),
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


def test_a_misspelt_key_in_a_yaml_file_names_the_file(dnc_cli, tmp_path: Path):
    (tmp_path / "mine" / "search").mkdir(parents=True)
    (tmp_path / "mine" / "search" / "mine.yaml").write_text(
        "defaults:\n  - default\n  - _self_\nstages:\n  - name: core\n"
        "  - name: arch\n    kindd: grid\n"
    )
    proc = dnc_cli(*TINY, "search=mine", flags=(f"--config-dir={tmp_path / 'mine'}",))
    _assert_clear_error(
        proc, "search.stages[i].kindd: unknown key (in search/mine.yaml); valid keys: name, kind"
    )


FAILING = Path(__file__).parent / "failing_space.py"
# the failing space's folder on the import path, before what the environment puts there
_PATHS = (str(FAILING.parent), os.environ.get("PYTHONPATH"))
FAILING_PATH = {"PYTHONPATH": os.pathsep.join(p for p in _PATHS if p)}


def test_a_search_in_which_every_trial_fails_exits_with_the_most_common_reason(tmp_path):
    """Every trial of a space whose networks cannot be built fails: each prints one line,
    its traceback goes to the run's log, and the search stops with one error line."""
    proc = run_dnc(
        tmp_path,
        *TINY,
        "search_space._target_=failing_space.FailingMLP",
        "cost.tbar_epoch=1",
        "tracking.uri=null",
        env=FAILING_PATH,
    )
    _assert_clear_error(
        proc,
        "all 4 trials failed; the most common reason (4 of them): TypeError: unsupported operand",
        f"tracebacks in {tmp_path}/run/dnc.log",
    )
    failed = [line for line in proc.stdout.splitlines() if "failed:" in line]
    assert len(failed) == 4 and "tracebacks in" in failed[0] and "tracebacks in" not in failed[1]
    log = (tmp_path / "run" / "dnc.log").read_text()
    assert log.count("Traceback (most recent call last)") == 4


def test_a_reference_network_that_cannot_be_built_is_one_line(tmp_path):
    proc = run_dnc(
        tmp_path,
        *TINY,
        "search_space._target_=failing_space.FailingMLP",
        "tracking.uri=null",
        env=FAILING_PATH,
    )
    _assert_clear_error(
        proc,
        "the reference network of search space 'failing' failed while "
        "calibrating cost 't_epoch': TypeError: unsupported operand",
    )


def test_the_printed_resume_command_runs_with_a_deleted_key(tmp_path):
    """An override that deletes a key (``~key``, Hydra's) is printed back as typed in the
    resume command, which then runs: it resumes the finished search, stage by stage."""
    first = run_dnc(
        tmp_path, *TINY, "tracking.uri=null", "~search_space.default_hidden_nodes", check=True
    )
    hint = next(
        line.split("to resume if stopped: ", 1)[1]
        for line in first.stdout.splitlines()
        if "to resume if stopped: " in line
    )
    command = shlex.split(hint)
    assert command[:3] == ["python", "-m", "dnc"], command
    assert "~search_space.default_hidden_nodes" in command
    again = run_dnc(tmp_path, *command[3:], check=True)
    assert again.stdout.count("finished earlier: skipped") == 3, again.stdout
