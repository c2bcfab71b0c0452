"""Fixtures for the browser tests: a real search, the two web UIs that show it, and Chromium.

Once per session a small real search runs (``python -m dnc`` with tiny budgets, in a temporary
folder: its three stages, the grid stage ``arch`` with its sub-stages), an MLflow tracking
server serves its MLflow store and optuna-dashboard its Optuna storage, both on 127.0.0.1
(free ports), and Debian's Chromium (``/usr/bin/chromium``), driven by Playwright's sync API,
opens their pages. The servers start while the search trains (once its first stage has
begun, so the stores exist) and are stopped at the end, their whole process groups, checked
gone.

    python -m pytest tests/browser     # a minute or two, mostly the search; screenshots in
                                       # test-output/browser/

Screenshots are test output: they go to ``$DNC_TEST_OUTPUT/browser/`` if that variable is set,
else to ``test-output/browser/`` in the repository (``<test>-failure.png`` when a test fails).
Where Chromium, Playwright or optuna-dashboard is missing, the tests skip, except under
``CI=true``, where they fail: ``.ci/run`` installs Chromium and checks that they ran. Every test
here is marked ``browser`` (and ``slow``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import must_run
import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1920, "height": 1080}
WAIT_MS = 30_000
"""How long a page may take to show what a test waits for (the MLflow UI's first load takes a
few seconds on two busy cores)."""

# A real search, small: the default three stages (BO `core`, grid `arch` with its two
# sub-stages, BO `train`), 3 + 4 + 3 trials of one epoch each.
SEARCH = (
    "search.bo.prior_states=2",
    "search.bo.steps=1",
    "search.bo.explore=100",
    "trainer.epochs=1",
    "search_space.activations=[relu,tanh,elu]",
    "search_space.dropouts=[0.0,0.5]",
)
SEARCH_TIMEOUT_S = 300
SERVER_TIMEOUT_S = 120


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI."""
    must_run.unavailable(reason, "the browser tests")


def require_tools() -> None:
    """Skip (fail under CI) unless Playwright, Chromium and optuna-dashboard are installed."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[dev]'")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    if optuna_dashboard_command() is None:
        unavailable("optuna-dashboard is not installed: pip install -e '.[dev]'")


def optuna_dashboard_command() -> str | None:
    """optuna-dashboard's script beside this Python's (not a shim that may run another one)."""
    script = Path(sysconfig.get_path("scripts")) / "optuna-dashboard"
    return str(script) if script.exists() else shutil.which("optuna-dashboard")


_CALL_FAILED = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failed test's report is kept for its screenshot."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


# -- servers ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_members(pgid: int) -> list[str]:
    """The live (not zombie) processes of process group ``pgid``, as ``pid name``."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: only whether the group exists
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [f"group {pgid}"]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        state, _, pgrp = rest.split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(f"{entry.name} {name}")
    return members


class Server:
    """A web server started in its own process group (its workers included), its output in
    ``log``; ``stop`` ends whole groups."""

    def __init__(self, name: str, args: list[str], url: str, log: Path, **popen: Any) -> None:
        self.name, self.url, self.log = name, url, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **popen,
            )

    def wait_until_up(self, path: str, timeout: float = SERVER_TIMEOUT_S) -> None:
        """Until ``url + path`` answers HTTP 200 (or fail, with the server's log)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                state = (
                    f"exited with {self.proc.returncode}"
                    if self.proc.poll() is not None
                    else f"did not answer in {timeout:.0f} s"
                )
                tail = self.log.read_text(errors="replace")[-3000:]
                pytest.fail(f"{self.name} ({self.url}{path}) {state}; its log:\n{tail}")
            time.sleep(0.25)

    def send(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def left(self) -> list[str]:
        """The processes of its group still alive (none once it has stopped)."""
        self.proc.poll()  # reap the leader
        return group_members(self.proc.pid)


def stop(servers: list[Server]) -> dict[str, list[str]]:
    """TERM the servers' process groups, KILL them after 5 s: what is still alive after that."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for server in servers:
            server.send(sig)
        deadline = time.monotonic() + grace
        while any(s.left() for s in servers) and time.monotonic() < deadline:
            time.sleep(0.1)
    return {s.name: s.left() for s in servers if s.left()}


# -- the search ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Searched:
    """A finished search and the two servers that show it."""

    name: str
    tracking_uri: str
    storage_url: str
    experiment_id: str
    mlflow_url: str
    dashboard_url: str
    console: str
    run_dir: Path


def _read_until_stage(stream: IO[str], lines: list[str]) -> bool:
    """Collect the search's console output until its first stage starts (``True``) or it
    ends."""
    for line in stream:
        lines.append(line)
        if re.match(r"stage \S", re.sub(r"\x1b\[[0-9;]*m", "", line)):  # colours or none
            return True
    return False


@pytest.fixture(scope="session")
def output_dir() -> Path:
    base = os.environ.get("DNC_TEST_OUTPUT", "").strip()
    folder = (Path(base) if base else REPO / "test-output") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def searched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searched]:
    """Run the search, serve it with ``mlflow server`` and optuna-dashboard, stop them after."""
    require_tools()
    tmp = tmp_path_factory.mktemp("browser")
    tracking = f"sqlite:///{tmp}/mlflow.db"
    storage = f"sqlite:///{tmp}/optuna.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    args = [sys.executable, "-m", "dnc", *SEARCH, f"hydra.run.dir={tmp}/run"]
    args += [f"storage.url={storage}", f"tracking.uri={tracking}"]
    search = subprocess.Popen(
        args,
        cwd=tmp,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(SEARCH_TIMEOUT_S, search.kill)
    watchdog.start()
    servers: list[Server] = []

    def serve() -> None:
        mlflow_url = f"http://127.0.0.1:{free_port()}"
        servers.append(
            Server(
                "mlflow server",
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking]
                + ["--artifacts-destination", str(tmp / "artifacts"), "--workers", "1"]
                + ["--host", "127.0.0.1", "--port", mlflow_url.rsplit(":", 1)[1]],
                mlflow_url,
                tmp / "mlflow-server.log",
                cwd=tmp,
                # No telemetry (no internet), no job runner (GenAI jobs, unused).
                env={
                    **os.environ,
                    "MLFLOW_DISABLE_TELEMETRY": "true",
                    "DO_NOT_TRACK": "true",
                    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                },
            )
        )
        dashboard_url = f"http://127.0.0.1:{free_port()}"
        command = optuna_dashboard_command()
        assert command is not None
        servers.append(
            Server(
                "optuna-dashboard",
                # wsgiref: one process, which stops at once (gunicorn's takes seconds).
                [command, storage, "--server", "wsgiref", "--host", "127.0.0.1"]
                + ["--port", dashboard_url.rsplit(":", 1)[1]],
                dashboard_url,
                tmp / "optuna-dashboard.log",
                cwd=tmp,
            )
        )

    try:
        assert search.stdout is not None
        lines: list[str] = []
        # Its stores exist once its first stage has begun: the servers start meanwhile (a
        # server that found no store would create one, as the search does).
        started = _read_until_stage(search.stdout, lines)
        if started:
            serve()
        rest, _ = search.communicate()
        console = "".join(lines) + rest
        if search.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({search.returncode}):\n{console}")
        if not started:
            serve()
        servers[0].wait_until_up("/health")
        servers[1].wait_until_up("/dashboard")

        import optuna
        from mlflow.tracking import MlflowClient

        experiment = MlflowClient(tracking_uri=tracking).get_experiment_by_name("dnc")
        studies = optuna.get_all_study_names(storage)  # <search>/<stage>, one per stage
        assert experiment is not None and studies, console
        yield Searched(
            name=studies[0].rsplit("/", 1)[0],
            tracking_uri=tracking,
            storage_url=storage,
            experiment_id=str(experiment.experiment_id),
            mlflow_url=servers[0].url,
            dashboard_url=servers[1].url,
            console=console,
            run_dir=tmp / "run",
        )
    finally:
        watchdog.cancel()
        if search.poll() is None:
            search.kill()
            search.communicate()
        left = stop(servers)
        assert not left, f"processes left running after the servers were stopped: {left}"


# -- the browser ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    require_tools()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(
    request: pytest.FixtureRequest, chromium: Any, searched: Searched, output_dir: Path
) -> Iterator[Any]:
    """A fresh page (its own context: no state left by another test's visit); screenshot to
    ``<test>-failure.png`` when the test fails."""
    from playwright.sync_api import expect

    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)  # assertions wait as long as actions (default 5 s)
    page = context.new_page()
    try:
        yield page
    finally:
        if request.node.stash.get(_CALL_FAILED, False):
            try:
                page.screenshot(path=str(output_dir / f"{request.node.name}-failure.png"))
            except Exception:  # a crashed page: the test's own error says enough
                pass
        context.close()
