"""``python -m dnc``: compose the Hydra config, instantiate everything, run the search.

This is the only module that sees a ``DictConfig``; everything inward takes typed objects.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def _fail(message: str) -> None:
    print(f"dnc: error: {message}", file=sys.stderr)
    sys.exit(2)


def build(cfg: DictConfig) -> Any:
    """Instantiate the search described by ``cfg`` (raises ``UserError`` on bad settings)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from dnc.plugins import CostEvaluator, Dataset, SearchSpace, UserError, check_plugin
    from dnc.search.pipeline import Search, SearchSettings, StageSpec
    from dnc.search.samplers import BOSettings
    from dnc.tracking.console import SearchConsole
    from dnc.tracking.mlflow_tracker import NullTracker, Tracker
    from dnc.train.trainer import TrainerSettings

    def make(node: DictConfig, contract: type, what: str) -> Any:
        try:
            obj = instantiate(node, _convert_="all")
        except InstantiationException as err:
            cause = err.__cause__
            if isinstance(cause, UserError):
                raise cause from None
            detail = str(cause or err).strip().splitlines()[-1]
            raise UserError(
                f"{what}: cannot instantiate {node.get('_target_')!r}: {detail}"
            ) from err
        check_plugin(obj, contract, what)
        return obj

    space = make(cfg.search_space, SearchSpace, "search_space")
    dataset = make(cfg.dataset, Dataset, "dataset")
    cost = make(cfg.cost, CostEvaluator, "cost")
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(trainer_cfg, dict)
    trainer_cfg["lr_cuts"] = tuple(trainer_cfg.get("lr_cuts", ()))
    try:
        trainer = TrainerSettings(**{str(k): v for k, v in trainer_cfg.items()})
    except TypeError as err:
        raise UserError(f"trainer: {err}") from err
    search = cfg.search
    stages = tuple(
        StageSpec(
            name=str(st.name),
            kind=str(st.get("kind", "bo")),
            groups=tuple(st.get("groups") or ("core",)),
            trials=int(st.get("trials") or 0),
            substages=tuple(st.get("substages") or ()),
            sampler=st.get("sampler"),
        )
        for st in search.stages
    )
    settings = SearchSettings(
        name=str(search.name),
        wc=search.wc,
        stages=stages,
        sampler=str(search.sampler),
        bo=BOSettings(**OmegaConf.to_container(search.bo, resolve=True)),  # type: ignore[arg-type]
        num_best=int(search.num_best),
        final_test=_flag(search.final_test, "search.final_test"),
        seed=int(cfg.seed),
        max_failures_in_a_row=int(search.max_failures_in_a_row),
        storage_url=str(cfg.storage.url),
        heartbeat_interval=int(cfg.storage.heartbeat_interval),
        grace_period=int(cfg.storage.grace_period),
    )
    uri = cfg.tracking.uri
    tracker = Tracker(str(uri), str(cfg.tracking.experiment)) if uri else NullTracker()
    output_dir, hint = None, ""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        output_dir = hc.runtime.output_dir
        overrides = [o for o in hc.overrides.task if not o.startswith("hydra.run.dir=")]
        hint = " ".join(["python -m dnc", *overrides, f"hydra.run.dir={output_dir}"])
    return Search(
        settings,
        space=space,
        dataset=dataset,
        cost=cost,
        trainer=trainer,
        tracker=tracker,
        console=SearchConsole(),
        output_dir=output_dir,
        resume_hint=hint,
    )


def _flag(value: Any, key: str) -> bool:
    """A boolean from the config: true/false only (the original tool parsed "False" as true)."""
    if isinstance(value, bool):
        return value
    raise _user_error(f"{key}={value!r}: give true or false")


def _user_error(message: str) -> Exception:
    from dnc.plugins import UserError

    return UserError(message)


class _HeldStderr(io.StringIO):
    """Holds what Hydra writes to stderr while it composes the config, so that a composition
    error (unknown group option, bad override) can be told in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.real = sys.stderr

    def release(self) -> None:
        if sys.stderr is self:
            sys.stderr = self.real
            self.real.write(self.getvalue())


def _one_line(hydra_error: str) -> str:
    parts: list[str] = []
    listing = False  # inside "Available options in 'group':" followed by one option a line
    for line in hydra_error.splitlines():
        text = line.strip()
        if not text or text.startswith(
            ("Set the environment variable HYDRA_FULL_ERROR", "full_key:", "object_type=")
        ):
            continue
        if text.startswith("Config search path"):
            break
        if listing and line.startswith(("\t", "  ")):
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + text
            continue
        listing = text.endswith(":")
        parts.append(text.rstrip("."))
    return "; ".join(parts)


@hydra.main(config_path="pkg://dnc.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if isinstance(sys.stderr, _HeldStderr):
        sys.stderr.release()
    import warnings

    import optuna

    from dnc.plugins import UserError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for noisy in ("mlflow", "alembic", "botorch", "linear_operator"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        build(cfg).run()
    except UserError as err:
        _fail(str(err))
    except OmegaConfBaseException as err:  # e.g. a mandatory value (???) left unset
        _fail(str(err).splitlines()[0] + "; set it on the command line (key=value)")
    except KeyboardInterrupt:
        _fail("interrupted; run the same command again to resume the search")


def run_cli(entry: Any) -> None:
    """Run a ``@hydra.main`` entry point; Hydra's multi-line composition errors become one
    ``dnc: error:`` line (the entry releases the held stderr once its task starts)."""
    held = _HeldStderr()
    sys.stderr = held
    try:
        entry()
    except SystemExit as exit_:
        if sys.stderr is held:
            sys.stderr = held.real
            text = held.getvalue()
            if exit_.code not in (0, None) and text.strip():
                _fail(_one_line(text))
            sys.stderr.write(text)
        raise
    finally:
        held.release()


def cli() -> None:
    """``python -m dnc`` / the ``dnc`` command."""
    run_cli(main)


if __name__ == "__main__":
    cli()
