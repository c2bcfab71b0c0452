"""Pre-defined sparse connection patterns of one junction (DESIGN §7).

A junction joins ``n_left`` neurons to ``n_right`` neurons. Every left neuron has out-degree
``d_out``, so the junction has ``|W| = n_left d_out`` edges and density ``rho = d_out / n_right``;
every right neuron has in-degree ``d_in = n_left d_out / n_right`` (structured kinds).

Kinds:

- ``random``: exactly ``n_left d_out`` edges placed uniformly at random (degrees vary).
- ``basic``: exact ``d_in`` per row and ``d_out`` per column: a circulant pattern (row ``r``
  reads columns ``r d_in, ..., r d_in + d_in - 1`` modulo ``n_left``) with its rows and columns
  randomly permuted. Needs an integer ``d_in``.
- ``clash_free``: the hardware-friendly pattern. Left activations sit in ``z`` memory banks
  (neuron ``m`` in bank ``m mod z``, row ``m // z``); ``d_out`` sweeps each read every left
  neuron once, ``z`` per clock, one per bank; right neuron ``r`` takes the edge slots
  ``[r d_in, (r + 1) d_in)``. Type 1: a random row permutation per bank per sweep; type 2: a
  random start row per bank per sweep, then +1 modulo ``n_left / z``; type 3: type 2 with the
  same start rows every sweep. Dither: lanes read the banks in a random order per sweep
  (else in order). Needs ``z | n_left`` and ``d_in | n_left`` (else a right neuron's slots
  straddle two sweeps and may read a left neuron twice, silently lowering the density).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from dnc.plugins import UserError
from dnc_sparse.settings import CLASH_FREE_TYPES, KINDS

if TYPE_CHECKING:
    import torch


def in_degree(n_left: int, n_right: int, d_out: int) -> float:
    """``d_in = n_left d_out / n_right`` (a float; integer for a feasible structured junction)."""
    return n_left * d_out / n_right


def feasible_out_degrees(n_left: int, n_right: int) -> list[int]:
    """Every ``d_out`` in ``[1, n_right]`` whose ``d_in = n_left d_out / n_right`` is an integer
    dividing ``n_left`` (DESIGN §7), ascending. ``n_right`` (dense) is always one of them.

    Example:
        >>> feasible_out_degrees(64, 32)
        [1, 2, 4, 8, 16, 32]
        >>> feasible_out_degrees(784, 10)
        [5, 10]
    """
    _check_sizes(n_left, n_right)
    out = []
    for d_out in range(1, n_right + 1):
        if (n_left * d_out) % n_right:
            continue
        if n_left % ((n_left * d_out) // n_right) == 0:
            out.append(d_out)
    return out


def nearest_out_degree(n_left: int, n_right: int, density: float, *, at_least: float = 0.0) -> int:
    """The feasible ``d_out`` whose density ``d_out / n_right`` is nearest to ``density`` on a
    log scale (ties: the denser), among those with density ``>= at_least``.

    Example:
        >>> nearest_out_degree(64, 32, 0.3)
        8
    """
    if not 0.0 < density <= 1.0:
        raise UserError(f"density {density} must lie in (0, 1]")
    options = [d for d in feasible_out_degrees(n_left, n_right) if d / n_right >= at_least - 1e-12]
    target = math.log(density)
    return min(options, key=lambda d: (abs(math.log(d / n_right) - target), -d))


def _check_sizes(n_left: int, n_right: int) -> None:
    if int(n_left) != n_left or int(n_right) != n_right or n_left < 1 or n_right < 1:
        raise UserError(f"junction {n_left} -> {n_right}: neuron counts must be positive integers")


def _check(kind: str, n_left: int, n_right: int, d_out: int, z: int | None, cf_type: int) -> int:
    """Validate a junction; return its integer ``d_in`` (0 for ``random``)."""
    if kind not in KINDS:
        raise UserError(f"sparse pattern kind {kind!r}: choose one of {', '.join(KINDS)}")
    _check_sizes(n_left, n_right)
    where = f"junction {n_left} -> {n_right}"
    if int(d_out) != d_out or not 1 <= d_out <= n_right:
        raise UserError(f"{where}: d_out={d_out} must be an integer in [1, {n_right}]")
    if kind == "random":
        return 0
    if (n_left * d_out) % n_right:
        raise UserError(
            f"{where}, d_out={d_out}: d_in = {n_left}*{d_out}/{n_right} = "
            f"{n_left * d_out / n_right:g} is not an integer; {kind} needs exact in-degrees "
            f"(feasible d_out: {feasible_out_degrees(n_left, n_right)})"
        )
    d_in = n_left * d_out // n_right
    if kind == "clash_free":
        if cf_type not in CLASH_FREE_TYPES:
            raise UserError(f"clash-free type {cf_type}: choose 1, 2 or 3")
        if z is None or int(z) != z or z < 1:
            raise UserError(
                f"{where}: clash_free needs z (memory banks), a positive integer; got {z}"
            )
        if n_left % z:
            raise UserError(f"{where}: z={z} banks must divide n_left={n_left}")
        if n_left % d_in:
            raise UserError(
                f"{where}, d_out={d_out}: d_in={d_in} must divide n_left={n_left} (else edges "
                f"collide); feasible d_out: {feasible_out_degrees(n_left, n_right)}"
            )
    return d_in


def clash_free_schedule(
    n_left: int,
    n_right: int,
    d_out: int,
    z: int,
    seed: int = 0,
    *,
    cf_type: int = 1,
    dither: bool = False,
) -> torch.Tensor:
    """The left neuron read at every edge slot of a clash-free junction: ``n_left d_out`` int64.

    Slot ``k`` is clock ``k // z``, lane ``k % z``; sweep ``s`` holds slots
    ``[s n_left, (s + 1) n_left)``; right neuron ``r`` owns slots ``[r d_in, (r + 1) d_in)``.
    Every clock (``z`` aligned slots) reads ``z`` distinct banks (``neuron mod z``).

    Example:
        >>> sched = clash_free_schedule(8, 4, 2, z=4)
        >>> (sched.view(-1, 4) % 4).sort(dim=1).values.tolist()[0]
        [0, 1, 2, 3]
    """
    import torch

    _check("clash_free", n_left, n_right, d_out, z, cf_type)
    gen = torch.Generator().manual_seed(int(seed))
    depth = n_left // z
    lanes = torch.arange(z)
    sweeps = []
    starts = torch.randint(depth, (z,), generator=gen)  # type 3: one start row per bank
    for _ in range(d_out):
        banks = torch.randperm(z, generator=gen) if dither else lanes
        if cf_type == 1:  # rows[v, c]: a random permutation of the bank's rows
            rows = torch.argsort(torch.rand(z, depth, generator=gen), dim=1)
        else:
            if cf_type == 2:
                starts = torch.randint(depth, (z,), generator=gen)
            rows = (starts[:, None] + torch.arange(depth)[None, :]) % depth
        # clock c, lane j reads bank banks[j] at row rows[banks[j], c]
        neuron = rows[banks].T * z + banks[None, :]  # depth x z
        sweeps.append(neuron.reshape(-1))
    return torch.cat(sweeps)


def adjacency(
    kind: str,
    n_left: int,
    n_right: int,
    d_out: int,
    z: int | None = None,
    seed: int = 0,
    *,
    cf_type: int = 1,
    dither: bool = False,
) -> torch.Tensor:
    """The connection pattern of one junction: a bool ``n_right x n_left`` tensor.

    ``mask[r, l]`` is True when left neuron ``l`` feeds right neuron ``r``. Deterministic for a
    given ``seed``. Raises ``UserError`` for an infeasible shape (non-integer ``d_in`` for
    ``basic``/``clash_free``; ``z`` or ``d_in`` not dividing ``n_left`` for ``clash_free``).

    Example:
        >>> m = adjacency("clash_free", 8, 4, d_out=2, z=4, seed=0)
        >>> m.shape, m.sum(dim=1).tolist(), m.sum(dim=0).tolist()
        (torch.Size([4, 8]), [4, 4, 4, 4], [2, 2, 2, 2, 2, 2, 2, 2])
    """
    import torch

    d_in = _check(kind, n_left, n_right, d_out, z, cf_type)
    gen = torch.Generator().manual_seed(int(seed))
    mask = torch.zeros(n_right, n_left, dtype=torch.bool)
    if kind == "random":
        flat = torch.randperm(n_right * n_left, generator=gen)[: n_left * d_out]
        mask.view(-1)[flat] = True
        return mask
    if kind == "basic":
        slots = torch.arange(n_right * d_in) % n_left  # circulant: every column d_out times
        rows = torch.arange(n_right).repeat_interleave(d_in)
        row_perm = torch.randperm(n_right, generator=gen)
        col_perm = torch.randperm(n_left, generator=gen)
        mask[row_perm[rows], col_perm[slots]] = True
        return mask
    assert z is not None
    sched = clash_free_schedule(n_left, n_right, d_out, z, seed, cf_type=cf_type, dither=dither)
    rows = torch.arange(n_right).repeat_interleave(d_in)
    mask[rows, sched] = True
    return mask


def density(mask: torch.Tensor) -> float:
    """Fraction of possible edges present: ``|W| / (n_left n_right)``."""
    return float(mask.sum()) / mask.numel()


__all__ = [
    "CLASH_FREE_TYPES",
    "KINDS",
    "adjacency",
    "clash_free_schedule",
    "density",
    "feasible_out_degrees",
    "in_degree",
    "nearest_out_degree",
]
