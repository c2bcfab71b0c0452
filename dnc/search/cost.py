"""Built-in cost evaluators: training time per epoch and parameter count.

``fc = t_epoch / tbar_epoch`` or ``numparams / numparams_bar``. A normaliser given as ``auto``
is calibrated once per search from a reference network of the space on the current platform,
so that a given ``wc`` means the same on a laptop and on a GPU server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dnc.plugins import CostEvaluator, parse_normaliser


class _RatioCost(CostEvaluator):
    """``fc = figures[figure] / normaliser``."""

    figure = ""
    key = ""

    def __init__(self, normaliser: float | str = "auto") -> None:
        self.bar = parse_normaliser(normaliser, f"cost.{self.key}")

    @property
    def needs_calibration(self) -> bool:
        return self.bar is None

    def calibrate(self, figures: Mapping[str, float]) -> None:
        if self.bar is None:
            self.bar = float(figures[self.figure])

    def complexity(self, figures: Mapping[str, float]) -> float:
        if self.bar is None:
            raise RuntimeError(f"{self.key} is auto but was never calibrated")
        return float(figures[self.figure]) / self.bar

    def settings(self) -> dict[str, Any]:
        return {self.key: self.bar}


class TEpoch(_RatioCost):
    """Training time per epoch, ``fc = t_epoch / tbar_epoch`` (seconds)."""

    name = "t_epoch"
    figure = "t_epoch"
    calibrate_by_training = True
    key = "tbar_epoch"

    def __init__(self, tbar_epoch: float | str = "auto") -> None:
        super().__init__(tbar_epoch)


class NumParams(_RatioCost):
    """Trainable parameters, ``fc = numparams / numparams_bar``."""

    name = "numparams"
    figure = "numparams"
    key = "numparams_bar"

    def __init__(self, numparams_bar: float | str = "auto") -> None:
        super().__init__(numparams_bar)
