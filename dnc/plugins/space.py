"""The search-space contract (``SearchSpace``) and what spaces share: the training
hyperparameters (``TrainingBounds``, ``suggest_training``) and ``settings_from`` for grouped
constructor settings."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from dnc.plugins.base import Candidate, DataSpec, Suggest, UserError
from dnc.suggest import DefaultSuggest

if TYPE_CHECKING:
    import torch


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
        """Raise ``UserError`` for inconsistent settings (e.g. low > high); dnc calls it once
        the space is built from its config, before anything slow."""

    def describe(self, candidate: Mapping[str, Any]) -> str:
        """A short one-line summary for tables and logs."""
        return " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in candidate.items()
        )


S = TypeVar("S")
T = TypeVar("T")


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


def as_tuple(kind: Callable[[Any], T], values: Iterable[Any], key: str) -> tuple[T, ...]:
    """``values`` (a list from a config) as a tuple of ``kind``; ``UserError`` naming ``key``
    when they are not. For the ``__post_init__`` of a plugin's settings dataclass.

    Example:
        >>> as_tuple(int, [4, "8"], "search_space.core.widths")
        (4, 8)
    """
    if isinstance(values, str):
        raise UserError(f"{key}={values!r}: give a list")
    try:
        return tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        raise UserError(f"{key}={values!r}: give a list of {kind.__name__} values") from None


def as_bounds(kind: Callable[[Any], T], values: Iterable[Any], key: str) -> tuple[T, T]:
    """``values`` as ``(low, high)`` of ``kind`` (``UserError`` unless exactly two)."""
    pair = as_tuple(kind, values, key)
    if len(pair) != 2:
        raise UserError(f"{key}={list(pair)}: give two numbers [low, high]")
    return pair[0], pair[1]


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


__all__ = [
    "SearchSpace",
    "TrainingBounds",
    "as_bounds",
    "as_tuple",
    "settings_from",
    "suggest_training",
]
