"""optuna-dashboard (a real server, in Chromium) shows a search as dnc records it in its Optuna
storage: one study per stage, named ``<search>/<stage>``, and in the grid stage's study each
trial's varied choice as an Optuna param (``activation tanh``, ``dropout 0.5``...). What the
page must show is read from the storage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import Searched


def test_the_grid_study_shows_each_trials_varied_choice(
    page: Page, searched: Searched, output_dir: Path
) -> None:
    from playwright.sync_api import expect

    name = f"{searched.name}/arch"
    trials = optuna.load_study(study_name=name, storage=searched.storage_url).trials
    assert trials and all(t.params for t in trials)

    page.goto(f"{searched.dashboard_url}/dashboard")
    for study in optuna.get_all_study_names(searched.storage_url):
        expect(page.get_by_role("heading", name=study)).to_be_visible()
    page.get_by_role("heading", name=name).click()
    expect(page).to_have_url(re.compile(r"/dashboard/studies/\d+$"))
    page.screenshot(path=str(output_dir / "optuna-dashboard-arch-study.png"))

    # The trial list, every trial selected: each one's details, its params among them.
    numbers = ",".join(str(t.number) for t in trials)
    page.goto(f"{page.url}/trials?numbers={numbers}")
    shown: dict[str, int] = {}
    for t in trials:
        expect(page.get_by_role("heading", name=f"Trial {t.number} (trial_id=")).to_be_visible()
        for param, value in t.params.items():
            text = f"{param} {value}"  # as the dashboard writes a param: its name and str()
            shown[text] = shown.get(text, 0) + 1
    for text, count in shown.items():
        expect(page.get_by_text(text, exact=True)).to_have_count(count)
    page.screenshot(path=str(output_dir / "optuna-dashboard-arch-trials.png"))
