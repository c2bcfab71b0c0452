"""The CNN search space of Deep-n-Cheap, shipped as a plugin (``search_space=cnn``).

Kept import-light: Hydra imports this package to read ``conf/``; the space lives in
``dnc_cnn.space``, its settings groups in ``dnc_cnn.settings``, the network in
``dnc_cnn.network``, kernel sparsity in ``dnc_cnn.sparse``.
"""

__all__ = [
    "CNNArch",
    "CNNCore",
    "CNNSpace",
    "ConvNet",
    "ConvPlan",
    "KernelSparseConv2d",
    "KernelSparsity",
    "kernel_mask",
]

_WHERE = {
    "CNNSpace": "space",
    "CNNCore": "settings",
    "CNNArch": "settings",
    "KernelSparsity": "settings",
    "ConvNet": "network",
    "ConvPlan": "network",
    "KernelSparseConv2d": "sparse",
    "kernel_mask": "sparse",
}


def __getattr__(name: str):  # lazy, so discovery never imports torch
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"dnc_cnn.{_WHERE[name]}"), name)
    raise AttributeError(name)
