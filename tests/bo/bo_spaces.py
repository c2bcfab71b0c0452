"""Fixtures of the ramp-BO tests (``bench/bo_overhead.py`` uses them too): a CNN-shaped space,
uniform candidate draws, and the ``(fp, fc)`` a synthetic trial records."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import optuna
import torch

from dnc.plugins import DataSpec, SearchSpace, Suggest, suggest_training
from dnc.suggest import UniformSuggest

__all__ = ["ChainCNNSpace", "random_candidates", "recorded_parts"]


def random_candidates(
    space: SearchSpace, n: int, seed: int = 0, active: tuple[str, ...] | None = None
) -> list[dict[str, Any]]:
    """``n`` candidates drawn uniformly through the space, merged with their sampled params."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = UniformSuggest(rng.random, active)
        cand = space.sample(s)
        out.append({**s.params, **cand})
    return out


class ChainCNNSpace(SearchSpace):
    """A CNN-shaped space with only what the ramp kernel sees (it builds no network): 4-16
    conv layers, the first with 16-64 channels, each next in ``[c_prev, min(2 c_prev, 512)]``,
    plus lr, weight decay and batch size. For kernel and sampler tests and benchmarks."""

    name = "chain_cnn"

    def sample(self, suggest: Suggest) -> dict[str, Any]:
        n = suggest.int("num_conv_layers", 4, 16, group="core", default=8)
        cand: dict[str, Any] = {"num_conv_layers": n}
        prev = 0
        for i in range(n):
            lo, hi = (16, 64) if i == 0 else (prev, min(2 * prev, 512))
            prev = suggest.int(f"channels_{i}", lo, hi, group="core", default=lo)
            cand[f"channels_{i}"] = prev
        cand.update(suggest_training(suggest))
        return cand

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> torch.nn.Module:
        raise NotImplementedError("a kernel-only space: no network is built")

    def kernel_features(self) -> tuple[Any, ...]:
        from dnc.bo import LayerWidths, Scalar, doubling_bounds

        return (
            LayerWidths(
                "channels_{i}", count="num_conv_layers", bounds=doubling_bounds((16, 64), 512, 16)
            ),
            Scalar("lr", 1e-5, 1e-1, log=True),
            Scalar("weight_decay", 1e-6, 1e-3, log=True, zero_at_lower=True),
            Scalar("batch_size", 32, 512),
        )


def recorded_parts(trial: optuna.trial.FrozenTrial) -> tuple[float, float] | None:
    """A trial's ``(fp, fc)`` from its ``figures`` user attribute (keys ``fp`` and ``fc``), for
    ``RampBOSampler(loss_parts=LossParts(wc, recorded_parts))`` on synthetic studies; ``None``
    when it recorded none."""
    figures = trial.user_attrs.get("figures")
    return None if figures is None else (figures["fp"], figures["fc"])
