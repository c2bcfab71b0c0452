"""Ramp-kernel Bayesian optimisation (DESIGN §3): GPyTorch kernels, the feature declarations a
search space returns from ``kernel_features()``, and the Optuna sampler.

Names are loaded on first use, so ``import dnc.bo`` stays cheap until a kernel or the sampler
is needed (``features`` does not import torch at all).

Example::

    from dnc.bo import RampBOSampler, RampKernel, Scalar
    RampKernel(32, 512)                        # batch size in [32, 512]
    study = optuna.create_study(sampler=RampBOSampler(space=MLPSpace(), seed=0))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnc.bo.candidate_kernel import CandidateKernel
    from dnc.bo.encoding import CandidateEncoder
    from dnc.bo.features import (
        Categorical,
        KernelFeature,
        LayerWidths,
        MLPHidden,
        Scalar,
        doubling_bounds,
    )
    from dnc.bo.kernels import (
        CategoricalRampKernel,
        LayerwiseRampKernel,
        MLPHiddenKernel,
        RampKernel,
    )
    from dnc.bo.sampler import RampBOSampler

_HOME = {
    "CandidateEncoder": "dnc.bo.encoding",
    "Categorical": "dnc.bo.features",
    "KernelFeature": "dnc.bo.features",
    "LayerWidths": "dnc.bo.features",
    "MLPHidden": "dnc.bo.features",
    "Scalar": "dnc.bo.features",
    "doubling_bounds": "dnc.bo.features",
    "CandidateKernel": "dnc.bo.candidate_kernel",
    "CategoricalRampKernel": "dnc.bo.kernels",
    "LayerwiseRampKernel": "dnc.bo.kernels",
    "MLPHiddenKernel": "dnc.bo.kernels",
    "RampKernel": "dnc.bo.kernels",
    "RampBOSampler": "dnc.bo.sampler",
}

__all__ = [
    "CandidateEncoder",
    "CandidateKernel",
    "Categorical",
    "CategoricalRampKernel",
    "KernelFeature",
    "LayerWidths",
    "LayerwiseRampKernel",
    "MLPHidden",
    "MLPHiddenKernel",
    "RampBOSampler",
    "RampKernel",
    "Scalar",
    "doubling_bounds",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'dnc.bo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
