"""Seconds per ramp-BO proposal at n = 10, 30, 100 finished trials.

One proposal is what a BO step costs besides training: read the study's trials, encode them,
draw ``explore`` (1,000) random candidates through the space's define-by-run sampling, fit the
GPs (fixed or, ``*_fitted``, marginal-likelihood-fitted kernel hyperparameters), score every
candidate by log-EI and answer the trial's parameters. The keys ``mlp``, ``cnn``, ``*_fitted``
time the sampler as a dnc search runs it, with the split model (two GPs, on log10 fp and
log10 fc, and Monte Carlo log-EI of the loss they compose; the trials record a synthetic fp and
fc); ``*_fitted_tight`` fits as before ``dnc.bo.model.WARM_GTOL`` (warm-started fits to scipy's
own tolerance), the baseline of ``*_fitted`` in the same run; ``mlp_loss`` and ``cnn_loss``
time the paper's single GP on the loss (analytic log-EI); ``mlp_local`` and ``cnn_local`` the
split model with the acquisition's local search (``--local-search`` starts,
``search.bo.local_search``; ``dnc.bo.optimise``).
A proposal is timed end to end through Optuna (``study.ask()`` + sampling the space), median of
``--repeats`` proposals per point; each timed trial is then failed, so it never enters the data
or the pending points.

Spaces: the MLP space (0-2 hidden layers of 20-400 nodes + lr, weight decay, batch size) and
``ChainCNNSpace`` from ``tests/bo/bo_spaces.py``, a CNN-shaped space (4-16 conv layers, first
16-64 channels, each next in ``[c_prev, min(2 c_prev, 512)]``, + lr, weight decay, batch
size; layer-wise kernel).

    python bench/bo_overhead.py [--repeats 5] [--explore 1000] [--local-search 3]

Every figure is for a step of a running search: the timed proposal at n trials follows the same
sampler's proposal at n - 1 (which set the sampler up: probing the space, building the kernel).
Fitted, the sampler starts the marginal-likelihood fit from that previous step's
hyperparameters; ``*_fitted_cold`` gives that previous, cold fit (from the paper's values),
keyed by its n - 1.

Last line: one JSON object with wall-clock seconds per proposal for ``mlp``, ``cnn``,
``mlp_fitted``, ``cnn_fitted`` (and ``*_fitted_cold``, ``*_fitted_tight``, ``*_loss``,
``*_local``) keyed by n, the same as CPU seconds (``cpu_seconds``: steadier when other
processes share the cores; the load average before and after is recorded), the original
implementation's published figures for comparison, and the machine. Proposals run torch on one
thread (the sampler's choice for tensors this small).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from dnc_mlp.space import MLPSpace
from optuna.trial import TrialState

from dnc.bo import RampBOSampler
from dnc.bo import model as bo_model
from dnc.plugins import SearchSpace
from dnc.search import LossParts
from dnc.suggest import TrialSuggest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "bo"))
from bo_spaces import ChainCNNSpace, recorded_parts  # noqa: E402 - the tests' fixtures
from common import machine  # bench/common.py (this folder is on sys.path)

NS = (10, 30, 100)
ACTIVE = ("core", "train")

# Measured for the original numpy implementation (Deep-n-Cheap), as given in the issue; not
# re-measured here.
ORIGINAL = {
    "mlp": {"10": 0.33, "30": 0.64, "100": 1.84},
    "cnn": {"10": 0.40, "30": 0.95, "100": 2.98},
}


WC = 0.1
TIGHT_GTOL = 1e-5
"""scipy's L-BFGS-B default ``gtol``, which warm-started fits used before ``WARM_GTOL``: the
``*_fitted_tight`` rows, the baseline of ``*_fitted``, timed in the same run."""


def synthetic_parts(c: Mapping[str, Any]) -> tuple[float, float]:
    """Smooth stand-ins for fp and fc (only their shape matters for the fit): the error falls
    towards lr 1e-3 and a mid-sized network, the cost grows with the widths and the batch
    count."""
    widths = [v for k, v in c.items() if k.startswith(("hidden_", "channels_"))]
    size = math.log10(1 + sum(widths))
    fp = 0.02 + ((math.log10(c["lr"]) + 3) ** 2 / 4 + (size - 2.5) ** 2 / 2) / 10
    fc = (1 + sum(widths)) / 1000 * (512 / c["batch_size"]) ** 0.5 + 1e3 * c["weight_decay"]
    return fp, fc


def study_with(space: SearchSpace, n: int, seed: int) -> optuna.Study:
    """A study holding ``n`` finished trials of random candidates."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(n):
        tell_candidate(study, space)
    return study


def tell_candidate(study: optuna.Study, space: SearchSpace) -> tuple[float, float]:
    """Ask for one trial, sample the space through it and finish it; the wall and CPU seconds
    the proposal (ask + sampling) took."""
    wall, cpu = time.perf_counter(), time.process_time()
    trial = study.ask()
    cand = space.sample(TrialSuggest(trial, ACTIVE))
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    fp, fc = synthetic_parts(cand)
    trial.set_user_attr("candidate", cand)
    trial.set_user_attr("figures", {"fp": fp, "fc": fc})
    study.tell(trial, math.log10(fp + WC * fc))
    return elapsed


def timed_proposal(study: optuna.Study, space: SearchSpace) -> tuple[float, float]:
    """Wall and CPU seconds for one BO proposal; the trial is then failed (kept out of the
    data)."""
    wall, cpu = time.perf_counter(), time.process_time()
    trial = study.ask()
    space.sample(TrialSuggest(trial, ACTIVE))
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    phase = study._storage.get_trial(trial._trial_id).system_attrs.get("dnc.bo", {})
    assert phase.get("phase") == "bo", phase
    expected = (
        "split" if isinstance(study.sampler, RampBOSampler) and study.sampler.loss_parts else "loss"
    )
    assert phase.get("model") == expected, phase
    study.tell(trial, state=TrialState.FAIL)
    return elapsed


def seconds_per_proposal(
    space: SearchSpace,
    n: int,
    fitted: bool,
    repeats: int,
    explore: int,
    split: bool = True,
    local_search: int = 0,
    warm_gtol: float | None = None,
) -> dict[str, float]:
    """Median wall (``wall``) and CPU (``cpu``) seconds of ``repeats`` proposals with ``n``
    finished trials.

    As in a search, the sampler has made the step before (at n - 1 trials), which set it up
    and, fitted, leaves its hyperparameters as the next fit's starting point; that step, a
    cold fit from the paper's values, is timed as ``cold`` when fitted. ``warm_gtol`` replaces
    the warm-started fits' gradient tolerance (``dnc.bo.bo_model.WARM_GTOL``) meanwhile.
    """
    default_gtol = bo_model.WARM_GTOL
    if warm_gtol is not None:
        bo_model.WARM_GTOL = warm_gtol
    try:
        return _seconds(space, n, fitted, repeats, explore, split, local_search)
    finally:
        bo_model.WARM_GTOL = default_gtol


def _seconds(
    space: SearchSpace,
    n: int,
    fitted: bool,
    repeats: int,
    explore: int,
    split: bool,
    local_search: int,
) -> dict[str, float]:
    warm, cold = [], []
    for r in range(repeats):
        study = study_with(space, n - 1, seed=1000 * n + r)
        study.sampler = RampBOSampler(
            space=space,
            active=ACTIVE,
            prior_states=min(n - 1, 10),
            explore=explore,
            fit_kernel=fitted,
            seed=r,
            loss_parts=LossParts(wc=WC, parts=recorded_parts) if split else None,
            local_search=local_search,
        )
        cold.append(tell_candidate(study, space)[0])
        warm.append(timed_proposal(study, space))
    out = {
        "wall": statistics.median(w for w, _ in warm),
        "cpu": statistics.median(c for _, c in warm),
    }
    if fitted:
        out["cold"] = statistics.median(cold)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--explore", type=int, default=1000)
    parser.add_argument(
        "--local-search",
        type=int,
        default=3,
        help="starts of the acquisition's local search timed as *_local (search.bo.local_search)",
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spaces = {"mlp": MLPSpace(), "cnn": ChainCNNSpace()}
    seconds_per_proposal(spaces["mlp"], 10, False, 1, args.explore)  # imports, warm caches
    result: dict[str, Any] = {}
    cpu: dict[str, dict[str, float]] = {}
    load = os.getloadavg()[0]
    configs = [("", False, True, 0, None), ("_fitted", True, True, 0, None)]
    configs.append(("_fitted_tight", True, True, 0, TIGHT_GTOL))  # the baseline of _fitted
    configs += [("_loss", False, False, 0, None), ("_local", False, True, args.local_search, None)]
    for suffix, fitted, split, local, gtol in configs:
        for name, space in spaces.items():
            key = name + suffix
            result[key], cpu[key] = {}, {}
            if fitted:
                result[f"{key}_cold"] = {}
            for n in NS:
                t = seconds_per_proposal(
                    space, n, fitted, args.repeats, args.explore, split, local, gtol
                )
                result[key][str(n)] = round(t["wall"], 4)
                cpu[key][str(n)] = round(t["cpu"], 4)
                line = f"{key:>11}  n={n:<4} {t['wall']:.3f} s per proposal ({t['cpu']:.3f} s CPU)"
                if "cold" in t:
                    result[f"{key}_cold"][str(n - 1)] = round(t["cold"], 4)
                    line += f"  cold fit at n={n - 1}: {t['cold']:.3f} s"
                print(line, flush=True)
    result["cpu_seconds"] = cpu
    result["load_average_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    result["original_published"] = {
        **ORIGINAL,
        "note": "the original numpy implementation, as published; not measured here",
    }
    result["explore"] = args.explore
    result["local_search"] = args.local_search
    result["repeats"] = args.repeats
    result["machine"] = machine("proposals on 1 thread, CPU only")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
