"""The hardware cost model of pre-defined sparse networks (DESIGN §7), shipped as a dnc plugin:
``cost=hardware``.

- ``estimate(layers, d_out, z, bits=...)``: clocks per sample, throughput, latency, multipliers,
  adders, memory bits, feasibility and an energy proxy, as a ``HardwareEstimate``.
- ``HardwareCost``: the cost evaluator (``fc`` from one of those figures).

Kept import-light: Hydra imports this package to read ``conf/``; names load on first use.
"""

__all__ = ["EnergyModel", "HardwareCost", "HardwareEstimate", "estimate", "feasible_clocks",
           "network_layout", "z_for"]

_WHERE = {"EnergyModel": "model", "HardwareEstimate": "model", "estimate": "model",
          "feasible_clocks": "model", "z_for": "model", "HardwareCost": "cost",
          "network_layout": "cost"}


def __getattr__(name: str):  # lazy, so discovery never imports torch
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"dnc_hwcost.{_WHERE[name]}"), name)
    raise AttributeError(name)
