"""The performance-complexity front drawn for ``dnc.report``."""

from __future__ import annotations

import json

from dnc_hwcost import HardwareCost

from dnc.search.cost import NumParams
from dnc.search.records import Ranked
from dnc.search.rescore import Pick, pareto_front
from dnc.tracking.front import draw_trials, figure, picks_json, plot_front


def test_the_front_keeps_what_nothing_beats_on_both():
    points = [(1.0, 80.0), (2.0, 85.0), (2.5, 84.0), (3.0, 90.0), (0.5, 70.0), (3.0, 89.0)]
    assert pareto_front(points) == [4, 0, 1, 3]


def test_plot_and_picks(tmp_path):
    cost = NumParams(numparams_bar=1000)
    rows = [
        Ranked(
            "core",
            i,
            -0.5 - i / 10,
            {"best_val_acc": 80.0 + i, "numparams": 500.0 * (i + 1)},
            {"h": i},
        )
        for i in range(4)
    ]
    picks = [Pick(0.0, rows[3], 2.0, rows[::-1]), Pick(1.0, rows[0], 0.5, rows)]
    path = plot_front(picks, cost, tmp_path / "front.png", "t")
    assert path.stat().st_size > 5_000 and path.read_bytes()[:4] == b"\x89PNG"
    data = json.loads(picks_json(picks, "s", cost))
    assert [p["wc"] for p in data["picks"]] == [0.0, 1.0]
    assert data["cost"] == {"name": "numparams", "numparams_bar": 1000.0}
    assert data["picks"][0]["trial"] == 3 and data["picks"][1]["complexity"] == 0.5


def test_candidates_the_target_cannot_run_are_crosses_off_the_front():
    cost = HardwareCost(metric="clocks_per_sample", normaliser=1.0)
    runs = [(70.0, 0.5, 1.0), (95.0, 1.0, 1.0), (99.0, 2.0, 0.0), (97.0, 3.0, 1.0)]
    rows = [
        Ranked("core", i, 0.0, {"best_val_acc": a, "hw_clocks_per_sample": c, "hw_feasible": f}, {})
        for i, (a, c, f) in enumerate(runs)
    ]
    fig, ax = figure((4, 3))
    assert draw_trials(ax, rows, cost) == [0.5, 1.0, 100.0, 3.0]  # the penalty's cost
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == [0.5, 1.0, 3.0] and list(line.get_ydata()) == [70, 95, 97]
    crosses = {c.get_label(): c.get_offsets().tolist() for c in ax.collections}
    assert crosses == {"trials": [[0.5, 70], [1.0, 95], [3.0, 97]], "infeasible": [[100.0, 99]]}
