"""``python -m dnc.transfer``: the transfer study of Deep-n-Cheap. A finished search's pick for
each ``wc`` (the source, e.g. CIFAR-10's) is retrained on another finished search's data (the
target, e.g. CIFAR-100's) and compared with the target's own pick for that ``wc`` on the
target's performance-complexity front, under the target's cost normaliser.

    python -m dnc.transfer source.run_dir=outputs/cifar10-cnn/... \\
        target.run_dir=outputs/cifar100-cnn/... 'wc=[0,0.1,1]'
    python -m dnc.transfer source.storage_url=postgresql://... source.search_name=cifar10-cnn \\
        target.run_dir=... dataset=cifar100 dataset.root=/data trainer.device=cuda:1

The target's run folder holds Hydra's saved config (``.hydra/config.yaml``): the dataset,
search space, trainer and seed come from there, so the transferred picks train as the target's
own trials did (the same validation split); ``dataset=`` / ``search_space=`` replace a whole
group, ``trainer.KEY=`` and ``seed=`` a single setting.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dnc.cli import fail, release_stderr, run_cli

if TYPE_CHECKING:
    from dnc.plugins import CostEvaluator, Dataset, SearchSpace
    from dnc.search.rescore import Pick
    from dnc.search.storage import RetryingStorage
    from dnc.search.transfer import TransferRow
    from dnc.tracking.settings import TrackingSettings
    from dnc.train.settings import TrainerSettings


@dataclass
class Side:
    """One of the two finished searches: its storage, name, run folder and what it recorded."""

    which: str  # source / target
    url: str
    storage: RetryingStorage
    search: str
    run_dir: Path | None
    settings: dict[str, Any]
    cost: CostEvaluator


@hydra.main(config_path="pkg://dnc.conf", config_name="transfer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    release_stderr()
    import logging
    import warnings

    import optuna

    from dnc.config import typed, wc_values
    from dnc.plugins import UserError
    from dnc.search.transfer import check_comparable, transfer
    from dnc.secrets import mask_url
    from dnc.tracking.settings import TrackingSettings
    from dnc.tracking.transfer_front import plot_transfer, transfer_json

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    console = _console()
    try:
        tracking = typed(cfg.tracking, TrackingSettings)
        wcs = wc_values(cfg.wc)
        source, target = _side(cfg.source, "source"), _side(cfg.target, "target")
        check_comparable(source.settings, target.settings, source.cost, target.cost)
        space, dataset, trainer, seed = _target_setup(cfg, target)
        source_picks, target_picks = _picks(source, wcs), _picks(target, wcs)
        data = dataset.load(seed)
        data.validate()
        notes = _notes(target, trainer, seed, bool(cfg.retrain_native))
        for note in notes:
            console.print(f"note: {note}")

        def on_train(role: str, candidate: Any) -> None:
            whose = "the source's" if role == "source" else "the target's own"
            console.print(f"training {whose} pick on {data.name}: {space.describe(candidate)}")

        rows = transfer(
            source_picks,
            target_picks,
            space=space,
            data=data,
            cost=target.cost,
            trainer=trainer,
            seed=seed,
            retrain_native=bool(cfg.retrain_native),
            on_train=on_train,
        )
        stem = f"transfer-{source.search}-to-{target.search}".replace("/", "_")
        out = Path(cfg.out) if cfg.out else (target.run_dir or Path.cwd()) / f"{stem}.png"
        title = f"{source.search} picks on {target.search}'s front ({data.name})"
        try:
            plot_transfer(rows, target_picks[0].ranking, target.cost, out, title)
        except OSError as err:
            raise UserError(f"out={str(out)!r}: cannot write the plot ({err.strerror})") from err
        header = {
            "source": {
                "search": source.search,
                "storage": mask_url(source.url),
                "cost": {"name": source.cost.name, **source.cost.settings()},
            },
            "target": {"search": target.search, "storage": mask_url(target.url)},
            "dataset": data.name,
            "space": space.name,
            "trainer": asdict(trainer),
            "seed": seed,
            "retrain_native": bool(cfg.retrain_native),
            "notes": notes,
        }
        try:
            out.with_suffix(".json").write_text(transfer_json(rows, target.cost, header))
        except OSError as err:
            raise UserError(f"{out.with_suffix('.json')}: cannot write ({err.strerror})") from err
        _print_table(console, rows, source, target, data.name)
        console.print(f"front: {out}\nrows: {out.with_suffix('.json')}")
        if tracking.uri:
            _log(console, tracking, rows, source, target, header, wcs, out)
    except UserError as err:
        fail(str(err))
    except KeyboardInterrupt:
        fail("interrupted; nothing more was written", 130)


def _picks(side: Side, wcs: list[float]) -> list[Pick]:
    """Each ``wc``'s pick of ``side``'s search, by its own cost (no training)."""
    from dnc.plugins import UserError
    from dnc.search.rescore import rescore

    try:
        return rescore(side.storage, side.search, wcs, side.cost)
    except UserError as err:
        raise UserError(f"{side.which}: {err}") from err


def _side(ref: DictConfig, which: str) -> Side:
    """The finished search ``ref`` names, with its recorded settings and cost."""
    from dnc.config import storage_url_of
    from dnc.plugins import UserError
    from dnc.search.rescore import search_cost
    from dnc.search.storage import open_storage, searches_in
    from dnc.search.transfer import recorded_settings

    if not ref.run_dir and not ref.storage_url:
        raise UserError(
            f"give {which}.run_dir=<the {which} search's run folder> or "
            f"{which}.storage_url=<its Optuna storage>"
        )
    try:
        url = storage_url_of(ref.run_dir, ref.storage_url)
    except UserError as err:
        text = str(err)
        raise UserError(
            f"{which}.{text}" if text.startswith("run_dir=") else f"{which}: {text}"
        ) from None
    storage = open_storage(url)
    found = searches_in(storage)
    name = ref.search_name
    if name is None and len(found) != 1:
        raise UserError(
            f"{which}: the storage holds {len(found)} searches ({', '.join(found) or 'none'}); "
            f"name one with {which}.search_name=NAME"
        )
    if name is not None and name not in found:
        raise UserError(
            f"{which}.search_name={name!r} is not in the storage; it holds: "
            f"{', '.join(found) or 'none'}"
        )
    search = name or found[0]
    try:
        cost = search_cost(storage, search)
    except UserError as err:
        raise UserError(f"{which}: {err}") from err
    run_dir = Path(ref.run_dir) if ref.run_dir else None
    return Side(which, url, storage, search, run_dir, recorded_settings(storage, search), cost)


def _log(
    console: Any,
    tracking: TrackingSettings,
    rows: Sequence[TransferRow],
    source: Side,
    target: Side,
    header: dict[str, Any],
    wcs: list[float],
    out: Path,
) -> None:
    """Log the study to a run of its own, nested under the target search's MLflow run."""
    from dnc.search.storage import load, search_studies
    from dnc.tracking.mlflow_runs import search_run_id
    from dnc.tracking.transfer_run import log_transfer

    first = load(target.storage, search_studies(target.storage, target.search)[0])
    assert tracking.uri
    logged = log_transfer(
        tracking.uri,
        tracking.experiment,
        parent_run_id=search_run_id(first),
        name=f"transfer {source.search} -> {target.search}",
        tags={"dnc.search": target.search, "dnc.source_search": source.search},
        params={**header, "wc": wcs, "source": source.search, "target": target.search},
        rows=rows,
        files=[out, out.with_suffix(".json")],
    )
    if logged.nested:
        where = "nested under the target search's run"
    else:
        where = f"in experiment {tracking.experiment!r} (the store lacks the target search's run)"
    console.print(f"logged to MLflow run {logged.run_id} {where}")


def _target_setup(
    cfg: DictConfig, target: Side
) -> tuple[SearchSpace, Dataset, TrainerSettings, int]:
    """The target's search space, dataset, trainer and seed: from its run folder's saved
    config, with what the command line replaces; checked against what the target recorded."""
    from dnc.config import instantiate, typed
    from dnc.plugins import Dataset, SearchSpace, UserError
    from dnc.train.settings import TrainerSettings

    saved = _saved_config(target.run_dir)
    where = f"{target.run_dir}/.hydra/config.yaml" if saved is not None else ""

    def group(name: str) -> DictConfig:
        node = cfg.get(name)
        if node is None and saved is not None:
            node = saved.get(name)
        if node is None:
            raise UserError(
                f"the target's {name} is unknown: give target.run_dir=<a run folder of the target "
                f"search> (its .hydra/config.yaml) or {name}=NAME"
            )
        return node  # type: ignore[no-any-return]

    space = instantiate(group("search_space"), SearchSpace, "search_space")
    space.check()
    dataset = instantiate(group("dataset"), Dataset, "dataset")
    dataset.check()
    for kind, mine, recorded in (
        ("search space", space.name, target.settings.get("space")),
        ("dataset", dataset.name, target.settings.get("dataset")),
    ):
        if recorded and mine != recorded:
            raise UserError(
                f"{kind} {mine!r} is not the target search's ({recorded!r}); its own picks were "
                f"trained on that: give its {kind}"
            )
    given = _overridden("trainer")
    node = cfg.trainer
    base = saved.get("trainer") if saved is not None else None
    try:
        if base is None:  # no saved config: the target's recorded epochs
            if "epochs" not in given and target.settings.get("epochs"):
                node.epochs = int(target.settings["epochs"])
        else:
            for key, value in base.items():
                if key not in given:
                    node[key] = value
    except OmegaConfBaseException as err:
        raise UserError(f"{where}: trainer: {str(err).splitlines()[0]}") from err
    trainer = typed(node, TrainerSettings)
    seed = cfg.seed if cfg.seed is not None else int(target.settings.get("seed", 0))
    return space, dataset, trainer, int(seed)


def _saved_config(run_dir: Path | None) -> DictConfig | None:
    """Hydra's saved config of the run folder ``run_dir`` (``None`` when it has none)."""
    from dnc.plugins import UserError

    path = run_dir / ".hydra" / "config.yaml" if run_dir else None
    if path is None or not path.is_file():
        return None
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:
        raise UserError(f"{path}: not a readable config ({str(err).splitlines()[0]})") from err
    return loaded if isinstance(loaded, DictConfig) else None


def _overridden(group: str) -> set[str]:
    """The keys of ``group`` the command line sets (``trainer.epochs=3``: ``epochs``)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    keys = (str(o).split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task)
    return {k.split(".")[1] for k in keys if k.startswith(f"{group}.")}


def _notes(target: Side, trainer: TrainerSettings, seed: int, retrain_native: bool) -> list[str]:
    """Where the transferred picks train otherwise than the target's own did."""
    if retrain_native:
        return []
    notes = []
    recorded = target.settings.get("epochs")
    if recorded is not None and int(recorded) != trainer.epochs:
        notes.append(
            f"trainer.epochs={trainer.epochs} but the target search trained {recorded}: its own "
            "picks keep their recorded figures (retrain_native=true trains them alike)"
        )
    if "seed" in target.settings and int(target.settings["seed"]) != seed:
        notes.append(
            f"seed={seed} but the target search used {target.settings['seed']}: another "
            "validation split than its own picks' (retrain_native=true trains them alike)"
        )
    if target.cost.name == "t_epoch":
        notes.append(
            "t_epoch is measured on this machine now; the target's own picks keep the times "
            "recorded by the search (retrain_native=true measures them alike)"
        )
    return notes


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, width=170 if not sys.stdout.isatty() else None)


def _print_table(
    console: Any, rows: Sequence[TransferRow], source: Side, target: Side, data_name: str
) -> None:
    from rich.table import Table

    cost = target.cost
    table = Table(
        title=f"{source.search} picks trained on {data_name}, beside {target.search}'s own "
        f"({cost.name}, {json.dumps(cost.settings())})",
        title_justify="left",
    )
    columns = (
        "wc",
        "source pick",
        "transferred val acc %",
        "fc",
        "search loss",
        "target's pick",
        "own val acc %",
        "fc",
        "search loss",
        "better",
    )
    for col in columns:
        table.add_column(col, justify="left" if "pick" in col or col == "better" else "right")
    for r in rows:
        moved, own = r.transferred, r.native
        table.add_row(
            f"{r.wc:g}",
            f"{r.source.found_by} #{r.source.number}",
            moved.failure or f"{moved.best_val_acc:.2f}",
            "-" if moved.failure else f"{moved.complexity:.4g}",
            "-" if moved.failure else f"{moved.loss:+.4f}",
            f"{r.native_pick.found_by} #{r.native_pick.number}" + (" (retrained)" * r.retrained),
            own.failure or f"{own.best_val_acc:.2f}",
            "-" if own.failure else f"{own.complexity:.4g}",
            "-" if own.failure else f"{own.loss:+.4f}",
            "transferred" if r.transferred_better else "own",
        )
    console.print(table)


def cli() -> None:
    """``python -m dnc.transfer``."""
    run_cli(main, config_name="transfer")


if __name__ == "__main__":
    cli()
