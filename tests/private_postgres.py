"""A PostgreSQL cluster of a test's own, to stop and start again at will (a database server that
restarts under the workers): ``initdb`` and ``pg_ctl`` on a free loopback port, as
``.ci/servers.sh`` starts the shared one (never stopped by a test: MLflow's store lives there).

The binaries are taken from PATH or ``/usr/lib/postgresql/*/bin`` (the newest). Where they or
psycopg are missing the tests skip, except under ``CI=true``, where they fail. ``initdb`` refuses
to run as root: as root the cluster runs as the user ``postgres`` (created if missing), in a
folder under ``/tmp`` that it can reach.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import must_run
import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI."""
    must_run.unavailable(reason, "the storage outage tests")


def postgres_bin() -> Path:
    """The folder of ``initdb``, ``pg_ctl`` and ``postgres``."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) for x in p.parent.name.split(".") if x.isdigit()],
    )
    candidates += reversed(versions)
    for folder in candidates:
        if all((folder / b).exists() for b in ("initdb", "pg_ctl", "postgres")):
            return folder
    unavailable("no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A throwaway cluster: ``start``, ``stop`` (fast shutdown: sessions are cut, as in a
    server restart), ``start`` again on the same port; ``new_database()`` gives the URL of a
    fresh database owned by a role with a password (``dnc``).

    Example:
        >>> pg = PostgresCluster.create()
        >>> url = pg.new_database()
        >>> pg.stop(); pg.start()
        >>> pg.remove()
    """

    def __init__(self, root: Path, bin_dir: Path, owner: str | None) -> None:
        self.root = root
        self.bin = bin_dir
        self.owner = owner  # run the server as this user (we are root), or as ourselves
        self.data = root / "data"
        self.port = _free_port()
        self.password = secrets.token_hex(8)

    @classmethod
    def create(cls) -> PostgresCluster:
        bin_dir = postgres_bin()
        try:
            import psycopg  # noqa: F401
        except ImportError:
            unavailable("psycopg is not installed: pip install 'psycopg[binary]'")
        owner = "postgres" if os.geteuid() == 0 else None
        if owner and subprocess.run(["id", "-u", owner], capture_output=True).returncode:
            subprocess.run(  # as .ci/servers.sh does: initdb refuses root
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", owner],
                check=True,
            )
        root = Path(tempfile.mkdtemp(prefix="dnc-pg-", dir="/tmp" if owner else None))
        if owner:
            root.chmod(0o711)
            shutil.chown(root, user=owner)
        cluster = cls(root, bin_dir, owner)
        cluster._run(
            "initdb", "-D", str(cluster.data), "-U", "postgres", "-E", "UTF8", "--no-locale",
            "--no-sync", "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        cluster.start()
        cluster._sql(f"CREATE ROLE dnc LOGIN CREATEDB PASSWORD '{cluster.password}'")
        return cluster

    def _run(self, program: str, *args: str) -> None:
        cmd = [str(self.bin / program), *args]
        if self.owner:
            cmd = ["runuser", "-u", self.owner, "--", *cmd]
        proc = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.root / "server.log"
            server = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}{server}")

    def _sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres",
            autocommit=True,
        ) as conn:  # fmt: skip
            conn.execute(statement)  # type: ignore[call-overload]

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "-o", options, "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def new_database(self) -> str:
        name = f"dnc_{secrets.token_hex(4)}"
        self._sql(f"CREATE DATABASE {name} OWNER dnc")
        return f"postgresql://dnc:{self.password}@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster for the tests of one module, which they may stop and
    start (``tests/conftest.py`` makes it a fixture of every test)."""
    pg = PostgresCluster.create()
    try:
        yield pg
    finally:
        pg.remove()
