"""Shared fixtures: running ``python -m dnc`` for real in a subprocess, in a temporary folder."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import must_run
import numpy as np
import pytest
from private_postgres import cluster  # noqa: F401 - a fixture: a private PostgreSQL cluster


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Under CI a skip of a test CI must run (``must_run``) is a failure."""
    report = yield
    must_run.skip_is_failure(item, report)
    return report


# Tiny budgets that still exercise every part of a search but its pictures and MLflow model (a
# few seconds a search; the end-to-end, MLflow and browser tests check both).
TINY = (
    "search.bo.prior_states=3",
    "search.bo.steps=1",
    "trainer.epochs=2",
    "tracking.pictures=false",
    "tracking.log_model=false",
)


def run_dnc(
    cwd: Path,
    *overrides: str,
    flags: tuple[str, ...] = (),
    timeout: float = 600,
    module: str = "dnc",
    check: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m dnc FLAGS OVERRIDES`` in ``cwd``, with its run directory and MLflow store
    there (argparse wants Hydra's flags before the overrides), and without the search's
    pictures unless the overrides set ``tracking.pictures``; ``env`` adds variables."""
    args = [sys.executable, "-m", module, *flags]
    if module == "dnc" and "--help" not in flags:
        if not any(o.startswith("hydra.run.dir=") for o in overrides):
            args.append(f"hydra.run.dir={cwd}/run")
        if not any(o.startswith("tracking.pictures=") for o in overrides):
            args.append("tracking.pictures=false")
    args += overrides
    full = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def dnc_cli(tmp_path: Path):
    def run(*overrides: str, **kwargs):
        return run_dnc(tmp_path, *overrides, **kwargs)

    return run


def write_cifar10(root: Path, per_batch: int = 60, test: int = 100, seed: int = 0) -> None:
    """torchvision's CIFAR-10 layout: five training batches and a test batch, pickled dicts
    with b"data" (uint8 n x 3072, channel-major) and b"labels"."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = test if name == "test_batch" else per_batch
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh)
