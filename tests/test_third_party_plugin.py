"""Plugin packages installed with pip add a search space and a cost by name, without editing
dnc: the examples in ``examples/``, written from the README alone. The cost's normaliser is
``auto``, so a whole search shows that dnc calibrates a third party's cost."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import run_dnc
from optuna.trial import TrialState

from dnc.plugins import DataSpec

EXAMPLES = Path(__file__).parents[1] / "examples"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The two example packages installed with pip into a folder of their own (the running
    interpreter's pip, so this works in a virtual environment as well as a system Python)."""
    target, sources = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src")
    for name in ("dnc_tiny_space", "dnc_macs_cost"):  # built from copies: the repo stays clean
        shutil.copytree(EXAMPLES / name, sources / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(sources / "dnc_tiny_space"),
            str(sources / "dnc_macs_cost"),
        ],
        check=True,
        capture_output=True,
    )
    return target


def dnc(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "dnc", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={**os.environ, "PYTHONPATH": path},
    )


def test_installed_plugins_appear_in_help_and_run_a_search_with_every_trial_finished(
    site, tmp_path
):
    help_text = dnc(site, tmp_path, "--help").stdout
    assert "search_space: " in help_text and "tiny" in help_text and "macs" in help_text
    proc = dnc(
        site,
        tmp_path,
        f"hydra.run.dir={tmp_path}/run",
        "search_space=tiny",
        "cost=macs",
        "search.bo.prior_states=3",
        "search.bo.steps=1",
        "trainer.epochs=2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "digits-tiny" in proc.stdout and "failed" not in proc.stdout
    storage = f"sqlite:///{tmp_path}/run/optuna.db"
    trials = [
        t
        for name in ("core", "arch", "train")
        for t in optuna.load_study(study_name=f"digits-tiny/{name}", storage=storage).trials
    ]
    assert len(trials) >= 9 and all(t.state == TrialState.COMPLETE for t in trials)
    core = optuna.load_study(study_name="digits-tiny/core", storage=storage)
    recorded = core.user_attrs["dnc.cost"]
    assert recorded["target"] == "dnc_macs_cost.cost.Macs"
    assert recorded["kwargs"]["macs_bar"] == (64 * 32 + 32 * 10)  # the reference: width 32


def test_plugins_are_unknown_where_they_are_not_installed(tmp_path):
    proc = run_dnc(tmp_path, "search_space=tiny")
    assert proc.returncode != 0 and "search_space/tiny" in proc.stderr


def test_the_examples_pass_the_contracts():
    sys.path[:0] = [str(EXAMPLES / "dnc_tiny_space"), str(EXAMPLES / "dnc_macs_cost")]
    try:
        from dnc_macs_cost.cost import Macs
        from dnc_tiny_space.space import TinySpace

        from dnc.testing import CostEvaluatorContract, SearchSpaceContract

        space = type("T", (SearchSpaceContract,), {"make_space": lambda self: TinySpace()})()
        spec = DataSpec(input_shape=(1, 8, 8), num_classes=10)
        cand = TinySpace().reference_candidate()
        cost = type(
            "C",
            (CostEvaluatorContract,),
            {
                "make_cost": lambda self: Macs(),
                "make_model_and_candidate": lambda self: (TinySpace().build(cand, spec), cand),
            },
        )()
        for case in (space, cost):
            for name in dir(case):
                if name.startswith("test_"):
                    getattr(case, name)()
    finally:
        del sys.path[:2]
