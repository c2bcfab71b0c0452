"""The vocabulary every plugin shares: ``UserError``, ``Candidate`` and its identity, the
``Suggest`` protocol a search space samples from, and ``DataSpec``."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Candidate = dict[str, Any]
"""One network and its training hyperparameters: parameter name -> value (an Optuna trial's
params plus the values a stage held fixed)."""


class UserError(Exception):
    """A mistake the user can fix (bad override, missing data, ...): reported as one line."""


def candidate_key(candidate: Mapping[str, Any]) -> Hashable:
    """The identity of a candidate, used wherever dnc asks "was this one tried?" (the grid,
    the BO sampler, a resumed search): equal keys mean the same network and training.

    Fresh and read back from the storage alike: key order is ignored, lists and tuples are the
    same, and values compare as Python compares them (``1 == 1.0``).

    Example:
        >>> candidate_key({"lr": 0.1, "widths": [8, 8]}) == candidate_key({"widths": (8, 8),
        ...                                                               "lr": 0.1})
        True
    """
    items = tuple(sorted(candidate.items()))
    try:
        hash(items)  # the common case, numbers and strings: a BO step keys 1,000 of these
    except TypeError:
        return tuple((k, _frozen(v)) for k, v in items)
    return items


def _frozen(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value if isinstance(value, Hashable) else repr(value)


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


__all__ = ["Candidate", "DataSpec", "Suggest", "UserError", "candidate_key"]
