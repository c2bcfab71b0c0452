"""Candidate draws for the ramp-BO tests (the CNN-shaped space lives in ``dnc.testing``)."""

from __future__ import annotations

import random
from typing import Any

from dnc.plugins import SearchSpace
from dnc.search.suggest import UniformSuggest
from dnc.testing import ChainCNNSpace

__all__ = ["ChainCNNSpace", "random_candidates"]


def random_candidates(space: SearchSpace, n: int, seed: int = 0,
                      active: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """``n`` candidates drawn uniformly through the space, merged with their sampled params."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = UniformSuggest(rng.random, active)
        cand = space.sample(s)
        out.append({**s.params, **cand})
    return out
