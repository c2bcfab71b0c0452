"""The search loss ``log10(fp + wc * fc)`` and its two parts."""

from __future__ import annotations

import math

import optuna
import pytest

from dnc.search import LossParts, score, search_loss
from dnc.search.cost import NumParams
from dnc.search.objective import loss_terms, performance_term


def test_the_search_loss():
    assert performance_term(97.5) == pytest.approx(0.025)
    assert search_loss(0.025, 0.5, 0.1) == pytest.approx(math.log10(0.075))
    assert search_loss(0.0, 0.0, 0.1) == -12.0  # a perfect, free network: clipped, not -inf
    cost = NumParams(numparams_bar=1000)
    figures = {"best_val_acc": 90.0, "numparams": 500.0}
    assert loss_terms(figures, cost) == (pytest.approx(0.1), 0.5)
    assert score(figures, 0.2, cost) == pytest.approx(math.log10(0.1 + 0.2 * 0.5))


def test_the_loss_parts_of_a_search_trial():
    parts = LossParts.of_search(0.1, NumParams(numparams_bar=1000))
    study = optuna.create_study()
    with_figures = study.ask()
    with_figures.set_user_attr("figures", {"best_val_acc": 80.0, "numparams": 2000.0})
    study.tell(with_figures, 0.0)
    study.tell(study.ask(), 0.0)
    first, second = study.trials
    assert parts.parts(first) == (pytest.approx(0.2), 2.0) and parts.wc == 0.1
    assert parts.parts(second) is None  # nothing recorded: the sampler falls back
    with pytest.raises(ValueError, match="wc=-1"):
        LossParts(wc=-1, parts=lambda t: None)


def _tiny_problem(cost):
    """A 16-unit MLP candidate and ``evaluate``'s settings: 64 random rows of 8 in 3 classes."""
    import torch
    from dnc_mlp.space import MLPSpace

    from dnc.plugins import TensorData

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 8, generator=gen), torch.randint(0, 3, (96,), generator=gen)
    data = TensorData(x[:64], y[:64], x[64:], y[64:], x[64:], y[64:], num_classes=3)
    space = MLPSpace()
    candidate = {**space.reference_candidate(), "hidden_0": 16}
    return candidate, dict(space=space, data=data, cost=cost, wc=0.1)


def test_a_trials_seed_alone_fixes_its_initial_weights_and_curves():
    """The same candidate and seed train to the same curves whatever the process drew before
    (a sampler's GP, an earlier trial); another seed trains differently."""
    import torch

    from dnc.search.objective import evaluate
    from dnc.train.settings import TrainerSettings

    candidate, settings = _tiny_problem(NumParams(numparams_bar=100))
    trainer = TrainerSettings(epochs=3, device="cpu")

    def curves(seed: int) -> tuple[list[float], list[float]]:
        result = evaluate(candidate, **settings, trainer=trainer, seed=seed).result
        return result.train_loss, result.val_acc

    first = curves(7)
    torch.rand(1000)  # what a GP or another trial would draw in between
    assert curves(7) == first
    assert curves(8)[0] != first[0]


def test_a_trial_measures_its_cost_once_and_its_pruner_sees_it_every_epoch():
    """``cost.measure`` of the built network, once per trial: the pruner's figures after each
    epoch and the trial's recorded figures carry it."""
    from dnc.search.objective import evaluate
    from dnc.train.settings import TrainerSettings

    class Counted(NumParams):
        calls = 0

        def measure(self, model, candidate, data):
            Counted.calls += 1
            return {"hidden_width": float(candidate["hidden_0"])}

    candidate, settings = _tiny_problem(Counted(numparams_bar=100))
    seen = []

    def should_stop(figures):
        seen.append(figures)
        return len(seen) == 2  # stopped after its second epoch

    done = evaluate(
        candidate, **settings, trainer=TrainerSettings(epochs=4), seed=1, should_stop=should_stop
    )
    assert Counted.calls == 1
    assert [f["hidden_width"] for f in seen] == [16.0, 16.0]
    assert done.result.stopped and done.figures["hidden_width"] == 16.0
    assert done.figures["epochs_run"] == 2
