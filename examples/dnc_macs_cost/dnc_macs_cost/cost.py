"""Complexity as multiply-accumulates (MACs) per example of a network's linear and
convolutional layers, normalised by ``macs_bar`` (a number, or ``auto``: the reference
network's MACs, measured once per search)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from dnc.plugins import CostEvaluator, DataSpec, parse_normaliser


class Macs(CostEvaluator):
    """``fc = macs / macs_bar``; ``measure`` counts one forward pass of one example."""

    name = "macs"

    def __init__(self, macs_bar: float | str = "auto") -> None:
        self.bar = parse_normaliser(macs_bar, "cost.macs_bar")

    def measure(
        self, model: nn.Module, candidate: Mapping[str, Any], data: DataSpec
    ) -> dict[str, float]:
        total = 0

        def count(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            nonlocal total
            if isinstance(module, nn.Linear):
                total += module.in_features * module.out_features
            elif isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                total += output[0].numel() * (module.in_channels // module.groups) * kh * kw

        layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        hooks = [m.register_forward_hook(count) for m in layers]
        device = next(model.parameters()).device
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad():
                model(torch.zeros(1, *data.input_shape, device=device))
        finally:
            model.train(was_training)
            for hook in hooks:
                hook.remove()
        return {"macs": float(total)}

    def calibrate(self, figures: Mapping[str, float]) -> None:
        if self.bar is None:
            self.bar = figures["macs"]

    def complexity(self, figures: Mapping[str, float]) -> float:
        assert self.bar is not None, "macs_bar is auto: dnc calibrates it before the first trial"
        return figures["macs"] / self.bar

    def settings(self) -> dict[str, Any]:
        return {"macs_bar": self.bar}
