"""``search=quick`` is a try-out on every built-in space: small BO budgets and a grid capped
per sub-stage, so its trials are few whatever the space (the timings are in the README)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from dnc.config import typed
from dnc.search import SearchSettings
from dnc.search.stages import describe_stages


@pytest.mark.parametrize(
    ("space", "substages"),
    [
        ("mlp", "activation, dropout"),
        ("cnn", "activation, downsampling, batchnorm, dropout, shortcuts"),
        ("sparse_mlp", "activation, dropout, pattern"),
    ],
)
def test_quick_is_small_on_every_builtin_space(space, substages):
    with initialize_config_module("dnc.conf", version_base="1.3"):
        cfg = compose(
            "config", overrides=["search=quick", f"search_space={space}", "search.name=q"]
        )
    settings = typed(cfg.search, SearchSettings)
    assert describe_stages(settings, instantiate(cfg.search_space)) == (
        "core: ramp bo over core, 3 trials; "
        f"arch: grid over {substages} (at most 1 trial each); "
        "train: ramp bo over train, 3 trials"
    )
