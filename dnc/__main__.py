"""``python -m dnc``: compose the Hydra config, check every setting, build and run the search.

The order is the user's: every setting is checked first (in about a second, before any data is
loaded), then the data is loaded (missing or malformed data is reported), then MLflow starts,
then the search runs.
"""

from __future__ import annotations

import logging
import shlex
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dnc.cli import fail, release_stderr, run_cli


@hydra.main(config_path="pkg://dnc.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    release_stderr()
    import warnings

    import optuna

    from dnc.config import build
    from dnc.plugins import UserError
    from dnc.search import TrialsFailed

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    _quiet_libraries()
    output_dir, hint, log_file = _run_dir(cfg)
    try:
        search, tracker = build(cfg, output_dir=output_dir, resume_hint=hint, log_file=log_file)
        search.load_data()  # missing or malformed data is reported before MLflow starts
        if tracker is not None:
            import mlflow  # noqa: F401 - it sets its loggers' level when imported: quiet them after

            _quiet_libraries()
            tracker.connect()
        search.run()
    except TrialsFailed as err:
        fail(f"{err}{f'; tracebacks in {log_file}' if log_file else ''}")
    except UserError as err:
        fail(str(err))
    except OmegaConfBaseException as err:  # e.g. a mandatory value (???) left unset
        fail(str(err).splitlines()[0] + "; set it on the command line (key=value)")
    except KeyboardInterrupt:
        fail("interrupted; run the same command again to resume the search")


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
        shlex.quote(f"{key}={mask_url(value)}" if "://" in value else f"{key}={value}")
        for key, _, value in (str(o).partition("=") for o in given)
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
