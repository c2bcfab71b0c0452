"""``Suggest`` implementations: an Optuna trial for a stage, and a stream of uniforms."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import optuna


class TrialSuggest:
    """Answers parameters of the active groups from an Optuna trial, the rest from ``base``.

    ``base`` is the best candidate so far (or empty): a parameter outside the stage's groups
    keeps its value there, or its default. ``active=None`` makes every group active. Held
    values are collected in ``fixed`` so they can be stored with the trial.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        active: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> None:
        self.trial = trial
        self.active = None if active is None else frozenset(active)
        self.base = dict(base or {})
        self.fixed: dict[str, Any] = {}

    def _searched(self, group: str) -> bool:
        return self.active is None or group in self.active

    def _held(self, name: str, default: Any) -> Any:
        value = self.base.get(name, default)
        self.fixed[name] = value
        return value

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        if self._searched(group):
            return self.trial.suggest_int(name, low, high, log=log)
        return int(self._held(name, default))

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        if self._searched(group):
            return self.trial.suggest_float(name, low, high, log=log)
        return float(self._held(name, default))

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        if self._searched(group):
            return self.trial.suggest_categorical(name, list(choices))
        return self._held(name, default)


class UniformSuggest:
    """Maps a stream of numbers in ``[0, 1]`` onto parameters, in the order they are asked
    (0 and 1 give a parameter's lower and upper bound).

    Used to push Sobol points or random draws through a space's define-by-run sampling, so
    dynamic bounds (``[c_prev, 2 c_prev]``) are honoured. Parameters outside ``active`` are held
    at ``base`` (or their default) and consume no number.
    """

    def __init__(
        self,
        draw: Callable[[], float],
        active: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> None:
        self.draw = draw
        self.active = None if active is None else frozenset(active)
        self.base = dict(base or {})
        self.params: dict[str, Any] = {}

    def _searched(self, group: str) -> bool:
        return self.active is None or group in self.active

    def _uniform(self, name: str) -> float:
        """The number in ``[0, 1]`` that parameter ``name`` is drawn from (the next of the
        stream; a subclass may answer by name)."""
        return self.draw()

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        if not self._searched(group):
            return int(self.base.get(name, default))
        u = self._uniform(name)
        if log:
            value = round(math.exp(math.log(low) + u * (math.log(high) - math.log(low))))
        else:
            value = low + math.floor(u * (high - low + 1))
        value = min(max(value, low), high)  # u = 1 (a draw at the upper bound) overshoots
        self.params[name] = value
        return value

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        if not self._searched(group):
            return float(self.base.get(name, default))
        u = self._uniform(name)
        if u <= 0.0 or u >= 1.0:  # exactly at a bound (exp(log(low)) may differ in the last bit)
            value = low if u <= 0.0 else high
        elif log:
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        else:
            value = low + u * (high - low)
        value = min(max(value, low), high)
        self.params[name] = value
        return value

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        if not self._searched(group):
            return self.base.get(name, default)
        index = math.floor(self._uniform(name) * len(choices))
        value = choices[min(max(index, 0), len(choices) - 1)]
        self.params[name] = value
        return value
