"""The plugin contracts (search space, cost evaluator, dataset) and their discovery.

A plugin is an installed package that

1. implements one of the small abstract classes below, and
2. declares an entry point in the ``dnc.plugins`` group naming a package that holds a ``conf/``
   folder of Hydra config-group files (``conf/search_space/NAME.yaml``, ``conf/cost/NAME.yaml``,
   ``conf/dataset/NAME.yaml``), each with a ``_target_`` naming the class.

``hydra_plugins.dnc_searchpath`` adds every such ``conf/`` folder to Hydra's search path, so
``python -m dnc search_space=NAME`` works without editing dnc. The built-in plugins in
``plugins/`` register themselves the same way. Discovery reads package metadata only; no plugin
module is imported until its config is instantiated.

Example (a third party's ``pyproject.toml``)::

    [project.entry-points."dnc.plugins"]
    myspace = "dnc_myspace"          # dnc_myspace/conf/search_space/myspace.yaml
"""

from __future__ import annotations

from importlib.metadata import entry_points

from dnc.plugins.base import Candidate, DataSpec, Suggest, UserError, candidate_key
from dnc.plugins.cost import CostEvaluator, calibrate_cost, parse_normaliser
from dnc.plugins.data import Dataset, TensorData
from dnc.plugins.space import (
    SearchSpace,
    TrainingBounds,
    as_bounds,
    as_tuple,
    settings_from,
    suggest_training,
)
from dnc.suggest import DefaultSuggest

ENTRY_POINT_GROUP = "dnc.plugins"


def plugin_packages() -> dict[str, str]:
    """Installed plugin packages: entry-point name -> package holding ``conf/``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def check_plugin(obj: object, contract: type, what: str) -> None:
    """Raise ``UserError`` when an instantiated plugin does not implement its contract."""
    if not isinstance(obj, contract):
        raise UserError(
            f"{what} {type(obj).__module__}.{type(obj).__qualname__} does not implement "
            f"dnc.plugins.{contract.__name__}; fix the plugin's _target_ or its base class"
        )


__all__ = [
    "Candidate",
    "CostEvaluator",
    "DataSpec",
    "Dataset",
    "DefaultSuggest",
    "SearchSpace",
    "Suggest",
    "TensorData",
    "TrainingBounds",
    "UserError",
    "as_bounds",
    "as_tuple",
    "calibrate_cost",
    "candidate_key",
    "check_plugin",
    "parse_normaliser",
    "plugin_packages",
    "settings_from",
    "suggest_training",
]
