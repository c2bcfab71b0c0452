"""Convolutional networks: the Deep-n-Cheap CNN search space (DESIGN §3, CNN space; Stage 2).

Candidate keys (groups): ``num_conv_layers`` and ``channels_{i}`` (core; ``channels_0`` in
``core.first_channels``, then ``channels_i`` in ``[c_{i-1}, min(2 c_{i-1}, core.max_channels)]``);
``activation``, ``downsample``, ``bn_fraction``, ``dropout_fraction``, ``drop_in``,
``drop_other``, ``shortcut_every``, ``kernel_taps`` (arch, held at the paper's defaults until
the grid stage); ``lr``, ``weight_decay``, ``batch_size`` (train). Every value is a JSON scalar
and an Optuna categorical choice, so any stage may search any group:

- ``downsample``: one letter per pool location of the paper's rule, in order: ``m`` a 2x2
  max-pool after that layer, ``s`` that layer's conv with stride 2 (``"mmm"``: all max-pools).
  Letters past the network's pool locations are ignored and kept at ``m``.
- ``bn_fraction`` / ``dropout_fraction``: the fraction of layers with batch-norm / dropout,
  placed as late as possible; ``drop_in`` / ``drop_other``: the drop probability of the first
  layer / the others.
- ``shortcut_every``: ``"auto"`` (the paper's rule for the depth), 0 (none), 4 or 2.
- ``kernel_taps``: nonzero taps per 3x3 kernel of layers 1.. (9 dense, 4 or 2; ``dnc_cnn.sparse``).

The space's settings come in groups (``dnc_cnn.settings``): ``core`` (``CNNCore``), ``arch``
(``CNNArch``), ``kernel_sparsity`` (``KernelSparsity``) and ``training``
(``dnc.plugins.TrainingBounds``); on the command line, e.g. ``search_space.core.conv_layers=[4,6]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dnc.plugins import (
    Candidate,
    DataSpec,
    SearchSpace,
    Suggest,
    TrainingBounds,
    UserError,
    settings_from,
    suggest_training,
)
from dnc_cnn.layout import (
    ConvPlan,
    late_layers,
    max_halvings,
    paper_shortcut_every,
    pool_locations,
    shortcut_starts,
)
from dnc_cnn.settings import SUBSTAGES, CNNArch, CNNCore, KernelSparsity

if TYPE_CHECKING:
    from torch import nn


class CNNSpace(SearchSpace):
    """CNNs of 3x3 convs with searched depth and widths, then grid-tuned architecture details.

    Each settings group is a config mapping, an instance of its dataclass, or ``None`` (its
    defaults); an unknown key is a ``UserError`` naming it and the valid ones.

    ``grid_substages()`` is ``arch.grid_order`` (default: activation, downsampling, batchnorm,
    dropout, shortcuts), plus ``kernel_sparsity`` when ``kernel_sparsity.enabled``. Each
    ``grid(substage, candidate)`` variant is a complete candidate; the list is deterministic and
    includes the candidate's own setting (the grid stage skips what was already tried).

    Example:
        >>> space = CNNSpace(core=CNNCore(conv_layers=(4, 16), first_channels=(16, 64)))
        >>> cand = space.reference_candidate()
        >>> space.widths(cand), cand["downsample"], cand["shortcut_every"]
        ([32, 32, 64, 64, 128, 128, 256, 256], 'mmm', 'auto')
        >>> [v["downsample"] for v in space.grid("downsampling", cand)]
        ['mmm', 'msm', 'smm', 'ssm']
    """

    name = "cnn"

    def __init__(
        self,
        *,
        core: CNNCore | Mapping[str, Any] | None = None,
        arch: CNNArch | Mapping[str, Any] | None = None,
        kernel_sparsity: KernelSparsity | Mapping[str, Any] | None = None,
        training: TrainingBounds | Mapping[str, Any] | None = None,
    ) -> None:
        self.core = settings_from(CNNCore, core, "search_space.core")
        self.arch = settings_from(CNNArch, arch, "search_space.arch")
        self.kernel_sparsity = settings_from(
            KernelSparsity, kernel_sparsity, "search_space.kernel_sparsity"
        )
        self.training = settings_from(TrainingBounds, training, "search_space.training")
        self.check()

    # -- settings -----------------------------------------------------------------------------
    def check(self) -> None:
        """What spans settings groups (each group checks its own fields)."""
        if "kernel_sparsity" in self.arch.grid_order and not self.kernel_sparsity.enabled:
            raise UserError(
                "search_space.arch.grid_order lists kernel_sparsity but "
                "search_space.kernel_sparsity.enabled is false; set it to true"
            )
        self.training.check()

    # -- sampling -----------------------------------------------------------------------------
    def _downsample_choices(self) -> tuple[str, ...]:
        letters = itertools.product("ms", repeat=len(self.core.pool_thresholds))
        return tuple("".join(p) for p in letters)

    def _tap_choices(self) -> tuple[int, ...]:
        ks = self.kernel_sparsity
        if not ks.enabled:
            return (ks.taps,)
        return tuple(dict.fromkeys((*ks.tap_choices, ks.taps)))

    def sample(self, suggest: Suggest) -> Candidate:
        core, a = self.core, self.arch
        lo, hi = core.conv_layers
        default_n = min(max(len(core.default_channels), lo), hi)
        n = suggest.int("num_conv_layers", lo, hi, group="core", default=default_n)
        cand: Candidate = {"num_conv_layers": n}
        low, high = core.first_channels
        for i in range(n):
            default = core.default_channels[min(i, len(core.default_channels) - 1)]
            width = suggest.int(
                f"channels_{i}", low, high, group="core", default=min(max(default, low), high)
            )
            cand[f"channels_{i}"] = width
            low, high = width, min(2 * width, core.max_channels)

        def choose(name: str, choices: Sequence[Any], default: Any) -> None:
            choices = tuple(dict.fromkeys((*choices, default)))  # the default is always a choice
            cand[name] = suggest.categorical(name, choices, group="arch", default=default)

        choose("activation", a.activations, a.activation)
        choose("downsample", self._downsample_choices(), "m" * len(core.pool_thresholds))
        choose("bn_fraction", a.bn_fractions, a.bn_fraction)
        choose("dropout_fraction", a.dropout_fractions, a.dropout_fraction)
        choose("drop_in", a.drop_ins, a.drop_in)
        choose("drop_other", a.drop_others, a.drop_other)
        choose("shortcut_every", ("auto", *a.shortcut_everys), "auto")
        choose("kernel_taps", self._tap_choices(), self.kernel_sparsity.taps)
        cand.update(suggest_training(suggest, self.training))
        return cand

    # -- building -----------------------------------------------------------------------------
    @staticmethod
    def widths(candidate: Mapping[str, Any]) -> list[int]:
        """Output channels of every conv layer of a candidate."""
        return [int(candidate[f"channels_{i}"]) for i in range(int(candidate["num_conv_layers"]))]

    @staticmethod
    def shortcut_every(candidate: Mapping[str, Any]) -> int:
        """The candidate's shortcut spacing with ``"auto"`` resolved by the paper's rule."""
        every = candidate.get("shortcut_every", "auto")
        if every == "auto":
            return paper_shortcut_every(int(candidate["num_conv_layers"]))
        return int(every)

    def pool_locations(self, candidate: Mapping[str, Any]) -> list[int]:
        """Layers after which the paper's rule downsamples (before any cap for small inputs)."""
        return pool_locations(self.widths(candidate), self.core.pool_thresholds)

    def plan(self, candidate: Mapping[str, Any], data: DataSpec) -> ConvPlan:
        """The layer-by-layer plan of ``candidate`` for inputs of ``data.input_shape``."""
        if len(data.input_shape) != 3:
            raise UserError(
                f"search_space=cnn needs image inputs C x H x W, but the data's examples have "
                f"shape {tuple(data.input_shape)}; use search_space=mlp for flat data"
            )
        c_in, h, w = (int(s) for s in data.input_shape)
        widths = self.widths(candidate)
        n = len(widths)
        locs = self.pool_locations(candidate)[: max_halvings(h, w)]
        letters = str(candidate.get("downsample", "")).ljust(len(locs), "m")
        pool, stride = [False] * n, [1] * n
        for j, loc in enumerate(locs):
            if letters[j] == "s":
                stride[loc] = 2
            elif letters[j] == "m":
                pool[loc] = True
            else:
                raise UserError(f"candidate downsample={letters!r}: use letters m (max-pool) or s")
        a = self.arch
        bn = set(late_layers(float(candidate.get("bn_fraction", a.bn_fraction)), n))
        dropped = set(late_layers(float(candidate.get("dropout_fraction", a.dropout_fraction)), n))
        p_in = float(candidate.get("drop_in", a.drop_in))
        p_other = float(candidate.get("drop_other", a.drop_other))
        return ConvPlan(
            in_channels=c_in,
            num_classes=data.num_classes,
            channels=tuple(widths),
            pool=tuple(pool),
            stride=tuple(stride),
            bn=tuple(i in bn for i in range(n)),
            dropout=tuple((p_in if i == 0 else p_other) if i in dropped else 0.0 for i in range(n)),
            shortcuts=tuple(shortcut_starts(n, self.shortcut_every(candidate))),
            activation=str(candidate.get("activation", a.activation)),
            kernel_taps=int(candidate.get("kernel_taps", self.kernel_sparsity.taps)),
            kernel_dense_every=self.kernel_sparsity.dense_every,
        )

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        from dnc_cnn.network import ConvNet  # torch: only when a network is built

        return ConvNet(self.plan(candidate, data))

    def describe(self, candidate: Mapping[str, Any]) -> str:
        c, a = candidate, self.arch
        n_pools = len(self.pool_locations(c))
        text = (
            f"conv {'-'.join(map(str, self.widths(c)))} {c.get('activation', a.activation)} "
            f"ds {str(c.get('downsample', ''))[:n_pools] or '-'} "
            f"bn {float(c.get('bn_fraction', a.bn_fraction)):g} "
            f"drop {float(c.get('dropout_fraction', a.dropout_fraction)):g}"
            f"({float(c.get('drop_in', a.drop_in)):g}"
            f"/{float(c.get('drop_other', a.drop_other)):g}) "
            f"sc {c.get('shortcut_every', 'auto')}"
        )
        taps = int(c.get("kernel_taps", self.kernel_sparsity.taps))
        if taps != 9:
            text += f" taps {taps}/9"
        return (
            f"{text} lr {float(c['lr']):.2g} wd {float(c['weight_decay']):.2g} "
            f"bs {int(c['batch_size'])}"
        )

    # -- ramp kernel --------------------------------------------------------------------------
    def kernel_features(self) -> Sequence[Any]:
        """Layer-wise channel widths (bounds by the doubling rule) and the training
        hyperparameters; architecture choices searched by BO get ``dnc.bo``'s default
        categorical features."""
        from dnc.bo import LayerWidths, Scalar, doubling_bounds

        t, core = self.training, self.core
        bounds = doubling_bounds(core.first_channels, core.max_channels, core.conv_layers[1])
        return (
            LayerWidths("channels_{i}", count="num_conv_layers", bounds=bounds),
            Scalar("lr", *t.lr, log=True),
            Scalar("weight_decay", *t.weight_decay, log=True, zero_at_lower=True),
            Scalar("batch_size", *t.batch_size),
        )

    # -- grid ---------------------------------------------------------------------------------
    def grid_substages(self) -> Sequence[str]:
        order = list(self.arch.grid_order)
        if self.kernel_sparsity.enabled and "kernel_sparsity" not in order:
            order.append("kernel_sparsity")
        return tuple(order)

    def grid(self, substage: str, candidate: Mapping[str, Any]) -> list[Candidate]:
        c = dict(candidate)
        if substage == "activation":
            return [{**c, "activation": a} for a in self.arch.activations]
        if substage == "downsampling":
            k = len(self.pool_locations(c))
            tail = "m" * (len(self.core.pool_thresholds) - k)
            combos = itertools.product("ms", repeat=k)
            return [{**c, "downsample": "".join(p) + tail} for p in combos]
        if substage == "batchnorm":
            return [{**c, "bn_fraction": f} for f in self.arch.bn_fractions]
        if substage == "dropout":
            return self._dropout_variants(c)
        if substage == "shortcuts":
            # the variant that "auto" already is stays "auto", so it is recognised as tried
            same = self.shortcut_every(c) if c.get("shortcut_every", "auto") == "auto" else None
            everys = self.arch.shortcut_everys
            return [c if e == same else {**c, "shortcut_every": e} for e in everys]
        if substage == "kernel_sparsity":
            if not self.kernel_sparsity.enabled:
                raise UserError(
                    "grid sub-stage kernel_sparsity needs search_space.kernel_sparsity.enabled=true"
                )
            return [{**c, "kernel_taps": t} for t in self._tap_choices()]
        return super().grid(substage, candidate)

    def _dropout_variants(self, c: Candidate) -> list[Candidate]:
        """Fractions x other-layer probabilities x (first-layer probabilities, when the first
        layer has dropout). Probabilities that do not apply keep the candidate's values."""
        n, a = int(c["num_conv_layers"]), self.arch
        out: list[Candidate] = []
        for frac in a.dropout_fractions:
            layers = late_layers(frac, n)
            if not layers:
                out.append({**c, "dropout_fraction": frac})
                continue
            keep_other = (c.get("drop_other", a.drop_other),)
            others = a.drop_others if any(i > 0 for i in layers) else keep_other
            firsts = a.drop_ins if 0 in layers else (c.get("drop_in", a.drop_in),)
            for p_other in others:
                for p_in in firsts:
                    out.append(
                        {**c, "dropout_fraction": frac, "drop_in": p_in, "drop_other": p_other}
                    )
        return out


__all__ = ["SUBSTAGES", "CNNArch", "CNNCore", "CNNSpace", "KernelSparsity"]
