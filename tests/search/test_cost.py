"""The built-in costs (``t_epoch``, ``numparams``) keep the cost-evaluator contract, with an
``auto`` normaliser and with a number."""

from __future__ import annotations

import pytest
from dnc_mlp.space import MLPSpace

from dnc.plugins import DataSpec, UserError
from dnc.search.cost import NumParams, TEpoch
from dnc.testing import CostEvaluatorContract

SPEC = DataSpec(input_shape=(1, 8, 8), num_classes=10)


class _MLP:
    def make_model_and_candidate(self):
        space = MLPSpace()
        cand = space.reference_candidate()
        return space.build(cand, SPEC), cand


class TestTEpochAuto(_MLP, CostEvaluatorContract):
    def make_cost(self):
        return TEpoch()


class TestTEpochFixed(_MLP, CostEvaluatorContract):
    def make_cost(self):
        return TEpoch(tbar_epoch=0.5)


class TestNumParamsAuto(_MLP, CostEvaluatorContract):
    def make_cost(self):
        return NumParams()


def test_auto_is_calibrated_from_the_figure_and_a_number_is_kept():
    t = TEpoch()
    assert t.needs_calibration and t.calibrate_by_training
    t.calibrate({"t_epoch": 0.2})
    assert not t.needs_calibration and t.complexity({"t_epoch": 0.1}) == 0.5
    n = NumParams(numparams_bar=1000)
    assert not n.needs_calibration and not n.calibrate_by_training
    n.calibrate({"numparams": 5.0})
    assert n.settings() == {"numparams_bar": 1000.0}
    with pytest.raises(UserError, match="cost.tbar_epoch"):
        TEpoch(tbar_epoch=-1)
