"""``python -m dnc.report``: re-rank a finished search for other wc values, without training,
and draw its performance-complexity front.

    python -m dnc.report run_dir=outputs/digits-mlp/2026-11-25_14-44-23 'wc=[0,0.01,0.1,1]'
    python -m dnc.report storage_url=postgresql://... search=cifar10-cnn
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from dnc.cli import fail, release_stderr, run_cli


@hydra.main(config_path="pkg://dnc.conf", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    release_stderr()
    import logging

    from rich.console import Console
    from rich.table import Table

    from dnc.config import storage_url_of, wc_values
    from dnc.plugins import UserError
    from dnc.search.rescore import rescore, resolve_search, search_cost
    from dnc.search.storage import load, open_storage, search_studies
    from dnc.secrets import mask_url
    from dnc.tracking.front import picks_json, plot_front
    from dnc.tracking.mlflow_tracker import search_run_id

    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        url = storage_url_of(cfg.run_dir, cfg.storage_url)
        run_dir = Path(cfg.run_dir) if cfg.run_dir else None
        wcs = wc_values(cfg.wc)
        storage = open_storage(url)
        search = resolve_search(storage, cfg.search_name)
        cost = search_cost(storage, search)
        picks = rescore(storage, search, wcs, cost)
        out = (
            Path(cfg.out)
            if cfg.out
            else (run_dir or Path.cwd()) / f"front-{search.replace('/', '_')}.png"
        )
        plot_front(picks, cost, out, f"{search}: performance vs complexity")
        (out.with_suffix(".json")).write_text(picks_json(picks, search, cost))
    except UserError as err:
        fail(str(err))

    console = Console(highlight=False, width=160 if not sys.stdout.isatty() else None)
    table = Table(
        title=f"{search} re-scored ({cost.name}, {json.dumps(cost.settings())})",
        title_justify="left",
    )
    left = ("pick", "mlflow run", f"top {cfg.num_best}")
    columns = ("wc", "pick", "trial", "val acc %", "fc", "search loss", "mlflow run", left[-1])
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    for p in picks:
        top = ", ".join(f"{r.found_by}#{r.number}" for r in p.ranking[: cfg.num_best])
        table.add_row(
            f"{p.wc:g}",
            p.best.found_by,
            str(p.best.number),
            f"{p.best.figures['best_val_acc']:.2f}",
            f"{p.complexity:.4g}",
            f"{p.best.loss:+.4f}",
            p.best.run_id or "-",
            top,
        )
    console.print(table)
    console.print(f"front: {out}\npicks: {out.with_suffix('.json')}")

    if cfg.tracking.uri:
        run_id = search_run_id(load(storage, search_studies(storage, search)[0]))
        if run_id:
            from mlflow.tracking import MlflowClient

            try:
                client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
                client.get_run(run_id)
            except Exception:
                console.print(f"(the search's MLflow run is not in {cfg.tracking.uri}: not logged)")
                return
            client.log_artifact(run_id, str(out), artifact_path="report")
            client.log_artifact(run_id, str(out.with_suffix(".json")), artifact_path="report")
            console.print(f"logged to MLflow run {run_id}")
            uri = str(cfg.tracking.uri)
            if uri.startswith(("http://", "https://")):
                experiment = client.get_run(run_id).info.experiment_id
                for p in picks:
                    if p.best.run_id:
                        console.print(
                            f"wc={p.wc:g}: {mask_url(uri).rstrip('/')}/#/experiments/"
                            f"{experiment}/runs/{p.best.run_id}"
                        )


def cli() -> None:
    """``python -m dnc.report``."""
    run_cli(main, config_name="report")


if __name__ == "__main__":
    cli()
