"""The tests CI must run (``must_run``) skip on a machine without their servers, and fail under
``CI=true``, so that CI never passes without them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]
TEST = "tests/distributed/test_servers.py::test_postgres_wants_the_password"


def _pytest(ci: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DNC_TEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
        cwd=REPO,
        env={**env, "CI": ci},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_distributed_test_without_its_server_fails_under_ci():
    proc = _pytest("true")  # without CI=true it skips: each developer sees that
    assert proc.returncode == 1, proc.stdout
    assert "CI=true: the distributed tests must run" in proc.stdout
    assert "DNC_TEST_POSTGRES_URL is unset" in proc.stdout
