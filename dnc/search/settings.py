"""What a search does (``SearchSettings``, ``StageSpec``, ``search.bo``) and where it keeps its
trials (``StorageSettings``): plain dataclasses with the one set of defaults.

The command line composes ``conf/`` against these (``dnc.config`` registers them as Hydra
schemas), so a misspelt key is an error and the YAML files carry only what differs; Python
users build them directly. Importing this module is cheap (no torch, no Optuna).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dnc.bo.settings import MODELS, BOSettings
from dnc.plugins import UserError

GROUPS = ("core", "arch", "train")
"""Parameter groups: the core architecture, the rest of the architecture, training."""

OBJECTIVES = ("loss", "pareto")
"""What a ``bo`` stage optimises: the search loss for ``wc``, or the accuracy-cost front."""


def check_wc(wc: Any) -> float:
    """``wc`` as a float; ``UserError`` unless it is a finite number >= 0."""
    if isinstance(wc, bool):
        raise UserError(f"search.wc={wc!r}: give a number >= 0")
    try:
        value = float(wc)
    except (TypeError, ValueError) as err:
        raise UserError(f"search.wc={wc!r}: give a number >= 0") from err
    if not value >= 0 or math.isinf(value):
        raise UserError(f"search.wc={wc}: must be a finite number >= 0 (0: accuracy only)")
    return value


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if value is not None else ()


@dataclass(frozen=True)
class StageSpec:
    """One stage of a search (``search.stages[i]``).

    - ``kind: bo``: the search's sampler (or ``sampler``) proposes candidates over ``groups``;
      the budget is ``trials``, or ``search.bo.prior_states + search.bo.steps`` when 0.
    - ``kind: grid``: for each sub-stage in ``substages`` (empty: the space's default order),
      every variant the space offers of the best candidate so far; a sub-stage's winner is kept
      only if it beats the best so far, and variants already tried anywhere in the search are
      not run again. ``trials`` caps the trials per sub-stage (0: every variant): the base's
      own variant (already tried) is kept and at most ``trials`` of the others, chosen by the
      search's seed, the same in every worker.

    A ``bo`` stage minimises the search loss (``objective: loss``), or with ``objective: pareto``
    finds the front of validation accuracy against cost (``dnc.search.pareto``: an Optuna
    multi-objective study; the ramp sampler proposes by qLogNEHVI on its fp and fc GPs).

    Example:
        >>> StageSpec("core", objective="pareto")
        >>> StageSpec("train", groups=("train",), trials=20)
        >>> StageSpec("arch", kind="grid", groups=("arch",), trials=2)  # 2 per sub-stage
    """

    name: str
    kind: str = "bo"
    groups: tuple[str, ...] = ("core",)
    trials: int = 0
    substages: tuple[str, ...] = ()
    sampler: str | None = None
    objective: str = "loss"

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", _tuple(self.groups))
        object.__setattr__(self, "substages", _tuple(self.substages))
        if not self.name or "/" in self.name or ":" in self.name:
            raise UserError(
                f"search.stages: stage name {self.name!r} must be non-empty, without '/' or ':'"
            )
        where = f"search.stages[{self.name}]"
        unknown = [g for g in self.groups if g not in GROUPS]
        if unknown:
            raise UserError(
                f"{where}.groups={list(self.groups)}: name one or more of {', '.join(GROUPS)}"
            )
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 0:
            meaning = (
                "the most trials per sub-stage; 0: every variant"
                if self.kind == "grid"
                else "the budget; 0: search.bo.prior_states + search.bo.steps"
            )
            raise UserError(f"{where}.trials={self.trials!r}: give a whole number >= 0 ({meaning})")
        if len(set(self.substages)) != len(self.substages):
            raise UserError(f"{where}.substages={list(self.substages)}: each at most once")
        if self.objective not in OBJECTIVES:
            raise UserError(
                f"{where}.objective={self.objective!r}: choose {' or '.join(OBJECTIVES)}"
            )
        if self.objective == "pareto" and self.kind != "bo":
            raise UserError(f"{where}.objective=pareto: only a bo stage can search a front")


@dataclass(frozen=True)
class WarmStartSettings:
    """Start the first BO stage from a finished search (``search.warm_start``): its best
    ``candidates`` distinct candidates (rebuilt for this search's data and space, retrained)
    take the first of the stage's ``search.bo.prior_states`` (so at most that many); Sobol
    points fill the rest.

    The source is the search ``search`` in the Optuna storage ``storage`` (an SQLAlchemy URL),
    or in the run folder ``run_dir`` (its ``optuna.db``), or, with neither, in this search's own
    storage; ``search`` may be left out when that storage holds one other search. Setting any
    of the three turns warm start on. It needs the same search space; numeric values outside
    this space's bounds are clamped to them, and a candidate with a choice this space lacks is
    skipped (each with a warning).

    With ``observations`` the stage's ramp-BO GPs also learn from the source's completed
    trials, as a related task whose correlation with this one they fit (a BoTorch
    ``MultiTaskGP``), so its BO steps start from what the source learnt, not only from the
    warm candidates (other samplers ignore it). Off by default: on the Morse baseline to
    difficult transfer it measured no better (``bench/warm_start.py``).

    Example:
        >>> WarmStartSettings(search="morse-mlp", run_dir="outputs/morse-mlp/2026-12-01_10-00-00")
    """

    search: str | None = None
    storage: str | None = None
    run_dir: str | None = None
    candidates: int = 5
    observations: bool = False

    def __post_init__(self) -> None:
        c = self.candidates
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise UserError(
                f"search.warm_start.candidates={c!r}: give a whole number >= 1 (how many of the "
                "source's best candidates start the first BO stage)"
            )
        if self.storage is not None and self.run_dir is not None:
            raise UserError(
                "search.warm_start: give storage=<an Optuna storage URL> or run_dir=<a search's "
                "run folder>, not both"
            )
        if self.storage is not None and "://" not in str(self.storage):
            raise UserError(
                f"search.warm_start.storage={self.storage!r}: give an SQLAlchemy URL such as "
                "sqlite:///outputs/digits-mlp/2026-12-01_10-00-00/optuna.db"
            )
        if not isinstance(self.observations, bool):
            raise UserError(
                f"search.warm_start.observations={self.observations!r}: give true or false"
            )
        for key in ("search", "storage", "run_dir"):
            if getattr(self, key) == "":
                raise UserError(f"search.warm_start.{key} is empty: give a value, or null")

    @property
    def enabled(self) -> bool:
        """Whether a source is named (any of ``search``, ``storage``, ``run_dir``)."""
        return any(v is not None for v in (self.search, self.storage, self.run_dir))


PAPER_STAGES = (
    StageSpec("core", groups=("core",)),
    StageSpec("arch", kind="grid", groups=("arch",)),
    StageSpec("train", groups=("train",)),
)
"""Deep-n-Cheap's search: core architecture by BO, the rest by grid, then training by BO."""


@dataclass(frozen=True)
class SearchSettings:
    """What a search does (``search``).

    ``name`` names its studies (``<name>/<stage>``); ``wc`` weighs the cost in the search loss
    ``log10(fp + wc * fc)`` (``None``: the knee of the front its first stage, a Pareto stage,
    finds: ``dnc.search.pareto``); ``stages`` run in order, each from the best candidate so far;
    ``sampler`` proposes the candidates of ``bo`` stages (``ramp``, ``gp``, ``tpe``, ``tpe_group``,
    ``random``, ``nsga2``); ``warm_start`` starts the first BO stage from another search's best
    candidates; ``num_best`` candidates are reported (and retrained on train + validation for
    their test accuracy with ``final_test``); ``max_failures_in_a_row`` failed trials stop it.

    Example:
        >>> SearchSettings(name="demo", wc=0.1, bo=BOSettings(prior_states=3, steps=2))
    """

    name: str = "search"
    wc: float | None = 0.1
    stages: tuple[StageSpec, ...] = PAPER_STAGES
    sampler: str = "ramp"
    bo: BOSettings = field(default_factory=BOSettings)
    warm_start: WarmStartSettings = field(default_factory=WarmStartSettings)
    num_best: int = 5
    final_test: bool = False
    max_failures_in_a_row: int = 10

    def __post_init__(self) -> None:
        from dnc.search.samplers import SAMPLERS  # imports Optuna: only when settings are made

        object.__setattr__(self, "stages", _tuple(self.stages))
        if not self.name or "/" in self.name:
            raise UserError(f"search.name={self.name!r}: must be non-empty, without '/'")
        if not self.stages:
            raise UserError("search.stages is empty: name at least one stage")
        if self.wc is not None:
            object.__setattr__(self, "wc", check_wc(self.wc))
        elif self.stages[0].objective != "pareto":
            raise UserError(
                "search.wc=null continues from the knee of a Pareto stage's front: give a "
                "number >= 0, or make the first stage a Pareto stage (search=pareto)"
            )
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise UserError(f"search.stages: stage names must be unique, got {names}")
        for sampler in {self.sampler, *(s.sampler for s in self.stages if s.sampler)}:
            if sampler not in SAMPLERS:
                raise UserError(
                    f"search.sampler={sampler!r}: choose one of {', '.join(sorted(SAMPLERS))}"
                )
        if self.warm_start.enabled:
            self._check_warm_start()
        if not isinstance(self.final_test, bool):
            raise UserError(f"search.final_test={self.final_test!r}: give true or false")
        if self.num_best < 1:
            raise UserError(f"search.num_best={self.num_best}: must be at least 1")
        if self.max_failures_in_a_row < 1:
            raise UserError("search.max_failures_in_a_row must be at least 1")

    def _check_warm_start(self) -> None:
        if self.first_bo_stage() is None:
            raise UserError("search.warm_start: this search has no bo stage to start")

    def warm_slots(self) -> int:
        """How many warm-started candidates the first BO stage takes: ``warm_start.candidates``,
        at most its prior states (0: no warm start)."""
        first = self.first_bo_stage()
        if not self.warm_start.enabled or first is None:
            return 0
        return min(self.warm_start.candidates, self.bo.prior_states, self.budget(first))

    def first_bo_stage(self) -> StageSpec | None:
        """The stage a warm start starts (``None``: the search has no ``bo`` stage)."""
        return next((s for s in self.stages if s.kind == "bo"), None)

    def budget(self, stage: StageSpec) -> int:
        """A ``bo`` stage's number of trials (a ``grid`` stage's ``trials`` is its cap per
        sub-stage instead)."""
        return stage.trials or self.bo.trials


@dataclass(frozen=True)
class StorageSettings:
    """Where the search's Optuna studies live (``storage``): an SQLAlchemy ``url``; a trial
    whose worker stops beating for ``grace_period`` seconds (heartbeat every
    ``heartbeat_interval``) is failed and its slot run again; a worker waits out a storage it
    cannot reach (a database restarting) for up to ``retry_s`` seconds, then stops with
    ``dnc.search.storage.StorageUnavailable`` (0: at once).

    Example:
        >>> StorageSettings(url="postgresql://dnc@db:5432/dnc", retry_s=300)
    """

    url: str = "sqlite:///optuna.db"
    heartbeat_interval: int = 10
    grace_period: int = 30
    retry_s: float = 120.0

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or "://" not in self.url:
            raise UserError(
                f"storage.url={self.url!r}: give an SQLAlchemy URL such as sqlite:///optuna.db"
            )
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise UserError(
                "storage: need heartbeat_interval >= 1 and grace_period > heartbeat_interval "
                f"(got {self.heartbeat_interval} and {self.grace_period})"
            )
        retry_s = self.retry_s
        if isinstance(retry_s, bool) or not isinstance(retry_s, (int, float)):
            raise UserError(f"storage.retry_s={retry_s!r}: give a number of seconds >= 0")
        if not 0 <= retry_s < math.inf:
            raise UserError(
                f"storage.retry_s={retry_s}: give a number of seconds >= 0 (how long a worker "
                "waits for a storage it cannot reach; 0: it stops at once)"
            )
        object.__setattr__(self, "retry_s", float(retry_s))


__all__ = [
    "GROUPS",
    "MODELS",
    "OBJECTIVES",
    "PAPER_STAGES",
    "BOSettings",
    "SearchSettings",
    "StageSpec",
    "StorageSettings",
    "WarmStartSettings",
    "check_wc",
]
