"""The import contracts of ``pyproject.toml`` (``lint-imports``): dnc is layered (plugins ->
train -> bo -> search -> tracking -> command line), nothing in dnc imports the contract mixins
or the built-in plugins, and the built-in plugins use only what a third party may."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).parents[1]


def test_the_import_contracts_hold(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    # import-linter configures logging, disabling every logger that exists: give them back
    loggers = [
        v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)
    ]
    disabled = {logger: logger.disabled for logger in loggers}
    try:
        code = lint_imports(
            config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
        )
    finally:
        for logger, was in disabled.items():
            logger.disabled = was
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count(" KEPT") == 4, out


def test_no_module_of_dnc_is_over_about_400_lines():
    sizes = {
        str(path.relative_to(ROOT)): sum(1 for _ in path.open())
        for path in (ROOT / "dnc").rglob("*.py")
    }
    assert sizes and max(sizes.values()) <= 420, {k: v for k, v in sizes.items() if v > 420}
    assert os.sep.join(("dnc", "search", "search.py")) in sizes
