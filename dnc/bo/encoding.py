"""Candidates as fixed-width rows, and the features a stage compares.

``CandidateEncoder`` lays the features side by side (``n x d`` float64 rows) and builds the
``CandidateKernel`` over them. ``stage_features`` picks the features a stage compares: the
space's declarations that read a searched parameter, plus a default declaration for every
searched parameter none of them reads (so a space that declares nothing still works).
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dnc.bo.candidate_kernel import CandidateKernel
from dnc.bo.features import Categorical, KernelFeature, Scalar
from dnc.bo.kernels import OMEGA
from dnc.plugins import SearchSpace
from dnc.suggest import ParamRecord, RecordingSuggest, UniformSuggest


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
    searched: set[str] = set()
    most = 0
    draws: list[Any] = [lambda: 0.0, lambda: 1.0 - 1e-9]
    draws += [rng.random] * samples
    for draw in draws:
        count = [0]

        def counted(draw: Any = draw, count: list[int] = count) -> float:
            count[0] += 1
            return float(draw())

        uniform = UniformSuggest(counted, active, base)
        space.sample(RecordingSuggest(uniform, records))
        searched.update(uniform.params)
        most = max(most, count[0])
    return Probe({n: r for n, r in records.items() if n in searched}, most)


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
    "Probe",
    "default_feature",
    "probe_space",
    "stage_features",
]
