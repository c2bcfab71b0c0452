"""Stages: a ``bo`` stage samples candidates over some parameter groups with a model-based
sampler; a ``grid`` stage tries every variant of a finite set, sub-stage by sub-stage.

Both hold everything outside what they search at a *base* candidate: the best candidate of the
search when the stage (or grid sub-stage) started. The base is recorded on the stage's study the
first time, so a resumed stage, or a second worker, uses the same one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dnc.plugins import UserError

GROUPS = ("core", "arch", "train")
KINDS = ("bo", "grid")


@dataclass(frozen=True)
class StageSpec:
    """One stage of a search.

    - ``bo``: the search's sampler (or ``sampler``) proposes candidates over ``groups``; the
      budget is ``trials``, or ``search.bo.prior_states + search.bo.steps`` when 0.
    - ``grid``: for each sub-stage in ``substages`` (empty: the space's default order), every
      variant the space offers of the best candidate so far; a sub-stage's winner is kept only
      if it beats the best so far, and variants already tried anywhere in the search are not
      run again.
    """

    name: str
    kind: str = "bo"
    groups: tuple[str, ...] = ("core",)
    trials: int = 0
    substages: tuple[str, ...] = ()
    sampler: str | None = None

    def __post_init__(self) -> None:
        where = f"search.stages[{self.name}]"
        if not self.name or "/" in self.name or ":" in self.name:
            raise UserError(
                f"search.stages: stage name {self.name!r} must be non-empty, without '/' or ':'"
            )
        if self.kind not in KINDS:
            raise UserError(f"{where}.kind={self.kind!r}: choose one of {', '.join(KINDS)}")
        unknown = [g for g in self.groups if g not in GROUPS]
        if self.kind == "bo" and (unknown or not self.groups):
            raise UserError(
                f"{where}.groups={list(self.groups)}: name one or more of {', '.join(GROUPS)}"
            )
        if self.trials < 0:
            raise UserError(f"{where}.trials={self.trials}: must be >= 0")
        if len(set(self.substages)) != len(self.substages):
            raise UserError(f"{where}.substages={list(self.substages)}: each at most once")

    @property
    def label(self) -> str:
        return f"{self.kind} over {', '.join(self.groups)}" if self.kind == "bo" else "grid"


def candidate_key(candidate: Mapping[str, Any]) -> str:
    """A canonical text of a candidate: equal keys mean the same network and training."""
    return json.dumps(candidate, sort_keys=True, default=str)
