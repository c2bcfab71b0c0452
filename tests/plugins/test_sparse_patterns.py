"""Connection patterns of pre-defined sparse junctions: degrees, banks, refusals."""

from __future__ import annotations

import math
import random

import pytest
import torch
from dnc_sparse import adjacency, clash_free_schedule, feasible_out_degrees, nearest_out_degree

from dnc.plugins import UserError


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def feasible_shapes(count: int, seed: int) -> list[tuple[int, int, int, int]]:
    """Random ``(n_left, n_right, d_out, z)`` with ``z | n_left`` and ``d_in | n_left``."""
    rng = random.Random(seed)
    shapes = []
    while len(shapes) < count:
        n_left = rng.choice([8, 12, 16, 24, 30, 32, 48, 60, 64, 96, 100, 128, 144])
        n_right = rng.choice([4, 6, 8, 10, 12, 16, 20, 32, 40, 64, 72, 128])
        options = feasible_out_degrees(n_left, n_right)
        d_out = rng.choice(options)
        z = rng.choice(_divisors(n_left))
        shapes.append((n_left, n_right, d_out, z))
    return shapes


SHAPES = feasible_shapes(60, seed=0)


def _assert_exact_degrees(mask: torch.Tensor, d_out: int) -> None:
    n_right, n_left = mask.shape
    d_in = n_left * d_out // n_right
    assert mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [d_in] * n_right
    assert mask.sum(dim=0).tolist() == [d_out] * n_left


@pytest.mark.parametrize(("n_left", "n_right", "d_out", "z"), SHAPES)
def test_basic_has_exact_in_and_out_degrees(n_left, n_right, d_out, z):
    mask = adjacency("basic", n_left, n_right, d_out, seed=n_left + d_out)
    assert mask.shape == (n_right, n_left)
    _assert_exact_degrees(mask, d_out)


@pytest.mark.parametrize(("n_left", "n_right", "d_out", "z"), SHAPES)
def test_random_has_exactly_n_left_times_d_out_edges(n_left, n_right, d_out, z):
    mask = adjacency("random", n_left, n_right, d_out, seed=z)
    assert mask.shape == (n_right, n_left)
    assert int(mask.sum()) == n_left * d_out


@pytest.mark.parametrize("dither", [False, True])
@pytest.mark.parametrize("cf_type", [1, 2, 3])
@pytest.mark.parametrize(("n_left", "n_right", "d_out", "z"), SHAPES[:25])
def test_clash_free_degrees_and_banks(n_left, n_right, d_out, z, cf_type, dither):
    seed = 7 * n_left + d_out
    sched = clash_free_schedule(n_left, n_right, d_out, z, seed, cf_type=cf_type, dither=dither)
    assert sched.shape == (n_left * d_out,)
    banks = sched % z
    # every clock (z aligned consecutive slots) reads z distinct banks
    per_clock = banks.view(-1, z).sort(dim=1).values
    assert torch.equal(per_clock, torch.arange(z).expand_as(per_clock))
    # and so does every window of z consecutive slots within a sweep
    for sweep in sched.view(d_out, n_left):
        for start in range(0, n_left - z + 1):
            assert len(set((sweep[start : start + z] % z).tolist())) == z
    # each sweep reads every left neuron exactly once
    for sweep in sched.view(d_out, n_left):
        assert sorted(sweep.tolist()) == list(range(n_left))
    # the adjacency is the schedule: right neuron r owns slots [r d_in, (r+1) d_in)
    mask = adjacency("clash_free", n_left, n_right, d_out, z=z, seed=seed, cf_type=cf_type,
                     dither=dither)
    _assert_exact_degrees(mask, d_out)
    d_in = n_left * d_out // n_right
    for r in range(n_right):
        assert sorted(sched[r * d_in : (r + 1) * d_in].tolist()) == \
            mask[r].nonzero().squeeze(1).tolist()


def test_clash_free_types_differ_as_described():
    n_left, n_right, d_out, z = 32, 8, 4, 4  # depth 8 rows per bank, 4 sweeps
    depth = n_left // z

    def rows(cf_type):
        sched = clash_free_schedule(n_left, n_right, d_out, z, seed=3, cf_type=cf_type)
        # rows[s, c, lane]: the row read at clock c of sweep s by lane (= bank, no dither)
        return (sched // z).view(d_out, depth, z)

    r2, r3 = rows(2), rows(3)
    for r in (r2, r3):  # types 2 and 3: +1 modulo depth from a start row
        assert torch.equal((r[:, 1:] - r[:, :-1]) % depth, torch.ones(d_out, depth - 1, z,
                                                                      dtype=torch.long))
    assert all(torch.equal(r3[0, 0], r3[s, 0]) for s in range(d_out))  # type 3: same starts
    assert not all(torch.equal(r2[0, 0], r2[s, 0]) for s in range(d_out))
    lanes = clash_free_schedule(n_left, n_right, d_out, z, seed=3, dither=False) % z
    assert torch.equal(lanes, torch.arange(z).repeat(n_left * d_out // z))  # banks in order
    dithered = clash_free_schedule(n_left, n_right, d_out, z, seed=3, dither=True) % z
    assert not torch.equal(dithered, lanes)


@pytest.mark.parametrize("kind", ["random", "basic", "clash_free"])
def test_patterns_are_deterministic_by_seed(kind):
    a = adjacency(kind, 64, 32, 8, z=16, seed=5)
    assert torch.equal(a, adjacency(kind, 64, 32, 8, z=16, seed=5))
    assert not torch.equal(a, adjacency(kind, 64, 32, 8, z=16, seed=6))


def test_density_is_d_out_over_n_right():
    mask = adjacency("clash_free", 1024, 64, 4, z=128)
    assert float(mask.float().mean()) == pytest.approx(4 / 64)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("clash_free", 64, 32, 8, 12), "z=12 banks must divide n_left=64"),
        (("clash_free", 64, 32, 8, None), "needs z"),
        (("clash_free", 60, 40, 16, 4), "d_in=24 must divide n_left=60"),
        (("clash_free", 64, 10, 3, 4), "not an integer"),
        (("basic", 64, 10, 3, None), "not an integer"),
        (("basic", 64, 32, 0, None), "d_out=0"),
        (("random", 64, 32, 33, None), "d_out=33"),
        (("diagonal", 64, 32, 8, None), "kind 'diagonal'"),
        (("basic", 0, 32, 8, None), "positive integers"),
    ],
)
def test_infeasible_shapes_are_refused_clearly(args, needle):
    kind, n_left, n_right, d_out, z = args
    with pytest.raises(UserError, match=needle.replace("(", r"\(")) as info:
        adjacency(kind, n_left, n_right, d_out, z=z)
    assert "\n" not in str(info.value)


def test_unknown_clash_free_type_is_refused():
    with pytest.raises(UserError, match="type 4"):
        adjacency("clash_free", 64, 32, 8, z=8, cf_type=4)


def test_feasible_out_degrees_are_exactly_the_feasible_ones():
    for n_left, n_right in [(64, 32), (784, 10), (100, 40), (96, 96), (30, 12)]:
        got = feasible_out_degrees(n_left, n_right)
        for d in range(1, n_right + 1):
            d_in = n_left * d / n_right
            ok = d_in == int(d_in) and n_left % int(d_in) == 0
            assert (d in got) == ok
        assert got[-1] == n_right  # dense is always feasible


def test_nearest_out_degree_is_nearest_on_a_log_scale():
    assert nearest_out_degree(64, 32, 0.3) == 8  # 0.25 beats 0.5
    assert nearest_out_degree(64, 32, 1.0) == 32
    assert nearest_out_degree(784, 10, 0.05) == 5  # the sparsest feasible
    assert nearest_out_degree(64, 32, 0.1, at_least=0.5) == 16
    for rho in (0.02, 0.07, 0.2, 0.6):
        d = nearest_out_degree(128, 64, rho)
        best = min(abs(math.log(x / 64) - math.log(rho)) for x in feasible_out_degrees(128, 64))
        assert abs(math.log(d / 64) - math.log(rho)) == pytest.approx(best)
