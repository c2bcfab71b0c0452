"""The search: stages, the pipeline that chains them, the objective (search loss)."""

from dnc.search.objective import score, search_loss
from dnc.search.pipeline import Search, SearchResult, SearchSettings, StageSpec
from dnc.search.storage import open_storage, ranked_trials

__all__ = [
    "Search",
    "SearchResult",
    "SearchSettings",
    "StageSpec",
    "open_storage",
    "ranked_trials",
    "score",
    "search_loss",
]
