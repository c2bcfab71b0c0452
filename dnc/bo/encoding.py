"""Candidates as fixed-width rows, and the features a stage compares.

``CandidateEncoder`` lays the features side by side (``n x d`` float64 rows) and builds the
``CandidateKernel`` over them. ``stage_features`` picks the features a stage compares: the
space's declarations that read a searched parameter, plus a default declaration for every
searched parameter none of them reads (so a space that declares nothing still works).
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dnc.bo.features import Categorical, KernelFeature, Scalar
from dnc.bo.kernels import OMEGA, CandidateKernel
from dnc.plugins import SearchSpace
from dnc.search.suggest import UniformSuggest


class CandidateEncoder:
    """Encodes candidates for the ramp kernel; one block of columns per feature.

    Example:
        >>> enc = CandidateEncoder([Scalar("batch_size", 32, 512),
        ...                         Scalar("lr", 1e-5, 1e-1, log=True)])
        >>> x = enc.encode([{"batch_size": 200, "lr": 1e-3}, {"batch_size": 100, "lr": 1e-3}])
        >>> x
        tensor([[200.,  -3.],
                [100.,  -3.]], dtype=torch.float64)
        >>> round(float(enc.kernel()(x).to_dense()[0, 1].detach()), 2)   # (0.82 + 1) / 2
        0.91
    """

    def __init__(self, features: Sequence[KernelFeature]) -> None:
        if not features:
            raise ValueError("CandidateEncoder needs at least one feature")
        self.features = tuple(features)
        self.columns: list[tuple[int, ...]] = []
        start = 0
        for f in self.features:
            self.columns.append(tuple(range(start, start + f.width)))
            start += f.width
        self.width = start

    def encode_one(self, values: Mapping[str, Any]) -> list[float]:
        """One candidate's row (``d`` numbers)."""
        row: list[float] = []
        for f in self.features:
            row.extend(f.encode(values))
        return row

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """``n x d`` float64 tensor for ``n`` candidates."""
        data = [self.encode_one(v) for v in rows]
        return torch.tensor(data, dtype=torch.float64).reshape(len(data), self.width)

    def kernel(self, omega: float = OMEGA) -> CandidateKernel:
        """The candidate kernel: weighted mean of the features' kernels (weights from the
        declarations, ``omega`` for every part)."""
        parts = [f.kernel(cols, omega) for f, cols in zip(self.features, self.columns, strict=True)]
        return CandidateKernel(parts, weights=[f.weight for f in self.features]).double()


@dataclass
class ParamRecord:
    """What a space asked for one parameter, over several samples."""

    kind: str  # "int", "float" or "categorical"
    low: float = math.inf
    high: float = -math.inf
    log: bool = False
    choices: tuple[Any, ...] = ()


class RecordingSuggest(UniformSuggest):
    """A ``UniformSuggest`` that records each searched parameter's kind and bounds, and counts
    the numbers it draws."""

    def __init__(self, draw: Any, active: Collection[str] | None, base: Mapping[str, Any] | None,
                 records: dict[str, ParamRecord]) -> None:
        self.draws = 0

        def counted() -> float:
            self.draws += 1
            return float(draw())

        super().__init__(counted, active, base)
        self.records = records

    def _record(self, name: str, kind: str, low: float, high: float, log: bool) -> None:
        if name not in self.params:  # held: not searched in this stage
            return
        rec = self.records.setdefault(name, ParamRecord(kind))
        rec.low, rec.high = min(rec.low, float(low)), max(rec.high, float(high))
        rec.log = rec.log or log

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        value = super().int(name, low, high, group=group, default=default, log=log)
        self._record(name, "int", low, high, log)
        return value

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        value = super().float(name, low, high, group=group, default=default, log=log)
        self._record(name, "float", low, high, log)
        return value

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        value = super().categorical(name, choices, group=group, default=default)
        if name in self.params:
            rec = self.records.setdefault(name, ParamRecord("categorical"))
            rec.choices = tuple(dict.fromkeys((*rec.choices, *choices)))
        return value


@dataclass(frozen=True)
class Probe:
    """What sampling a space showed: searched parameters and the most numbers one draw took."""

    records: dict[str, ParamRecord]
    max_draws: int


def probe_space(
    space: SearchSpace,
    active: Collection[str] | None,
    base: Mapping[str, Any] | None,
    samples: int = 64,
    seed: int = 0,
) -> Probe:
    """Sample ``space`` a few times (uniform draws, and all draws near 0 and near 1) to learn
    which parameters the stage searches, their bounds, and how many numbers a draw takes."""
    rng = random.Random(seed)
    records: dict[str, ParamRecord] = {}
    most = 0
    draws: list[Any] = [lambda: 0.0, lambda: 1.0 - 1e-9]
    draws += [rng.random] * samples
    for draw in draws:
        s = RecordingSuggest(draw, active, base, records)
        space.sample(s)
        most = max(most, s.draws)
    return Probe(records, most)


def default_feature(name: str, rec: ParamRecord) -> KernelFeature:
    """The declaration used for a searched parameter no declaration reads."""
    if rec.kind == "categorical":
        return Categorical(name, rec.choices)
    # A log-scaled parameter's value may have been mapped to 0 by the space (weight decay).
    return Scalar(name, rec.low, rec.high, log=rec.log, zero_at_lower=rec.log)


def stage_features(
    declared: Sequence[KernelFeature], searched: Mapping[str, ParamRecord]
) -> list[KernelFeature]:
    """The declarations that read a searched parameter, then defaults for the rest."""
    chosen = [f for f in declared if any(n in searched for n in f.reads())]
    covered = {n for f in chosen for n in f.reads()}
    chosen += [default_feature(n, rec) for n, rec in searched.items() if n not in covered]
    return chosen


__all__ = [
    "CandidateEncoder",
    "ParamRecord",
    "Probe",
    "RecordingSuggest",
    "default_feature",
    "probe_space",
    "stage_features",
]
