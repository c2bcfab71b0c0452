"""Property-based tests (hypothesis) of what users rely on for any input in the documented
domain: sparse connection patterns (``dnc_sparse.patterns``), the hardware cost model
(``dnc_hwcost``), the ramp kernels (``dnc.bo.kernels``, ``dnc.bo.candidate_kernel``) and
candidates rebuilt from their params and stored form (``dnc.suggest``, ``dnc.bo.encoding``).

Every property draws its inputs deterministically (``derandomize``, no example database), so
CI sees the same examples on every run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NamedTuple

import pytest
import torch
from dnc_cnn import CNNSpace
from dnc_hwcost import estimate, feasible_clocks, z_for
from dnc_mlp.space import MLPSpace
from dnc_sparse import SparseMLPSpace, adjacency, clash_free_schedule
from dnc_sparse.patterns import density, feasible_out_degrees, nearest_out_degree
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dnc.bo.candidate_kernel import CandidateKernel
from dnc.bo.encoding import CandidateEncoder, probe_space, stage_features
from dnc.bo.kernels import (
    CategoricalRampKernel,
    LayerwiseRampKernel,
    MLPHiddenKernel,
    RampKernel,
)
from dnc.plugins import SearchSpace, UserError, candidate_key
from dnc.suggest import CoordinateSuggest, ParamRecord, ReplaySuggest

PROPERTY = settings(
    database=None,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
"""Deterministic and database-free: CI draws the same examples on every run."""


def prop(max_examples: int) -> settings:
    """``PROPERTY`` with ``max_examples`` (sized so the whole file runs in well under a
    minute on two cores)."""
    return settings(PROPERTY, max_examples=max_examples)


KINDS = ("random", "basic", "clash_free")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# -- 1. sparse connection patterns ------------------------------------------------------------


def _pattern_is_feasible(
    kind: str, n_left: int, n_right: int, d_out: int, z: int | None, cf_type: int
) -> bool:
    """The rule of ``dnc_sparse.patterns`` (DESIGN §7), restated: ``d_out`` in ``[1, n_right]``;
    ``basic`` and ``clash_free`` need an integer ``d_in = n_left d_out / n_right``;
    ``clash_free`` also needs a type in 1..3, ``z | n_left`` and ``d_in | n_left``."""
    if not 1 <= d_out <= n_right:
        return False
    if kind == "random":
        return True
    if (n_left * d_out) % n_right:
        return False
    if kind == "basic":
        return True
    d_in = n_left * d_out // n_right
    return cf_type in (1, 2, 3) and z is not None and z >= 1 and n_left % z == 0 == n_left % d_in


def _assert_exact_degrees(mask: torch.Tensor, n_left: int, n_right: int, d_out: int) -> None:
    """Every right neuron (row) reads ``d_in`` left neurons; every left neuron feeds ``d_out``."""
    d_in = n_left * d_out // n_right
    assert mask.shape == (n_right, n_left) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [d_in] * n_right
    assert mask.sum(dim=0).tolist() == [d_out] * n_left


@st.composite
def clash_free_shapes(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """Any feasible clash-free ``(n_left, n_right, d_out, z)`` (within size bounds): ``d_in``
    divides ``n_left`` and ``n_right = n_left d_out / d_in``, so ``d_in`` is an integer."""
    n_left = draw(st.integers(1, 96))
    d_in = draw(st.sampled_from(_divisors(n_left)))
    d_out = draw(st.integers(1, 6))
    z = draw(st.sampled_from(_divisors(n_left)))
    return n_left, n_left // d_in * d_out, d_out, z


@prop(80)
@given(
    shape=clash_free_shapes(),
    cf_type=st.sampled_from((1, 2, 3)),
    dither=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_clash_free_patterns_keep_degrees_and_banks(
    shape: tuple[int, int, int, int], cf_type: int, dither: bool, seed: int
) -> None:
    n_left, n_right, d_out, z = shape
    sched = clash_free_schedule(n_left, n_right, d_out, z, seed, cf_type=cf_type, dither=dither)
    assert sched.shape == (n_left * d_out,)
    sweeps = sched.view(d_out, n_left)
    # each of the d_out sweeps reads every left neuron exactly once
    assert torch.equal(sweeps.sort(dim=1).values, torch.arange(n_left).expand(d_out, n_left))
    # every window of z consecutive slots of a sweep (so every clock) reads z distinct banks
    windows = (sweeps % z).unfold(1, z, 1).sort(dim=-1).values
    assert torch.equal(windows, torch.arange(z).expand_as(windows))
    # types 2 and 3: each bank's row goes +1 modulo the depth from clock to clock; type 3
    # starts every sweep at the same rows
    depth = n_left // z
    clocks = sweeps.view(d_out, depth, z)  # sweep, clock, lane
    by_bank = (clocks // z).gather(-1, (clocks % z).argsort(dim=-1))  # sweep, clock, bank: row
    if cf_type in (2, 3) and depth > 1:
        steps = (by_bank[:, 1:] - by_bank[:, :-1]) % depth
        assert bool((steps == 1).all())
    if cf_type == 3:
        assert torch.equal(by_bank[:, 0], by_bank[:1, 0].expand(d_out, z))
    # the adjacency is the schedule: right neuron r owns slots [r d_in, (r + 1) d_in)
    mask = adjacency(
        "clash_free", n_left, n_right, d_out, z=z, seed=seed, cf_type=cf_type, dither=dither
    )
    _assert_exact_degrees(mask, n_left, n_right, d_out)
    d_in = n_left * d_out // n_right
    owner = torch.arange(n_right).repeat_interleave(d_in)
    assert bool(mask[owner, sched].all())


@st.composite
def junctions(draw: st.DrawFn) -> tuple[int, int, int, int | None]:
    """Any ``(n_left, n_right, d_out, z)``; half of them have an integer ``d_in`` (dividing
    ``n_left`` or not) and ``z`` is often a divisor of ``n_left``, so that every rule is
    both met and broken."""
    n_left = draw(st.integers(1, 48))
    z = draw(st.sampled_from(_divisors(n_left)) | st.none() | st.integers(0, 50))
    if draw(st.booleans()):
        d_in = draw(st.integers(1, n_left))
        d_out = draw(st.integers(1, 4)) * (d_in // math.gcd(n_left, d_in))
        return n_left, n_left * d_out // d_in, d_out, z
    return n_left, draw(st.integers(1, 48)), draw(st.integers(-1, 50)), z


@prop(200)
@given(
    kind=st.sampled_from(KINDS),
    junction=junctions(),
    cf_type=st.sampled_from((1, 2, 3)) | st.integers(0, 4),
    seed=st.integers(0, 2**16),
)
@example(kind="clash_free", junction=(60, 40, 16, 4), cf_type=1, seed=0)  # d_in = 24
def test_every_shape_is_built_exactly_or_refused_in_one_line(
    kind: str, junction: tuple[int, int, int, int | None], cf_type: int, seed: int
) -> None:
    n_left, n_right, d_out, z = junction
    if not _pattern_is_feasible(kind, n_left, n_right, d_out, z, cf_type):
        with pytest.raises(UserError) as info:
            adjacency(kind, n_left, n_right, d_out, z=z, seed=seed, cf_type=cf_type)
        assert "\n" not in str(info.value)
        return
    mask = adjacency(kind, n_left, n_right, d_out, z=z, seed=seed, cf_type=cf_type)
    assert mask.shape == (n_right, n_left)
    if kind == "random":  # exactly n_left d_out edges; the degrees vary
        assert int(mask.sum()) == n_left * d_out
    else:
        _assert_exact_degrees(mask, n_left, n_right, d_out)
    assert density(mask) == pytest.approx(d_out / n_right)


@prop(80)
@given(
    n_left=st.integers(1, 64),
    n_right=st.integers(1, 64),
    rho=st.floats(1e-3, 1.0, exclude_min=True),
    data=st.data(),
)
def test_a_requested_density_becomes_a_buildable_nearest_out_degree(
    n_left: int, n_right: int, rho: float, data: st.DataObject
) -> None:
    options = feasible_out_degrees(n_left, n_right)
    assert options == [
        d
        for d in range(1, n_right + 1)
        if _pattern_is_feasible("clash_free", n_left, n_right, d, 1, 1)
    ]
    d_out = nearest_out_degree(n_left, n_right, rho)
    gap = abs(math.log(d_out / n_right) - math.log(rho))
    assert all(gap <= abs(math.log(d / n_right) - math.log(rho)) + 1e-12 for d in options)
    z = data.draw(st.sampled_from(_divisors(n_left)), label="z")
    for kind in KINDS:  # every pattern accepts it, at any z dividing n_left
        mask = adjacency(kind, n_left, n_right, d_out, z=z)
        assert density(mask) == pytest.approx(d_out / n_right)


# -- 2. the hardware cost model ---------------------------------------------------------------


ANY_SIZE = st.integers(1, 256)


@st.composite
def networks(
    draw: st.DrawFn, sizes: st.SearchStrategy[int] = ANY_SIZE
) -> tuple[list[int], list[int]]:
    """Layer sizes ``N_0 .. N_J`` (1 to 3 junctions) and out-degrees ``d_out_i`` in
    ``[1, N_i]``."""
    layers = draw(st.lists(sizes, min_size=2, max_size=4))
    return layers, [draw(st.integers(1, n)) for n in layers[1:]]


def _z(count: int) -> st.SearchStrategy[list[float]]:
    return st.lists(st.floats(0.25, 2048.0), min_size=count, max_size=count)


def _more(values: list[float], factors: list[float]) -> list[float]:
    return [v * f for v, f in zip(values, factors, strict=True)]


SLOWER_IS_MORE = (
    "clocks",
    "clocks_per_sample",
    "latency_clocks",
    "latency_clocks_inference",
    "latency_clocks_training",
)


@prop(100)
@given(net=networks(), data=st.data(), training=st.booleans())
def test_more_edges_per_clock_never_costs_clocks_or_memory(
    net: tuple[list[int], list[int]], data: st.DataObject, training: bool
) -> None:
    layers, d_out = net
    z = data.draw(_z(len(d_out)), label="z")
    factors = data.draw(st.lists(st.floats(1.0, 8.0), min_size=len(z), max_size=len(z)))
    base = estimate(layers, d_out, z, training=training)
    fast = estimate(layers, d_out, _more(z, factors), training=training)
    for name in SLOWER_IS_MORE:
        assert getattr(fast, name) <= getattr(base, name), name
    assert fast.throughput >= base.throughput
    assert fast.energy <= base.energy  # only leakage time depends on z
    # the price of parallelism: processors
    for name in ("multipliers", "multipliers_inference", "adders", "adders_inference"):
        assert getattr(fast, name) >= getattr(base, name), name
    for name in ("memory_bits", "memory_bits_inference", "memory_bits_training"):
        assert getattr(fast, name) == getattr(base, name), name  # storage does not depend on z


@prop(100)
@given(net=networks(), data=st.data(), training=st.booleans())
def test_more_edges_never_fewer_clocks_memory_or_energy(
    net: tuple[list[int], list[int]], data: st.DataObject, training: bool
) -> None:
    layers, d_out = net
    z = data.draw(_z(len(d_out)), label="z")
    denser = [
        data.draw(st.integers(d, n), label=f"d_out_{i + 1}'")
        for i, (d, n) in enumerate(zip(d_out, layers[1:], strict=True))
    ]
    base = estimate(layers, d_out, z, training=training)
    more = estimate(layers, denser, z, training=training)
    for name in (
        *SLOWER_IS_MORE,
        "memory_bits",
        "memory_bits_inference",
        "memory_bits_training",
        "energy",
        "density",
    ):
        assert getattr(more, name) >= getattr(base, name), name
    assert more.throughput <= base.throughput


@prop(60)
@given(
    net=networks(),
    data=st.data(),
    bits=st.integers(1, 32),
    more_bits=st.integers(0, 32),
    input_bits=st.integers(1, 32),
    more_input_bits=st.integers(0, 32),
)
def test_wider_words_never_need_less_memory_or_energy(
    net: tuple[list[int], list[int]],
    data: st.DataObject,
    bits: int,
    more_bits: int,
    input_bits: int,
    more_input_bits: int,
) -> None:
    layers, d_out = net
    z = data.draw(_z(len(d_out)), label="z")
    base = estimate(layers, d_out, z, bits, input_bits=input_bits)
    wide = estimate(layers, d_out, z, bits + more_bits, input_bits=input_bits + more_input_bits)
    for name in ("memory_bits", "memory_bits_inference", "memory_bits_training", "energy"):
        assert getattr(wide, name) >= getattr(base, name), name
    assert (wide.clocks_per_sample, wide.multipliers) == (base.clocks_per_sample, base.multipliers)


@prop(60)
@given(net=networks(), data=st.data())
def test_inference_never_needs_more_than_training(
    net: tuple[list[int], list[int]], data: st.DataObject
) -> None:
    layers, d_out = net
    z = data.draw(_z(len(d_out)), label="z")
    train, infer = estimate(layers, d_out, z), estimate(layers, d_out, z, training=False)
    assert infer.clocks_per_sample == train.clocks_per_sample
    for name in ("memory_bits", "multipliers", "adders", "latency_clocks", "energy"):
        assert getattr(infer, name) <= getattr(train, name), name


NICE_SIZES = st.sampled_from((1, 2, 3, 4, 6, 8, 10, 12, 16, 24, 32, 48, 64, 96, 128))
"""Sizes with many divisors, so that feasible mappings are common."""


def _mapping_is_feasible(layers: list[int], d_out: list[int], z: list[Fraction]) -> bool:
    """DESIGN §7, restated in exact arithmetic: every ``d_in_i`` (an in-degree) and every
    ``N_{i-1}/z_i``, ``z_i/d_out_i``, ``z_i/d_in_i`` is an integer, and every junction takes
    the same ``C = |W_i| / z_i``."""
    clocks = set()
    for n_left, n_right, d, zi in zip(layers[:-1], layers[1:], d_out, z, strict=True):
        d_in = Fraction(n_left * d, n_right)
        ratios = (d_in, n_left / zi, zi / d, zi / d_in)
        if any(r.denominator != 1 for r in ratios):
            return False
        clocks.add(n_left * d / zi)
    return len(clocks) == 1


@prop(150)
@given(net=networks(NICE_SIZES), c=st.integers(1, 64), data=st.data())
def test_feasibility_is_exactly_the_documented_rule(
    net: tuple[list[int], list[int]], c: int, data: st.DataObject
) -> None:
    layers, d_out = net
    # z_i = |W_i| / C, sometimes with one junction off by a factor
    z = [Fraction(n * d, c) for n, d in zip(layers[:-1], d_out, strict=True)]
    i = data.draw(st.integers(0, len(z) - 1), label="junction")
    factors = (Fraction(1), Fraction(1), Fraction(2), Fraction(3), Fraction(1, 2))
    z[i] *= data.draw(st.sampled_from(factors), label="factor")
    e = estimate(layers, d_out, [float(v) for v in z])
    assert e.feasible == _mapping_is_feasible(layers, d_out, z), e.reasons
    assert e.feasible == (e.reasons == ())


@prop(150)
@given(net=networks(NICE_SIZES))
@example(net=([1, 2], [1]))  # d_in = 1/2: no C is feasible (feasible_clocks said [1])
def test_feasible_clocks_are_exactly_the_clocks_of_feasible_mappings(
    net: tuple[list[int], list[int]],
) -> None:
    layers, d_out = net
    options = feasible_clocks(layers, d_out)
    for c in range(1, max(layers) + 1):
        z, clocks = z_for(layers, d_out, target_c=c)
        assert clocks == c
        assert (c in options) == estimate(layers, d_out, z).feasible, c
    z, clocks = z_for(layers, d_out)  # neither target_c nor z1: the smallest feasible C
    assert estimate(layers, d_out, z).feasible == bool(options)
    if options:
        assert clocks == options[0]


# -- 3. the ramp kernels ----------------------------------------------------------------------

OMEGAS = st.floats(-2.0, 2.0, exclude_min=True, exclude_max=True).map(lambda e: 10.0**e)
"""``omega`` anywhere in its constraint ``(1e-2, 1e2)``, log-uniform."""


def _matrix(kernel: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return kernel(x).to_dense()


def _assert_a_kernel_matrix(k: torch.Tensor) -> None:
    """Symmetric, positive semi-definite (up to rounding, relative to its size), 1 on the
    diagonal (identical candidates), entries in ``[0, 1]``."""
    n = k.shape[-1]
    assert torch.allclose(k, k.mT, rtol=0.0, atol=1e-12)
    assert torch.allclose(k.diagonal(), torch.ones(n, dtype=k.dtype), rtol=0.0, atol=1e-12)
    assert float(k.min()) >= 0.0 and float(k.max()) <= 1.0 + 1e-12
    lowest = float(torch.linalg.eigvalsh(k.double()).min())
    assert lowest >= -1e-9 * n, f"min eigenvalue {lowest}"


@st.composite
def bounds(draw: st.DrawFn, lowest: int = -1000) -> tuple[float, float]:
    """``lowest <= lower <= upper``, equal bounds included (every value then counts as the
    same)."""
    lower = draw(st.integers(lowest, 1000))
    return float(lower), float(lower + draw(st.sampled_from((0, 1, 7, 100, 1000))))


@prop(60)
@given(
    span=bounds(),
    root=st.floats(1.0, 8.0),
    omega=OMEGAS,
    data=st.data(),
)
def test_ramp_kernel_matrices_are_psd(
    span: tuple[float, float], root: float, omega: float, data: st.DataObject
) -> None:
    lo, hi = span
    width = max(hi - lo, 1.0)  # values outside the bounds are allowed too
    values = data.draw(
        st.lists(st.floats(lo - width, hi + width), min_size=1, max_size=12), label="x"
    )
    x = torch.tensor(values, dtype=torch.float64).unsqueeze(-1)
    _assert_a_kernel_matrix(_matrix(RampKernel(lo, hi, omega=omega, root=root).double(), x))


@prop(40)
@given(
    codes=st.lists(st.integers(-1, 5), min_size=1, max_size=12),
    omega=OMEGAS,
)
def test_categorical_kernel_matrices_are_psd(codes: list[int], omega: float) -> None:
    x = torch.tensor(codes, dtype=torch.float64).unsqueeze(-1)
    _assert_a_kernel_matrix(_matrix(CategoricalRampKernel(omega=omega).double(), x))


@st.composite
def layered(draw: st.DrawFn) -> tuple[list[tuple[float, float]], list[list[float]]]:
    """Per-layer bounds (equal ones included) and rows ``depth, widths...`` of networks of
    depth 0..L, widths within each layer's bounds; layers past the depth hold any number."""
    spans = draw(st.lists(bounds(lowest=1), min_size=1, max_size=5))
    rows = []
    for _ in range(draw(st.integers(1, 10))):
        depth = draw(st.integers(0, len(spans)))
        widths = [
            draw(st.floats(lo, hi)) if i < depth else draw(st.floats(-1e4, 1e4))
            for i, (lo, hi) in enumerate(spans)
        ]
        rows.append([float(depth), *widths])
    return spans, rows


@prop(80)
@given(net=layered(), omega=OMEGAS, max_root=st.integers(1, 4))
@example(net=([(1.0, 1.0), (1.0, 1.0)], [[1.0, 1.0, 0.0]]), omega=1.0, max_root=1)  # k = 1.39
@example(net=([(64.0, 64.0)] * 3, [[0.0, 0, 0, 0], [1.0, 64, 0, 0]]), omega=3.0, max_root=4)
def test_layerwise_kernel_matrices_are_psd(
    net: tuple[list[tuple[float, float]], list[list[float]]], omega: float, max_root: int
) -> None:
    spans, rows = net
    kernel = LayerwiseRampKernel(spans, omega=omega, max_root=max_root)
    x = torch.tensor(rows, dtype=torch.float64)
    k = _matrix(kernel, x)
    _assert_a_kernel_matrix(k)
    # only the first `depth` widths are read
    padded = torch.where(
        torch.arange(len(spans)) < x[:, :1], x[:, 1:], torch.tensor([lo for lo, _ in spans])
    )
    assert torch.equal(_matrix(kernel, torch.cat([x[:, :1], padded], dim=1)), k)


@prop(40)
@given(
    layers=st.tuples(st.integers(0, 2), st.integers(0, 3)).map(lambda t: (t[0], t[0] + t[1])),
    nodes=st.integers(1, 400),
    omega=OMEGAS,
    data=st.data(),
)
def test_mlp_hidden_kernel_matrices_are_psd(
    layers: tuple[int, int], nodes: int, omega: float, data: st.DataObject
) -> None:
    total = layers[1] * nodes
    rows = data.draw(
        st.lists(
            st.tuples(st.floats(0, total), st.integers(*layers).map(float)), min_size=1, max_size=10
        ),
        label="rows",
    )
    kernel = MLPHiddenKernel((0, total), layers, omega=omega).double()
    _assert_a_kernel_matrix(_matrix(kernel, torch.tensor(rows, dtype=torch.float64)))


# -- 4. candidates of the real search spaces --------------------------------------------------

SPACES: dict[str, Callable[[], SearchSpace]] = {
    "mlp": MLPSpace,
    "cnn": lambda: CNNSpace(core={"conv_layers": (4, 10)}, kernel_sparsity={"enabled": True}),
    "cnn_fixed_widths": lambda: CNNSpace(
        core={
            "conv_layers": (1, 4),
            "first_channels": (64, 64),
            "max_channels": 64,
            "default_channels": (64,),
        }
    ),
    "sparse_mlp": lambda: SparseMLPSpace(core={"input_size": 64, "num_classes": 10}),
    "sparse_mlp_guided": lambda: SparseMLPSpace(
        core={"input_size": 64, "num_classes": 10, "hidden_layers": (0, 3)},
        sparsity={"nondecreasing": True},
    ),
    "sparse_mlp_unsized": SparseMLPSpace,
}
ACTIVE: tuple[tuple[str, ...] | None, ...] = (
    None,
    ("core",),
    ("train",),
    ("arch",),
    ("core", "train"),
)


class Stage(NamedTuple):
    """What a ramp-BO stage searching ``active`` sets up (as ``RampBOSampler`` does): the
    space, the base candidate holding the other groups, the searched params, the encoder."""

    space: SearchSpace
    active: tuple[str, ...] | None
    base: dict[str, Any]
    records: dict[str, ParamRecord]
    encoder: CandidateEncoder

    def draw(self, row: list[float]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A candidate and its searched params from one row of uniforms (one per param)."""
        coordinate = {name: i for i, name in enumerate(self.records)}
        return CoordinateSuggest(coordinate, self.active, self.base).sample(self.space, row)


_STAGES: dict[tuple[str, tuple[str, ...] | None], Stage] = {}


def _stage(name: str, active: tuple[str, ...] | None) -> Stage:
    """The stage of space ``name`` searching ``active`` (built once per test session)."""
    key = (name, active)
    if key not in _STAGES:
        space = SPACES[name]()
        base = space.reference_candidate()
        probe = probe_space(space, active, base)
        features = stage_features(tuple(space.kernel_features()), probe.records)
        _STAGES[key] = Stage(space, active, base, probe.records, CandidateEncoder(features))
    return _STAGES[key]


UNIFORMS = st.lists(st.floats(0.0, 1.0), min_size=40, max_size=40)
"""A row of uniforms (at least one per searched parameter); 0 and 1 are the bounds."""


@prop(120)
@given(name=st.sampled_from(sorted(SPACES)), active=st.sampled_from(ACTIVE), row=UNIFORMS)
def test_candidates_are_rebuilt_and_encoded_identically_from_params_and_storage(
    name: str, active: tuple[str, ...] | None, row: list[float]
) -> None:
    stage = _stage(name, active)
    space, base, encoder = stage.space, stage.base, stage.encoder
    candidate, params = stage.draw(row)
    # the trial keeps only its params: replaying them (held groups from the base) rebuilds it
    assert space.sample(ReplaySuggest(params, base)) == candidate
    # ... and so do the params, candidate and base read back from JSON storage
    stored_params, stored, stored_base = json.loads(json.dumps([params, candidate, base]))
    replayed = space.sample(ReplaySuggest(stored_params, stored_base))
    assert candidate_key(replayed) == candidate_key(stored) == candidate_key(candidate)
    # the GP sees one row for it, however it was obtained
    row_fresh = encoder.encode_one({**params, **candidate})
    assert encoder.encode_one({**stored_params, **stored}) == row_fresh
    assert encoder.encode_one({**stored_params, **replayed}) == row_fresh
    assert len(row_fresh) == encoder.width and all(math.isfinite(v) for v in row_fresh)


@prop(60)
@given(
    name=st.sampled_from(sorted(SPACES)),
    active=st.sampled_from(ACTIVE),
    rows=st.lists(UNIFORMS, min_size=1, max_size=8),
    omega=OMEGAS,
    data=st.data(),
)
def test_candidate_kernel_matrices_of_real_spaces_are_psd(
    name: str,
    active: tuple[str, ...] | None,
    rows: list[list[float]],
    omega: float,
    data: st.DataObject,
) -> None:
    stage = _stage(name, active)
    encoder = stage.encoder
    drawn = [stage.draw(row) for row in rows]
    x = encoder.encode([{**p, **c} for c, p in drawn])
    kernel: CandidateKernel = encoder.kernel(omega)
    weights = data.draw(
        st.lists(
            st.floats(0.01, 100.0), min_size=len(encoder.features), max_size=len(encoder.features)
        ),
        label="weights",
    )
    kernel.weights = torch.tensor(weights, dtype=torch.float64)
    _assert_a_kernel_matrix(_matrix(kernel, x))


def test_the_spaces_here_build_their_stages() -> None:
    """Every space above searches something in every stage used here, within one row of
    uniforms (else the properties over its candidates would be vacuous or wrap around)."""
    for name in SPACES:
        for active in ACTIVE:
            assert 0 < len(_stage(name, active).records) <= 40, (name, active)
