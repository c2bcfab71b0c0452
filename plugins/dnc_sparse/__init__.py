"""Pre-defined sparse neural networks (Dey, Huang, Beerel, Chugg, IEEE JETCAS 2019), shipped as a
dnc plugin: ``search_space=sparse_mlp``.

- ``adjacency(kind, n_left, n_right, d_out, z=None, seed=0)``: a junction's connection pattern
  (``random``, ``basic``, ``clash_free``) as a bool ``n_right x n_left`` tensor.
- ``SparseLinear``: a linear layer whose zeros stay zero, computed densely or with CSR kernels,
  whichever is faster for its size and density.
- ``SparseMLP``, ``SparseMLPSpace``: the network and the search space; ``SparseMLPCore``,
  ``JunctionSparsity``, ``SparseMLPArch``: the space's settings groups.

Kept import-light: Hydra imports this package to read ``conf/``; names load on first use.
"""

__all__ = [
    "JunctionSparsity",
    "SparseLinear",
    "SparseMLP",
    "SparseMLPArch",
    "SparseMLPCore",
    "SparseMLPSpace",
    "adjacency",
    "clash_free_schedule",
    "feasible_out_degrees",
    "nearest_out_degree",
]

_WHERE = {
    "SparseLinear": "layer",
    "SparseMLP": "network",
    "SparseMLPSpace": "space",
    "SparseMLPCore": "settings",
    "JunctionSparsity": "settings",
    "SparseMLPArch": "settings",
    "adjacency": "patterns",
    "clash_free_schedule": "patterns",
    "feasible_out_degrees": "patterns",
    "nearest_out_degree": "patterns",
}


def __getattr__(name: str):  # lazy, so discovery never imports torch
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"dnc_sparse.{_WHERE[name]}"), name)
    raise AttributeError(name)
