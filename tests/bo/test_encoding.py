"""Encoding candidates into rows, and which features a stage compares."""

from __future__ import annotations

import doctest
from collections.abc import Mapping
from typing import Any

import torch
from bo_spaces import ChainCNNSpace, random_candidates
from dnc_mlp.space import MLPSpace

from dnc.bo import LayerWidths, Scalar
from dnc.bo import encoding as encoding_module
from dnc.bo.encoding import CandidateEncoder, probe_space, stage_features
from dnc.plugins import Candidate, DataSpec, SearchSpace, Suggest


def test_rows_lay_features_side_by_side() -> None:
    space = ChainCNNSpace()
    enc = CandidateEncoder(space.kernel_features())
    assert enc.width == 17 + 3
    assert enc.columns[0] == tuple(range(17)) and enc.columns[3] == (19,)
    cands = random_candidates(space, 5)
    x = enc.encode(cands)
    assert x.shape == (5, 20) and x.dtype == torch.float64
    assert [int(v) for v in x[:, 0]] == [c["num_conv_layers"] for c in cands]


def test_probe_finds_searched_parameters_bounds_and_draws() -> None:
    probe = probe_space(ChainCNNSpace(), ("core",), {})
    assert set(probe.records) == {"num_conv_layers", *(f"channels_{i}" for i in range(16))}
    assert probe.records["channels_0"].low == 16 and probe.records["channels_0"].high == 64
    assert probe.records["channels_15"].high == 512
    assert probe.max_draws == 17  # all 16 layers at the top end, plus the depth
    train = probe_space(ChainCNNSpace(), ("train",), {})
    assert set(train.records) == {"lr", "weight_decay", "batch_size"}
    assert train.records["lr"].log


def test_a_stage_compares_only_what_it_searches() -> None:
    space = MLPSpace()
    searched = probe_space(space, ("train",), {}).records
    names = [getattr(f, "name", "") for f in stage_features(space.kernel_features(), searched)]
    assert names == ["lr", "weight_decay", "batch_size"]
    searched = probe_space(space, ("core", "train"), {}).records
    names = [getattr(f, "name", "") for f in stage_features(space.kernel_features(), searched)]
    assert names == ["hidden", "lr", "weight_decay", "batch_size"]
    searched = probe_space(space, None, {}).records
    assert len(stage_features(space.kernel_features(), searched)) == 6


class Undeclared(SearchSpace):
    """Declares nothing: every searched parameter gets a default feature."""

    name = "undeclared"

    def sample(self, suggest: Suggest) -> Candidate:
        return {"depth": suggest.int("depth", 1, 5, group="core", default=2),
                "rate": suggest.float("rate", 1e-4, 1e-1, group="core", default=1e-2, log=True),
                "kind": suggest.categorical("kind", ["a", "b", "c"], group="core", default="a")}

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> torch.nn.Module:
        raise NotImplementedError


def test_undeclared_parameters_get_default_features() -> None:
    searched = probe_space(Undeclared(), None, {}).records
    feats = stage_features((), searched)
    by_name = {f.name: f for f in feats}  # type: ignore[attr-defined]
    assert set(by_name) == {"depth", "rate", "kind"}
    assert by_name["depth"].bounds == (1.0, 5.0)  # type: ignore[attr-defined]
    assert by_name["rate"].log  # type: ignore[attr-defined]
    assert list(by_name["kind"].choices) == ["a", "b", "c"]  # type: ignore[attr-defined]
    # ... and a declaration covering some of them keeps the rest on defaults.
    feats = stage_features((Scalar("depth", 1, 5, root=2),), searched)
    assert [f.name for f in feats] == ["depth", "rate", "kind"]  # type: ignore[attr-defined]
    assert feats[0].root == 2  # type: ignore[attr-defined]


def test_a_declaration_that_reads_nothing_searched_is_left_out() -> None:
    searched = probe_space(Undeclared(), None, {}).records
    unused = LayerWidths("w{i}", count="n", bounds=[(1, 2)])
    assert unused not in stage_features((unused,), searched)


def test_module_examples_run() -> None:
    result = doctest.testmod(encoding_module, extraglobs={"Scalar": Scalar})
    assert result.attempted > 0 and result.failed == 0
