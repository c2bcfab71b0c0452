"""The statistics ``bench/search_quality.py`` reports (issue #13): per problem, each sampler's
mean, median and per-seed losses; ``ramp`` paired against every other sampler (win rate and a
bootstrap 95% interval of the mean difference); the issue's targets; and the printed table."""

from __future__ import annotations

import statistics
from collections.abc import Collection
from typing import Any

import numpy as np

RESAMPLES = 10_000
"""Bootstrap resamples of the seeds."""


def paired(ours: list[float], other: list[float]) -> tuple[float, list[float]]:
    """Paired win rate of ``ours`` (lower wins, ties count half) and the bootstrap 95% interval
    of the mean of ``ours - other`` (seeds resampled with a fixed numpy seed)."""
    a, b = np.asarray(ours), np.asarray(other)
    wins = float(np.mean((a < b) + 0.5 * (a == b)))
    diff = a - b
    rows = np.random.default_rng(0).integers(0, len(diff), size=(RESAMPLES, len(diff)))
    lo, hi = np.percentile(diff[rows].mean(axis=1), [2.5, 97.5])
    return round(wins, 4), [round(float(lo), 4), round(float(hi), 4)]


def summarise(losses: dict[str, list[float]], variants: list[str]) -> dict[str, Any]:
    """One problem's JSON entry from each sampler's per-seed best losses."""
    out: dict[str, Any] = {
        "mean": {s: round(statistics.fmean(v), 4) for s, v in losses.items()},
        "median": {s: round(statistics.median(v), 4) for s, v in losses.items()},
        "per_seed": {s: [round(x, 4) for x in v] for s, v in losses.items()},
        "win_rate_vs": {},
        "mean_diff_ci95_vs": {},
    }
    if "ramp" in losses:
        for other in (s for s in losses if s != "ramp"):
            wins, ci = paired(losses["ramp"], losses[other])
            out["win_rate_vs"][other], out["mean_diff_ci95_vs"][other] = wins, ci
    if variants and "gp" in losses:
        out["variant_vs_gp"] = {}
        for v in variants:
            wins, ci = paired(losses[v], losses["gp"])
            out["variant_vs_gp"][v] = {"win_rate": wins, "mean_diff_ci95": ci}
    return out


def targets(problems: dict[str, dict[str, Any]], samplers: Collection[str]) -> dict[str, Any]:
    """The issue's targets, as far as the samplers run allow (``None``: ramp or gp not run);
    the lowest mean is taken among ``samplers`` (the suite's own, not the variants)."""
    per: dict[str, Any] = {}
    for name, p in problems.items():
        named = {s: m for s, m in p["mean"].items() if s in samplers}
        ci = p["mean_diff_ci95_vs"].get("gp")
        win = p["win_rate_vs"].get("gp")
        per[name] = {
            "ramp_mean_lowest": min(named, key=named.__getitem__) == "ramp"
            if "ramp" in named
            else None,
            "win_rate_vs_gp_at_least_0.55": win >= 0.55 if win is not None else None,
            "ci_vs_gp_below_zero": ci[1] < 0 if ci is not None else None,
        }
    below = sum(bool(t["ci_vs_gp_below_zero"]) for t in per.values())
    return {"per_problem": per, "problems_ci_vs_gp_below_zero": below, "ci_target_met": below >= 2}


def table(name: str, entry: dict[str, Any], measure: str, seeds: int) -> None:
    print(f"\n{name}: {measure}, {seeds} seeds (lower is better)")
    print(f"  {'sampler':<14}{'mean':>9}{'median':>9}   ramp wins  ramp - other [95% CI]")
    for s, mean in sorted(entry["mean"].items(), key=lambda kv: kv[1]):
        row = f"  {s:<14}{mean:>9.4f}{entry['median'][s]:>9.4f}"
        if s in entry["win_rate_vs"]:
            lo, hi = entry["mean_diff_ci95_vs"][s]
            row += f"   {entry['win_rate_vs'][s]:>9.2f}  [{lo:+.4f}, {hi:+.4f}]"
        print(row)
    for v, vs in entry.get("variant_vs_gp", {}).items():
        lo, hi = vs["mean_diff_ci95"]
        print(f"  {v} vs gp: wins {vs['win_rate']:.2f}, {v} - gp [{lo:+.4f}, {hi:+.4f}]")


__all__ = ["RESAMPLES", "paired", "summarise", "table", "targets"]
