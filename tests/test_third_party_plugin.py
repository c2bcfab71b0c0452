"""A plugin package installed with pip adds a search space by name, without editing dnc."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_dnc

EXAMPLE = Path(__file__).parents[1] / "examples" / "dnc_tiny_space"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    """A virtual environment that sees the installed dnc and gets the example plugin.

    ``--without-pip``: the venv then uses the outer pip and setuptools; the ones ``venv``
    bundles for Python 3.11 are too old to build a pyproject-only package."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            str(EXAMPLE),
        ],
        check=True,
        capture_output=True,
    )
    return python


def test_installed_plugin_appears_in_help_and_runs_a_search(venv_python, tmp_path):
    help_text = subprocess.run(
        [str(venv_python), "-m", "dnc", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "search_space: " in help_text and "tiny" in help_text
    proc = subprocess.run(
        [
            str(venv_python),
            "-m",
            "dnc",
            f"hydra.run.dir={tmp_path}/run",
            "search_space=tiny",
            "search.bo.prior_states=3",
            "search.bo.steps=1",
            "trainer.epochs=2",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "digits-tiny" in proc.stdout
    assert proc.stdout.count("trial ") >= 4


def test_plugin_is_unknown_where_it_is_not_installed(tmp_path):
    proc = run_dnc(tmp_path, "search_space=tiny")
    assert proc.returncode != 0 and "search_space/tiny" in proc.stderr


def test_example_plugin_passes_the_contract():
    sys.path.insert(0, str(EXAMPLE))
    try:
        from dnc_tiny_space.space import TinySpace

        from dnc.testing import SearchSpaceContract

        contract = type(
            "TestTiny", (SearchSpaceContract,), {"make_space": lambda self: TinySpace()}
        )()
        for name in dir(contract):
            if name.startswith("test_"):
                getattr(contract, name)()
    finally:
        sys.path.remove(str(EXAMPLE))
