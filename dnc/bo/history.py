"""What the ramp BO learns from: a study's trials, and a related task's observations, as encoded
rows (``dnc.bo.sampler.RampBOSampler`` reads them here before each proposal).

A trial is *finished* (data for the GPs) when it completed, or was stopped early by a pruner at
its last reported value, with finite values; *running* trials are pending points of the
acquisition; *failed* ones are not data but are not proposed again. A trial's candidate comes
from its ``candidate`` user attribute, else from what the sampler chose for it, else from the
space replayed on its params.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from dnc import optuna_compat
from dnc.bo.encoding import CandidateEncoder
from dnc.bo.model import SourceTask
from dnc.bo.optimise import Proposal
from dnc.plugins import SearchSpace, candidate_key
from dnc.suggest import ReplaySuggest

log = logging.getLogger(__name__)

SourceRow = tuple[Mapping[str, Any], float, "tuple[float, float] | None"]
"""A related task's observation: its params for this space, its search loss, its ``(fp, fc)``."""


class LossSplit(Protocol):
    """How a trial's search loss ``log10(fp + wc * fc)`` splits, for the split model
    (``dnc.search.LossParts`` is one): ``parts(trial)`` gives a finished trial's ``(fp, fc)``
    from what it recorded, or ``None`` when it did not record them (a step with such a trial
    falls back to one GP on the trial values). The study must minimise the loss."""

    @property
    def wc(self) -> float: ...

    @property
    def parts(self) -> Callable[[FrozenTrial], tuple[float, float] | None]: ...


@dataclass(frozen=True)
class Known:
    """A finished or running trial as the GP sees it."""

    row: list[float]  # the encoded candidate
    key: Hashable
    parts: tuple[float, float] | None = None  # (fp, fc) of a finished trial, for the split model
    params: Mapping[str, Any] | None = None  # its searched params (a start of the local search)
    feasible: bool = True  # meets the constraints it records (Optuna's; a Pareto stage's cost)


@dataclass
class History:
    """A study's trials, but the one being proposed, sorted by what the BO makes of them."""

    finished: list[Known] = field(default_factory=list)
    outcomes: list[float] = field(default_factory=list)  # the finished trials' first values
    pending: list[Known] = field(default_factory=list)
    failed: list[Known] = field(default_factory=list)

    @property
    def taken(self) -> set[Hashable]:
        """The candidates not to propose again."""
        return {k.key for k in (*self.finished, *self.pending, *self.failed)}


def observed(trial: FrozenTrial) -> bool:
    """A trial the model learns from: completed, or stopped early by a pruner (Optuna records
    its last reported value; a trial given up as a duplicate has none), with finite values."""
    done = trial.state == TrialState.COMPLETE or trial.state == TrialState.PRUNED
    values = trial.values
    return done and values is not None and all(math.isfinite(v) for v in values)


class TrialReader:
    """Reads a study's trials for the GPs of one stage (its space, held values and features)."""

    def __init__(
        self,
        space: SearchSpace,
        base: Mapping[str, Any],
        encoder: CandidateEncoder | None,
        loss_parts: LossSplit | None,
    ) -> None:
        self.space = space
        self.base = dict(base)
        self.encoder = encoder
        self.loss_parts = loss_parts

    def read(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        own: Callable[[int], Proposal | None],
        front: bool = False,
    ) -> History:
        """Every trial of ``study`` but ``trial``; ``own(number)`` is what the sampler chose for
        a trial it proposed (``None``: not known). On a front (``front``), a finished trial
        without ``(fp, fc)`` is left out: there is nothing to model."""
        history = History()
        for t in study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            if observed(t):
                known = self.known(t, own(t.number))
                if known is None:
                    continue
                if self.loss_parts is not None:
                    known = replace(known, parts=self.parts(t))
                known = replace(known, feasible=optuna_compat.feasible(t))
                if front and known.parts is None:
                    continue
                history.finished.append(known)
                history.outcomes.append(float(t.values[0]))
            elif t.state in (TrialState.RUNNING, TrialState.FAIL):
                known = self.known(t, own(t.number))
                if known is not None:
                    pending = t.state == TrialState.RUNNING
                    (history.pending if pending else history.failed).append(known)
        return history

    def known(self, t: FrozenTrial, own: Proposal | None = None) -> Known | None:
        """A trial's candidate and encoding (``None``: nothing known yet, or it does not fit
        the features)."""
        candidate = t.user_attrs.get("candidate")
        params = t.params or (own.params if own is not None else {})
        try:
            if not isinstance(candidate, Mapping):
                if own is not None:
                    candidate = own.candidate
                elif t.params:
                    candidate = self.space.sample(ReplaySuggest(t.params, self.base))  # type: ignore[arg-type]
                else:
                    return None  # a trial that has not sampled anything yet
            row = self.encoder.encode_one({**params, **candidate}) if self.encoder else []
        except (KeyError, ValueError, TypeError) as err:
            log.warning("RampBOSampler: trial %d left out of the GP (%s)", t.number, err)
            return None
        return Known(row, candidate_key(candidate), params=params)

    def parts(self, t: FrozenTrial) -> tuple[float, float] | None:
        """A finished trial's ``(fp, fc)`` for the split model (``None``: not recorded, or not
        finite and non-negative)."""
        assert self.loss_parts is not None
        parts = self.loss_parts.parts(t)
        if parts is None or not all(math.isfinite(v) and v >= 0 for v in parts):
            return None
        return float(parts[0]), float(parts[1])

    def source(self, rows: Sequence[SourceRow]) -> SourceTask | None:
        """A related task's observations encoded (``None``: fewer than two that fit)."""
        if self.encoder is None:
            return None
        encoded, targets, parts = [], [], []
        for params, loss, split in rows:
            try:
                candidate = self.space.sample(ReplaySuggest(params, self.base))  # type: ignore[arg-type]
                encoded.append(self.encoder.encode_one({**params, **candidate}))
            except (KeyError, ValueError, TypeError) as err:
                log.debug("RampBOSampler: a source observation left out (%s)", err)
                continue
            targets.append(-float(loss))  # a dnc search loss, minimised; targets are maximised
            parts.append(split)
        if len(encoded) < 2:
            return None
        return SourceTask(torch.tensor(encoded, dtype=torch.float64), targets, parts)


__all__ = ["History", "Known", "LossSplit", "SourceRow", "TrialReader", "observed"]
