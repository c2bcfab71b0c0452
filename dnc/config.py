"""The typed configuration of ``python -m dnc``: Hydra schemas made of dnc's own settings
dataclasses, and ``build``, which turns a composed config into a ready ``Search``.

``DncConfig`` is registered in Hydra's ``ConfigStore`` as ``dnc_schema`` and heads the defaults
list of ``conf/config.yaml``, so every file of the ``search``, ``trainer``, ``storage`` and
``tracking`` groups (yours too) is merged onto ``SearchSettings``, ``TrainerSettings``,
``StorageSettings`` and ``TrackingSettings``: a misspelt key is an error, a value of the wrong
type is an error, and the YAML files carry only what differs from the dataclass defaults. The
plugin groups (``dataset``, ``search_space``, ``cost``) are checked against the constructor
their ``_target_`` names when instantiated.

This is the only module (with the entry points) that sees a ``DictConfig``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING, DictConfig, OmegaConf

from dnc.bo.settings import BOSettings
from dnc.plugins import UserError
from dnc.search.settings import SearchSettings, StageSpec, StorageSettings, WarmStartSettings
from dnc.tracking.settings import TrackingSettings
from dnc.train.settings import TrainerSettings

if TYPE_CHECKING:
    from dnc.search.search import Search
    from dnc.tracking.mlflow_tracker import MlflowTracker


def _schema(cls: type) -> Any:
    """A default for a typed group: the class itself, so that OmegaConf reads its field
    defaults without constructing (and validating) an instance at every Hydra start."""
    return field(default_factory=lambda: cls)


@dataclass
class DncConfig:
    """The whole configuration: three plugin groups (free-form, each with a ``_target_``),
    four typed groups, and the seed. Only a schema: ``build`` converts each group."""

    dataset: Any = MISSING
    search_space: Any = MISSING
    cost: Any = MISSING
    search: SearchSettings = _schema(SearchSettings)
    trainer: TrainerSettings = _schema(TrainerSettings)
    storage: StorageSettings = _schema(StorageSettings)
    tracking: TrackingSettings = _schema(TrackingSettings)
    seed: int = 0


@dataclass
class ReportConfig:
    """``python -m dnc.report``: which search (``run_dir`` or ``storage_url``, and
    ``search_name`` when the storage holds several), the ``wc`` values to re-score for (a
    number or a list), how many candidates to list per ``wc`` (``num_best``), where the front
    goes (``out``) and the MLflow store to log it to (``tracking``)."""

    run_dir: str | None = None
    storage_url: str | None = None
    search_name: str | None = None  # not ``search``: that is the config group of python -m dnc
    wc: Any = field(default_factory=lambda: [0, 0.01, 0.1, 1, 10])
    num_best: int = 3
    out: str | None = None
    tracking: TrackingSettings = _schema(TrackingSettings)


@dataclass
class SearchRef:
    """A finished search for ``python -m dnc.transfer``: its run folder ``run_dir`` (its
    ``optuna.db``, and Hydra's ``.hydra/config.yaml``, which says how it loaded its data and
    trained), or its ``storage_url``, or both (a shared storage, and one worker's run folder
    for its config); ``search_name`` when the storage holds several searches."""

    run_dir: str | None = None
    storage_url: str | None = None
    search_name: str | None = None


@dataclass
class TransferConfig:
    """``python -m dnc.transfer``: retrain the ``source`` search's pick for each ``wc`` on the
    ``target`` search's data, beside the target's own picks. The target's dataset, search
    space, trainer and seed come from its run folder's saved config; ``dataset`` and
    ``search_space`` (config groups) replace its dataset or space, ``trainer.KEY=VALUE`` and
    ``seed`` replace single settings. ``retrain_native`` retrains the target's own picks
    too, alike (else their recorded figures stand); ``out`` names the PNG (a JSON beside it);
    ``tracking`` the MLflow store (a run nested under the target search's run)."""

    source: SearchRef = _schema(SearchRef)
    target: SearchRef = _schema(SearchRef)
    wc: Any = field(default_factory=lambda: [0, 0.01, 0.1, 1, 10])
    dataset: Any = None
    search_space: Any = None
    trainer: TrainerSettings = _schema(TrainerSettings)
    seed: int | None = None
    retrain_native: bool = False
    out: str | None = None
    tracking: TrackingSettings = _schema(TrackingSettings)


@dataclass
class SyncConfig:
    """``python -m dnc.sync``: which search (``run_dir`` or ``storage_url``, and
    ``search_name`` when the storage holds several) to write to which MLflow store
    (``tracking``)."""

    run_dir: str | None = None
    storage_url: str | None = None
    search_name: str | None = None  # not ``search``: that is the config group of python -m dnc
    tracking: TrackingSettings = _schema(TrackingSettings)


def storage_url_of(run_dir: str | None, storage_url: str | None) -> str:
    """The storage of ``python -m dnc.report`` and ``dnc.sync``: ``storage_url``, or the
    SQLite storage of the run folder ``run_dir``; ``UserError`` when neither is there."""
    folder = Path(run_dir) if run_dir else None
    if folder is not None and not folder.is_dir():
        raise UserError(f"run_dir={str(folder)!r}: no such directory")
    url = storage_url or (f"sqlite:///{folder / 'optuna.db'}" if folder else None)
    if url is None:
        raise UserError("give run_dir=<a search's run directory> or storage_url=<its storage>")
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise UserError(f"no Optuna storage at {url}")
    return url


def wc_values(node: Any) -> list[float]:
    """The ``wc`` values of ``dnc.report`` and ``dnc.transfer`` (a number or a list);
    ``UserError`` unless each is a finite number >= 0."""
    values = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_list(node) else [node]
    if not isinstance(values, list) or not values:
        raise UserError("wc: give a list of numbers, e.g. 'wc=[0,0.1,1]'")
    try:
        if any(isinstance(w, bool) for w in values):
            raise TypeError
        wcs = [float(w) for w in values]  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:
        raise UserError(f"wc={values}: give numbers >= 0, e.g. 'wc=[0,0.1,1]'") from err
    if not all(w >= 0 and math.isfinite(w) for w in wcs):
        raise UserError(f"wc={values}: each must be a finite number >= 0 (0: accuracy only)")
    return wcs


SCHEMAS: dict[str, tuple[type, str]] = {
    "DncConfig": (DncConfig, ""),
    "SearchSettings": (SearchSettings, "search"),
    "StageSpec": (StageSpec, "search.stages[i]"),
    "BOSettings": (BOSettings, "search.bo"),
    "WarmStartSettings": (WarmStartSettings, "search.warm_start"),
    "TrainerSettings": (TrainerSettings, "trainer"),
    "StorageSettings": (StorageSettings, "storage"),
    "TrackingSettings": (TrackingSettings, "tracking"),
    "ReportConfig": (ReportConfig, ""),
    "SyncConfig": (SyncConfig, ""),
    "SearchRef": (SearchRef, ""),  # source and target: Hydra names the full key
    "TransferConfig": (TransferConfig, ""),
}
"""The typed nodes by class name (Hydra's messages name them) and where they sit in the
config, for error messages."""


def register() -> None:
    """Store the schemas in Hydra's ``ConfigStore`` (idempotent): ``dnc_schema`` for
    ``python -m dnc``, ``report_schema`` for ``python -m dnc.report``, ``sync_schema`` for
    ``python -m dnc.sync``, ``transfer_schema`` for ``python -m dnc.transfer``. The settings
    dataclasses are frozen; their config nodes are made writable so that overrides apply."""
    from hydra.core.config_store import ConfigStore

    schemas = (
        ("dnc_schema", DncConfig),
        ("report_schema", ReportConfig),
        ("sync_schema", SyncConfig),
        ("transfer_schema", TransferConfig),
    )
    for name, schema in schemas:
        node = OmegaConf.structured(schema)
        _writable(node)
        ConfigStore.instance().store(name=name, node=node)
    OmegaConf.register_new_resolver("dnc.search_dir", search_dir, replace=True)


def search_dir(*, _root_: DictConfig) -> str:
    """``${dnc.search_dir:}``: where a search's default SQLite storage lives: the run folder;
    for workers launched together (``-m ... +worker='range(N)'``) the sweep folder they share,
    so that they share the search."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN and _root_.get("worker") is not None:
        return str(Path(hc.sweep.dir).absolute())
    return str(hc.runtime.output_dir)


def _writable(node: Any) -> None:
    OmegaConf.set_readonly(node, False)
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            if OmegaConf.is_config(child):
                _writable(child)
    elif OmegaConf.is_list(node):
        for child in node:
            if OmegaConf.is_config(child):
                _writable(child)


def valid_keys(schema: str) -> list[str]:
    """The field names of a typed node, by its class name (empty when unknown)."""
    cls = SCHEMAS.get(schema, (None, ""))[0]
    return [f.name for f in fields(cls)] if cls is not None and is_dataclass(cls) else []


def schema_path(schema: str) -> str:
    """Where a typed node sits in the config (``search.bo``), by its class name."""
    return SCHEMAS.get(schema, (None, ""))[1]


def typed(node: DictConfig, cls: type[Any]) -> Any:
    """The settings dataclass of a typed group (its ``__post_init__`` checks the values)."""
    try:
        value = OmegaConf.to_object(node)
    except UserError:
        raise
    except Exception as err:  # OmegaConf wraps what __post_init__ raised
        cause = err.__cause__ or err.__context__
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(str(err).splitlines()[0]) from err
    assert isinstance(value, cls)
    return value


def instantiate(node: DictConfig, contract: type, group: str) -> Any:
    """Instantiate a plugin group (``dataset``, ``search_space``, ``cost``) and check that the
    object implements its contract; an unknown key names the valid ones."""
    from hydra.errors import InstantiationException
    from hydra.utils import get_class, instantiate

    from dnc.plugins import check_plugin

    target = node.get("_target_")
    try:
        obj = instantiate(node, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        detail = str(cause or err).strip().splitlines()[-1]
        if isinstance(cause, TypeError) and "unexpected keyword argument" in detail:
            key = detail.rsplit("'", 2)[-2] if detail.count("'") >= 2 else "?"
            params = inspect.signature(get_class(str(target))).parameters
            valid = [p for p in params if p not in ("self", "args", "kwargs")]
            raise UserError(
                f"{group}.{key}: unknown key for {target}; valid keys: {', '.join(valid)}"
            ) from err
        raise UserError(f"{group}: cannot instantiate {target!r}: {detail}") from err
    check_plugin(obj, contract, group)
    return obj


def build(
    cfg: DictConfig,
    *,
    output_dir: str | None = None,
    resume_hint: str = "",
    log_file: str | None = None,
) -> tuple[Search, MlflowTracker | None]:
    """The search ``cfg`` describes, and its MLflow tracker (not connected yet: the caller
    connects it once the data has loaded). Every setting is checked here, cheapest first,
    before any data is loaded; ``UserError`` for the first bad one."""
    from dnc.plugins import CostEvaluator, Dataset, SearchSpace

    settings = typed(cfg.search, SearchSettings)
    storage = typed(cfg.storage, StorageSettings)
    tracking = typed(cfg.tracking, TrackingSettings)
    dataset = instantiate(cfg.dataset, Dataset, "dataset")
    dataset.check()
    space = instantiate(cfg.search_space, SearchSpace, "search_space")
    space.check()
    cost = instantiate(cfg.cost, CostEvaluator, "cost")
    worker = worker_index(cfg)
    trainer = typed(cfg.trainer, TrainerSettings).for_worker(worker)

    from dnc.search.search import Search
    from dnc.tracking.console import SearchConsole
    from dnc.tracking.mlflow_tracker import MlflowTracker
    from dnc.tracking.pictures import SearchPictures

    tracker = (
        MlflowTracker(
            tracking.uri,
            tracking.experiment,
            connect=False,
            describe=space.describe,
            register_model=tracking.register_model,
            log_model=tracking.log_model,
        )
        if tracking.uri
        else None
    )
    console = SearchConsole(
        tracking=tracking.uri or "",
        describe_candidate=space.describe,
        log_file=log_file,
        runs_link=tracker.runs_link if tracker else None,
    )
    search = Search(
        settings,
        space=space,
        dataset=dataset,
        cost=cost,
        trainer=trainer,
        storage=storage,
        seed=int(cfg.seed),
        observers=[
            console,
            *([SearchPictures()] if tracking.pictures else []),
            *([tracker] if tracker else []),
        ],
        output_dir=output_dir,
        resume_hint=resume_hint,
        worker=worker,
    )
    return search, tracker


def worker_index(cfg: DictConfig) -> int | None:
    """The worker's index (``+worker=N``, swept by a launcher: ``+worker='range(4)'``), or
    ``None`` when the command line gives none; ``UserError`` unless it is an integer >= 0."""
    value = cfg.get("worker")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"worker={value!r}: give an integer >= 0 (+worker=0, or range(N))")
    return value


__all__ = [
    "SCHEMAS",
    "DncConfig",
    "ReportConfig",
    "SearchRef",
    "SyncConfig",
    "TransferConfig",
    "build",
    "instantiate",
    "register",
    "schema_path",
    "search_dir",
    "storage_url_of",
    "typed",
    "valid_keys",
    "wc_values",
    "worker_index",
]
