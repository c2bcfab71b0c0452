"""The hardware model of pre-defined sparse networks (DESIGN §7): junction-pipelined sparse
edge processing, as in Dey, Huang, Beerel, Chugg (IEEE JETCAS 2019).

A network has layer sizes ``N_0 .. N_J`` and out-degrees ``d_out_1 .. d_out_J``; junction ``i``
has ``|W_i| = N_{i-1} d_out_i = N_i d_in_i`` edges and processes ``z_i`` of them per clock in
each of its processor sets (feed-forward, back-propagation for ``i >= 2``, update). Every
junction takes ``C = |W_i| / z_i`` clocks per sample, and the pipeline needs

- clocks per sample ``cpc = C + 2 + proctime``; throughput ``f_clk / cpc`` samples/s;
- latency: ``J cpc`` for inference, ``2 J cpc`` for training;
- multipliers: training ``sum_i (2 z_i + z_i / d_in_i) + sum_{i>=2} 2 z_i``, inference
  ``sum_i z_i``;
- adders (our accounting; the design notes give none): per junction ``z_i`` to accumulate the
  feed-forward products, ``z_i`` for back-propagation (``i >= 2``), and ``z_i + z_i / d_in_i``
  for the weight and bias updates; inference ``sum_i z_i``;
- memory bits ``1.1 (b sum_i (|W_i| + N_i) + sum_{i=0}^{J-1} (2(J-i)+1) N_i b_i
  + [training] sum_{i=1}^{J-1} (2(J-i)+1) N_i b + sum_{i=1}^{J} 2 N_i b)`` with ``b`` the
  word width and ``b_0 = input_bits``, ``b_i = b`` otherwise;
- feasible only if every ``N_{i-1}/z_i``, ``z_i/d_out_i`` and ``z_i/d_in_i`` is an integer
  and every junction takes the same ``C``.

Energy is a proxy (``EnergyModel``): per-operation constants the user sets for a technology.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from dnc.plugins import UserError


@dataclass(frozen=True)
class EnergyModel:
    """Energy per operation, in picojoules (a proxy: set the constants for your technology).

    ``energy per sample = macs (e_mac + 2 b e_bit) + writes b e_bit + e_leak memory_bits cpc``:
    every multiply-accumulate reads a ``b``-bit weight and a ``b``-bit operand, every weight
    update writes one, and memory leaks ``e_leak`` per bit per clock. Defaults are rough
    45 nm figures for ~10-bit fixed point (Horowitz, ISSCC 2014, scaled): ``e_mac`` 0.25 pJ,
    ``e_bit`` 0.1 pJ per SRAM bit accessed, ``e_leak`` 1e-5 pJ per bit per clock.
    """

    e_mac: float = 0.25
    e_bit: float = 0.1
    e_leak: float = 1e-5

    def __post_init__(self) -> None:
        if min(self.e_mac, self.e_bit, self.e_leak) < 0:
            raise UserError(f"energy constants must be >= 0, got {asdict(self)}")


@dataclass(frozen=True)
class HardwareEstimate:
    """What ``estimate`` returns. Counts are floats (fractional when infeasible); ``energy``
    is picojoules per sample; ``memory_bits`` and ``latency_clocks`` are for the mode asked
    (training or inference), both modes are also given."""

    layers: tuple[int, ...]
    d_out: tuple[int, ...]
    d_in: tuple[float, ...]
    z: tuple[float, ...]
    clocks: float  # C, the slowest junction's clocks per sample
    clocks_per_sample: float
    throughput: float  # samples per second at f_clk
    latency_clocks: float
    latency_clocks_inference: float
    latency_clocks_training: float
    multipliers: float
    multipliers_inference: float
    adders: float
    adders_inference: float
    memory_bits: float
    memory_bits_inference: float
    memory_bits_training: float
    energy: float
    density: float
    feasible: bool
    reasons: tuple[str, ...]
    training: bool

    def figures(self, prefix: str = "hw_") -> dict[str, float]:
        """Scalar figures as ``{prefix + name: float}`` (``feasible`` as 0/1), plus per-junction
        ``z_i`` and ``d_out_i``."""
        keys = ("clocks", "clocks_per_sample", "throughput", "latency_clocks", "multipliers",
                "adders", "memory_bits", "memory_bits_inference", "memory_bits_training",
                "energy", "density")
        out = {prefix + k: float(getattr(self, k)) for k in keys}
        out[prefix + "feasible"] = 1.0 if self.feasible else 0.0
        for i, (z, d) in enumerate(zip(self.z, self.d_out, strict=True)):
            out[f"{prefix}z_{i + 1}"] = float(z)
            out[f"{prefix}d_out_{i + 1}"] = float(d)
        return out


def _integral(x: float) -> bool:
    return abs(x - round(x)) < 1e-9


def _check_network(layers: Sequence[int], d_out: Sequence[int]) -> tuple[list[int], list[int]]:
    sizes, degrees = [int(n) for n in layers], [int(d) for d in d_out]
    if len(sizes) < 2 or len(degrees) != len(sizes) - 1:
        raise UserError(f"hardware estimate: {len(sizes)} layer sizes need {len(sizes) - 1} "
                        f"out-degrees, got {len(degrees)}")
    if min(sizes) < 1:
        raise UserError(f"hardware estimate: layer sizes {sizes} must be positive")
    for i, (d, n) in enumerate(zip(degrees, sizes[1:], strict=True)):
        if not 1 <= d <= n:
            raise UserError(f"hardware estimate: d_out_{i + 1}={d} must lie in [1, N_{i + 1}={n}]")
    return sizes, degrees


def feasible_clocks(layers: Sequence[int], d_out: Sequence[int]) -> list[int]:
    """Every ``C`` that makes the network feasible, ascending: ``C`` divides every ``N_i`` and
    is a multiple of every ``d_out_i`` (``z_i = N_{i-1} d_out_i / C``); none when some
    ``d_in_i = N_{i-1} d_out_i / N_i`` is not an integer (``estimate`` reports it infeasible).

    Example:
        >>> feasible_clocks([1024, 64, 32], [4, 16])
        [16, 32]
    """
    sizes, degrees = _check_network(layers, d_out)
    if any(n * d % m for n, d, m in zip(sizes[:-1], degrees, sizes[1:], strict=True)):
        return []
    g, step = math.gcd(*sizes), math.lcm(*degrees)
    return [c for c in range(step, g + 1, step) if g % c == 0]


def z_for(layers: Sequence[int], d_out: Sequence[int], *, target_c: float | None = None,
          z1: float | None = None) -> tuple[list[float], float]:
    """Edges per clock ``z_i`` and the clocks ``C``: from ``target_c`` (``z_i = |W_i| / C``),
    from the first junction's ``z1`` (``C = |W_1| / z1``), or, with neither, the smallest
    feasible ``C`` (``lcm(d_out)`` when no ``C`` is feasible; the result is then infeasible).

    Example:
        >>> z_for([1024, 64, 32], [4, 16], z1=128)
        ([128.0, 32.0], 32.0)
    """
    sizes, degrees = _check_network(layers, d_out)
    edges = [n * d for n, d in zip(sizes[:-1], degrees, strict=True)]
    if target_c is not None and z1 is not None:
        raise UserError("hardware: give target_c or z1, not both")
    if z1 is not None:
        if not z1 > 0:
            raise UserError(f"hardware: z1={z1} must be positive")
        c = edges[0] / float(z1)
    elif target_c is not None:
        if not target_c > 0:
            raise UserError(f"hardware: target_c={target_c} must be positive")
        c = float(target_c)
    else:
        options = feasible_clocks(sizes, degrees)
        c = float(options[0] if options else math.lcm(*degrees))
    return [w / c for w in edges], c


def estimate(
    layers: Sequence[int],
    d_out: Sequence[int],
    z: Sequence[float],
    bits: int = 10,
    *,
    input_bits: int = 1,
    f_clk: float = 15e6,
    proctime: int = 2,
    training: bool = True,
    energy: EnergyModel | None = None,
) -> HardwareEstimate:
    """Hardware figures of a sparse MLP with ``z[i]`` edges per clock in junction ``i + 1``.

    Never raises for an infeasible mapping: ``feasible`` is False and ``reasons`` says why
    (the figures are then what the formulas give for the fractional values).

    Example (the group's FPGA prototype, DESIGN §7):
        >>> e = estimate([1024, 64, 32], [4, 16], [128, 32], bits=10)
        >>> e.clocks_per_sample, e.multipliers, round(e.memory_bits / 1e6, 3), e.feasible
        (36.0, 387.0, 0.069, True)
    """
    sizes, degrees = _check_network(layers, d_out)
    zs = [float(v) for v in z]
    j = len(degrees)
    if len(zs) != j:
        raise UserError(f"hardware estimate: {j} junctions need {j} values of z, got {len(zs)}")
    if min(zs) <= 0:
        raise UserError(f"hardware estimate: z={zs} must be positive")
    if bits < 1 or input_bits < 1 or not f_clk > 0 or proctime < 0:
        raise UserError("hardware estimate: bits and input_bits >= 1, f_clk > 0, proctime >= 0")
    energy = energy or EnergyModel()
    edges = [n * d for n, d in zip(sizes[:-1], degrees, strict=True)]
    d_in = [w / n for w, n in zip(edges, sizes[1:], strict=True)]
    reasons: list[str] = []
    for i in range(j):
        name = f"junction {i + 1} ({sizes[i]} -> {sizes[i + 1]})"
        if not _integral(d_in[i]):
            reasons.append(f"{name}: d_in = {d_in[i]:g} is not an integer")
        for label, value in ((f"N_{i}/z", sizes[i] / zs[i]), ("z/d_out", zs[i] / degrees[i]),
                             ("z/d_in", zs[i] / d_in[i])):
            if not _integral(value):
                reasons.append(f"{name}: {label} = {value:g} is not an integer")
    per_junction = [w / zz for w, zz in zip(edges, zs, strict=True)]
    c = max(per_junction)
    if max(per_junction) - min(per_junction) > 1e-9:
        reasons.append("junctions take different clocks per sample "
                       f"({', '.join(f'{x:g}' for x in per_junction)}); C = |W_i|/z_i must match")
    cpc = c + 2 + proctime
    mult_train = sum(2 * zz + zz / di for zz, di in zip(zs, d_in, strict=True)) + 2 * sum(zs[1:])
    mult_inf = sum(zs)
    add_train = sum(zs) + sum(zs[1:]) + sum(zz + zz / di for zz, di in zip(zs, d_in, strict=True))
    add_inf = sum(zs)
    b = bits
    act_bits = [input_bits] + [b] * j
    core = (b * sum(w + n for w, n in zip(edges, sizes[1:], strict=True))
            + sum((2 * (j - i) + 1) * sizes[i] * act_bits[i] for i in range(j))
            + sum(2 * sizes[i] * b for i in range(1, j + 1)))
    extra_train = sum((2 * (j - i) + 1) * sizes[i] * b for i in range(1, j))
    mem_inf, mem_train = 1.1 * core, 1.1 * (core + extra_train)
    # multiply-accumulates per sample: feed-forward every edge; training adds back-propagation
    # (junctions 2..J) and the update of every edge (one weight write each)
    macs = sum(edges) + (sum(edges[1:]) + sum(edges) if training else 0)
    writes = sum(edges) if training else 0
    memory = mem_train if training else mem_inf
    e = (macs * (energy.e_mac + 2 * b * energy.e_bit) + writes * b * energy.e_bit
         + energy.e_leak * memory * cpc)
    density = sum(edges) / sum(a * n for a, n in zip(sizes[:-1], sizes[1:], strict=True))
    return HardwareEstimate(
        layers=tuple(sizes), d_out=tuple(degrees), d_in=tuple(d_in), z=tuple(zs), clocks=c,
        clocks_per_sample=cpc, throughput=f_clk / cpc,
        latency_clocks=(2 if training else 1) * j * cpc,
        latency_clocks_inference=j * cpc, latency_clocks_training=2 * j * cpc,
        multipliers=mult_train if training else mult_inf, multipliers_inference=mult_inf,
        adders=add_train if training else add_inf, adders_inference=add_inf,
        memory_bits=memory, memory_bits_inference=mem_inf, memory_bits_training=mem_train,
        energy=e, density=density, feasible=not reasons, reasons=tuple(reasons),
        training=training,
    )


__all__ = ["EnergyModel", "HardwareEstimate", "estimate", "feasible_clocks", "z_for"]
