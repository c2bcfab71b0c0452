"""``RampBOSampler``: Deep-n-Cheap's Bayesian optimisation as an Optuna sampler.

Per trial the sampler picks a whole candidate at once (on the trial's first
``sample_independent`` call) and then answers each parameter from it:

1. **Prior states.** Trial number ``i < prior_states`` (or while fewer than two trials have
   finished) takes the ``i``-th point of a scrambled, seeded Sobol sequence with one dimension
   per searched parameter, and pushes it through the space's own define-by-run sampling
   (``UniformSuggest``: each parameter reads its own coordinate), so dynamic bounds such as
   channels in ``[c_prev, 2 c_prev]`` hold and every parameter is stratified over the prior
   states whatever the depth of each candidate.
2. **BO steps.** Fit BoTorch ``SingleTaskGP`` models with the ramp ``CandidateKernel`` (outcomes
   standardised) on the completed trials; draw ``explore`` random candidates from the space
   (with ``at_bounds``, 10% by default, each numeric parameter of a draw sits at its lower or
   upper bound: a uniform draw never does, yet the best learning rate or the cheapest network
   often lies there), drop those equal to a completed, failed or running one, and take the one
   that maximises log expected improvement (``LogExpectedImprovement``; with running trials or
   the split model ``qLogExpectedImprovement``, running trials entering as ``X_pending`` so
   parallel workers sharing the storage spread out); with ``local_search`` starts, climb the
   acquisition from the best draws and the best trials, one parameter at a time, through the
   space's own sampling (``dnc.bo.optimise``).

**What the GP models.** The paper fits one GP to the search loss ``log10(fp + wc * fc)``. Given
``loss_parts`` (a dnc search passes them), the sampler instead fits one GP to ``log10 fp`` and one
to ``log10 fc``, read from each trial's recorded figures, and scores candidates by the expected
improvement of the loss they compose (Monte Carlo, ``GenericMCObjective``): the *split* model.
The cost term is a smooth, nearly deterministic function of the architecture and the batch size,
and the error term mostly of the training hyperparameters, so each GP has far less to explain
than one GP on their sum (``bench/search_quality.py`` measures the difference). With
``wc = 0`` the split model is one GP on ``log10 fp``, i.e. on the loss itself. On a study with two
objectives (a dnc Pareto stage: accuracy up, cost down; ``dnc.search.pareto``) the same two GPs
score candidates by ``qLogNoisyExpectedHypervolumeImprovement`` of their front instead.

Kernel hyperparameters are fixed (``omega = 1.5``, the paper's 3 measured worse on dnc's search
quality suite; weights 1, noise variance ``1e-4`` on the standardised outcome, constant mean 0)
unless ``fit_kernel=True``, which fits ``omega``, the weights, the noise and the mean by marginal
likelihood each step (each GP its own).

Everything random derives from ``seed`` and the trial number, so a search is reproducible and
workers with the same seed still propose different candidates.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from dnc import optuna_compat
from dnc.bo.draws import CandidateDraws, Point
from dnc.bo.encoding import CandidateEncoder, probe_space, stage_features
from dnc.bo.history import History, LossSplit, SourceRow, TrialReader
from dnc.bo.model import RampGPs
from dnc.bo.optimise import Proposal, maximise
from dnc.bo.settings import BOSettings
from dnc.plugins import Candidate, SearchSpace

log = logging.getLogger(__name__)

PHASE_ATTR = "dnc.bo"
"""Trial system attribute recording how the sampler chose the trial's candidate."""

_DEFAULTS = BOSettings()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: the GP's tensors are small (at most ``explore x n x L``), and
    on a busy machine (several workers, a trainer) intra-op threads cost far more than they
    save. The previous setting is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class RampBOSampler(optuna.samplers.BaseSampler):
    r"""Sobol prior states, then GP + log-EI steps under the ramp kernel (DESIGN §3).

    Args:
        space: the search space; its ``kernel_features()`` say what the kernel compares.
        active: the groups the stage searches (``None``: all); the rest are held at ``base``.
        base: held values (the best candidate so far).
        prior_states: how many trials (by trial number) are prior states: Sobol points, or
            the candidates of a warm start.
        warm_trials: how many of the prior states are a warm start's queued candidates (the
            first trial numbers, not sampled here); Sobol point 0 goes to the next trial.
        explore: random candidates scored by expected improvement per BO step.
        fit_kernel: fit ``omega``, weights, noise and mean by marginal likelihood.
        seed: fixes every random choice (``None``: a random seed).
        noise: the noise variance on the standardised outcome when not fitted.
        mc_samples: quasi-MC samples of ``qLogExpectedImprovement`` (running trials, split
            model; the base samples are shared by all candidates, so 128 rank them steadily).
        omega: the ramp kernels' ``omega`` (the start of the fit with ``fit_kernel``).
        at_bounds: probability that a random candidate takes a numeric parameter at one of its
            bounds (0: plain uniform draws, as the paper).
        local_search: starts of the local search of the acquisition (that many best draws and
            best trials; 0: the best of the draws, as the paper).
        loss_parts: model ``log10 fp`` and ``log10 fc`` by one GP each (the split model);
            ``None``: one GP on the trial values (the paper).
        screen: whether a candidate may be proposed (a cost's ``feasible``, asked before
            training: ``dnc.search.objective.feasibility_screen``); ``None``: every one.
        source: observations of a related task (a warm start's source search), each its
            params for this space (the rest at ``base``), its search loss and its ``(fp, fc)``
            (or ``None``); the GPs are then multi-task GPs over this study and the source
            (``dnc.bo.model.SourceTask``). Rows that do not fit the features are left out.

    Example:
        >>> sampler = RampBOSampler(space=MLPSpace(), active=("core", "train"),
        ...                         prior_states=5, seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(lambda t: objective(MLPSpace().sample(TrialSuggest(t))), n_trials=10)
    """

    def __init__(
        self,
        *,
        space: SearchSpace,
        active: Collection[str] | None = None,
        base: Mapping[str, Any] | None = None,
        prior_states: int = _DEFAULTS.prior_states,
        explore: int = _DEFAULTS.explore,
        fit_kernel: bool = _DEFAULTS.fit_kernel,
        seed: int | None = None,
        noise: float = _DEFAULTS.noise,
        mc_samples: int = 128,
        omega: float = _DEFAULTS.omega,
        loss_parts: LossSplit | None = None,
        at_bounds: float = _DEFAULTS.at_bounds,
        warm_trials: int = 0,
        local_search: int = _DEFAULTS.local_search,
        screen: Callable[[Candidate], bool] | None = None,
        source: Sequence[SourceRow] = (),
    ) -> None:
        if min(prior_states, warm_trials, local_search) < 0 or explore < 1:
            raise ValueError(
                "RampBOSampler: prior_states, warm_trials and local_search must be >= 0 and "
                "explore >= 1"
            )
        if not (omega > 0 and math.isfinite(omega)):
            raise ValueError(f"RampBOSampler: omega={omega} must be a positive number")
        if not 0 <= at_bounds < 1:
            raise ValueError(f"RampBOSampler: at_bounds={at_bounds} must lie in [0, 1)")
        self.space = space
        self.active = None if active is None else tuple(active)
        self.base = dict(base or {})
        self.prior_states = int(prior_states)
        self.warm_trials = int(warm_trials)
        self.explore = int(explore)
        self.fit_kernel = bool(fit_kernel)
        self.seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self.noise = float(noise)
        self.mc_samples = int(mc_samples)
        self.omega = float(omega)
        self.at_bounds = float(at_bounds)
        self.local_search = int(local_search)
        self.loss_parts = loss_parts
        self.screen = screen
        self.source = list(source)
        self._lock = threading.RLock()
        self._chosen: dict[tuple[int, int], Proposal] = {}
        self._encoder: CandidateEncoder | None = None
        self._draws: CandidateDraws | None = None  # set up on the first proposal
        self._fallback = optuna.samplers.RandomSampler(seed=self.seed)
        self._reader: TrialReader | None = None  # set up with the encoder
        self._gps: RampGPs | None = None  # set up with the encoder; lives as long as the sampler

    # -- Optuna's sampler interface -----------------------------------------------------------
    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        params = self.proposal(study, trial).params
        if param_name in params:
            value = params[param_name]
            if optuna_compat.contains(param_distribution, value):
                return value
        log.warning(
            "RampBOSampler: trial %d asked for %s outside the candidate it chose; sampling it "
            "at random (does the space sample the same way for the same values?)",
            trial.number,
            param_name,
        )
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._chosen.pop((optuna_compat.study_id(study), trial.number), None)

    def reseed_rng(self) -> None:
        # Proposals derive from (seed, trial number), so threads need no separate streams.
        pass

    # -- proposals ----------------------------------------------------------------------------
    def proposal(self, study: optuna.Study, trial: FrozenTrial) -> Proposal:
        """The candidate for ``trial`` (chosen on the first call, then remembered), from every
        trial of ``study`` (also under ``HyperbandPruner``, which shows samplers one bracket)."""
        study = optuna_compat.whole_study(study)
        key = (optuna_compat.study_id(study), trial.number)
        with self._lock:
            if key not in self._chosen:
                with _one_thread():
                    prop = self._propose(study, trial)
                self._chosen[key] = prop
                info: dict[str, Any] = {"phase": prop.phase}
                if prop.acquisition is not None:
                    info.update(log_ei=prop.acquisition, pending=prop.pending, model=prop.model)
                    info.update(observed=prop.observed, climbed=prop.climbed)
                if prop.kernel is not None:
                    info["kernel"] = prop.kernel
                source = self._gps.source if self._gps is not None else None
                if prop.phase == "bo" and source is not None:
                    info["source"] = len(source.targets)  # the related task's rows it learnt from
                optuna_compat.set_trial_system_attr(study, trial, PHASE_ATTR, info)
            return self._chosen[key]

    def _propose(self, study: optuna.Study, trial: FrozenTrial) -> Proposal:
        front = len(study.directions) > 1  # a Pareto stage: qLogNEHVI on the fp and fc GPs
        if front and (self.loss_parts is None or len(study.directions) != 2):
            raise ValueError("RampBOSampler: a multi-objective study needs loss_parts (fp, fc)")
        if not front and self.loss_parts is not None and study.direction != StudyDirection.MINIMIZE:
            raise ValueError("RampBOSampler: loss_parts needs a study that minimises the loss")
        self._setup()
        assert self._reader is not None
        sid = optuna_compat.study_id(study)
        seen = self._reader.read(study, trial, lambda n: self._chosen.get((sid, n)), front)
        if trial.number < self.prior_states or len(seen.finished) < 2 or self._encoder is None:
            return self._prior(trial.number, seen.taken)
        sign = -1.0 if study.directions[0] == StudyDirection.MINIMIZE else 1.0
        targets = [sign * y for y in seen.outcomes]
        prop = self._bo(trial.number, seen, targets, front)
        return replace(prop, observed=len(seen.finished)) if prop.phase == "bo" else prop

    def _setup(self) -> None:
        if self._draws is not None:
            return
        probe = probe_space(self.space, self.active, self.base, seed=self.seed)
        features = stage_features(tuple(self.space.kernel_features()), probe.records)
        self._encoder = CandidateEncoder(features) if features else None
        self._reader = TrialReader(self.space, self.base, self._encoder, self.loss_parts)
        if self._encoder is not None:
            self._gps = RampGPs(
                self._encoder,
                fit_kernel=self.fit_kernel,
                noise=self.noise,
                omega=self.omega,
                mc_samples=self.mc_samples,
                source=self._reader.source(self.source),
            )
        self._draws = CandidateDraws(
            self.space,
            self.active,
            self.base,
            probe.records,
            seed=self.seed,
            prior_states=self.prior_states,
            explore=self.explore,
            at_bounds=self.at_bounds,
            screen=self.screen,
        )

    def _prior(self, number: int, taken: set[Hashable]) -> Proposal:
        assert self._draws is not None
        point = number - self.warm_trials if number >= self.warm_trials else number
        candidate, params, fresh = self._draws.prior(point, taken)
        return Proposal(params, candidate, "prior" if fresh else "repeat")

    def _bo(
        self,
        number: int,
        seen: History,
        targets: list[float],
        front: bool = False,
    ) -> Proposal:
        finished, pending, taken = seen.finished, seen.pending, seen.taken
        encoder, draws = self._encoder, self._draws
        assert encoder is not None and self._gps is not None and draws is not None
        points = draws.explore(number, taken)
        if not points:
            log.warning("RampBOSampler: every explored candidate was already tried; repeating")
            candidate, params = draws.random(number)
            return Proposal(params, candidate, "repeat")
        train_x = torch.tensor([k.row for k in finished], dtype=torch.float64)
        x_pending = torch.tensor([k.row for k in pending], dtype=torch.float64) if pending else None
        parts = [k.parts for k in finished]
        split = self.loss_parts is not None and all(p is not None for p in parts)
        acq = self._gps.acquisition(
            train_x,
            targets,
            parts=parts if split else None,  # type: ignore[arg-type]
            wc=self.loss_parts.wc if self.loss_parts is not None else 0.0,
            x_pending=x_pending,
            seed=self.seed + number,
            pareto=front,
            feasible=[k.feasible for k in finished],
        )

        def score(pts: Sequence[Point]) -> torch.Tensor:  # n x 1 x d: each its own q = 1 batch
            return acq.function(encoder.encode([{**p.params, **p.candidate} for p in pts])[:, None])

        ranked = sorted(range(len(finished)), key=lambda i: -targets[i])
        best_trials = [p for i in ranked if (p := finished[i].params)]
        point, value, climbed = maximise(
            draws, points, score, best_trials, taken, starts=self.local_search, seed=number
        )
        kernel = acq.kernels() if self.fit_kernel else None
        return Proposal(
            point.params, point.candidate, "bo", value, len(pending), kernel, acq.model,
            climbed=climbed,
        )  # fmt: skip


__all__ = ["PHASE_ATTR", "LossSplit", "Proposal", "RampBOSampler"]
