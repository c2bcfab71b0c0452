"""The ``Suggest`` protocol and every implementation dnc passes to ``SearchSpace.sample``, in
one leaf module.

A search space draws a candidate define-by-run from a ``Suggest`` (re-exported as
``dnc.plugins.Suggest``: ``int``, ``float`` and ``categorical``, each with a ``group`` and a
``default``). Where the values come from is the ``Suggest``'s business:

- ``DefaultSuggest``: every parameter at its default (the reference candidate);
- ``TrialSuggest``: an Optuna trial for the searched groups, a base candidate for the rest;
- ``UniformSuggest``: a stream of numbers in ``[0, 1]`` (Sobol points, random draws);
- ``CoordinateSuggest``: one row of uniforms, each parameter reading its own coordinate;
- ``ReplaySuggest``: the values of a known candidate (rebuilding it from its params);
- ``RowSuggest``: the same, also writing the row of uniforms that ``CoordinateSuggest`` would
  turn into them (the inverse of its mapping);
- ``TransferSuggest``: the values of another search's candidate, clamped into this space;
- ``RecordingSuggest``: any of these, recording what the space asked (kind, bounds, group).

This module imports nothing from dnc, so every layer may use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Suggest(Protocol):
    """Where a search space gets its parameter values from, define-by-run.

    A stage passes a ``TrialSuggest`` (values of the groups it searches come from its Optuna
    trial, the rest are held at the base candidate or the default); the ramp-BO sampler a
    ``CoordinateSuggest`` (rows of uniforms). Bounds may depend on earlier values
    (``channels_i in [c_{i-1}, 2 c_{i-1}]``). Re-exported as ``dnc.plugins.Suggest``.
    """

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int: ...

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float: ...

    def categorical(
        self, name: str, choices: Sequence[Any], *, group: str, default: Any
    ) -> Any: ...


class DefaultSuggest:
    """Answers every parameter with its default."""

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        return default

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        return default

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        return default


class _Held:
    """Holds the parameters of groups a stage does not search at ``base`` (or the default)."""

    def __init__(self, active: Collection[str] | None, base: Mapping[str, Any] | None) -> None:
        self.active = None if active is None else frozenset(active)
        self.base = dict(base or {})

    def _searched(self, group: str) -> bool:
        return self.active is None or group in self.active


class TrialSuggest(_Held):
    """Answers parameters of the active groups from an Optuna trial, the rest from ``base``.

    ``base`` is the best candidate so far (or empty): a parameter outside the stage's groups
    keeps its value there, or its default. ``active=None`` makes every group active. Held
    values are collected in ``fixed`` so they can be stored with the trial.

    Example:
        >>> trial = optuna.create_study().ask()
        >>> candidate = MLPSpace().sample(TrialSuggest(trial, ("train",), base=best))
    """

    def __init__(
        self,
        trial: Any,
        active: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(active, base)
        self.trial = trial
        self.fixed: dict[str, Any] = {}

    def _held(self, name: str, default: Any) -> Any:
        value = self.base.get(name, default)
        self.fixed[name] = value
        return value

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        if self._searched(group):
            return int(self.trial.suggest_int(name, low, high, log=log))
        return int(self._held(name, default))

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        if self._searched(group):
            return float(self.trial.suggest_float(name, low, high, log=log))
        return float(self._held(name, default))

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        if self._searched(group):
            return self.trial.suggest_categorical(name, list(choices))
        return self._held(name, default)


class UniformSuggest(_Held):
    """Maps a stream of numbers in ``[0, 1]`` onto parameters, in the order they are asked
    (0 and 1 give a parameter's lower and upper bound; a number outside is clamped).

    Used to push Sobol points or random draws through a space's define-by-run sampling, so
    dynamic bounds (``[c_prev, 2 c_prev]``) are honoured. Parameters outside ``active`` are held
    at ``base`` (or their default) and consume no number; the searched ones are collected in
    ``params``.
    """

    def __init__(
        self,
        draw: Callable[[], float],
        active: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(active, base)
        self.draw = draw
        self.params: dict[str, Any] = {}

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


class CoordinateSuggest(UniformSuggest):
    """A ``UniformSuggest`` that answers each parameter from its own coordinate of a row of
    uniforms (``coordinate``: name -> index; a name it lacks takes the next index, modulo the
    row). One instance samples many rows (``sample``), as a BO step does for its candidates."""

    def __init__(
        self,
        coordinate: dict[str, int],
        active: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(self._unnamed, active, base)
        self._row: Sequence[float] = ()
        self._coordinate = coordinate

    def sample(self, space: Any, row: Sequence[float]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Push one row of uniforms through ``space``: the candidate and its searched params."""
        self._row, self.params = row, {}
        return space.sample(self), self.params

    def _unnamed(self) -> float:
        raise AssertionError("every parameter is drawn by name")  # pragma: no cover

    def _uniform(self, name: str) -> float:
        try:
            return self._row[self._coordinate[name] % len(self._row)]
        except KeyError:
            index = self._coordinate.setdefault(name, len(self._coordinate))
            return self._row[index % len(self._row)]


class ReplaySuggest:
    """Answers each parameter from ``params``, else ``base``, else its default: rebuilds a
    known candidate (an Optuna trial's params plus the values its stage held)."""

    def __init__(self, params: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> None:
        self.params, self.base = params, base or {}

    def _get(self, name: str, default: Any) -> Any:
        return self.params[name] if name in self.params else self.base.get(name, default)

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        return int(self._get(name, default))

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        return float(self._get(name, default))

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        return self._get(name, default)


class RowSuggest(ReplaySuggest):
    """A ``ReplaySuggest`` of ``params`` that also writes, into ``row`` (one coordinate per
    name, ``coordinate``: name -> index), the number in ``[0, 1]`` from which
    ``CoordinateSuggest`` gives each value under the bounds the space asks with now: a known
    candidate as a point of the uniform rows a BO step searches (``CandidateDraws.row_of``). A
    value outside its bounds writes the nearer bound's number."""

    def __init__(
        self,
        params: Mapping[str, Any],
        coordinate: Mapping[str, int],
        row: Sequence[float],
        base: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(params, base)
        self.coordinate = coordinate
        self.row = list(row)

    def _write(self, name: str, u: float) -> None:
        index = self.coordinate.get(name)
        if index is not None and index < len(self.row):
            self.row[index] = min(max(u, 0.0), 1.0)

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        value = int(self._get(name, default))
        if name in self.params:
            if log and low > 0:
                span = math.log(high) - math.log(low)
                self._write(
                    name, (math.log(max(value, low)) - math.log(low)) / span if span else 0.5
                )
            else:
                self._write(name, (value - low + 0.5) / (high - low + 1))
        return value

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        value = float(self._get(name, default))
        if name in self.params:
            if value <= low or value >= high or high <= low:
                self._write(name, 0.0 if value <= low else 1.0)
            elif log and low > 0:
                self._write(name, (math.log(value) - math.log(low)) / math.log(high / low))
            else:
                self._write(name, (value - low) / (high - low))
        return value

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        value = self._get(name, default)
        if name in self.params and value in list(choices):
            self._write(name, (list(choices).index(value) + 0.5) / len(choices))
        return value


class TransferSuggest(_Held):
    """Answers the parameters of the ``active`` groups from ``values`` (a candidate of another
    search: a warm start), each clamped into the bounds this space gives it now (names clamped
    so are kept in ``clamped``), the rest from ``base`` or their default; the searched values
    are collected in ``params``. A categorical value that is not one of the choices raises
    ``ValueError``; a parameter ``values`` lacks takes its default.

    Example:
        >>> s = TransferSuggest({"hidden_0": 800, "num_hidden_layers": 1}, active=("core",))
        >>> MLPSpace(hidden_nodes=(20, 400)).sample(s)["hidden_0"], s.clamped
        (400, ['hidden_0'])
    """

    def __init__(
        self,
        values: Mapping[str, Any],
        active: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(active, base)
        self.values = dict(values)
        self.params: dict[str, Any] = {}
        self.clamped: list[str] = []

    def _number(self, name: str, low: Any, high: Any, default: Any, kind: type) -> Any:
        value = kind(self.values.get(name, default))
        if not low <= value <= high:
            value = min(max(value, kind(low)), kind(high))
            self.clamped.append(name)
        self.params[name] = value
        return value

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        if not self._searched(group):
            return int(self.base.get(name, default))
        return int(self._number(name, low, high, default, int))

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        if not self._searched(group):
            return float(self.base.get(name, default))
        return float(self._number(name, low, high, default, float))

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        if not self._searched(group):
            return self.base.get(name, default)
        value = self.values.get(name, default)
        if value not in list(choices):
            raise ValueError(f"{name}={value!r} is not one of {list(choices)}")
        self.params[name] = value
        return value


@dataclass
class ParamRecord:
    """What a space asked for one parameter, over one or more samples: its kind (``int``,
    ``float`` or ``categorical``), group, bounds (the widest seen), ``log``, and the choices
    of a categorical."""

    kind: str
    group: str = ""
    low: float = math.inf
    high: float = -math.inf
    log: bool = False
    choices: tuple[Any, ...] = ()


class RecordingSuggest:
    """Passes every question to ``inner`` and records it in ``records`` (name ->
    ``ParamRecord``; the same dict may collect several samples)."""

    def __init__(self, inner: Suggest, records: dict[str, ParamRecord] | None = None) -> None:
        self.inner = inner
        self.records: dict[str, ParamRecord] = {} if records is None else records

    def _record(self, name: str, kind: str, group: str) -> ParamRecord:
        rec = self.records.get(name)
        if rec is None:
            rec = self.records[name] = ParamRecord(kind, group)
        return rec

    def _bounds(self, name: str, kind: str, group: str, low: float, high: float, log: bool) -> None:
        rec = self._record(name, kind, group)
        rec.low, rec.high = min(rec.low, float(low)), max(rec.high, float(high))
        rec.log = rec.log or log

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        self._bounds(name, "int", group, low, high, log)
        return self.inner.int(name, low, high, group=group, default=default, log=log)

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        self._bounds(name, "float", group, low, high, log)
        return self.inner.float(name, low, high, group=group, default=default, log=log)

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        rec = self._record(name, "categorical", group)
        rec.choices = tuple(dict.fromkeys((*rec.choices, *choices)))
        return self.inner.categorical(name, choices, group=group, default=default)


__all__ = [
    "CoordinateSuggest",
    "DefaultSuggest",
    "ParamRecord",
    "RecordingSuggest",
    "ReplaySuggest",
    "RowSuggest",
    "Suggest",
    "TransferSuggest",
    "TrialSuggest",
    "UniformSuggest",
]
