"""What the benchmarks share: the machine line of their JSON, a search run as a user runs it
(``python -m dnc ...`` in a process of its own, torch on one thread), and the seeds with which
a search's pick is trained again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence

import torch


def machine(note: str = "CPU only, one thread per search") -> str:
    """The processor, core count and torch version, then ``note``."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, " + (
        f"torch {torch.__version__}, {note}"
    )


def run_dnc(overrides: Sequence[str]) -> None:
    """``python -m dnc <overrides>`` with one torch thread; stops the benchmark with the
    command and the end of its stderr when it fails."""
    command = [sys.executable, "-m", "dnc", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")


def retrain_seed(search_seed: int, k: int) -> int:
    """The training seed of the ``k``-th new training of a pick of the search seeded
    ``search_seed``: a trial trains with ``search_seed * 100_003 + number``
    (``dnc.search.trial``), so no trial of that search used it, and the picks of every search
    with that seed train again with the same seeds."""
    return search_seed * 100_003 + 50_000 + k
