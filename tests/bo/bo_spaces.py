"""A CNN-shaped space (the paper's channel rule) and candidate draws for the ramp-BO tests."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import torch

from dnc.bo import LayerWidths, Scalar, doubling_bounds
from dnc.plugins import Candidate, DataSpec, SearchSpace, Suggest, suggest_training
from dnc.search.suggest import UniformSuggest


class ChainCNNSpace(SearchSpace):
    """4-16 conv layers; first 16-64 channels, each next in [c_prev, min(2 c_prev, 512)]."""

    name = "chain_cnn"

    def sample(self, suggest: Suggest) -> Candidate:
        n = suggest.int("num_conv_layers", 4, 16, group="core", default=8)
        cand: Candidate = {"num_conv_layers": n}
        prev = 0
        for i in range(n):
            lo, hi = (16, 64) if i == 0 else (prev, min(2 * prev, 512))
            prev = suggest.int(f"channels_{i}", lo, hi, group="core", default=lo)
            cand[f"channels_{i}"] = prev
        cand.update(suggest_training(suggest))
        return cand

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> torch.nn.Module:
        raise NotImplementedError

    def kernel_features(self) -> tuple[Any, ...]:
        return (
            LayerWidths("channels_{i}", count="num_conv_layers",
                        bounds=doubling_bounds((16, 64), 512, 16)),
            Scalar("lr", 1e-5, 1e-1, log=True),
            Scalar("weight_decay", 1e-6, 1e-3, log=True, zero_at_lower=True),
            Scalar("batch_size", 32, 512),
        )


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
