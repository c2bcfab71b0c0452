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
