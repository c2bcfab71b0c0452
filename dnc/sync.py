"""``python -m dnc.sync``: write to MLflow what a search's Optuna storage holds and MLflow
lacks (the search's run, a run per stage, a finished run per trial, with figures and curves),
e.g. after the tracking server was down for the end of a search. Safe to run again, and beside
running workers: nothing is written twice."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from dnc.cli import fail, release_stderr, run_cli


@hydra.main(config_path="pkg://dnc.conf", config_name="sync", version_base="1.3")
def main(cfg: DictConfig) -> None:
    release_stderr()
    import logging

    from dnc.config import storage_url_of
    from dnc.plugins import UserError
    from dnc.search.rescore import resolve_search
    from dnc.search.storage import open_storage
    from dnc.secrets import mask_url
    from dnc.tracking.mlflow_runs import MlflowRuns

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        if not cfg.tracking.uri:
            raise UserError("tracking.uri: give the MLflow store to write to")
        url = storage_url_of(cfg.run_dir, cfg.storage_url)
        storage = open_storage(url)
        search = resolve_search(storage, cfg.search_name)
        runs = MlflowRuns(str(cfg.tracking.uri), str(cfg.tracking.experiment))
        created, closed = runs.sync(storage, search)
    except UserError as err:
        fail(str(err))
    print(
        f"{search}: {created} trial runs written to MLflow at {mask_url(str(cfg.tracking.uri))} "
        f"(experiment {cfg.tracking.experiment}), {closed} left running closed; it now holds "
        "every finished trial of the storage"
    )


def cli() -> None:
    """``python -m dnc.sync``."""
    run_cli(main, config_name="sync")


if __name__ == "__main__":
    cli()
