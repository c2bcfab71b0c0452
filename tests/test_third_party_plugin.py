"""Plugin packages installed with pip add a search space and a cost by name, without editing
dnc: the examples in ``examples/``, written from the README alone. The cost's normaliser is
``auto``, so a whole search shows that dnc calibrates a third party's cost."""

from __future__ import annotations

import importlib.metadata
import os
import re
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


def _build_isolation() -> list[str]:
    """pip's flag to build the examples with the setuptools installed here, where it can (70.1
    or later: no ``wheel`` needed; they ask for 64 or later); an isolated build environment
    would first install setuptools anew, seconds each time."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return []
    major, minor = (int(x) for x in re.findall(r"\d+", version)[:2])
    return ["--no-build-isolation"] if (major, minor) >= (70, 1) else []


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
            *_build_isolation(),
            "--target",
            str(target),
            str(sources / "dnc_tiny_space"),
            str(sources / "dnc_macs_cost"),
        ],
        check=True,
        capture_output=True,
    )
    return target


def _dnc(site: Path, cwd: Path, *args: str) -> subprocess.Popen[str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [sys.executable, "-m", "dnc", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
    )


def _output(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Its stdout and stderr once it exits; killed if it runs past 10 minutes."""
    try:
        return proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_installed_plugins_appear_in_help_and_run_a_search_with_every_trial_finished(
    site, tmp_path
):
    search = _dnc(  # the search and --help side by side: each is seconds of imports
        site,
        tmp_path,
        f"hydra.run.dir={tmp_path}/run",
        "search_space=tiny",
        "cost=macs",
        "search.bo.prior_states=3",
        "search.bo.steps=1",
        "trainer.epochs=2",
        "tracking.uri=null",  # MLflow is tested in tests/tracking; here, the storage
    )
    try:
        help_text, _ = _output(_dnc(site, tmp_path, "--help"))
        out, err = _output(search)
    finally:
        if search.poll() is None:  # the test failed first
            search.kill()
            search.communicate()
    assert "search_space: " in help_text and "tiny" in help_text and "macs" in help_text
    assert search.returncode == 0, err
    assert "digits-tiny" in out and "failed" not in out
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
    try:  # a user who followed the README's plugin section has it installed here
        importlib.metadata.distribution("dnc-tiny-space")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        pytest.skip("the example dnc-tiny-space is installed in this environment")
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
