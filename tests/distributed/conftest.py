"""Fixtures for the distributed tests: a real PostgreSQL and a real MLflow tracking server.

``source .ci/servers.sh`` starts both (``.ci/run`` does under CI) and exports their URLs:
``DNC_TEST_POSTGRES_URL`` (``postgresql://dnc:<password>@127.0.0.1:<port>/dnc_test``, a role
that may create databases) and ``DNC_TEST_MLFLOW_URI`` (``http://127.0.0.1:<port>``). Where a
variable is unset, the tests that need it skip, except under ``CI=true``, where they fail: CI
never skips the distributed tests silently. Every test here is marked ``distributed``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import must_run
import pytest

HERE = Path(__file__).parent


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI."""
    must_run.unavailable(reason, "the distributed tests")


def server_url(variable: str) -> str:
    value = os.environ.get(variable, "").strip()
    if not value:
        unavailable(f"{variable} is unset: source .ci/servers.sh to run the distributed tests")
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "distributed: needs a real PostgreSQL and MLflow server (source .ci/servers.sh)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.distributed)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database (dropped after the test) on the cluster of
    DNC_TEST_POSTGRES_URL, owned by its role."""
    with new_database() as url:
        yield url


@contextlib.contextmanager
def new_database() -> Iterator[str]:
    """The SQLAlchemy URL of a new, empty database on the cluster of DNC_TEST_POSTGRES_URL,
    owned by its role, dropped when the block ends (for a fixture of a wider scope than
    ``postgres_url``'s)."""
    base = server_url("DNC_TEST_POSTGRES_URL")
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        unavailable("psycopg is not installed: pip install 'psycopg[binary]'")
    from sqlalchemy.engine import make_url

    url = make_url(base)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"dnc_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def mlflow_uri() -> str:
    """The tracking URI of the MLflow server of DNC_TEST_MLFLOW_URI (shared by all tests: give
    experiments unique names)."""
    return server_url("DNC_TEST_MLFLOW_URI")
