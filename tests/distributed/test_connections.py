"""A search gives its PostgreSQL connections back when it ends, so that a process running many
(a Hydra multirun on the basic launcher runs its jobs one after another in one process) does
not pile up a connection pool per search until the server refuses new connections."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from dnc.search import BOSettings, StageSpec
from dnc.search.cost import NumParams
from dnc.search.storage import search_studies

sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
from searches import make_search  # noqa: E402 - the search tests' small searches


def _others(url: str) -> int:
    """Connections to the database of ``url`` but this check's own."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_searches_run_one_after_another_hold_no_connections(tmp_path, postgres_url):
    searches = []
    gc.disable()  # the search must close its pool, not the garbage collector
    try:
        for name in ("a", "b"):
            search = make_search(
                tmp_path / name,
                stages=(StageSpec("core", groups=("core",)),),
                name=name,
                cost=NumParams(),
                epochs=1,
                seed=0,
                storage=postgres_url,
                bo=BOSettings(prior_states=2, steps=0),
            )
            result = search.run()
            searches.append(search)  # alive, as a multirun's job may keep it
            assert result.finished and result.best
            assert _others(postgres_url) == 0
    finally:
        gc.enable()
    # a closed storage is still usable: it connects again
    assert search_studies(searches[0].storage, "a") == ["a/core"]
