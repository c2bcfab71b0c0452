"""The live view of a search (one line per trial, best so far) and the final table."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


@dataclass(frozen=True)
class Ranked:
    """A finished trial as the reports show it."""

    stage: str
    number: int
    loss: float
    figures: Mapping[str, float]
    candidate: Mapping[str, Any]
    substage: str = ""

    @property
    def found_by(self) -> str:
        """The stage (and grid sub-stage) that found this candidate."""
        return f"{self.stage}:{self.substage}" if self.substage else self.stage


def describe(candidate: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
    """A compact one-line summary of a candidate's parameters."""
    parts = []
    for key, value in candidate.items():
        if key in skip:
            continue
        if isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


class SearchConsole:
    """Prints progress to the terminal (or a log, without colour when not a terminal)."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        if console is None:
            console = Console(highlight=False)
            if not console.is_terminal:  # logs and CI: wide enough for the final table
                console = Console(highlight=False, width=160)
        self.console = console
        self.quiet = quiet

    def print(self, *args: Any) -> None:
        if not self.quiet:
            self.console.print(*args)

    def search_start(self, name: str, storage: str, tracking: str, notes: Sequence[str]) -> None:
        self.print(
            f"[bold]dnc[/bold] search [cyan]{name}[/cyan]  storage={storage}  "
            f"tracking={tracking or 'off'}"
        )
        for note in notes:
            self.print(f"  {escape(note)}")

    def stage_start(self, stage: str, label: str, budget: int, done: int) -> None:
        size = f"; {budget} trials" if budget else ""
        resumed = f", resuming after {done} finished" if done else ""
        self.print(f"[bold]stage {stage}[/bold] ({label}{size}{resumed})")

    def trial(
        self,
        stage: str,
        done: int,
        budget: int,
        number: int,
        figures: Mapping[str, float] | None,
        loss: float | None,
        best: float,
        fail_reason: str | None = None,
        substage: str = "",
    ) -> None:
        where = f"{stage}:{substage}" if substage else stage
        head = escape(f"  [{where} {done:>3}/{budget}]") + f" trial {number:>3}"
        best_txt = f"best {best:+.4f}" if math.isfinite(best) else "best -"
        if fail_reason is not None or figures is None or loss is None:
            self.print(f"{head}  [red]failed[/red]: {escape(str(fail_reason))}  | {best_txt}")
            return
        mark = " [green]*[/green]" if loss <= best else ""
        self.print(
            f"{head}  val {figures['best_val_acc']:6.2f}%  "
            f"t_epoch {figures['t_epoch'] * 1e3:7.1f} ms"
            f"  params {int(figures['numparams']):>9,}  loss {loss:+.4f}{mark}  | {best_txt}"
        )

    def table(
        self,
        title: str,
        rows: Sequence[Ranked],
        extra: Sequence[str] = (),
        describe_candidate: Callable[[Mapping[str, Any]], str] = describe,
    ) -> None:
        table = Table(title=title, title_justify="left")
        for col in (
            "#",
            "found by",
            "trial",
            "val acc %",
            "t_epoch ms",
            "params",
            *extra,
            "search loss",
            "candidate",
        ):
            table.add_column(col, justify="left" if col in ("found by", "candidate") else "right")
        for rank, row in enumerate(rows, 1):
            f = row.figures
            table.add_row(
                str(rank),
                row.found_by,
                str(row.number),
                f"{f['best_val_acc']:.2f}",
                f"{f['t_epoch'] * 1e3:.1f}",
                f"{int(f['numparams']):,}",
                *(f"{f.get(key, float('nan')):.4g}" for key in extra),
                f"{row.loss:+.4f}",
                describe_candidate(row.candidate),
            )
        if not self.quiet:
            self.console.print(table)
