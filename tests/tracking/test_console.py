"""The console view: a line per stage and per trial, one line for a failed trial (naming the
log file once), and the table of the best."""

from __future__ import annotations

import io
import math

from rich.console import Console

from dnc.search.events import (
    SearchFinished,
    SearchStarted,
    StageStarted,
    TrialFinished,
    TrialProgress,
    TrialStarted,
)
from dnc.search.records import Ranked
from dnc.search.settings import StageSpec
from dnc.search.trial import TrialOutcome
from dnc.tracking.console import SearchConsole

FIGURES = {"best_val_acc": 97.5, "t_epoch": 0.0042, "numparams": 12535.0, "epochs_run": 3.0}


def console(**kwargs) -> tuple[SearchConsole, io.StringIO]:
    out = io.StringIO()
    return SearchConsole(Console(file=out, width=200, highlight=False), **kwargs), out


def test_header_stage_and_trial_lines():
    view, out = console(tracking="sqlite:///mlflow.db")
    view.search_started(
        SearchStarted("digits-mlp", "postgresql://u:***@h/db", ("digits: ...",), {}, None)
    )  # type: ignore[arg-type]
    view.stage_started(StageStarted(StageSpec("core"), None, "ramp bo over core", 30, 4))  # type: ignore[arg-type]
    ok = TrialOutcome("core", 7, {}, figures=FIGURES, loss=-1.02)
    view.trial_finished(TrialFinished(ok, done=5, budget=30, best=-1.02))
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "dnc search digits-mlp  storage=postgresql://u:***@h/db  tracking=sqlite:///mlflow.db"
    )
    assert lines[2] == "stage core (ramp bo over core; 30 trials, resuming after 4 finished)"
    assert lines[3].split() == [
        "[core",
        "5/30]",
        "trial",
        "7",
        "val",
        "97.50%",
        "t_epoch",
        "4.2",
        "ms",
        "params",
        "12,535",
        "loss",
        "-1.0200",
        "*",
        "|",
        "best",
        "-1.0200",
    ]


def test_a_failed_trial_is_one_line_and_names_the_log_once():
    view, out = console(log_file="outputs/run/dnc.log")
    for number in (0, 1):
        failed = TrialOutcome("core", number, {}, fail_reason="TypeError: bad operand")
        view.trial_finished(TrialFinished(failed, done=number + 1, budget=3, best=math.inf))
    first, second = out.getvalue().splitlines()
    assert first.endswith(
        "failed: TypeError: bad operand (tracebacks in outputs/run/dnc.log)  | best -"
    )
    assert "tracebacks" not in second and second.endswith(
        "failed: TypeError: bad operand  | best -"
    )


def test_the_table_of_the_best_with_test_accuracy():
    view, out = console(describe_candidate=lambda c: f"hidden {c['h']}")
    best = [
        Ranked("train", 8, -1.019, FIGURES, {"h": [167]}),
        Ranked("arch", 3, -0.9, FIGURES, {"h": [20]}, "dropout"),
    ]
    view.search_finished(SearchFinished("digits-mlp", True, best, {"train/8": 96.1}))
    text = out.getvalue()
    assert "best 2 candidates of digits-mlp" in text and "test_acc" in text
    assert "arch:dropout" in text and "hidden [167]" in text and "96.1" in text
    quiet, nothing = console(quiet=True)
    quiet.search_finished(SearchFinished("x", True, best))
    assert nothing.getvalue() == ""


class _Trial:
    number = 7


def test_on_a_terminal_bars_follow_the_stage_and_the_running_trial():
    out = io.StringIO()
    terminal = Console(file=out, width=160, force_terminal=True, color_system=None, highlight=False)
    view = SearchConsole(terminal, runs_link=lambda: "http://mlflow:5000/#/experiments/1/runs")
    view.search_started(SearchStarted("digits-mlp", "sqlite:///o.db", (), {}, None))  # type: ignore[arg-type]
    view.stage_started(StageStarted(StageSpec("core"), None, "ramp bo over core", 30, 4))  # type: ignore[arg-type]
    view.trial_started(TrialStarted("core", "", _Trial(), {}))  # type: ignore[arg-type]
    view.trial_progress(TrialProgress("core", 7, 3, 15, 0.41, 91.25))
    stage, trial = view._progress.tasks  # type: ignore[union-attr]
    assert (stage.completed, stage.total) == (4, 30)
    assert (trial.completed, trial.total) == (3, 15) and "91.25%" in trial.fields["info"]
    ok = TrialOutcome("core", 7, {}, figures=FIGURES, loss=-1.02)
    view.trial_finished(TrialFinished(ok, done=5, budget=30, best=-1.02))
    (stage,) = view._progress.tasks  # type: ignore[union-attr]
    assert stage.completed == 5 and stage.fields["info"] == "best -1.0200"
    view.search_finished(SearchFinished("digits-mlp", False, []))
    assert view._progress is None  # the live display stopped before the final table
    assert "runs in MLflow: http://mlflow:5000/#/experiments/1/runs" in out.getvalue()


def test_not_on_a_terminal_there_are_no_bars():
    view, out = console()
    view.stage_started(StageStarted(StageSpec("core"), None, "ramp bo over core", 30, 0))  # type: ignore[arg-type]
    view.trial_started(TrialStarted("core", "", _Trial(), {}))  # type: ignore[arg-type]
    view.trial_progress(TrialProgress("core", 7, 3, 15, 0.41, 91.25))
    assert view._progress is None
    assert out.getvalue().splitlines() == ["stage core (ramp bo over core; 30 trials)"]
