"""``cost=hardware``: the complexity of a candidate as the hardware model sees it (DESIGN §7)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dnc.plugins import CostEvaluator, DataSpec, UserError, parse_normaliser
from dnc_hwcost.model import EnergyModel, HardwareEstimate, estimate, z_for

if TYPE_CHECKING:
    from torch import nn

METRICS = ("clocks_per_sample", "memory_bits", "energy", "multipliers", "adders", "latency_clocks")


def network_layout(
    model: nn.Module, candidate: Mapping[str, Any] | None = None
) -> tuple[list[int], list[int]]:
    """Layer sizes ``[N_0, ..., N_J]`` and out-degrees ``[d_out_1, ..., d_out_J]`` of an MLP.

    Read, in this order, from the candidate's ``layers`` and ``d_out`` lists, from the model's
    ``layers`` and ``d_out`` attributes (``dnc_sparse.SparseMLP``), or from its chain of
    linear junctions (``nn.Linear`` is dense, ``d_out = N_i``; a layer with ``nnz`` edges has
    ``d_out = nnz / N_{i-1}``). Raises ``UserError`` for a model that is not an MLP.
    """
    from torch import nn

    cand = candidate or {}
    if "layers" in cand and "d_out" in cand:
        return [int(n) for n in cand["layers"]], [int(d) for d in cand["d_out"]]
    layers, d_out = getattr(model, "layers", None), getattr(model, "d_out", None)
    if isinstance(layers, (tuple, list)) and isinstance(d_out, (tuple, list)):
        return [int(n) for n in layers], [int(d) for d in d_out]
    sizes: list[int] = []
    degrees: list[int] = []
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            raise UserError(
                "cost=hardware models MLPs of linear junctions; this model has "
                "convolutions (use cost=t_epoch, numparams or flops)"
            )
        n_in, n_out = getattr(module, "in_features", None), getattr(module, "out_features", None)
        if not isinstance(n_in, int) or not isinstance(n_out, int):
            continue
        if sizes and sizes[-1] != n_in:
            raise UserError(
                f"cost=hardware: linear layers do not chain ({sizes[-1]} outputs "
                f"feed {n_in} inputs)"
            )
        nnz = getattr(module, "nnz", n_in * n_out)
        if not sizes:
            sizes.append(n_in)
        sizes.append(n_out)
        degrees.append(max(1, round(nnz / n_in)))
    if not degrees:
        raise UserError("cost=hardware: the model has no linear junctions to cost")
    return sizes, degrees


class HardwareCost(CostEvaluator):
    """Complexity from the junction-pipelined sparse hardware model (``dnc_hwcost.estimate``).

    ``fc = figure / normaliser`` for the chosen ``metric`` (``clocks_per_sample``,
    ``memory_bits``, ``energy``, ``multipliers``, ``adders``, ``latency_clocks``), where
    ``normaliser`` is a number or ``auto`` (the reference network's figure). A candidate the
    hardware cannot run (``hw_feasible = 0``) gets ``fc = infeasible_penalty`` (default 100: with
    ``wc = 0.1`` its search loss is at least ``log10(10) = 1``, worse than any feasible candidate
    within 100x of the reference), so the search steers away without crashing.

    ``z`` per junction comes from ``target_c`` (clocks per junction, ``z_i = |W_i| / C``), from
    ``z1`` (the first junction's edges per clock), or, with neither, from the smallest feasible
    ``C``. ``measure`` records every figure with an ``hw_`` prefix, so a study can be re-scored
    for any metric or ``wc`` without training.

    Example:
        >>> cost = HardwareCost(metric="clocks_per_sample", target_c=32, normaliser=36)
        >>> fig = cost.estimate_layout([1024, 64, 32], [4, 16]).figures()
        >>> fig["hw_clocks_per_sample"], fig["hw_multipliers"], cost.complexity(fig)
        (36.0, 387.0, 1.0)
    """

    name = "hardware"

    def __init__(
        self,
        metric: str = "clocks_per_sample",
        target_c: int | None = None,
        z1: int | None = None,
        bits: int = 10,
        input_bits: int = 1,
        f_clk: float = 15e6,
        proctime: int = 2,
        training: bool = True,
        normaliser: float | str = "auto",
        infeasible_penalty: float = 100.0,
        e_mac: float = 0.25,
        e_bit: float = 0.1,
        e_leak: float = 1e-5,
    ) -> None:
        if metric not in METRICS:
            raise UserError(f"cost.metric={metric!r}: choose one of {', '.join(METRICS)}")
        if target_c is not None and z1 is not None:
            raise UserError("cost: give target_c or z1, not both (null for the smallest C)")
        for key, value in (("target_c", target_c), ("z1", z1)):
            if value is not None and not (isinstance(value, int) and value > 0):
                raise UserError(f"cost.{key}={value!r}: must be a positive integer or null")
        if int(bits) < 1 or int(input_bits) < 1 or not float(f_clk) > 0 or int(proctime) < 0:
            raise UserError("cost: bits and input_bits must be >= 1, f_clk > 0, proctime >= 0")
        if not float(infeasible_penalty) > 0 or math.isinf(float(infeasible_penalty)):
            raise UserError(f"cost.infeasible_penalty={infeasible_penalty}: a finite number > 0")
        self.metric = metric
        self.target_c, self.z1 = target_c, z1
        self.bits, self.input_bits = int(bits), int(input_bits)
        self.f_clk, self.proctime, self.training = float(f_clk), int(proctime), bool(training)
        self.infeasible_penalty = float(infeasible_penalty)
        self.energy = EnergyModel(float(e_mac), float(e_bit), float(e_leak))
        self.bar = parse_normaliser(normaliser, "cost.normaliser")

    @property
    def needs_calibration(self) -> bool:
        return self.bar is None

    @property
    def figure(self) -> str:
        return f"hw_{self.metric}"

    def estimate_layout(self, layers: list[int], d_out: list[int]) -> HardwareEstimate:
        """The hardware estimate of a network with these sizes and out-degrees."""
        z, _ = z_for(layers, d_out, target_c=self.target_c, z1=self.z1)
        return estimate(
            layers,
            d_out,
            z,
            self.bits,
            input_bits=self.input_bits,
            f_clk=self.f_clk,
            proctime=self.proctime,
            training=self.training,
            energy=self.energy,
        )

    def measure(
        self, model: nn.Module, candidate: Mapping[str, Any], data: DataSpec
    ) -> dict[str, float]:
        layers, d_out = network_layout(model, candidate)
        if layers[0] != math.prod(data.input_shape) or layers[-1] != data.num_classes:
            raise UserError(
                f"cost=hardware: the network maps {layers[0]} -> {layers[-1]} but the "
                f"data has {math.prod(data.input_shape)} inputs and "
                f"{data.num_classes} classes"
            )
        return self.estimate_layout(layers, d_out).figures()

    def calibrate(self, figures: Mapping[str, float]) -> None:
        """Set an ``auto`` normaliser to the reference network's figure (from ``measure``; an
        infeasible reference still has one: what the formulas give)."""
        if self.bar is not None:
            return
        if self.figure not in figures:
            raise UserError(
                f"cost=hardware: normaliser=auto needs the reference network's "
                f"{self.figure}, which the caller did not measure; set "
                f"cost.normaliser to a number"
            )
        value = float(figures[self.figure])
        self.bar = value if value > 0 else 1.0

    def feasible(self, figures: Mapping[str, float]) -> bool:
        return bool(figures.get("hw_feasible", 1.0) >= 0.5)

    def complexity(self, figures: Mapping[str, float]) -> float:
        if not self.feasible(figures):
            return self.infeasible_penalty
        if self.bar is None:
            raise RuntimeError("cost=hardware normaliser is auto but was never calibrated")
        return float(figures[self.figure]) / self.bar

    def settings(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "target_c": self.target_c,
            "z1": self.z1,
            "bits": self.bits,
            "input_bits": self.input_bits,
            "f_clk": self.f_clk,
            "proctime": self.proctime,
            "training": self.training,
            "normaliser": self.bar if self.bar is not None else "auto",
            "infeasible_penalty": self.infeasible_penalty,
            "e_mac": self.energy.e_mac,
            "e_bit": self.energy.e_bit,
            "e_leak": self.energy.e_leak,
        }


__all__ = ["METRICS", "HardwareCost", "network_layout"]
