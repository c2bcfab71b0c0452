"""``python -m dnc``: compose the Hydra config, check every setting, build and run the search.

The order is the user's: every setting is checked first (in about a second, before any data is
loaded), then the data is loaded (missing or malformed data is reported), then MLflow starts,
then the search runs. A write that fails on the way (a full disk, a run folder or SQLite file
that cannot be written) ends the run with one line too, naming the file and how to resume.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dnc.cli import Interrupted, fail, release_stderr, run_cli, stop_on_signals
from dnc.write_errors import LogFileGuard, LogWriteFailed, failed_write


@hydra.main(config_path="pkg://dnc.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    release_stderr()
    import warnings

    import optuna

    from dnc.config import build

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    _quiet_libraries()
    output_dir, hint, log_file = _run_dir(cfg)
    resume = f"resume with: {hint}" if hint else "run the same command again to resume"
    log_guard = LogFileGuard.install()  # a full disk under dnc.log: one line, not a traceback each
    try:
        with stop_on_signals():
            search, tracker = build(cfg, output_dir=output_dir, resume_hint=hint, log_file=log_file)
            search.load_data()  # missing or malformed data is reported before MLflow starts
            if tracker is not None:
                import mlflow  # noqa: F401 - sets its loggers' level when imported: quiet after

                _quiet_libraries()
                tracker.connect()
            search.run()
        log_guard.check()  # a write of the log that failed in another thread
    except (Exception, LogWriteFailed) as err:
        message = _explain(err, cfg, output_dir=output_dir, log_file=log_file, resume=resume)
        if message is None:
            raise
        fail(message)
    except Interrupted as err:
        fail(
            f"interrupted by {err}; the running trial is run again on resume; {resume}",
            err.exit_code,
        )
    except KeyboardInterrupt:
        fail(f"interrupted; the running trial is run again on resume; {resume}", 130)


def _explain(
    err: BaseException,
    cfg: DictConfig,
    *,
    output_dir: str | None,
    log_file: str | None,
    resume: str,
) -> str | None:
    """The one line for an error a user can act on (``None``: a bug, Hydra reports it). A write
    that failed comes first, whatever raised it: a full disk anywhere, or the run folder or the
    storage's SQLite file that cannot be written."""
    from dnc.plugins import UserError
    from dnc.search import TrialsFailed
    from dnc.search.storage import StorageUnavailable

    failure = failed_write(err)
    if failure is not None:
        database = _sqlite_file(cfg)
        if failure.path is None and failure.sqlite:  # SQLite's errors name no file
            failure = dataclasses.replace(failure, path=database)
        elif failure.path is None and failure.disk_full:  # nor does an OSError of write()
            failure = dataclasses.replace(failure, path=output_dir)
        if failure.kind == "disk full":
            return failure.message(f"free some space, then {resume}")
        if failure.kind == "file too large":
            return failure.message(f"free some space or raise the limit, then {resume}")
        if failure.kind == "I/O error":
            return failure.message(f"free some space or check the disk, then {resume}")
        if failure.sqlite or failure.within(output_dir, database):
            return failure.message(f"make it writable, then {resume}")
    if isinstance(err, TrialsFailed):
        return f"{err}{f'; tracebacks in {log_file}' if log_file else ''}"
    if isinstance(err, StorageUnavailable):
        return f"{err}; once it is back, {resume}"
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, OmegaConfBaseException):  # e.g. a mandatory value (???) left unset
        return str(err).splitlines()[0] + "; set it on the command line (key=value)"
    return None


def _sqlite_file(cfg: DictConfig) -> str | None:
    """The database file of the search's storage when it is SQLite (else ``None``)."""
    from dnc.search.coordination import sqlite_file

    try:
        path = sqlite_file(str(cfg.storage.url))
    except Exception:  # an unresolvable URL: reported on its own
        return None
    return str(path) if path is not None else None


def _quiet_libraries() -> None:
    """Only the libraries' warnings and errors reach the console (MLflow's database set-up and
    BoTorch's numerical notices are not a search's business)."""
    for noisy in ("mlflow", "alembic", "botorch", "linear_operator"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _run_dir(cfg: DictConfig) -> tuple[str | None, str, str | None]:
    """The run directory, the command that resumes this search, and the log file."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, "", None
    from dnc.secrets import mask_url

    hc = HydraConfig.get()
    output_dir = str(hc.runtime.output_dir)
    given = OmegaConf.to_container(hc.overrides.task, resolve=False)  # ${oc.env:...} as typed
    assert isinstance(given, list)
    overrides = [  # a password in a URL is not printed: the user types it again
        shlex.quote(f"{key}={mask_url(value)}" if "://" in value else str(o))
        for o in given
        for key, _, value in [str(o).partition("=")]  # a deletion (~key) has no "="
        if key != "hydra.run.dir"
    ]
    if hc.mode == RunMode.MULTIRUN and not any(o.startswith("storage.url=") for o in overrides):
        overrides.append(shlex.quote(f"storage.url={mask_url(cfg.storage.url)}"))  # the shared one
    hint = " ".join(["python -m dnc", *overrides, f"hydra.run.dir={shlex.quote(output_dir)}"])
    log_file = _log_file()
    return output_dir, hint, log_file


def _log_file() -> str | None:
    """The file Hydra's job logging writes to (where failed trials' tracebacks go)."""
    for handler in logging.getLogger().handlers:
        path: Any = getattr(handler, "baseFilename", None)
        if path:
            return str(path)
    return None


def cli() -> None:
    """``python -m dnc`` / the ``dnc`` command."""
    run_cli(main)


if __name__ == "__main__":
    cli()
