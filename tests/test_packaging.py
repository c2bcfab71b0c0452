"""The extras install what dnc's URLs and launchers need, with the libraries dnc gets."""

from __future__ import annotations

import importlib.metadata
import re

from sqlalchemy.engine import make_url


def _extra(name: str) -> set[str]:
    marker = re.compile(rf"""extra\s*==\s*["']{name}["']""")
    return {
        re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower()
        for r in importlib.metadata.requires("dnc") or []
        if marker.search(r)
    }


def test_the_postgres_extra_installs_the_driver_sqlalchemy_picks_for_postgresql_urls():
    dialect = make_url("postgresql://dnc@localhost/dnc").get_dialect()
    assert dialect.driver in _extra("postgres")  # psycopg (3) with SQLAlchemy 2.1
    dialect.import_dbapi()  # and it is installed and importable here


def test_the_distributed_extra_brings_the_launchers():
    assert {"hydra-joblib-launcher", "hydra-submitit-launcher"} <= _extra("distributed")
    assert "hydra-ray-launcher" in _extra("ray")
