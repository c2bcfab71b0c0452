"""A related task's observations (a warm start's source search) in the ramp BO: each GP becomes
a multi-task GP that predicts this search's task, fits how far the source agrees with it, and
leaves the source out where it does not fit the space's features."""

from __future__ import annotations

import math
import random

import optuna
import pytest
import torch
from dnc_mlp.space import MLPSpace
from scipy.stats import spearmanr

from dnc.bo import RampBOSampler
from dnc.bo.encoding import CandidateEncoder, probe_space, stage_features
from dnc.bo.model import RampGPs, SourceTask, log10_floored
from dnc.bo.sampler import PHASE_ATTR
from dnc.suggest import TrialSuggest, UniformSuggest

SPACE = MLPSpace()
GROUPS = ("core", "train")


def _encoder() -> CandidateEncoder:
    probe = probe_space(SPACE, GROUPS, {}, seed=0)
    return CandidateEncoder(stage_features(tuple(SPACE.kernel_features()), probe.records))


def _quality(params: dict) -> float:
    """A smooth made-up figure of a candidate: least near lr 0.01 with wide hidden layers."""
    width = sum(v for k, v in params.items() if k.startswith("hidden_"))
    return (math.log10(params["lr"]) + 2) ** 2 - width / 1000


def _drawn(n: int, seed: int) -> list[tuple[dict, dict]]:
    """``n`` random candidates: each one's searched params and the candidate."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        suggest = UniformSuggest(rng.random, GROUPS)
        candidate = SPACE.sample(suggest)
        out.append((suggest.params, candidate))
    return out


def _candidates(n: int, seed: int) -> list[dict]:
    """``n`` random candidates, each with its searched params (as the encoder reads them)."""
    return [{**params, **candidate} for params, candidate in _drawn(n, seed)]


def _rank_correlation(gps: RampGPs, encoder, train, test) -> float:
    x = encoder.encode(train)
    gp = gps.fit(x, torch.tensor([[_quality(c)] for c in train], dtype=torch.float64), "loss")
    with torch.no_grad():
        mean = gp.posterior(encoder.encode(test)).mean.squeeze(-1)
    return spearmanr(mean.numpy(), [_quality(c) for c in test]).correlation


@pytest.mark.parametrize("fit_kernel", [False, True])
def test_a_related_source_predicts_where_this_tasks_few_trials_cannot(fit_kernel: bool) -> None:
    """The source measures the same figure on another scale (x 3, + 10): with 4 trials of its
    own the multi-task GP ranks 40 new candidates nearly as the figure does, far better than
    the same GP without the source; a source of noise unrelated to the figure does not pull it
    below that GP by much (the fitted correlation discounts it)."""
    encoder = _encoder()
    train, test, others = _candidates(4, 1), _candidates(40, 2), _candidates(40, 3)
    related = SourceTask(
        encoder.encode(others), [3 * _quality(c) + 10 for c in others], [None] * len(others)
    )
    rng = random.Random(4)
    unrelated = SourceTask(
        encoder.encode(others), [rng.gauss(0, 1) for _ in others], [None] * len(others)
    )

    def gps(source: SourceTask | None) -> RampGPs:
        return RampGPs(encoder, fit_kernel=fit_kernel, noise=1e-4, omega=1.5, source=source)

    alone = _rank_correlation(gps(None), encoder, train, test)
    with_related = _rank_correlation(gps(related), encoder, train, test)
    with_unrelated = _rank_correlation(gps(unrelated), encoder, train, test)
    assert with_related > 0.95 and with_related > alone + 0.15, (with_related, alone)
    assert with_unrelated > alone - 0.2, (with_unrelated, alone)


def test_the_split_model_takes_each_part_from_the_source() -> None:
    """``outcome`` gives each GP its own column of the source, in log10 as this task's, and
    only the rows that recorded it; fewer than two such rows: no source for that GP."""
    x = torch.zeros(3, 2, dtype=torch.float64)
    source = SourceTask(x, [-1.0, -2.0, -3.0], [(0.1, 100.0), None, (0.01, 10.0)])
    rows, fp = source.outcome("fp")  # type: ignore[misc]
    assert rows.shape == (2, 2) and fp.squeeze(-1).tolist() == pytest.approx([-1.0, -2.0])
    assert source.outcome("fc")[1].squeeze(-1).tolist() == pytest.approx([2.0, 1.0])  # type: ignore[index]
    assert source.outcome("loss")[1].squeeze(-1).tolist() == [-1.0, -2.0, -3.0]  # type: ignore[index]
    assert SourceTask(x, [0.0, 0.0, 0.0], [None, None, (0.1, 1.0)]).outcome("fp") is None
    assert log10_floored([0.1]).item() == pytest.approx(-1.0)


def _study(source, seed: int = 0) -> optuna.Study:
    sampler = RampBOSampler(space=SPACE, active=GROUPS, prior_states=3, seed=seed, source=source)
    study = optuna.create_study(sampler=sampler)
    for _ in range(5):
        trial = study.ask()
        study.tell(trial, _quality({**trial.params, **SPACE.sample(TrialSuggest(trial))}))
    return study


def test_the_sampler_learns_from_the_source_and_says_so() -> None:
    """A BO step's record says how many source rows its GPs learnt from; a row that does not
    fit the space is left out, and without a source nothing changes."""
    source = [(p, _quality({**p, **c}), None) for p, c in _drawn(12, 5)]
    bad = ({"num_hidden_layers": 1, "hidden_0": 64, "lr": "fast"}, 0.0, None)
    study = _study([*source, bad])
    steps = [t.system_attrs[PHASE_ATTR] for t in study.trials if t.number >= 3]
    assert [s["phase"] for s in steps] == ["bo", "bo"]
    assert all(s["source"] == len(source) for s in steps), steps
    cold = _study([])
    assert all("source" not in t.system_attrs[PHASE_ATTR] for t in cold.trials)
    assert [t.params for t in cold.trials[:3]] == [t.params for t in study.trials[:3]]
    again = _study([*source, bad])  # reproducible: the task kernel starts seeded
    assert [t.params for t in again.trials] == [t.params for t in study.trials]


@pytest.mark.parametrize("model", ["loss", "split", "pareto"])
def test_every_acquisition_takes_a_source(model: str) -> None:
    """The one-GP model, the split model and a Pareto stage's front each score candidates
    (finite log values) with GPs that learn from a source, running trials pending."""
    encoder = _encoder()
    train, others, test = _candidates(5, 1), _candidates(12, 3), _candidates(30, 2)

    def parts(c: dict) -> tuple[float, float]:
        return 0.2 + 0.01 * _quality(c) ** 2, 1 + sum(
            v for k, v in c.items() if k.startswith("hidden_")
        )

    source = SourceTask(
        encoder.encode(others), [-_quality(c) for c in others], [parts(c) for c in others]
    )
    gps = RampGPs(encoder, fit_kernel=False, noise=1e-4, omega=1.5, source=source)
    acq = gps.acquisition(
        encoder.encode(train),
        [-_quality(c) for c in train],
        parts=None if model == "loss" else [parts(c) for c in train],
        wc=0.1,
        x_pending=encoder.encode(test[:1]),
        pareto=model == "pareto",
    )
    with torch.no_grad():
        values = acq.function(encoder.encode(test)[:, None])
    assert values.shape == (30,) and bool(torch.isfinite(values).all()), values
    assert set(acq.gps) == ({"loss"} if model == "loss" else {"fp", "fc"})
