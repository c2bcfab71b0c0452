"""The plugin contracts (search space, cost evaluator, dataset) and their discovery.

A plugin is an installed package that

1. implements one of the small abstract classes below, and
2. declares an entry point in the ``dnc.plugins`` group naming a package that holds a ``conf/``
   folder of Hydra config-group files (``conf/search_space/NAME.yaml``, ``conf/cost/NAME.yaml``,
   ``conf/dataset/NAME.yaml``), each with a ``_target_`` naming the class.

``hydra_plugins.dnc_searchpath`` adds every such ``conf/`` folder to Hydra's search path, so
``python -m dnc search_space=NAME`` works without editing dnc. The built-in plugins in
``plugins/`` register themselves the same way. Discovery reads package metadata only; no plugin
module is imported until its config is instantiated.

Example (a third party's ``pyproject.toml``)::

    [project.entry-points."dnc.plugins"]
    myspace = "dnc_myspace"          # dnc_myspace/conf/search_space/myspace.yaml
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    import torch

ENTRY_POINT_GROUP = "dnc.plugins"

Candidate = dict[str, Any]
"""One network and its training hyperparameters: parameter name -> value (an Optuna trial's
params plus the values a stage held fixed)."""


class UserError(Exception):
    """A mistake the user can fix (bad override, missing data, ...): reported as one line."""


# --------------------------------------------------------------------------------------------
# Define-by-run sampling
# --------------------------------------------------------------------------------------------
class Suggest(Protocol):
    """Where a search space gets its parameter values from, define-by-run.

    The pipeline passes one backed by an Optuna trial (values for the stage's active groups come
    from the sampler, the rest are held at the best candidate so far or the default); the ramp-BO
    sampler passes one backed by a vector of uniforms to draw prior and random candidates.
    Bounds may depend on earlier values (``channels_i in [c_{i-1}, 2 c_{i-1}]``).
    """

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int: ...

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float: ...

    def categorical(
        self, name: str, choices: Sequence[Any], *, group: str, default: Any
    ) -> Any: ...


@dataclass(frozen=True)
class DataSpec:
    """What a search space needs to know about the data to build a network."""

    input_shape: tuple[int, ...]
    num_classes: int


# --------------------------------------------------------------------------------------------
# Search space
# --------------------------------------------------------------------------------------------
class SearchSpace(abc.ABC):
    """A family of candidates: how to sample one, build it, and compare two for the ramp kernel.

    Parameters belong to groups; a stage names the groups it searches (``core``: the core
    architecture, ``arch``: the rest of the architecture, ``train``: training hyperparameters).
    Training hyperparameters use the names ``lr``, ``weight_decay`` and ``batch_size``.

    Example::

        class Tiny(SearchSpace):
            name = "tiny"
            def sample(self, s):
                return {"width": s.int("width", 8, 64, group="core", default=32),
                        **suggest_training(s)}
            def build(self, c, data):
                n = math.prod(data.input_shape)
                return nn.Sequential(nn.Flatten(), nn.Linear(n, c["width"]), nn.ReLU(),
                                     nn.Linear(c["width"], data.num_classes))
    """

    name: str = ""

    @abc.abstractmethod
    def sample(self, suggest: Suggest) -> Candidate:
        """Draw one candidate, every parameter through ``suggest``."""

    @abc.abstractmethod
    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> torch.nn.Module:
        """The untrained network for ``candidate``; it maps ``batch x *input_shape`` to logits."""

    def kernel_features(self) -> Sequence[Any]:
        """The features the ramp kernel compares (see ``dnc.bo.features``); empty: every
        sampled parameter gets a default feature (a ``Scalar`` over its bounds or a
        ``Categorical``)."""
        return ()

    def grid(self, substage: str, candidate: Mapping[str, Any]) -> list[Candidate]:
        """Every variant of ``candidate`` for a grid sub-stage (``activation``, ...)."""
        raise UserError(f"search space {self.name!r} has no grid sub-stage {substage!r}")

    def grid_substages(self) -> Sequence[str]:
        """The grid sub-stages this space offers, in their default order."""
        return ()

    def reference_candidate(self) -> Candidate:
        """A representative candidate (used to calibrate the time normaliser)."""
        return self.sample(DefaultSuggest())

    def check(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Raise ``UserError`` for inconsistent settings (e.g. low > high)."""

    def describe(self, candidate: Mapping[str, Any]) -> str:
        """A short one-line summary for tables and logs."""
        return " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in candidate.items()
        )


class DefaultSuggest:
    """A ``Suggest`` that answers every parameter with its default."""

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        return default

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        return default

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        return default


S = TypeVar("S")


def settings_from(cls: type[S], value: S | Mapping[str, Any] | None, where: str) -> S:
    """A settings dataclass from a config mapping (lists become tuples), an instance, or
    ``None`` (the defaults). An unknown key is a ``UserError`` naming it and the valid ones.

    Plugins group their constructor arguments into a few such dataclasses, so that
    ``search_space.core.conv_layers=[4, 8]`` and ``CNNSpace(core=CNNCore(...))`` both work.

    Example:
        >>> settings_from(TrainingBounds, {"lr": [1e-4, 1e-1]}, "search_space.training").lr
        (0.0001, 0.1)
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    if not isinstance(value, Mapping):
        raise UserError(f"{where}: give a mapping with keys {', '.join(names)}")
    unknown = sorted(str(k) for k in value if k not in names)
    if unknown:
        raise UserError(f"{where}.{unknown[0]}: unknown key; valid keys: {', '.join(names)}")
    return cls(**{str(k): _tuples(v) for k, v in value.items()})


def _tuples(value: Any) -> Any:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(_tuples(v) for v in value)
    return value


@dataclass(frozen=True)
class TrainingBounds:
    """Bounds of the training hyperparameters (DESIGN §3) and their defaults."""

    lr: tuple[float, float] = (1e-5, 1e-1)
    weight_decay: tuple[float, float] = (1e-6, 1e-3)
    batch_size: tuple[int, int] = (32, 512)
    default_lr: float = 1e-3
    default_weight_decay: float = 0.0
    default_batch_size: int = 256

    def check(self) -> None:
        for name in ("lr", "weight_decay", "batch_size"):
            low, high = getattr(self, name)
            if not 0 < low < high:
                raise UserError(
                    f"training bounds {name}=[{low}, {high}] must satisfy 0 < low < high"
                )


def suggest_training(suggest: Suggest, bounds: TrainingBounds = TrainingBounds()) -> Candidate:
    """Sample ``lr``, ``weight_decay`` and ``batch_size`` (group ``train``).

    Weight decay is log-uniform with its lowest decade mapped to 0 (the paper's convention).
    """
    lr = suggest.float("lr", *bounds.lr, group="train", default=bounds.default_lr, log=True)
    wd_low, wd_high = bounds.weight_decay
    wd = suggest.float(
        "weight_decay",
        wd_low,
        wd_high,
        group="train",
        default=max(bounds.default_weight_decay, wd_low),
        log=True,
    )
    if wd < wd_low * 10:
        wd = 0.0
    bs = suggest.int(
        "batch_size", *bounds.batch_size, group="train", default=bounds.default_batch_size
    )
    return {"lr": lr, "weight_decay": wd, "batch_size": bs}


# --------------------------------------------------------------------------------------------
# Cost evaluator
# --------------------------------------------------------------------------------------------
class CostEvaluator(abc.ABC):
    """The complexity ``fc`` of a trained candidate.

    ``measure`` returns raw figures (recorded on the trial, so a study can be re-scored);
    ``complexity`` turns raw figures into the normalised ``fc`` of the search loss
    ``log10(fp + wc * fc)``. ``complexity`` must only read figures, never the model.
    """

    name: str = ""
    calibrate_by_training: bool = False
    """True when ``calibrate`` needs figures from training (``t_epoch``), not only from the
    built reference network (``numparams`` and ``measure``)."""

    def measure(
        self, model: torch.nn.Module, candidate: Mapping[str, Any], data: DataSpec
    ) -> dict[str, float]:
        """Extra raw figures for this cost (``t_epoch`` and ``numparams`` are always recorded)."""
        return {}

    @abc.abstractmethod
    def complexity(self, figures: Mapping[str, float]) -> float:
        """Normalised complexity from raw figures."""

    def calibrate(self, figures: Mapping[str, float]) -> None:  # noqa: B027 - optional hook
        """Set the normaliser from a reference network's figures (``auto`` normalisers)."""

    def settings(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this evaluator with its calibrated normaliser.

        They are recorded with the study, so a finished search can be re-scored.
        """
        return {}


# --------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------
@dataclass
class TensorData:
    """A dataset held in memory: train / validation / test tensors.

    ``x*`` are ``n x *input_shape`` float tensors, ``y*`` are ``n`` int64 class labels.
    """

    xtr: torch.Tensor
    ytr: torch.Tensor
    xva: torch.Tensor
    yva: torch.Tensor
    xte: torch.Tensor
    yte: torch.Tensor
    num_classes: int
    name: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(input_shape=tuple(self.xtr.shape[1:]), num_classes=self.num_classes)


class Dataset(abc.ABC):
    """A source of ``TensorData``. ``load`` raises ``UserError`` when data is missing."""

    name: str = ""

    @abc.abstractmethod
    def load(self, seed: int) -> TensorData:
        """Load (or generate) the data; the validation split is fixed by ``seed``."""


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------
def plugin_packages() -> dict[str, str]:
    """Installed plugin packages: entry-point name -> package holding ``conf/``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def check_plugin(obj: object, contract: type, what: str) -> None:
    """Raise ``UserError`` when an instantiated plugin does not implement its contract."""
    if not isinstance(obj, contract):
        raise UserError(
            f"{what} {type(obj).__module__}.{type(obj).__qualname__} does not implement "
            f"dnc.plugins.{contract.__name__}; fix the plugin's _target_ or its base class"
        )


__all__ = [
    "Candidate",
    "CostEvaluator",
    "DataSpec",
    "Dataset",
    "DefaultSuggest",
    "SearchSpace",
    "Suggest",
    "TensorData",
    "TrainingBounds",
    "UserError",
    "check_plugin",
    "plugin_packages",
    "settings_from",
    "suggest_training",
]
