"""The fitted kernel (``search.bo.fit_kernel``): each step's marginal-likelihood fit starts from
the last step's and stops at a looser gradient tolerance (``WARM_GTOL``), which must leave
nothing of the marginal likelihood that a fit to scipy's own tolerance would still find."""

from __future__ import annotations

import random
import warnings

import torch
from botorch.fit import fit_gpytorch_mll
from gpytorch.mlls import ExactMarginalLogLikelihood
from test_source_task import _candidates, _encoder, _quality

from dnc.bo.model import RampGPs


def _mll(gp) -> tuple[ExactMarginalLogLikelihood, float]:
    """The GP's marginal log likelihood object and its value per datum at its hyperparameters."""
    mll = ExactMarginalLogLikelihood(gp.likelihood, gp)
    mll.train()
    with torch.no_grad():
        value = float(mll(gp(*gp.train_inputs), gp.train_targets))
    return mll, value


def test_a_warm_started_fit_ends_where_a_full_fit_would() -> None:
    encoder = _encoder()
    rng = random.Random(0)
    candidates = _candidates(50, seed=3)
    x = encoder.encode(candidates)
    y = torch.tensor([[_quality(c) + rng.gauss(0, 0.3)] for c in candidates], dtype=torch.float64)
    gps = RampGPs(encoder, fit_kernel=True, noise=1e-4, omega=1.5)
    first = gps.fit(x[:30], y[:30], "loss")  # a first fit, from the paper's values
    before = {k: v.clone() for k, v in first.named_parameters()}
    gp = gps.fit(x, y, "loss")  # 20 trials later: the next fit starts from the first's
    mll, warm = _mll(gp)
    assert any(not torch.equal(v, before[k]) for k, v in gp.named_parameters())  # it fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(mll)  # on from there to scipy's default tolerance
    _, full = _mll(gp)
    assert full - warm < 1e-3  # per datum
