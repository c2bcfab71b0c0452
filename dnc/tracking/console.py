"""The console view of a search: a line per stage and per trial, then a table of the best; on a
terminal, live progress bars too (the stage: trials done of its budget, best so far, time left;
the running trial: epochs done, validation accuracy, time left)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dnc.search.events import (
    FinalTested,
    SearchFinished,
    SearchObserver,
    SearchStarted,
    StageFinished,
    StageStarted,
    SubstageStarted,
    TrialFinished,
    TrialProgress,
    TrialStarted,
)
from dnc.search.records import Ranked
from dnc.secrets import mask_url


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


class SearchConsole(SearchObserver):
    """Prints a search's progress (plain text, without colour, when not on a terminal).

    ``tracking`` is the tracking URI shown in the header, ``runs_link`` gives where the MLflow
    UI shows the runs (printed under it); ``describe_candidate`` turns a candidate into the
    table's last column (the space's ``describe``); ``log_file`` is where failed trials'
    tracebacks go (named once, on the first failure). ``live``: progress bars (default: on a
    terminal; logs, CI and SLURM get the plain lines only)."""

    def __init__(
        self,
        console: Console | None = None,
        *,
        quiet: bool = False,
        tracking: str = "",
        describe_candidate: Callable[[Mapping[str, Any]], str] = describe,
        log_file: str | None = None,
        runs_link: Callable[[], str] | None = None,
        live: bool | None = None,
    ) -> None:
        if console is None:
            console = Console(highlight=False)
            if not console.is_terminal:  # logs and CI: wide enough for the final table
                console = Console(highlight=False, width=160)
        self.console = console
        self.quiet = quiet
        self.tracking = tracking
        self.runs_link = runs_link
        self.describe_candidate = describe_candidate
        self.log_file = log_file
        self._told_log = False
        self.live = console.is_terminal if live is None else live
        self._progress: Progress | None = None
        self._stage_task: TaskID | None = None
        self._trial_task: TaskID | None = None

    def print(self, *args: Any, soft_wrap: bool = False) -> None:
        """Print unless quiet; ``soft_wrap``: never break the line (commands and links stay
        whole for copying)."""
        if not self.quiet:
            self.console.print(*args, soft_wrap=soft_wrap)

    # -- live progress ------------------------------------------------------------------------
    def _bars(self) -> Progress | None:
        """The live progress display, started on first use (``None``: no bars)."""
        if not self.live or self.quiet:
            return None
        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        return self._progress

    def close(self) -> None:
        """Stop the live display (the search ended)."""
        if self._progress is not None:
            self._progress.stop()
        self._progress = self._stage_task = self._trial_task = None

    # -- events -------------------------------------------------------------------------------
    def search_started(self, event: SearchStarted) -> None:
        self.print(
            f"[bold]dnc[/bold] search [cyan]{escape(event.name)}[/cyan]  "
            f"storage={escape(event.storage)}  tracking={escape(mask_url(self.tracking) or 'off')}"
        )
        for note in event.notes:
            self.print(f"  {escape(note)}", soft_wrap=True)
        if self.runs_link is not None:
            try:
                link = self.runs_link()
            except Exception:  # the store is down: the tracker says so
                link = ""
            if link:
                self.print(f"  runs in MLflow: {escape(link)}", soft_wrap=True)

    def stage_started(self, event: StageStarted) -> None:
        size = f"; {event.budget} trials" if event.budget else ""
        resumed = f", resuming after {event.done} finished" if event.done else ""
        self.print(f"[bold]stage {escape(event.spec.name)}[/bold] ({event.label}{size}{resumed})")
        bars = self._bars()
        if bars is not None:
            if self._stage_task is not None:
                bars.remove_task(self._stage_task)
            self._stage_task = bars.add_task(
                f"stage {escape(event.spec.name)}",
                total=event.budget,
                completed=event.done,
                info="best -",
            )

    def stage_finished(self, event: StageFinished) -> None:
        if self._progress is not None and self._stage_task is not None:
            self._progress.remove_task(self._stage_task)
            self._stage_task = None

    def trial_started(self, event: TrialStarted) -> None:
        bars = self._bars()
        if bars is None:
            return
        if self._trial_task is not None:
            bars.remove_task(self._trial_task)
        self._trial_task = bars.add_task(
            f"  trial {event.trial.number}", total=None, info="epoch -"
        )

    def trial_progress(self, event: TrialProgress) -> None:
        if self._progress is None or self._trial_task is None:
            return
        self._progress.update(
            self._trial_task,
            total=event.epochs,
            completed=event.epoch,
            info=f"val {event.val_acc:6.2f}%  loss {event.train_loss:.4f}",
        )

    def substage_started(self, event: SubstageStarted) -> None:
        self.print(
            f"  sub-stage {escape(event.substage)}: {event.variants} variants of the best so far"
        )

    def trial_finished(self, event: TrialFinished) -> None:
        o = event.outcome
        where = f"{o.stage}:{o.substage}" if o.substage else o.stage
        head = escape(f"  [{where} {event.done:>3}/{event.budget}]") + f" trial {o.number:>3}"
        best = f"best {event.best:+.4f}" if math.isfinite(event.best) else "best -"
        if o.failed or o.figures is None or o.loss is None:
            where_log = ""
            if self.log_file and not self._told_log:
                where_log, self._told_log = f" (tracebacks in {self.log_file})", True
            self.print(
                f"{head}  [red]failed[/red]: {escape(str(o.fail_reason))}"
                f"{escape(where_log)}  | {best}"
            )
            self._trial_done(event, best)
            return
        f = o.figures
        if o.pruned_at is not None:  # never a pick: its loss is of the epochs it ran
            mark = f" [yellow]pruned after epoch {o.pruned_at}[/yellow]"
        else:
            mark = " [green]*[/green]" if o.loss <= event.best else ""
        self.print(
            f"{head}  val {f['best_val_acc']:6.2f}%  t_epoch {f['t_epoch'] * 1e3:7.1f} ms"
            f"  params {int(f['numparams']):>9,}  loss {o.loss:+.4f}{mark}  | {best}"
        )
        self._trial_done(event, best)

    def _trial_done(self, event: TrialFinished, best: str) -> None:
        """The trial's bar goes; the stage's counts it."""
        if self._progress is None:
            return
        if self._trial_task is not None:
            self._progress.remove_task(self._trial_task)
            self._trial_task = None
        if self._stage_task is not None:
            self._progress.update(
                self._stage_task, total=event.budget, completed=event.done, info=best
            )

    def final_tested(self, event: FinalTested) -> None:
        self.print(f"  {event.row.key}: test accuracy {event.test_acc:.2f}%")

    def search_finished(self, event: SearchFinished) -> None:
        self.close()
        if not event.finished:
            return
        rows = [
            dataclasses.replace(r, figures={**r.figures, "test_acc": event.test_acc[r.key]})
            if r.key in event.test_acc
            else r
            for r in event.best
        ]
        self.table(
            f"best {len(rows)} candidates of {event.name}",
            rows,
            extra=("test_acc",) if event.test_acc else (),
        )

    def message(self, text: str) -> None:
        self.print(escape(text))

    # -- the table ----------------------------------------------------------------------------
    def table(self, title: str, rows: Sequence[Ranked], extra: Sequence[str] = ()) -> None:
        """The best candidates: where they came from, their figures and search loss."""
        table = Table(title=title, title_justify="left")
        columns = (
            "#",
            "found by",
            "trial",
            "val acc %",
            "t_epoch ms",
            "params",
            *extra,
            "search loss",
            "candidate",
        )
        for col in columns:
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
                self.describe_candidate(row.candidate),
            )
        self.print(table)


__all__ = ["SearchConsole", "describe"]
