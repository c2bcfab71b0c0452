"""The vocabulary every plugin shares: ``UserError``, ``Candidate`` and its identity, the
``Suggest`` protocol a search space samples from, and ``DataSpec``."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from dnc.suggest import Suggest

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


@dataclass(frozen=True)
class DataSpec:
    """What a search space needs to know about the data to build a network."""

    input_shape: tuple[int, ...]
    num_classes: int


__all__ = ["Candidate", "DataSpec", "Suggest", "UserError", "candidate_key"]
