"""Stages: ``bo`` samples candidates over some parameter groups with a model-based sampler;
``grid`` tries every variant of a finite set (or a capped, seeded choice of them), sub-stage by
sub-stage.

A stage kind is a class with a ``label``, a ``budget``, ``params``, ``describe`` and
``run(context, study)``, registered in ``STAGES`` under the name ``search.stages[i].kind``
uses. Both kinds hold everything outside what they search at a *base* candidate: the best
candidate of the search when the stage (or grid sub-stage) started, recorded on the stage's
study the first time, so a resumed stage, or a second worker, uses the same one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from dnc import optuna_compat
from dnc.plugins import Candidate, SearchSpace, UserError, candidate_key
from dnc.search import coordination, records, warm_start
from dnc.search.driver import Driver, Wait
from dnc.search.events import SearchObserver, SubstageStarted
from dnc.search.objective import LossParts
from dnc.search.ranking import ranked_trials
from dnc.search.samplers import SamplerContext, make_sampler
from dnc.search.settings import SearchSettings, StageSpec
from dnc.search.storage import load, search_studies
from dnc.search.trial import CandidateTaken
from dnc.search.variants import capped_variants, suggest_param, varied_params
from dnc.suggest import TrialSuggest


@dataclass
class StageContext:
    """What a stage runs with: the search it belongs to (``search`` in ``storage``), the
    space, the driver of its trials, the seed, loss parts and candidate screen (a cost's
    feasibility, ``feasibility_screen``) its sampler takes, and, for the first BO stage of a
    warm-started search, the search it starts from (``warm_source``)."""

    search: str
    storage: optuna.storages.BaseStorage
    space: SearchSpace
    driver: Driver
    observer: SearchObserver
    seed: int
    loss_parts: LossParts
    screen: Callable[[Candidate], bool] | None = None
    warm_source: warm_start.WarmSource | None = None

    def base(self, study: optuna.Study, key: str) -> Candidate:
        """The candidate a stage (``key="stage"``) or grid sub-stage holds fixed: the best of
        the search when it first started, recorded on its study."""
        attr = records.BASE + key
        with self.lock():  # every worker holds the same one
            if attr not in study.user_attrs:
                best = ranked_trials(self.storage, self.search)
                study.set_user_attr(attr, dict(best[0].candidate) if best else {})
            return dict(study.user_attrs[attr])

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """The search's lock, held by one worker at a time (``dnc.search.coordination``)."""
        return coordination.lock(self.storage, self.search)

    def tried(self) -> set[Any]:
        """Identities of every candidate of the search that used up budget or is in flight."""
        keys = set()
        for name in search_studies(self.storage, self.search):
            for t in load(self.storage, name).get_trials(deepcopy=False):
                key = records.tried_key(t)
                if key is not None:
                    keys.add(key)
        return keys


class Stage(Protocol):
    """A kind of stage. ``budget`` is ``None`` when the stage decides how many trials it runs
    (a grid: one per variant)."""

    spec: StageSpec

    @property
    def label(self) -> str: ...

    @property
    def budget(self) -> int | None: ...

    def params(self, space: SearchSpace) -> dict[str, Any]:
        """The stage's settings as a tracker logs them."""

    def describe(self, space: SearchSpace) -> str:
        """What the stage runs, in a few words (``ramp bo over core, 30 trials``)."""

    def run(self, context: StageContext, study: optuna.Study) -> None: ...


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def _done(trials: Iterable[FrozenTrial]) -> int:
    return sum(records.counts_against_budget(t) for t in trials)


class BOStage:
    """Candidates proposed by a model-based sampler (the ramp BO by default) over the stage's
    groups, the rest held at the base; ``budget`` finished trials."""

    def __init__(self, spec: StageSpec, settings: SearchSettings) -> None:
        if not spec.groups:
            raise UserError(
                f"search.stages[{spec.name}].groups is empty: name the groups it "
                "searches (core, arch, train)"
            )
        self.spec = spec
        self.sampler = spec.sampler or settings.sampler
        self.settings = settings

    @property
    def label(self) -> str:
        front = " (pareto: accuracy vs cost)" if self.spec.objective == "pareto" else ""
        return f"{self.sampler} bo over {', '.join(self.spec.groups)}{front}"

    def params(self, space: SearchSpace) -> dict[str, Any]:
        return {
            "kind": "bo",
            "groups": list(self.spec.groups),
            "sampler": self.sampler,
            "budget": self.budget,
            "objective": self.spec.objective,
        }

    def describe(self, space: SearchSpace) -> str:
        return f"{self.label}, {_trials(self.budget)}"

    @property
    def budget(self) -> int:
        return self.settings.budget(self.spec)

    def run(self, context: StageContext, study: optuna.Study) -> None:
        base = context.base(study, "stage")
        warm, observed = self._warm_start(context, study, base)
        index = [s.name for s in self.settings.stages].index(self.spec.name)
        study.sampler = make_sampler(
            self.sampler,
            SamplerContext(
                space=context.space,
                groups=self.spec.groups,
                base=base,
                bo=self.settings.bo,
                seed=context.seed * 1000 + index,
                loss_parts=context.loss_parts,
                objective=self.spec.objective,
                warm_trials=len(warm),
                screen=context.screen,
                source=observed,
            ),
        )
        context.driver.run(study, self.spec.name, _BOSteps(self, context, base, warm))

    def _warm_start(
        self, context: StageContext, study: optuna.Study, base: Candidate
    ) -> tuple[list[warm_start.Entry], list[warm_start.Observation]]:
        """The warm-started candidates of this stage and the source trials its GPs learn from:
        planned once (the first worker to get here), recorded on its study, and read back by
        every worker and on resume."""
        with context.lock():
            done = warm_start.recorded(study)
            if done is not None:
                return done[1], warm_start.recorded_observations(study)
            if context.warm_source is None:
                return [], []
            entries = warm_start.plan(
                context.warm_source,
                space=context.space,
                groups=self.spec.groups,
                base=base,
                tried=context.tried(),
                slots=self.settings.warm_slots(),
            )
            observed = []
            if self.settings.warm_start.observations and self.sampler == "ramp":  # its GPs
                observed = warm_start.observe(
                    context.warm_source, space=context.space, groups=self.spec.groups, base=base
                )
            warm_start.record(study, context.warm_source.label, entries, observed)
        learns = f", and its GPs learn from {len(observed)} of its trials" if observed else ""
        context.observer.message(
            f"warm start: stage {self.spec.name} trains {_trials(len(entries))} of "
            f"{context.warm_source.label} first{learns}"
        )
        return entries, observed


MAX_REPEATS = 5
"""A BO stage asks again, up to this many times in a row, when its sampler proposes a candidate
the stage already tried (after that, the space is taken to be exhausted and it is trained)."""


@dataclass
class _BOSteps:
    stage: BOStage
    context: StageContext
    base: Candidate
    warm: list[warm_start.Entry] = field(default_factory=list)
    repeats: int = 0

    def next(self, study: optuna.Study) -> optuna.Trial | Wait:
        with self.context.lock():  # the budget check and the new trial, atomic across workers
            trials = study.get_trials(deepcopy=False)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if _done(trials) + running < self.stage.budget:
                if self.warm:  # queued trials are asked first: the sampler is not
                    warm_start.queue_missing(study, self.warm, trials)
                return optuna_compat.ask(study)
        return Wait.LATER if running else Wait.DONE  # others finish the stage's last trials

    def candidate(self, trial: optuna.Trial) -> tuple[Candidate, str]:
        """The sampler's candidate, claimed for ``trial``: ``CandidateTaken`` when another
        trial of the stage is training it (workers that sampled at the same moment) or, up to
        ``MAX_REPEATS`` times in a row, has tried it, or when the stage's budget is full
        without ``trial`` (its ``duplicate_of`` names the trial holding the last slot)."""
        space = self.context.space
        candidate = space.sample(TrialSuggest(trial, self.stage.spec.groups, self.base))
        missing = [name for name in trial.params if name not in candidate]
        if missing:  # a nested candidate: a later stage would hold its values at their defaults
            raise UserError(
                f"search space {space.name or type(space).__name__!r}: sample() suggested "
                f"{missing[0]!r} but its candidate has no key {missing[0]!r}; a candidate must be "
                "a flat mapping holding every suggested name as a key (derive the rest in build)"
            )
        key = candidate_key(candidate)
        me = optuna_compat.trial_id(trial)
        with self.context.lock():  # the check and the claim, atomic across workers
            trials = trial.study.get_trials(deepcopy=False)
            # A lock lost with its connection (a database restart) may have let two workers
            # past the budget check at once: the later-numbered trials past the budget give
            # up their slot (each worker ranks the same trials the same way).
            holding = sorted(
                t.number for t in trials if records.counts_against_budget(t) or records.in_flight(t)
            )
            if trial.number in holding[self.stage.budget :]:
                raise CandidateTaken(holding[self.stage.budget - 1])
            for t in trials:
                if optuna_compat.trial_id(t) == me or records.tried_key(t) != key:
                    continue
                if t.state == TrialState.RUNNING or self.repeats < MAX_REPEATS:
                    self.repeats += 1
                    raise CandidateTaken(t.number)
            trial.set_user_attr(records.CANDIDATE, candidate)
        self.repeats = 0
        return candidate, ""

    def budget(self, trials: list[FrozenTrial]) -> int:
        return self.stage.budget


class GridStage:
    """Every variant the space offers of the best candidate so far, sub-stage by sub-stage
    (``substages``, or the space's order); variants tried anywhere in the search are skipped.
    With ``trials`` (the cap per sub-stage), only the base's own variant and ``trials`` others
    (``capped_variants``). Each trial's varied choices are its Optuna params (so Optuna's plots
    and dashboards show them); the whole candidate is its ``candidate`` attribute, as in every
    stage."""

    def __init__(self, spec: StageSpec, settings: SearchSettings) -> None:
        self.spec = spec

    @property
    def label(self) -> str:
        return (
            f"grid, at most {_trials(self.spec.trials)} per sub-stage"
            if self.spec.trials
            else "grid"
        )

    def params(self, space: SearchSpace) -> dict[str, Any]:
        return {
            "kind": "grid",
            "substages": list(self.substages(space)),
            "trials_per_substage": self.spec.trials or "all",
        }

    def describe(self, space: SearchSpace) -> str:
        subs = ", ".join(self.substages(space)) or "no sub-stages"
        each = f"at most {_trials(self.spec.trials)} each" if self.spec.trials else "every variant"
        return f"grid over {subs} ({each})"

    def substages(self, space: SearchSpace) -> tuple[str, ...]:
        return self.spec.substages or tuple(space.grid_substages())

    @property
    def budget(self) -> None:
        return None

    def run(self, context: StageContext, study: optuna.Study) -> None:
        space = context.space
        substages = self.substages(space)
        study.sampler = optuna.samplers.RandomSampler(seed=context.seed)  # asks only pop the queue
        for sub in substages:
            base = context.base(study, sub)
            variants = capped_variants(
                space.grid(sub, base),
                base,
                self.spec.trials,
                f"{context.seed}/{self.spec.name}/{sub}",
            )
            distinct = len({candidate_key(v) for v in variants})
            context.observer.substage_started(SubstageStarted(self.spec.name, sub, distinct, base))
            steps = _GridSteps(sub, variants, varied_params(space, variants), context)
            context.driver.run(study, self.spec.name, steps)


@dataclass
class _GridSteps:
    substage: str
    variants: list[Candidate]
    distributions: dict[str, BaseDistribution]
    context: StageContext

    def next(self, study: optuna.Study) -> optuna.Trial | Wait:
        # One worker at a time queues the missing variants (once) and pops one: Optuna's pop
        # is atomic on PostgreSQL, not on SQLite, where two workers once trained one trial.
        with self.context.lock():
            waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            if not waiting and not self._enqueue_missing(study):
                return Wait.DONE
            if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                return Wait.LATER  # only other workers' trials are in flight
            trial = optuna_compat.ask(study)  # pops a queued variant
        if records.CANDIDATE not in trial.user_attrs:  # a worker outside the lock popped it
            study.tell(trial, state=TrialState.PRUNED)
            return Wait.LATER
        return trial

    def _enqueue_missing(self, study: optuna.Study) -> bool:
        """Queue the variants neither tried nor in flight; True if any is in flight."""
        seen = self.context.tried()
        inflight = False
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            inflight = inflight or records.CANDIDATE in trial.user_attrs
        for variant in self.variants:
            key = candidate_key(variant)
            if key in seen:
                continue
            seen.add(key)
            params = {k: variant[k] for k in self.distributions if k in variant}
            study.enqueue_trial(
                params,
                user_attrs={records.CANDIDATE: variant, records.SUBSTAGE: self.substage},
                skip_if_exists=False,
            )
            inflight = True
        return inflight

    def candidate(self, trial: optuna.Trial) -> tuple[Candidate, str]:
        candidate = dict(trial.user_attrs[records.CANDIDATE])
        for name, dist in self.distributions.items():
            if name in candidate and optuna_compat.contains(dist, candidate[name]):
                suggest_param(trial, name, dist)  # answers the queued value, recorded as a param
        return candidate, str(trial.user_attrs.get(records.SUBSTAGE, self.substage))

    def budget(self, trials: list[FrozenTrial]) -> int:
        return sum(records.counts_against_budget(t) or records.in_flight(t) for t in trials)


def describe_stages(settings: SearchSettings, space: SearchSpace) -> str:
    """The search's stages as they will run, one ``name: what`` per stage, joined by ``; ``.

    Example:
        >>> describe_stages(SearchSettings(), MLPSpace()).split("; ")
        ['core: ramp bo over core, 30 trials',
         'arch: grid over activation, dropout (every variant)',
         'train: ramp bo over train, 30 trials']
    """
    return "; ".join(
        f"{spec.name}: {make_stage(spec, settings).describe(space)}" for spec in settings.stages
    )


STAGES: dict[str, Callable[[StageSpec, SearchSettings], Stage]] = {
    "bo": BOStage,
    "grid": GridStage,
}
"""Stage kinds by ``search.stages[i].kind``."""


def make_stage(spec: StageSpec, settings: SearchSettings) -> Stage:
    """The stage ``spec`` describes; ``UserError`` for an unknown kind."""
    try:
        kind = STAGES[spec.kind]
    except KeyError:
        raise UserError(
            f"search.stages[{spec.name}].kind={spec.kind!r}: choose one of {', '.join(STAGES)}"
        ) from None
    return kind(spec, settings)


__all__ = [
    "STAGES",
    "BOStage",
    "GridStage",
    "Stage",
    "StageContext",
    "describe_stages",
    "make_stage",
]
