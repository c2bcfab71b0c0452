"""The acquisition's local search (``dnc.bo.optimise``): rows of known candidates, moves that keep
every candidate inside the space's own rules, climbs that beat the best draw, taken candidates
never proposed, and the sampler's steps with ``local_search``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from bo_spaces import ChainCNNSpace
from dnc_mlp.space import MLPSpace
from optuna.trial import TrialState
from test_sampler import cnn_loss, run, split_run, split_step

from dnc.bo import RampBOSampler
from dnc.bo.draws import CandidateDraws, Point
from dnc.bo.encoding import probe_space
from dnc.bo.optimise import climb, maximise, moves
from dnc.bo.sampler import PHASE_ATTR
from dnc.plugins import SearchSpace, candidate_key
from dnc.suggest import ParamRecord

optuna.logging.set_verbosity(optuna.logging.WARNING)


def draws_of(space: SearchSpace, active: tuple[str, ...] | None = None) -> CandidateDraws:
    probe = probe_space(space, active, {}, seed=0)
    return CandidateDraws(
        space, active, {}, probe.records, seed=0, prior_states=4, explore=200, at_bounds=0.1
    )


def obeys_chain_rules(c: Mapping[str, Any]) -> bool:
    """ChainCNNSpace's define-by-run rules: 4-16 layers, the first 16-64 channels, each next in
    [c_prev, min(2 c_prev, 512)], the training values in their bounds."""
    n = c["num_conv_layers"]
    chans = [c[f"channels_{i}"] for i in range(n)]
    chained = all(p <= q <= min(2 * p, 512) for p, q in zip(chans, chans[1:], strict=False))
    extra = [k for k in c if k.startswith("channels_") and int(k.split("_")[1]) >= n]
    return (
        4 <= n <= 16
        and 16 <= chans[0] <= 64
        and chained
        and not extra
        and 1e-5 <= c["lr"] <= 1e-1
        and 32 <= c["batch_size"] <= 512
    )


@pytest.mark.parametrize("space", [MLPSpace(), ChainCNNSpace()], ids=["mlp", "chain_cnn"])
def test_the_row_of_a_candidates_params_gives_that_candidate_back(space: SearchSpace) -> None:
    """``row_of`` inverts the space's sampling: a finished trial becomes a point to climb from
    (every kind: log and linear ints, log floats, categoricals, dynamic bounds)."""
    draws = draws_of(space)
    rng = np.random.default_rng(0)
    for _ in range(300):
        point = draws.point(rng.random(draws.dims).tolist())
        again = draws.point(draws.row_of(point.params))
        assert again.candidate.keys() == point.candidate.keys()
        for name, value in point.candidate.items():
            other = again.candidate[name]
            assert other == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value)
        assert all(0.0 <= u <= 1.0 for u in again.row)


def test_moves_cover_each_kind_and_stay_in_the_unit_interval() -> None:
    choices = moves(0.1, ParamRecord("categorical", choices=("a", "b", "c")))
    assert choices == pytest.approx([0.5, 5 / 6])  # the two other choices
    depth = moves(0.5, ParamRecord("int", low=0, high=2))  # the middle of 3 values
    assert {round(u * 3 - 0.5) for u in depth} == {0, 2}  # one layer fewer or more
    width = moves(0.0, ParamRecord("int", low=20, high=400))
    assert min(width) > 0 and len(width) == 4  # only upwards from the bound
    lr = moves(0.3, ParamRecord("float", low=1e-4, high=1e-1, log=True))
    assert 0.0 in lr and 1.0 in lr and all(0.0 <= u <= 1.0 for u in lr)


def test_every_candidate_the_climb_scores_obeys_the_spaces_rules() -> None:
    """A score that pulls the channels of every layer up and the depth to its maximum: the
    climb pushes to the rules' limits and never past them (channels <= 2 x the previous)."""
    space = ChainCNNSpace()
    draws = draws_of(space)
    scored: list[dict[str, Any]] = []

    def score(points: Sequence[Point]) -> torch.Tensor:
        scored.extend(p.candidate for p in points)
        return torch.tensor(
            [sum(v for k, v in p.candidate.items() if k.startswith("channels_")) for p in points],
            dtype=torch.float64,
        )

    start = draws.explore(0, set())[:3]
    begin = [(p, float(score([p])[0])) for p in start]
    best = climb(draws, score, begin, set(), sweeps=6)
    assert best is not None
    assert len(scored) > 100 and all(obeys_chain_rules(c) for c in scored)
    assert best[1] > max(s for _, s in begin)
    assert best[0].candidate["num_conv_layers"] > min(p.candidate["num_conv_layers"] for p in start)


def test_the_climb_never_returns_a_taken_candidate() -> None:
    """Taken candidates (finished, failed, running) are neither scored nor returned, even when
    the score is highest there; a taken start is left for its best fresh neighbour."""
    space = MLPSpace()
    draws = draws_of(space, ("core",))
    target = draws.point(draws.row_of({"num_hidden_layers": 1, "hidden_0": 200}))

    def score(points: Sequence[Point]) -> torch.Tensor:
        return torch.tensor(
            [-abs(p.candidate["hidden_0"] - 200) if p.candidate["num_hidden_layers"] == 1
             else -1e3 for p in points],
            dtype=torch.float64,
        )  # fmt: skip

    taken = {candidate_key(target.candidate)}
    best = climb(draws, score, [(target, -math.inf)], taken)
    assert best is not None
    assert candidate_key(best[0].candidate) not in taken
    assert best[0].candidate["hidden_0"] in (199, 201) and best[1] == -1


def test_maximise_beats_the_best_draw_on_a_smooth_score() -> None:
    space = ChainCNNSpace()
    draws = draws_of(space)
    points = draws.explore(3, set())

    def score(pts: Sequence[Point]) -> torch.Tensor:
        return -torch.tensor([cnn_loss(p.candidate) for p in pts], dtype=torch.float64)

    drawn, drawn_value, climbed = maximise(draws, points, score, [], set(), starts=0)
    assert not climbed and drawn_value == pytest.approx(max(score(points).tolist()))
    best, value, climbed = maximise(draws, points, score, [], set(), starts=3)
    assert climbed and value > drawn_value + 0.05
    assert value == pytest.approx(float(score([best])[0]))


def test_only_candidates_the_screen_admits_are_proposed() -> None:
    """A stage's screen (a cost's feasibility before training) refuses candidates: a prior
    state moves past them, and ``maximise`` proposes the best admitted draw, or a climbed
    candidate only where the screen admits it; each candidate is screened once."""
    space = ChainCNNSpace()
    asked: list[Any] = []

    def odd_layers(candidate: Mapping[str, Any]) -> bool:
        asked.append(candidate_key(candidate))
        return candidate["num_conv_layers"] % 2 == 1

    probe = probe_space(space, None, {}, seed=0)
    draws = CandidateDraws(
        space, None, {}, probe.records, seed=0, prior_states=8, explore=200, at_bounds=0.1,
        screen=odd_layers,
    )  # fmt: skip
    plain = draws_of(space)
    priors = [draws.prior(i, set()) for i in range(8)]
    assert all(fresh and c["num_conv_layers"] % 2 == 1 for c, _, fresh in priors)
    assert not all(plain.prior(i, set())[0]["num_conv_layers"] % 2 for i in range(8))

    points = draws.explore(3, set())

    def score(pts: Sequence[Point]) -> torch.Tensor:  # the deepest is best
        return torch.tensor([float(p.candidate["num_conv_layers"]) for p in pts])

    depths = [p.candidate["num_conv_layers"] for p in points]
    admitted = max(d for d in depths if d % 2 == 1)
    assert max(depths) == 16 and admitted < 16  # the best draws are refused
    for starts in (0, 3):
        best, value, _ = maximise(draws, points, score, [], set(), starts=starts)
        assert best.candidate["num_conv_layers"] % 2 == 1
        assert value == pytest.approx(float(score([best])[0])) and value >= admitted
    assert len(asked) == len(set(asked))


def _steps(local_search: int) -> list[dict[str, Any]]:
    """The BO steps of one seeded ramp search on the CNN-shaped space."""
    space = ChainCNNSpace()
    study = optuna.create_study(
        sampler=RampBOSampler(
            space=space, prior_states=6, explore=200, seed=2, local_search=local_search
        )
    )
    run(study, space, cnn_loss, 12)
    return [t.system_attrs[PHASE_ATTR] | {"loss": t.value} for t in study.trials[6:]]


def test_the_sampler_climbs_from_its_best_draws() -> None:
    """With the same seed and draws, the first step's choice scores higher than the best draw's
    (the same data), and most steps climb; whether searches end lower is the benchmark's
    question (``bench/search_quality.py``), not a unit test's."""
    plain, climbing = _steps(0), _steps(3)
    assert all(s["phase"] == "bo" and not s["climbed"] for s in plain)
    assert sum(s["climbed"] for s in climbing) >= 4
    assert climbing[0]["log_ei"] > plain[0]["log_ei"]


def test_with_local_search_a_running_trial_is_pending_and_never_proposed() -> None:
    """Another worker trains this step's choice: the same step then counts it as a pending
    point and climbs to another candidate (the split model, as a dnc search runs it)."""
    space = ChainCNNSpace()
    base = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    split_run(base, space, 12)

    (alone,) = split_step(base, space, local_search=3)
    assert alone.system_attrs[PHASE_ATTR]["climbed"]
    assert alone.system_attrs[PHASE_ATTR]["pending"] == 0
    running, shared = split_step(base, space, alone.params, TrialState.RUNNING, local_search=3)
    key = candidate_key(alone.user_attrs["candidate"])
    assert running.state == TrialState.RUNNING
    assert candidate_key(running.user_attrs["candidate"]) == key  # the other worker's trial
    info = shared.system_attrs[PHASE_ATTR]
    assert info["phase"] == "bo" and info["pending"] == 1
    assert candidate_key(shared.user_attrs["candidate"]) != key
