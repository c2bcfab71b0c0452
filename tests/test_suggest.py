"""UniformSuggest: how numbers in [0, 1] become parameter values."""

from __future__ import annotations

import pytest

from dnc.suggest import UniformSuggest


def answer(u: float, kind: str):
    s = UniformSuggest(lambda: u)
    if kind == "int":
        return s.int("n", 3, 9, group="core", default=5)
    if kind == "log_int":
        return s.int("n", 16, 512, group="core", default=64, log=True)
    if kind == "float":
        return s.float("x", 0.5, 2.5, group="train", default=1.0)
    if kind == "log_float":
        return s.float("lr", 1e-5, 1e-1, group="train", default=1e-3, log=True)
    return s.categorical("act", ["relu", "tanh", "elu"], group="arch", default="relu")


BOUNDS = {
    "int": (3, 9),
    "log_int": (16, 512),
    "float": (0.5, 2.5),
    "log_float": (1e-5, 1e-1),
    "categorical": ("relu", "elu"),
}


@pytest.mark.parametrize("kind", sorted(BOUNDS))
def test_zero_and_one_give_the_bounds_and_outside_values_are_clamped(kind: str) -> None:
    low, high = BOUNDS[kind]
    assert answer(0.0, kind) == low and answer(1.0, kind) == high
    assert answer(-0.25, kind) == low and answer(1.25, kind) == high


def test_integers_split_the_unit_interval_evenly() -> None:
    counts: dict[int, int] = {}
    for i in range(700):
        value = answer((i + 0.5) / 700, "int")
        counts[value] = counts.get(value, 0) + 1
    assert counts == {v: 100 for v in range(3, 10)}


def test_held_groups_take_base_and_draw_nothing() -> None:
    draws = iter([0.0, 1.0])
    s = UniformSuggest(lambda: next(draws), active=("train",), base={"n": 7})
    assert s.int("n", 3, 9, group="core", default=5) == 7
    assert s.float("lr", 1e-5, 1e-1, group="train", default=1e-3, log=True) == 1e-5
    assert s.params == {"lr": 1e-5}
