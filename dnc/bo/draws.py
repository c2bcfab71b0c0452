"""Candidates drawn through a space's own define-by-run sampling, for the ramp BO.

Each searched parameter reads its own coordinate of a row of uniforms (``CoordinateSuggest``),
whatever the depth of the candidate (as the original's ``get_states`` gives each key its own
Sobol column), so dynamic bounds such as channels in ``[c_prev, 2 c_prev]`` hold and the lr of
every prior state comes from the same, stratified, dimension.

- ``prior(i)``: the ``i``-th point of a scrambled, seeded Sobol sequence;
- ``explore(i)``: ``explore`` uniform rows, each numeric parameter at one of its bounds with
  probability ``at_bounds`` (a uniform draw never lands on a bound, yet the best lr or the
  cheapest width often lies there), each returned with its row (``Point``), so a local search
  (``dnc.bo.optimise``) can move from it one coordinate at a time;
- ``row_of(params)``: the row a known candidate (a finished trial) comes from;
- ``admissible(candidate)``: whether the stage's screen (``screen``: the cost's feasibility,
  asked of the built, untrained network) lets the candidate be proposed; prior states skip
  the candidates it refuses, and ``dnc.bo.optimise`` proposes the best candidate it admits.

Everything random derives from ``seed`` and the trial number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dnc.plugins import Candidate, SearchSpace, candidate_key
from dnc.suggest import CoordinateSuggest, ParamRecord, RowSuggest

log = logging.getLogger(__name__)

Draw = tuple[Candidate, dict[str, Any]]
"""A drawn candidate and its searched params."""


@dataclass(frozen=True)
class Point:
    """A drawn candidate, its searched params and the row of uniforms it was drawn from."""

    candidate: Candidate
    params: dict[str, Any]
    row: tuple[float, ...]


class CandidateDraws:
    """Draws candidates of ``space`` over the searched parameters ``records`` (from
    ``probe_space``), the rest held at ``base``."""

    def __init__(
        self,
        space: SearchSpace,
        active: Collection[str] | None,
        base: Mapping[str, Any],
        records: Mapping[str, ParamRecord],
        *,
        seed: int,
        prior_states: int,
        explore: int,
        at_bounds: float,
        screen: Callable[[Candidate], bool] | None = None,
    ) -> None:
        self.space = space
        self.screen = screen
        self._admitted: dict[Hashable, bool] = {}
        self.base = base
        self.seed = seed
        self.prior_states = prior_states
        self.explore_size = explore
        self.at_bounds = at_bounds
        coordinate = {name: i for i, name in enumerate(records)}
        self.coordinate = dict(coordinate)
        self.records = dict(records)
        self.dims = min(max(len(coordinate), 1), torch.quasirandom.SobolEngine.MAXDIM)
        self.numeric = np.zeros(self.dims, dtype=bool)  # columns of int and float parameters
        for name, index in coordinate.items():
            if index < self.dims and records[name].kind != "categorical":
                self.numeric[index] = True
        self._suggest = CoordinateSuggest(coordinate, active, base)
        self._sobol: torch.Tensor | None = None

    def sample(self, row: Sequence[float]) -> Draw:
        """Push one row of uniforms (one per parameter) through the space."""
        return self._suggest.sample(self.space, row)

    def point(self, row: Sequence[float]) -> Point:
        """``sample`` with its row kept."""
        candidate, params = self.sample(row)
        return Point(candidate, params, tuple(row))

    def row_of(self, params: Mapping[str, Any]) -> tuple[float, ...]:
        """The row that ``sample`` turns into the candidate of searched ``params`` (a
        coordinate the candidate does not use is 0.5)."""
        suggest = RowSuggest(params, self.coordinate, [0.5] * self.dims, self.base)
        self.space.sample(suggest)
        return tuple(suggest.row)

    def admissible(self, candidate: Candidate) -> bool:
        """Whether ``screen`` admits ``candidate`` (asked once per candidate; no screen: yes)."""
        if self.screen is None:
            return True
        key = candidate_key(candidate)
        if key not in self._admitted:
            self._admitted[key] = bool(self.screen(candidate))
        return self._admitted[key]

    def random(self, number: int) -> Draw:
        """One uniform draw for trial ``number``."""
        return self.sample(np.random.default_rng([self.seed, number]).random(self.dims).tolist())

    def prior(self, number: int, taken: set[Hashable]) -> tuple[Candidate, dict[str, Any], bool]:
        """Trial ``number``'s Sobol point, or a random draw where that lands on a ``taken``
        candidate (integer rounding) or one the screen refuses (the first fresh one when it
        refuses all); the flag is False when every draw was taken."""
        candidate, params = self.sample(self._sobol_point(number))
        fresh = None if candidate_key(candidate) in taken else (candidate, params)
        if fresh is not None and self.admissible(candidate):
            return candidate, params, True
        rng = np.random.default_rng([self.seed, number, 1])
        for _ in range(100):
            candidate, params = self.sample(rng.random(self.dims).tolist())
            if candidate_key(candidate) not in taken:
                if self.admissible(candidate):
                    return candidate, params, True
                fresh = fresh or (candidate, params)
        if fresh is not None:
            log.warning("RampBOSampler: no prior state the cost can run was found; trying one")
            return fresh[0], fresh[1], True
        return candidate, params, False

    def explore(self, number: int, taken: set[Hashable]) -> list[Point]:
        """``explore`` random candidates for trial ``number``, less those equal to a ``taken``
        one or to each other; if none is left, draw again (at most 10 times)."""
        rng = np.random.default_rng([self.seed, number])
        for _ in range(10):
            seen = set(taken)
            out = []
            for row in self._random_rows(rng).tolist():
                point = self.point(row)
                key = candidate_key(point.candidate)
                if key not in seen:
                    seen.add(key)
                    out.append(point)
            if out:
                return out
        return []

    def _sobol_point(self, index: int) -> list[float]:
        count = max(index + 1, self.prior_states)
        if self._sobol is None or len(self._sobol) < count:
            engine = torch.quasirandom.SobolEngine(self.dims, scramble=True, seed=self.seed)
            self._sobol = engine.draw(count, dtype=torch.float64)
        return self._sobol[index].tolist()

    def _random_rows(self, rng: np.random.Generator) -> np.ndarray:
        """``explore`` rows of uniforms, one column per parameter, numeric ones at a bound with
        probability ``at_bounds`` (the space's own, dynamic bounds included)."""
        rows = rng.random((self.explore_size, self.dims))
        if self.at_bounds > 0 and self.numeric.any():
            edge = (rng.random(rows.shape) < self.at_bounds) & self.numeric
            rows = np.where(edge, (rng.random(rows.shape) < 0.5).astype(float), rows)
        return rows


__all__ = ["CandidateDraws", "Draw", "Point"]
