"""The MLP search space of Deep-n-Cheap, shipped as a plugin (``search_space=mlp``).

Kept import-light: Hydra imports this package to read ``conf/``; the space lives in
``dnc_mlp.space``.
"""

__all__ = ["MLPSpace"]


def __getattr__(name: str):  # lazy, so discovery never imports torch
    if name == "MLPSpace":
        from dnc_mlp.space import MLPSpace

        return MLPSpace
    raise AttributeError(name)
