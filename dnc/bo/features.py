"""What a search space tells the ramp kernel to compare: feature declarations.

A search space returns them from ``SearchSpace.kernel_features()``; ``dnc.bo`` encodes each
candidate into a fixed-width row (``CandidateEncoder``) and builds the matching kernel. Each
declaration reads the candidate dict (the values ``SearchSpace.sample`` returned; a name the
candidate lacks is looked up in the trial's sampled params) and knows its columns and its
kernel:

=================  =================================  ======================================
declaration        columns                            kernel
=================  =================================  ======================================
``Scalar``         the value (``log10`` if ``log``)    ``RampKernel``
``Categorical``    the option's index                 ``CategoricalRampKernel``
``LayerWidths``    depth, then one width per layer    ``LayerwiseRampKernel``
``MLPHidden``      total hidden nodes, layer count    ``MLPHiddenKernel``
=================  =================================  ======================================

Only declarations that read a parameter the stage searches take part, so a stage that holds
the architecture compares training hyperparameters only (as the paper does). A searched
parameter no declaration reads gets a default one (``Scalar`` over its bounds, log-scaled when
it is sampled so, or ``Categorical``); a space that declares nothing is compared on every
searched parameter that way.

Example (a CNN space with the paper's channel rule, parameters ``num_conv_layers`` and
``channels_0`` ... ``channels_15``)::

    def kernel_features(self):
        from dnc.bo import LayerWidths, Scalar, doubling_bounds
        return (
            LayerWidths("channels_{i}", count="num_conv_layers",
                        bounds=doubling_bounds(first=(16, 64), cap=512, layers=16)),
            Scalar("lr", 1e-5, 1e-1, log=True),
            Scalar("weight_decay", 1e-6, 1e-3, log=True, zero_at_lower=True),
            Scalar("batch_size", 32, 512),
        )

A space that keeps the widths as one list-valued entry of the candidate writes
``LayerWidths("channels", bounds=...)`` (no ``{i}``, no ``count``: the depth is the list's
length).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpytorch.kernels import Kernel


def doubling_bounds(
    first: tuple[float, float], cap: float, layers: int
) -> list[tuple[float, float]]:
    """Per-layer bounds when each layer may at most double the previous one (up to ``cap``).

    Layer ``i`` (from 0) spans ``[first[0], min(first[1] * 2**i, cap)]``: every width it can
    reach under ``c_i in [c_{i-1}, min(2 c_{i-1}, cap)]``.

    Example:
        >>> doubling_bounds((16, 64), 512, 5)
        [(16, 64), (16, 128), (16, 256), (16, 512), (16, 512)]
    """
    lo, hi = first
    return [(lo, min(hi * 2**i, cap)) for i in range(layers)]


class KernelFeature(abc.ABC):
    """One thing the ramp kernel compares. Subclasses are frozen dataclasses."""

    weight: float

    @property
    @abc.abstractmethod
    def width(self) -> int:
        """How many columns the encoding of this feature takes."""

    @abc.abstractmethod
    def reads(self) -> Collection[str]:
        """The candidate keys (parameter names) this feature may read."""

    @abc.abstractmethod
    def encode(self, values: Mapping[str, Any]) -> list[float]:
        """The ``width`` numbers for one candidate (``values``: candidate keys -> values)."""

    @abc.abstractmethod
    def kernel(self, columns: Sequence[int], omega: float) -> Kernel:
        """The kernel comparing this feature's ``columns`` of the encoding."""

    def _check_weight(self) -> None:
        if not self.weight > 0:
            raise ValueError(f"{self!r}: weight must be positive")


@dataclass(frozen=True)
class Scalar(KernelFeature):
    """One numeric parameter, ramp kernel over ``[lower, upper]``.

    ``log=True`` compares ``log10`` values (bounds too); ``zero_at_lower=True`` reads 0 (or any
    value <= 0) as ``lower``, the paper's convention for weight decay. A candidate that lacks
    the parameter (say ``hidden_2`` of a 2-layer net) is placed one span below ``lower``, so its
    distance to every present value is at least ``omega``: it is still a point on the line, so
    the kernel stays PSD.

    Example:
        >>> Scalar("weight_decay", 1e-6, 1e-3, log=True, zero_at_lower=True).encode(
        ...     {"weight_decay": 0.0})
        [-6.0]
    """

    name: str
    lower: float
    upper: float
    log: bool = False
    zero_at_lower: bool = False
    root: float = 1
    weight: float = 1.0

    def __post_init__(self) -> None:
        self._check_weight()
        if self.log and not 0 < self.lower:
            raise ValueError(f"Scalar({self.name!r}): log scale needs lower > 0")
        if self.upper < self.lower:
            raise ValueError(f"Scalar({self.name!r}): lower {self.lower} > upper {self.upper}")

    @property
    def width(self) -> int:
        return 1

    @property
    def bounds(self) -> tuple[float, float]:
        """The bounds in encoded units (``log10`` if ``log``)."""
        if self.log:
            return math.log10(self.lower), math.log10(self.upper)
        return float(self.lower), float(self.upper)

    def reads(self) -> Collection[str]:
        return (self.name,)

    def encode(self, values: Mapping[str, Any]) -> list[float]:
        lo, hi = self.bounds
        value = values.get(self.name)
        if value is None:
            return [lo - (hi - lo)]
        x = float(value)
        if self.zero_at_lower and x <= 0:
            return [lo]
        if self.log:
            if x <= 0:
                raise ValueError(f"{self.name}={value}: log scale needs a positive value")
            return [math.log10(x)]
        return [x]

    def kernel(self, columns: Sequence[int], omega: float) -> Kernel:
        from dnc.bo.kernels import RampKernel

        return RampKernel(*self.bounds, omega=omega, root=self.root, active_dims=tuple(columns))


@dataclass(frozen=True)
class Categorical(KernelFeature):
    """One unordered choice: distance 0 for the same option, ``omega`` otherwise.

    A candidate that lacks the parameter counts as one more option.

    Example:
        >>> Categorical("activation", ("relu", "tanh")).encode({"activation": "tanh"})
        [1.0]
    """

    name: str
    choices: Sequence[Any]
    weight: float = 1.0

    def __post_init__(self) -> None:
        self._check_weight()
        if not self.choices:
            raise ValueError(f"Categorical({self.name!r}): no choices")

    @property
    def width(self) -> int:
        return 1

    def reads(self) -> Collection[str]:
        return (self.name,)

    def encode(self, values: Mapping[str, Any]) -> list[float]:
        if self.name not in values:
            return [-1.0]
        value = values[self.name]
        for i, choice in enumerate(self.choices):
            if choice == value:
                return [float(i)]
        raise ValueError(f"{self.name}={value!r} is not one of {list(self.choices)}")

    def kernel(self, columns: Sequence[int], omega: float) -> Kernel:
        from dnc.bo.kernels import CategoricalRampKernel

        return CategoricalRampKernel(omega=omega, active_dims=tuple(columns))


class _Layers:
    """Reads a width list: ``widths`` as a ``{i}`` template (depth from ``count``) or as the
    key of a list-valued entry."""

    def __init__(self, widths: str, count: str | None, layers: int, where: str) -> None:
        self.template = "{i}" in widths
        if self.template and count is None:
            raise ValueError(f"{where}: a '{{i}}' template needs count=<depth key>")
        self.widths, self.count, self.where = widths, count, where
        self.names = [widths.format(i=i) for i in range(layers)] if self.template else [widths]

    def reads(self) -> tuple[str, ...]:
        return (*([self.count] if self.count else []), *self.names)

    def values(self, values: Mapping[str, Any]) -> list[float]:
        if self.template:
            depth = int(values[self.count])  # type: ignore[index]
            if depth > len(self.names):
                raise ValueError(f"{self.where}: {depth} layers but at most {len(self.names)}")
            return [float(values[name]) for name in self.names[:depth]]
        layers = list(values[self.widths])
        if self.count is not None and int(values[self.count]) != len(layers):
            raise ValueError(f"{self.where}: {self.count}={values[self.count]} but "
                             f"{self.widths} has {len(layers)} items")
        return [float(w) for w in layers]


@dataclass(frozen=True)
class LayerWidths(KernelFeature):
    """A variable-depth list of layer widths, compared layer by layer (``LayerwiseRampKernel``).

    ``widths`` is a template with ``{i}`` (``"channels_{i}"``, layers from 0, depth read from
    ``count``) or the key of a list-valued candidate entry. ``bounds`` holds ``(l_i, u_i)`` for
    every possible layer (``doubling_bounds`` gives the paper's CNN rule); the layer's root is
    ``min(i + 1, max_root)``.

    Example:
        >>> f = LayerWidths("c{i}", count="n", bounds=doubling_bounds((16, 64), 512, 3))
        >>> f.encode({"n": 2, "c0": 32, "c1": 48})
        [2.0, 32.0, 48.0, 16.0]
    """

    widths: str
    bounds: Sequence[tuple[float, float]]
    count: str | None = None
    max_root: int = 4
    weight: float = 1.0
    name: str = ""
    _layers: _Layers = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_weight()
        if not self.bounds:
            raise ValueError(f"LayerWidths({self.widths!r}): give bounds for at least one layer")
        object.__setattr__(self, "bounds", tuple((float(a), float(b)) for a, b in self.bounds))
        if not self.name:
            object.__setattr__(self, "name", self.widths.replace("_{i}", "").replace("{i}", ""))
        object.__setattr__(self, "_layers", _Layers(self.widths, self.count, len(self.bounds),
                                                    f"LayerWidths({self.widths!r})"))

    @property
    def width(self) -> int:
        return 1 + len(self.bounds)

    def reads(self) -> Collection[str]:
        return self._layers.reads()

    def encode(self, values: Mapping[str, Any]) -> list[float]:
        layers = self._layers.values(values)
        if len(layers) > len(self.bounds):
            raise ValueError(
                f"LayerWidths({self.widths!r}): {len(layers)} layers but bounds for only "
                f"{len(self.bounds)}"
            )
        pad = [lo for lo, _ in self.bounds[len(layers):]]
        return [float(len(layers)), *layers, *pad]

    def kernel(self, columns: Sequence[int], omega: float) -> Kernel:
        from dnc.bo.kernels import LayerwiseRampKernel

        return LayerwiseRampKernel(self.bounds, omega=omega, max_root=self.max_root,
                                   active_dims=tuple(columns))


@dataclass(frozen=True)
class MLPHidden(KernelFeature):
    """MLP hidden layers: total node count (root 2) and layer count (``MLPHiddenKernel``).

    ``layers`` bounds the layer count and ``nodes`` a layer's width; the total's bounds are
    ``[0, layers[1] * nodes[1]]`` as in the original. ``widths``/``count`` as in ``LayerWidths``.

    Example:
        >>> MLPHidden(layers=(0, 2), nodes=(20, 400)).encode(
        ...     {"num_hidden_layers": 2, "hidden_0": 100, "hidden_1": 50})
        [150.0, 2.0]
    """

    count: str | None = "num_hidden_layers"
    widths: str = "hidden_{i}"
    layers: tuple[int, int] = (0, 2)
    nodes: tuple[float, float] = (20, 400)
    weight: float = 1.0
    name: str = "hidden"
    _layers: _Layers = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check_weight()
        object.__setattr__(self, "_layers", _Layers(self.widths, self.count, int(self.layers[1]),
                                                    f"MLPHidden({self.widths!r})"))

    @property
    def width(self) -> int:
        return 2

    def reads(self) -> Collection[str]:
        return self._layers.reads()

    def encode(self, values: Mapping[str, Any]) -> list[float]:
        layers = self._layers.values(values)
        return [float(sum(layers)), float(len(layers))]

    def kernel(self, columns: Sequence[int], omega: float) -> Kernel:
        from dnc.bo.kernels import MLPHiddenKernel

        total = (0.0, float(self.layers[1]) * float(self.nodes[1]))
        return MLPHiddenKernel(total, (float(self.layers[0]), float(self.layers[1])),
                               omega=omega, active_dims=tuple(columns))


__all__ = [
    "Categorical",
    "KernelFeature",
    "LayerWidths",
    "MLPHidden",
    "Scalar",
    "doubling_bounds",
]
