"""Tests that need something this machine may lack (a PostgreSQL, an MLflow server, Chromium):
they skip where it is missing, except under ``CI=true``, where they fail. ``.ci/run`` installs
and starts what they need, and CI never skips them silently.

``unavailable`` is the skip; ``tests/conftest.py`` also fails any other skip (an
``importorskip``, a ``skipif``) of a test marked with one of ``MARKERS`` under CI.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

MARKERS = {
    "distributed": "the distributed tests",
    "browser": "the browser tests",
}
"""Markers of the tests CI must run, and what the message calls them."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def unavailable(reason: str, tests: str) -> NoReturn:
    """Skip the test, or fail it under CI (``tests``: what must run, in the message)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: {tests} must run)", pytrace=False)
    pytest.skip(reason)


def skip_is_failure(item: pytest.Item, report: pytest.TestReport) -> None:
    """Under CI, turn the skip of a test marked with one of ``MARKERS`` into a failure."""
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    marked = [MARKERS[m.name] for m in item.iter_markers() if m.name in MARKERS]
    if marked:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where {marked[0]} must run: {reason}"
