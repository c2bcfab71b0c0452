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
   parallel workers sharing the storage spread out).

**What the GP models.** The paper fits one GP to the search loss ``log10(fp + wc * fc)``. Given
``loss_parts`` (a dnc search passes them), the sampler instead fits one GP to ``log10 fp`` and one
to ``log10 fc``, read from each trial's recorded figures, and scores candidates by the expected
improvement of the loss they compose (Monte Carlo, ``GenericMCObjective``): the *split* model.
The cost term is a smooth, nearly deterministic function of the architecture and the batch size,
and the error term mostly of the training hyperparameters, so each GP has far less to explain
than one GP on their sum (``bench/search_quality.py`` measures the difference). With
``wc = 0`` the split model is one GP on ``log10 fp``, i.e. on the loss itself.

Kernel hyperparameters are the paper's (``omega = 3``, weights 1, noise variance ``1e-4`` on the
standardised outcome, constant mean 0) unless ``fit_kernel=True``, which fits ``omega``, the
weights, the noise and the mean by marginal likelihood each step (each GP its own).

Everything random derives from ``seed`` and the trial number, so a search is reproducible and
workers with the same seed still propose different candidates.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import warnings
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from dnc.bo.encoding import CandidateEncoder, Probe, probe_space, stage_features
from dnc.bo.kernels import OMEGA
from dnc.plugins import Candidate, SearchSpace
from dnc.search.suggest import UniformSuggest

if TYPE_CHECKING:
    from botorch.models import SingleTaskGP

    from dnc.bo.kernels import CandidateKernel

log = logging.getLogger(__name__)

PHASE_ATTR = "dnc.bo"
"""Trial system attribute recording how the sampler chose the trial's candidate."""

NOISE = 1e-4
"""The original's noise variance (``noise_var``), here on the standardised outcome."""

AT_BOUNDS = 0.1
"""Probability that an explored candidate takes a numeric parameter at one of its bounds."""

@dataclass(frozen=True)
class LossParts:
    """How a trial's search loss ``log10(fp + wc * fc)`` splits, for the split model.

    ``parts(trial)`` gives a finished trial's ``(fp, fc)`` from what it recorded (``None``: it did
    not record them; a step with such a trial falls back to one GP on the trial values). The
    study must minimise the loss.

    Example:
        >>> LossParts(wc=0.1, parts=lambda t: (t.user_attrs["fp"], t.user_attrs["fc"]))
    """

    wc: float
    parts: Callable[[FrozenTrial], tuple[float, float] | None]

    def __post_init__(self) -> None:
        if not (self.wc >= 0 and math.isfinite(self.wc)):
            raise ValueError(f"LossParts: wc={self.wc} must be a finite number >= 0")


def _log10_floored(values: Sequence[float]) -> torch.Tensor:
    """``log10`` of non-negative figures as an ``n x 1`` column; a 0 (a perfect validation
    accuracy, say) becomes half the least positive value seen (or 1e-4), so one lucky trial is
    not an outlier decades below the rest."""
    positive = [v for v in values if v > 0]
    floor = min(positive) / 2 if positive else 1e-4
    return torch.tensor([max(v, floor) for v in values], dtype=torch.float64).log10().unsqueeze(-1)


@dataclass(frozen=True)
class Proposal:
    """The candidate chosen for one trial.

    ``params``: the sampled parameters (what ``sample_independent`` answers); ``phase``:
    ``prior`` (Sobol), ``bo`` (maximised EI) or ``repeat`` (every draw was a known candidate);
    ``acquisition``: the log-EI of the choice (``bo`` only); ``pending``: how many running
    trials entered it as pending points; ``model``: what the GPs modelled (``split`` or
    ``loss``; ``bo`` only); ``kernel``: the fitted ``omega`` and weights of the candidate
    kernel's parts, per GP (``fit_kernel`` only).
    """

    params: dict[str, Any]
    candidate: Candidate
    phase: str
    acquisition: float | None = None
    pending: int = 0
    kernel: dict[str, dict[str, list[float]]] | None = None
    model: str | None = None


class _ReplaySuggest:
    """Rebuilds a candidate from an Optuna trial's params (held parameters from ``base``)."""

    def __init__(self, params: Mapping[str, Any], base: Mapping[str, Any]) -> None:
        self.params, self.base = params, base

    def _get(self, name: str, default: Any) -> Any:
        return self.params[name] if name in self.params else self.base.get(name, default)

    def int(
        self, name: str, low: int, high: int, *, group: str, default: int, log: bool = False
    ) -> int:
        return int(self._get(name, default))

    def float(
        self, name: str, low: float, high: float, *, group: str, default: float, log: bool = False
    ) -> float:
        return float(self._get(name, default))

    def categorical(self, name: str, choices: Sequence[Any], *, group: str, default: Any) -> Any:
        return self._get(name, default)


class _CoordinateSuggest(UniformSuggest):
    """A ``UniformSuggest`` that answers each parameter from its own coordinate of a row of
    uniforms (``coordinate``: name -> index; a name it lacks takes the next index, modulo the
    row). One instance samples many rows (``sample``), as a BO step does for its candidates."""

    def __init__(self, coordinate: dict[str, int], active: Collection[str] | None,
                 base: Mapping[str, Any]) -> None:
        super().__init__(self._unnamed, active, base)
        self._row: Sequence[float] = ()
        self._coordinate = coordinate

    def sample(self, space: SearchSpace, row: Sequence[float]) -> tuple[Candidate, dict[str, Any]]:
        """Push one row of uniforms through ``space``: the candidate and its searched params."""
        self._row, self.params = row, {}
        return space.sample(self), self.params

    def _unnamed(self) -> float:
        raise AssertionError("every parameter is drawn by name")  # pragma: no cover

    def _uniform(self, name: str) -> float:
        try:
            return self._row[self._coordinate[name] % len(self._row)]
        except KeyError:
            index = self._coordinate.setdefault(name, len(self._coordinate))
            return self._row[index % len(self._row)]


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


def _freeze(value: Any) -> Hashable:
    """A hashable form of a candidate value; lists and tuples alike (JSON turns one into the
    other when Optuna stores a candidate)."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Hashable):
        return value
    return repr(value)


def _key(candidate: Mapping[str, Any]) -> Hashable:
    """Identity of a candidate: equal for the same values, fresh or read back from storage."""
    items = tuple(sorted(candidate.items()))
    try:
        hash(items)  # the common case: every value a number or a string
    except TypeError:
        return _freeze(candidate)
    return items


@dataclass(frozen=True)
class _Known:
    """A finished or running trial as the GP sees it."""

    row: list[float]  # the encoded candidate
    key: Hashable
    parts: tuple[float, float] | None = None  # (fp, fc) of a finished trial, for the split model


class RampBOSampler(optuna.samplers.BaseSampler):
    r"""Sobol prior states, then GP + log-EI steps under the ramp kernel (DESIGN §3).

    Args:
        space: the search space; its ``kernel_features()`` say what the kernel compares.
        active: the groups the stage searches (``None``: all); the rest are held at ``base``.
        base: held values (the best candidate so far).
        prior_states: how many trials (by trial number) take Sobol points.
        explore: random candidates scored by expected improvement per BO step.
        fit_kernel: fit ``omega``, weights, noise and mean by marginal likelihood.
        seed: fixes every random choice (``None``: a random seed).
        noise: the noise variance on the standardised outcome when not fitted.
        mc_samples: quasi-MC samples of ``qLogExpectedImprovement`` (running trials, split
            model; the base samples are shared by all candidates, so 128 rank them steadily).
        omega: the ramp kernels' ``omega`` (the start of the fit with ``fit_kernel``).
        at_bounds: probability that a random candidate takes a numeric parameter at one of its
            bounds (0: plain uniform draws, as the paper).
        loss_parts: model ``log10 fp`` and ``log10 fc`` by one GP each (the split model);
            ``None``: one GP on the trial values (the paper).

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
        prior_states: int = 15,
        explore: int = 1000,
        fit_kernel: bool = False,
        seed: int | None = None,
        noise: float = NOISE,
        mc_samples: int = 128,
        omega: float = OMEGA,
        loss_parts: LossParts | None = None,
        at_bounds: float = AT_BOUNDS,
    ) -> None:
        if prior_states < 0 or explore < 1:
            raise ValueError("RampBOSampler: prior_states must be >= 0 and explore >= 1")
        if not (omega > 0 and math.isfinite(omega)):
            raise ValueError(f"RampBOSampler: omega={omega} must be a positive number")
        if not 0 <= at_bounds < 1:
            raise ValueError(f"RampBOSampler: at_bounds={at_bounds} must lie in [0, 1)")
        self.space = space
        self.active = None if active is None else tuple(active)
        self.base = dict(base or {})
        self.prior_states = int(prior_states)
        self.explore = int(explore)
        self.fit_kernel = bool(fit_kernel)
        self.seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self.noise = float(noise)
        self.mc_samples = int(mc_samples)
        self.omega = float(omega)
        self.at_bounds = float(at_bounds)
        self.loss_parts = loss_parts
        self._lock = threading.RLock()
        self._chosen: dict[tuple[int, int], Proposal] = {}
        self._probe: Probe | None = None
        self._encoder: CandidateEncoder | None = None
        self._sobol: torch.Tensor | None = None
        self._dims = 1
        self._numeric = np.zeros(1, dtype=bool)  # columns of int and float parameters
        self._coordinate: dict[str, int] = {}
        self._suggest = _CoordinateSuggest(self._coordinate, self.active, self.base)
        self._fallback = optuna.samplers.RandomSampler(seed=self.seed)
        # Last fitted hyperparameters per modelled outcome (warm start).
        self._fitted: dict[str, dict[str, torch.Tensor]] = {}
        self._fixed_kernel: CandidateKernel | None = None

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
            if param_distribution._contains(param_distribution.to_internal_repr(value)):
                return value
        log.warning(
            "RampBOSampler: trial %d asked for %s outside the candidate it chose; sampling it "
            "at random (does the space sample the same way for the same values?)",
            trial.number, param_name,
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
            self._chosen.pop((study._study_id, trial.number), None)

    def reseed_rng(self) -> None:
        # Proposals derive from (seed, trial number), so threads need no separate streams.
        pass

    # -- proposals ----------------------------------------------------------------------------
    def proposal(self, study: optuna.Study, trial: FrozenTrial) -> Proposal:
        """The candidate for ``trial`` (chosen on the first call, then remembered)."""
        key = (study._study_id, trial.number)
        with self._lock:
            if key not in self._chosen:
                with _one_thread():
                    prop = self._propose(study, trial)
                self._chosen[key] = prop
                info: dict[str, Any] = {"phase": prop.phase}
                if prop.acquisition is not None:
                    info.update(log_ei=prop.acquisition, pending=prop.pending, model=prop.model)
                if prop.kernel is not None:
                    info["kernel"] = prop.kernel
                study._storage.set_trial_system_attr(trial._trial_id, PHASE_ATTR, info)
            return self._chosen[key]

    def _propose(self, study: optuna.Study, trial: FrozenTrial) -> Proposal:
        self._raise_error_if_multi_objective(study)
        if self.loss_parts is not None and study.direction != StudyDirection.MINIMIZE:
            raise ValueError("RampBOSampler: loss_parts needs a study that minimises the loss")
        self._setup()
        finished: list[_Known] = []
        outcomes: list[float] = []
        pending: list[_Known] = []
        failed: list[_Known] = []
        for t in study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
                known = self._known(study, t)
                if known is not None:
                    if self.loss_parts is not None:
                        known = _Known(known.row, known.key, self._parts(t))
                    finished.append(known)
                    outcomes.append(float(t.value))
            elif t.state == TrialState.RUNNING:
                known = self._known(study, t)
                if known is not None:
                    pending.append(known)
            elif t.state == TrialState.FAIL:  # not data, but not worth proposing again
                known = self._known(study, t)
                if known is not None:
                    failed.append(known)
        taken = {k.key for k in (*finished, *pending, *failed)}
        if trial.number < self.prior_states or len(finished) < 2 or self._encoder is None:
            return self._prior(trial.number, taken)
        sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
        return self._bo(trial.number, finished, [sign * y for y in outcomes], pending, taken)

    def _parts(self, t: FrozenTrial) -> tuple[float, float] | None:
        """A finished trial's ``(fp, fc)`` for the split model (``None``: not recorded, or not
        finite and non-negative)."""
        assert self.loss_parts is not None
        parts = self.loss_parts.parts(t)
        if parts is None or not all(math.isfinite(v) and v >= 0 for v in parts):
            return None
        return float(parts[0]), float(parts[1])

    def _setup(self) -> None:
        if self._probe is not None:
            return
        self._probe = probe_space(self.space, self.active, self.base, seed=self.seed)
        features = stage_features(tuple(self.space.kernel_features()), self._probe.records)
        self._encoder = CandidateEncoder(features) if features else None
        # One coordinate per searched parameter, whatever the depth of the candidate (as the
        # original's get_states gives each key its own Sobol column): the lr of every prior
        # state comes from the same, stratified, Sobol dimension.
        self._coordinate.update((name, i) for i, name in enumerate(self._probe.records))
        self._dims = min(max(len(self._coordinate), 1), torch.quasirandom.SobolEngine.MAXDIM)
        self._numeric = np.zeros(self._dims, dtype=bool)
        for name, index in self._coordinate.items():
            if index < self._dims and self._probe.records[name].kind != "categorical":
                self._numeric[index] = True

    def _sobol_point(self, index: int) -> list[float]:
        count = max(index + 1, self.prior_states)
        if self._sobol is None or len(self._sobol) < count:
            engine = torch.quasirandom.SobolEngine(self._dims, scramble=True, seed=self.seed)
            self._sobol = engine.draw(count, dtype=torch.float64)
        return self._sobol[index].tolist()

    def _sample(self, row: Sequence[float]) -> tuple[Candidate, dict[str, Any]]:
        """Push one row of uniforms (one per parameter) through the space."""
        return self._suggest.sample(self.space, row)

    def _known(self, study: optuna.Study, t: FrozenTrial) -> _Known | None:
        """A trial's candidate and encoding: its ``candidate`` user attribute, else what this
        sampler chose for it, else the space replayed on its params (``None``: nothing known
        yet, or it does not fit the features)."""
        own = self._chosen.get((study._study_id, t.number))
        candidate = t.user_attrs.get("candidate")
        params = t.params or (own.params if own is not None else {})
        try:
            if not isinstance(candidate, Mapping):
                if own is not None:
                    candidate = own.candidate
                elif t.params:
                    candidate = self.space.sample(_ReplaySuggest(t.params, self.base))  # type: ignore[arg-type]
                else:
                    return None  # a trial that has not sampled anything yet
            row = self._encoder.encode_one({**params, **candidate}) if self._encoder else []
        except (KeyError, ValueError, TypeError) as err:
            log.warning("RampBOSampler: trial %d left out of the GP (%s)", t.number, err)
            return None
        return _Known(row, _key(candidate))

    def _prior(self, number: int, taken: set[Hashable]) -> Proposal:
        candidate, params = self._sample(self._sobol_point(number))
        if _key(candidate) not in taken:
            return Proposal(params, candidate, "prior")
        # The Sobol point lands on a known candidate (integer rounding): draw at random.
        rng = np.random.default_rng([self.seed, number, 1])
        for _ in range(100):
            candidate, params = self._sample(rng.random(self._dims).tolist())
            if _key(candidate) not in taken:
                return Proposal(params, candidate, "prior")
        return Proposal(params, candidate, "repeat")

    def _random_rows(self, rng: np.random.Generator) -> np.ndarray:
        """``explore`` rows of uniforms, one column per parameter. With ``at_bounds``, each
        numeric parameter of each row sits at its lower or its upper bound (the space's own,
        dynamic ones included) with that probability: a random draw almost never lands on a
        bound, yet that is where the best lr or the cheapest width often is."""
        rows = rng.random((self.explore, self._dims))
        if self.at_bounds > 0 and self._numeric.any():
            edge = (rng.random(rows.shape) < self.at_bounds) & self._numeric
            rows = np.where(edge, (rng.random(rows.shape) < 0.5).astype(float), rows)
        return rows

    def _explore(self, number: int, taken: set[Hashable]) -> list[tuple[Candidate, dict[str, Any]]]:
        """``explore`` random candidates, less those equal to a known one or to each other;
        if none is left, draw again (at most 10 times)."""
        rng = np.random.default_rng([self.seed, number])
        for _ in range(10):
            seen = set(taken)
            out = []
            for row in self._random_rows(rng).tolist():
                candidate, params = self._sample(row)
                key = _key(candidate)
                if key not in seen:
                    seen.add(key)
                    out.append((candidate, params))
            if out:
                return out
        return []

    def _bo(
        self,
        number: int,
        finished: list[_Known],
        targets: list[float],
        pending: list[_Known],
        taken: set[Hashable],
    ) -> Proposal:
        from botorch.acquisition import (
            AcquisitionFunction,
            LogExpectedImprovement,
            qLogExpectedImprovement,
        )
        from botorch.sampling import SobolQMCNormalSampler

        assert self._encoder is not None
        draws = self._explore(number, taken)
        if not draws:
            log.warning("RampBOSampler: every explored candidate was already tried; repeating")
            candidate, params = self._sample(np.random.default_rng([self.seed, number]).random(
                self._dims).tolist())
            return Proposal(params, candidate, "repeat")
        train_x = torch.tensor([k.row for k in finished], dtype=torch.float64)
        # explore x 1 x d: each candidate its own q = 1 batch
        cands = self._encoder.encode([{**p, **c} for c, p in draws]).unsqueeze(-2)
        x_pending = (torch.tensor([k.row for k in pending], dtype=torch.float64)
                     if pending else None)
        parts = [k.parts for k in finished]
        mc = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=self.seed + number)
        acq: AcquisitionFunction
        if self.loss_parts is not None and all(p is not None for p in parts):
            model_name = "split"
            model, objective, best_f, gps = self._split(train_x, parts)  # type: ignore[arg-type]
            acq = qLogExpectedImprovement(model, best_f=best_f, objective=objective,
                                          X_pending=x_pending, sampler=mc)
        else:
            model_name = "loss"
            train_y = torch.tensor(targets, dtype=torch.float64).unsqueeze(-1)
            model = self.fit(train_x, train_y)
            gps = {"loss": model}
            if pending:
                acq = qLogExpectedImprovement(model, best_f=train_y.max(), X_pending=x_pending,
                                              sampler=mc)
            else:
                acq = LogExpectedImprovement(model, best_f=train_y.max())
        with torch.no_grad():
            scores = acq(cands)
        best = int(torch.argmax(scores))
        candidate, params = draws[best]
        kernel = None
        if self.fit_kernel:
            kernel = {}
            for name, gp in gps.items():
                covar = gp.covar_module
                kernel[name] = {"omega": [float(k.omega.detach()) for k in covar.kernels],
                                "weights": covar.weights.detach().tolist()}
        return Proposal(params, candidate, "bo", float(scores[best]), len(pending), kernel,
                        model_name)

    def _split(
        self, train_x: torch.Tensor, parts: Sequence[tuple[float, float]]
    ) -> tuple[Any, Any, float, dict[str, SingleTaskGP]]:
        """The split model: GPs on ``log10 fp`` (and ``log10 fc`` when ``wc > 0``), the model
        the acquisition reads, the MC objective ``-log10(fp + wc * fc)`` on its samples, the
        objective's best value so far, and the GPs by name."""
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.models import ModelListGP

        assert self.loss_parts is not None
        wc = self.loss_parts.wc
        log_fp = _log10_floored([p[0] for p in parts])
        if wc == 0:

            def negative_log_fp(samples: torch.Tensor, X: Any = None) -> torch.Tensor:
                return -samples[..., 0]

            fp = self.fit(train_x, log_fp, "fp")
            return fp, GenericMCObjective(negative_log_fp), float(-log_fp.min()), {"fp": fp}
        log_fc = _log10_floored([p[1] for p in parts])
        gps = {"fp": self.fit(train_x, log_fp, "fp"), "fc": self.fit(train_x, log_fc, "fc")}
        # -log10(10**a + wc 10**b), as a log-sum-exp in base e (no overflow, and cheaper).
        ln10, ln_wc = math.log(10.0), math.log(wc)

        def negative_loss(samples: torch.Tensor, X: Any = None) -> torch.Tensor:
            both = torch.logaddexp(samples[..., 0] * ln10, samples[..., 1] * ln10 + ln_wc)
            return both * (-1.0 / ln10)

        best = float(negative_loss(torch.cat([log_fp, log_fc], dim=-1)).max())
        return ModelListGP(gps["fp"], gps["fc"]), GenericMCObjective(negative_loss), best, gps

    def _kernel(self) -> CandidateKernel:
        """The candidate kernel of the next GP: with fixed hyperparameters one instance for
        every GP of the sampler, so the GPs of a step (the split model's two, on the same
        trials) compute each covariance block once (``CandidateKernel`` remembers recent
        blocks); a new one to fit."""
        assert self._encoder is not None
        if self.fit_kernel:
            return self._encoder.kernel(omega=self.omega)
        if self._fixed_kernel is None:
            self._fixed_kernel = self._encoder.kernel(omega=self.omega)
        return self._fixed_kernel

    def fit(
        self,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        name: str = "loss",
    ) -> SingleTaskGP:
        """A ``SingleTaskGP`` with the ramp kernel on ``n x d``
        inputs and ``n x 1`` outcomes, standardised; hyperparameters fixed, or fitted with
        ``fit_kernel`` (warm-started from the last fit of the outcome called ``name``)."""
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.constraints import GreaterThan
        from gpytorch.likelihoods import GaussianLikelihood

        kernel = self._kernel()
        if not self.fit_kernel:
            likelihood = GaussianLikelihood(noise_constraint=GreaterThan(1e-9))
            likelihood.noise = self.noise
            model = SingleTaskGP(train_x, train_y, likelihood=likelihood, covar_module=kernel,
                                 outcome_transform=Standardize(m=1))
            return model.eval()
        model = SingleTaskGP(train_x, train_y, covar_module=kernel,
                             outcome_transform=Standardize(m=1))
        self._fit_mll(model, name)
        return model.eval()

    def _fit_mll(self, model: SingleTaskGP, name: str) -> None:
        """Maximise the marginal likelihood, starting from the previous step's fit (the data
        grew by about one trial, so this converges in a few iterations) or the paper's values."""
        from botorch.exceptions.errors import ModelFittingError
        from botorch.fit import fit_gpytorch_mll
        from gpytorch.mlls import ExactMarginalLogLikelihood

        start = {k: v.clone() for k, v in model.state_dict().items()}
        if name in self._fitted:
            try:
                model.load_state_dict(self._fitted[name], strict=False)
            except RuntimeError:  # another feature set (a sampler shared across stages)
                model.load_state_dict(start)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_gpytorch_mll(mll)
        except ModelFittingError as err:
            log.warning("RampBOSampler: kernel fit failed (%s); using the paper's values", err)
            model.load_state_dict(start)
            return
        self._fitted[name] = {k: v.detach().clone() for k, v in model.named_parameters()}


__all__ = ["AT_BOUNDS", "PHASE_ATTR", "LossParts", "Proposal", "RampBOSampler"]
