"""MLflow's UI (a real ``mlflow server``, in Chromium) shows a search as dnc writes it: the
runs table nests each trial under its stage and each stage under the search, and a URL with a
filter and a sort lists every trial flat, by search loss. What the page must show (run names,
losses) is read from the MLflow store, so these tests do not restate dnc's naming scheme."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from mlflow.tracking import MlflowClient

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import Searched

TRIALS = "tags.`dnc.kind` = 'trial'"
LOSS = "metrics.`search_loss`"  # the column's id and the sort key in MLflow's UI
ROWS = ".ag-pinned-left-cols-container .ag-row"  # the left, pinned part of each row: its name


def runs_of(searched: Searched, kind: str) -> list[Any]:
    client = MlflowClient(tracking_uri=searched.tracking_uri)
    return list(
        client.search_runs(
            [searched.experiment_id], f"tags.`dnc.kind` = '{kind}'", max_results=1000
        )
    )


def runs_url(searched: Searched, **query: str) -> str:
    """The experiment's runs table; ``workflowType=machine_learning``, else MLflow 3 opens on
    its GenAI overview."""
    params = urlencode({"workflowType": "machine_learning", **query}, quote_via=quote)
    return f"{searched.mlflow_url}/#/experiments/{searched.experiment_id}/runs?{params}"


def close_assistant(page: Page) -> None:
    """Close the MLflow Assistant panel (open on a first visit; it narrows the table)."""
    close = page.locator('[data-component-id="mlflow.assistant.chat_panel.close"]')
    if close.is_visible():
        close.click()


def show_column(page: Page, metric: str) -> None:
    """Add a metric's column to the runs table (MLflow 3 shows none by default)."""
    page.get_by_test_id("column-selection-dropdown").first.click()
    page.get_by_placeholder("Search columns").fill(metric)
    column = re.compile(rf"^{re.escape(metric)}$")
    page.locator(".du-bois-light-tree-treenode").filter(has_text=column).click()
    page.keyboard.press("Escape")


def table(page: Page) -> list[tuple[str, str]]:
    """The rows of the runs table, top to bottom: (run id, run name)."""
    rows = page.locator(ROWS).evaluate_all(
        """rows => rows.map(r => [Number(r.getAttribute("row-index")), r.getAttribute("row-id"),
                                  r.querySelector("a") ? r.querySelector("a").innerText : ""])"""
    )
    return [(run, name) for _, run, name in sorted(rows)]


def shown_loss(page: Page, run_id: str) -> float:
    cell = page.locator(f'.ag-center-cols-container .ag-row[row-id="{run_id}"] [col-id="{LOSS}"]')
    cell.wait_for()
    return float(cell.inner_text())


def test_the_runs_table_nests_each_trial_under_its_stage_under_the_search(
    page: Page, searched: Searched, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    (search,) = runs_of(searched, "search")
    stages = runs_of(searched, "stage")
    trials = runs_of(searched, "trial")
    assert stages and trials

    page.goto(runs_url(searched))

    def row(run: Any) -> Any:
        return page.locator(f'{ROWS}[row-id="{run.info.run_id}"]')

    def expand(run: Any) -> None:
        expect(row(run).get_by_role("link", name=run.info.run_name, exact=True)).to_be_visible()
        row(run).locator("button").click()

    expect(row(search)).to_be_visible()
    expect(page.locator(ROWS)).to_have_count(1)  # the table opens on the search run alone
    expand(search)
    close_assistant(page)
    for stage in stages:
        expand(stage)
    for trial in trials:
        expect(row(trial).get_by_role("link", name=trial.info.run_name, exact=True)).to_be_visible()
    shown = table(page)
    assert sorted(run for run, _ in shown) == sorted(
        r.info.run_id for r in [search, *stages, *trials]
    )

    show_column(page, "search_loss")
    expect(page.locator(f'.ag-header-cell[col-id="{LOSS}"]')).to_contain_text("search_loss")
    for trial in trials:
        if "search_loss" in trial.data.metrics:
            assert math.isclose(
                shown_loss(page, trial.info.run_id), trial.data.metrics["search_loss"]
            )
    page.screenshot(path=str(output_dir / "mlflow-runs-nested.png"))


def test_the_link_the_search_prints_lists_every_trial_flat_by_search_loss(
    page: Page, searched: Searched, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    trials = runs_of(searched, "trial")
    loss = {r.info.run_id: r.data.metrics.get("search_loss") for r in trials}

    # the start of the search says: runs in MLflow: mlflow ui ..., then http://127.0.0.1:5000/#/...
    printed = re.search(r"runs in MLflow: .*?http://127\.0\.0\.1:5000/(#/\S+)", searched.console)
    assert printed, searched.console
    page.goto(f"{searched.mlflow_url}/{printed.group(1)}")
    rows = page.locator(ROWS)
    expect(rows).to_have_count(len(trials))  # flat: no search or stage run above them
    close_assistant(page)
    shown = table(page)
    assert sorted(run for run, _ in shown) == sorted(loss)
    assert sorted(name for _, name in shown) == sorted(r.info.run_name for r in trials)
    ranked = [loss[run] for run, _ in shown if loss[run] is not None]
    assert ranked == sorted(ranked)

    first = next(run for run, _ in shown if loss[run] is not None)
    assert math.isclose(shown_loss(page, first), ranked[0])  # the view's columns: no clicks
    for column in ("best_val_acc_pct", "t_epoch_ms", "wc"):
        expect(page.locator(".ag-header-cell", has_text=column).first).to_be_visible()
    page.screenshot(path=str(output_dir / "mlflow-trials-by-search-loss.png"))


def test_the_search_run_shows_its_pictures_and_its_model(
    page: Page, searched: Searched, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    (search,) = runs_of(searched, "search")
    front = f"front-{searched.name}.png"
    assert (searched.run_dir / front).is_file()  # drawn into the run folder, and logged:
    page.goto(
        f"{searched.mlflow_url}/#/experiments/{searched.experiment_id}/runs/"
        f"{search.info.run_id}/artifacts"
    )
    close_assistant(page)
    page.get_by_text("pictures", exact=True).first.click()
    expect(page.get_by_text(front, exact=True).first).to_be_visible()
    page.get_by_text(front, exact=True).first.click()
    expect(page.get_by_role("img", name=f"pictures/{front}")).to_be_visible()  # the preview
    page.screenshot(path=str(output_dir / "mlflow-search-run-pictures.png"))
    shutil.copy(searched.run_dir / front, output_dir / "front.png")  # the README shows it
    page.goto(
        f"{searched.mlflow_url}/#/experiments/{searched.experiment_id}/runs/{search.info.run_id}"
    )
    expect(page.get_by_text("model", exact=True).first).to_be_visible()  # the logged model
