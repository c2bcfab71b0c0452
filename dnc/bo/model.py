"""The GPs of a ramp-BO step and the acquisition that scores candidates with them.

``RampGPs`` builds BoTorch ``SingleTaskGP`` models with the ramp ``CandidateKernel`` (outcomes
standardised), with the paper's fixed hyperparameters or fitted by marginal likelihood
(warm-started from the previous step), and composes the acquisition:

- **loss** (the paper): one GP on the trial values; ``LogExpectedImprovement``, or
  ``qLogExpectedImprovement`` when running trials enter as ``X_pending``;
- **split**: one GP on ``log10 fp`` and one on ``log10 fc``; ``qLogExpectedImprovement`` of the
  loss they compose, ``-log10(10**a + wc 10**b)``, through a ``GenericMCObjective`` (with
  ``wc = 0``, the fp GP alone);
- **pareto** (a Pareto stage, ``dnc.search.pareto``): the same two GPs;
  ``qLogNoisyExpectedHypervolumeImprovement`` of the front of ``(-log10 fp, -log10 fc)``, the
  finished candidates as its noisy baseline and the reference point a little worse than the
  worst of the observed front of feasible trials (BoTorch's ``infer_reference_point``).

**A related task** (a warm start's source search, ``SourceTask``): each GP becomes a BoTorch
``MultiTaskGP`` over this search's trials (task 0) and the source's (task 1), the ramp kernel
times a learned correlation between the tasks (``PositiveIndexKernel``), each task's
outcomes standardised on their own, with a mean and a noise of their own; it predicts task 0.
The correlation, means and noises are fitted by marginal likelihood every step (the ramp
kernel held), so the source counts for as much as this search's own trials show it deserves.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from dnc.bo.candidate_kernel import CandidateKernel
from dnc.bo.encoding import CandidateEncoder

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction
    from botorch.models import SingleTaskGP

log = logging.getLogger(__name__)

WARM_GTOL = 1e-3
"""L-BFGS-B's ``gtol`` for a fit that starts from the last step's (scipy's default, 1e-5, for
a first fit): the data grew by about one trial, so the optimum moved little, and the default
spends iterations on digits of the marginal likelihood that do not change the proposal (it
made a fitted step at n = 100 1.2-1.4x as long; bench/README.md). Optuna's GPSampler fits
with ``gtol`` 1e-2."""


def log10_floored(values: Sequence[float]) -> torch.Tensor:
    """``log10`` of non-negative figures as an ``n x 1`` column; a 0 (a perfect validation
    accuracy, say) becomes half the least positive value seen (or 1e-4), so one lucky trial is
    not an outlier decades below the rest."""
    positive = [v for v in values if v > 0]
    floor = min(positive) / 2 if positive else 1e-4
    return torch.tensor([max(v, floor) for v in values], dtype=torch.float64).log10().unsqueeze(-1)


@dataclass(frozen=True)
class SourceTask:
    """Observations of a related task (a warm start's source search): ``m x d`` encoded
    candidates, their targets as ``RampGPs.acquisition`` takes them (maximised), and each one's
    ``(fp, fc)`` (``None`` where not recorded: such a row serves only the one-GP model)."""

    x: torch.Tensor
    targets: Sequence[float]
    parts: Sequence[tuple[float, float] | None]

    def outcome(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rows and ``m' x 1`` outcomes of the GP called ``name`` (``loss``, ``fp`` or
        ``fc``: the latter two in ``log10``, as ``log10_floored``); ``None`` with fewer than
        two rows that have it."""
        if name == "loss":
            rows, values = list(range(len(self.targets))), list(self.targets)
            y = torch.tensor(values, dtype=torch.float64).unsqueeze(-1)
        else:
            col = 0 if name == "fp" else 1
            rows = [i for i, p in enumerate(self.parts) if p is not None]
            y = log10_floored([self.parts[i][col] for i in rows])  # type: ignore[index]
        if len(rows) < 2:
            return None
        return self.x[rows], y


@dataclass
class Acquisition:
    """An acquisition ready to score ``explore x 1 x d`` candidates, what it models (``split``
    or ``loss``), and its GPs by name (``loss``, or ``fp`` and ``fc``)."""

    function: AcquisitionFunction
    model: str
    gps: dict[str, SingleTaskGP]

    def kernels(self) -> dict[str, dict[str, list[float]]]:
        """Each GP's candidate-kernel ``omega`` per part and weights (after a fit)."""
        out = {}
        for name, gp in self.gps.items():
            covar = gp.covar_module
            out[name] = {
                "omega": [float(k.omega.detach()) for k in covar.kernels],
                "weights": covar.weights.detach().tolist(),
            }
        return out


class RampGPs:
    """Builds the GPs of every step of one sampler (which keeps it for its whole life).

    Args:
        encoder: lays candidates out as rows and builds the candidate kernel.
        fit_kernel: fit ``omega``, weights, noise and mean by marginal likelihood each step.
        noise: noise variance on the standardised outcome when not fitted.
        omega: the kernels' ``omega`` (the start of each fit with ``fit_kernel``).
        mc_samples: quasi-MC samples of ``qLogExpectedImprovement``.
        source: a related task's observations (``None``: none); each GP is then a multi-task GP.
    """

    def __init__(
        self,
        encoder: CandidateEncoder,
        *,
        fit_kernel: bool,
        noise: float,
        omega: float,
        mc_samples: int = 128,
        source: SourceTask | None = None,
    ) -> None:
        self.encoder = encoder
        self.source = source
        self.fit_kernel = fit_kernel
        self.noise = noise
        self.omega = omega
        self.mc_samples = mc_samples
        self._fitted: dict[str, dict[str, torch.Tensor]] = {}  # last fit per outcome: warm start
        self._fixed_kernel: CandidateKernel | None = None

    def acquisition(
        self,
        train_x: torch.Tensor,
        targets: Sequence[float],
        *,
        parts: Sequence[tuple[float, float]] | None = None,
        wc: float = 0.0,
        x_pending: torch.Tensor | None = None,
        seed: int = 0,
        pareto: bool = False,
        feasible: Sequence[bool] | None = None,
    ) -> Acquisition:
        """Log-EI on ``n x d`` finished candidates. ``targets`` are maximised (the negated
        loss); with ``parts`` (each trial's ``(fp, fc)``) the split model for ``wc``, or with
        ``pareto`` the log hypervolume improvement of the front of the two GPs, whose
        reference point comes from the ``feasible`` trials (all when ``None``)."""
        from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
        from botorch.sampling import SobolQMCNormalSampler

        mc = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=seed)
        if pareto:
            if parts is None:
                raise ValueError("RampGPs: a Pareto acquisition needs each trial's (fp, fc)")
            return self.front(train_x, parts, x_pending, mc, feasible)
        if parts is not None:
            model, objective, best_f, gps = self.split(train_x, parts, wc)
            split = qLogExpectedImprovement(
                model, best_f=best_f, objective=objective, X_pending=x_pending, sampler=mc
            )
            return Acquisition(split, "split", gps)
        train_y = torch.tensor(list(targets), dtype=torch.float64).unsqueeze(-1)
        gp = self.fit(train_x, train_y)
        acq: AcquisitionFunction
        if x_pending is not None:
            acq = qLogExpectedImprovement(gp, best_f=train_y.max(), X_pending=x_pending, sampler=mc)
        else:
            acq = LogExpectedImprovement(gp, best_f=train_y.max())
        return Acquisition(acq, "loss", {"loss": gp})

    def split(
        self, train_x: torch.Tensor, parts: Sequence[tuple[float, float]], wc: float
    ) -> tuple[Any, Any, float, dict[str, SingleTaskGP]]:
        """The split model: GPs on ``log10 fp`` (and ``log10 fc`` when ``wc > 0``), the model
        the acquisition reads, the MC objective ``-log10(fp + wc * fc)`` on its samples, the
        objective's best value so far, and the GPs by name."""
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.models import ModelListGP

        log_fp = log10_floored([p[0] for p in parts])
        if wc == 0:

            def negative_log_fp(samples: torch.Tensor, X: Any = None) -> torch.Tensor:
                return -samples[..., 0]

            fp = self.fit(train_x, log_fp, "fp")
            return fp, GenericMCObjective(negative_log_fp), float(-log_fp.min()), {"fp": fp}
        log_fc = log10_floored([p[1] for p in parts])
        gps = {"fp": self.fit(train_x, log_fp, "fp"), "fc": self.fit(train_x, log_fc, "fc")}
        # -log10(10**a + wc 10**b), as a log-sum-exp in base e (no overflow, and cheaper).
        ln10, ln_wc = math.log(10.0), math.log(wc)

        def negative_loss(samples: torch.Tensor, X: Any = None) -> torch.Tensor:
            both = torch.logaddexp(samples[..., 0] * ln10, samples[..., 1] * ln10 + ln_wc)
            return both * (-1.0 / ln10)

        best = float(negative_loss(torch.cat([log_fp, log_fc], dim=-1)).max())
        return ModelListGP(gps["fp"], gps["fc"]), GenericMCObjective(negative_loss), best, gps

    def front(
        self,
        train_x: torch.Tensor,
        parts: Sequence[tuple[float, float]],
        x_pending: torch.Tensor | None,
        sampler: Any,
        feasible: Sequence[bool] | None = None,
    ) -> Acquisition:
        """qLogNEHVI of maximising ``(-log10 fp, -log10 fc)`` with one GP on each; the
        reference point a little worse than the worst of the ``feasible`` trials' front (of
        every trial's when none is), so a candidate the target cannot run (a cost penalty
        far beyond any feasible one) adds nothing to the front."""
        from botorch.acquisition.multi_objective.logei import (
            qLogNoisyExpectedHypervolumeImprovement,
        )
        from botorch.acquisition.multi_objective.objective import WeightedMCMultiOutputObjective
        from botorch.models import ModelListGP
        from botorch.utils.multi_objective.hypervolume import infer_reference_point
        from botorch.utils.multi_objective.pareto import is_non_dominated

        log_fp = log10_floored([p[0] for p in parts])
        log_fc = log10_floored([p[1] for p in parts])
        gps = {"fp": self.fit(train_x, log_fp, "fp"), "fc": self.fit(train_x, log_fc, "fc")}
        observed = -torch.cat([log_fp, log_fc], dim=-1)
        if feasible is not None and any(feasible):
            observed = observed[torch.tensor(list(feasible), dtype=torch.bool)]
        ref = infer_reference_point(observed[is_non_dominated(observed)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BoTorch's notes on its defaults
            acq = qLogNoisyExpectedHypervolumeImprovement(
                ModelListGP(gps["fp"], gps["fc"]),
                ref_point=ref.tolist(),
                X_baseline=train_x,
                sampler=sampler,
                objective=WeightedMCMultiOutputObjective(
                    torch.tensor([-1.0, -1.0], dtype=torch.float64)
                ),
                X_pending=x_pending,
                prune_baseline=True,
                cache_root=False,
            )
        return Acquisition(acq, "pareto", gps)

    def kernel(self) -> CandidateKernel:
        """The candidate kernel of the next GP: with fixed hyperparameters one instance for
        every GP, so the GPs of a step (the split model's two, on the same trials) compute each
        covariance block once (``CandidateKernel`` remembers recent blocks); a new one to fit."""
        if self.fit_kernel:
            return self.encoder.kernel(omega=self.omega)
        if self._fixed_kernel is None:
            self._fixed_kernel = self.encoder.kernel(omega=self.omega)
        return self._fixed_kernel

    def fit(self, train_x: torch.Tensor, train_y: torch.Tensor, name: str = "loss") -> Any:
        """A ``SingleTaskGP`` with the ramp kernel on ``n x d`` inputs and ``n x 1`` outcomes,
        standardised; hyperparameters fixed, or fitted with ``fit_kernel`` (warm-started from
        the last fit of the outcome called ``name``). With a ``source`` that has this outcome
        for at least two rows, a ``MultiTaskGP`` of both tasks instead (``_multitask``)."""
        source = self.source.outcome(name) if self.source is not None else None
        if source is not None:
            return self._multitask(train_x, train_y, *source, name)
        return self._single(train_x, train_y, name)

    def _single(self, train_x: torch.Tensor, train_y: torch.Tensor, name: str) -> SingleTaskGP:
        """``fit`` on this task's trials alone."""
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from gpytorch.constraints import GreaterThan
        from gpytorch.likelihoods import GaussianLikelihood

        kernel = self.kernel()
        if not self.fit_kernel:
            likelihood = GaussianLikelihood(noise_constraint=GreaterThan(1e-9))
            likelihood.noise = self.noise
            model = SingleTaskGP(
                train_x,
                train_y,
                likelihood=likelihood,
                covar_module=kernel,
                outcome_transform=Standardize(m=1),
            )
            return model.eval()
        model = SingleTaskGP(
            train_x, train_y, covar_module=kernel, outcome_transform=Standardize(m=1)
        )
        self._fit_mll(model, name)
        return model.eval()

    def _multitask(
        self,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        source_x: torch.Tensor,
        source_y: torch.Tensor,
        name: str,
    ) -> Any:
        """A ``MultiTaskGP`` of this search's trials (task 0, the one it predicts) and the
        source's (task 1): the ramp kernel times the tasks' correlation. The correlation, each
        task's mean and noise are fitted by marginal likelihood (a noise fixed near 0 makes the
        fit reproduce both tasks' trials exactly and so discount a source that agrees with
        this task up to noise); the ramp kernel's hyperparameters are held at ``omega`` and
        equal weights, even with ``fit_kernel``: fitted jointly with the correlation from a
        few trials of this task, or on the source's trials alone, they ranked new candidates
        worse than without the source (``tests/bo/test_source_task.py``)."""
        from botorch.models import MultiTaskGP
        from botorch.models.transforms.outcome import Standardize

        d = train_x.shape[-1]
        task = torch.cat([torch.zeros(len(train_x), 1), torch.ones(len(source_x), 1)]).double()
        x = torch.cat([torch.cat([train_x, source_x]), task], dim=-1)
        # Each task standardised on its own, then both in this search's units, so that one
        # Standardize (which needs no task column to undo) serves both.
        y = torch.cat([train_y, _rescaled(source_y, like=train_y)])
        kernel = self.encoder.kernel(omega=self.omega)  # its own: MultiTaskGP sets active_dims
        kernel.requires_grad_(False)
        with torch.random.fork_rng():  # the task kernel starts from random values: seeded
            torch.manual_seed(0)
            model = MultiTaskGP(
                x,
                y,
                task_feature=d,
                covar_module=kernel,
                output_tasks=[0],
                outcome_transform=Standardize(m=1),
            )
        self._fit_mll(model, f"{name}@task")
        return model.eval()

    def _fit_mll(self, model: Any, name: str) -> None:
        """Maximise the marginal likelihood, starting from the previous step's fit (the data
        grew by about one trial, so this converges in a few iterations, to ``WARM_GTOL``) or
        the paper's values."""
        from botorch.exceptions.errors import ModelFittingError
        from botorch.fit import fit_gpytorch_mll
        from gpytorch.mlls import ExactMarginalLogLikelihood

        start = {k: v.clone() for k, v in model.state_dict().items()}
        warm = name in self._fitted
        if warm:
            try:
                model.load_state_dict(self._fitted[name], strict=False)
            except RuntimeError:  # another feature set (a sampler shared across stages)
                model.load_state_dict(start)
                warm = False
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        options = {"options": {"gtol": WARM_GTOL}} if warm else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_gpytorch_mll(mll, optimizer_kwargs=options)
        except ModelFittingError as err:
            log.warning("RampBOSampler: kernel fit failed (%s); using the paper's values", err)
            model.load_state_dict(start)
            return
        self._fitted[name] = {k: v.detach().clone() for k, v in model.named_parameters()}


def _rescaled(y: torch.Tensor, *, like: torch.Tensor) -> torch.Tensor:
    """``y`` with the mean and standard deviation of ``like`` (each at least 2 values)."""
    z = (y - y.mean()) / y.std().clamp_min(1e-8)
    return like.mean() + like.std().clamp_min(1e-8) * z


__all__ = ["Acquisition", "RampGPs", "SourceTask", "log10_floored"]
