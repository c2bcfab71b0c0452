"""The search: settings, stages, the driver that runs their trials, the search loss, and what a
search leaves in its storage.

Names are loaded on first use, so ``import dnc.search`` (and the settings the command line
registers with Hydra) stays cheap.

Example::

    from dnc.search import Search, SearchSettings
    result = Search(SearchSettings(name="demo"), space=MLPSpace(), dataset=Digits(),
                    cost=TEpoch(), storage="sqlite:///demo.db").run()
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnc.search.driver import TrialsFailed
    from dnc.search.events import SearchObserver
    from dnc.search.objective import LossParts, score, search_loss
    from dnc.search.ranking import ranked_trials
    from dnc.search.records import Ranked
    from dnc.search.results import SearchResult
    from dnc.search.search import Search
    from dnc.search.settings import BOSettings, SearchSettings, StageSpec, StorageSettings
    from dnc.search.storage import open_storage

_HOME = {
    "BOSettings": "dnc.search.settings",
    "LossParts": "dnc.search.objective",
    "Ranked": "dnc.search.records",
    "Search": "dnc.search.search",
    "SearchObserver": "dnc.search.events",
    "SearchResult": "dnc.search.results",
    "SearchSettings": "dnc.search.settings",
    "StageSpec": "dnc.search.settings",
    "StorageSettings": "dnc.search.settings",
    "TrialsFailed": "dnc.search.driver",
    "open_storage": "dnc.search.storage",
    "ranked_trials": "dnc.search.ranking",
    "score": "dnc.search.objective",
    "search_loss": "dnc.search.objective",
}

__all__ = [
    "BOSettings",
    "LossParts",
    "Ranked",
    "Search",
    "SearchObserver",
    "SearchResult",
    "SearchSettings",
    "StageSpec",
    "StorageSettings",
    "TrialsFailed",
    "open_storage",
    "ranked_trials",
    "score",
    "search_loss",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'dnc.search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
