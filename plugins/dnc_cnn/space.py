"""Convolutional networks: the Deep-n-Cheap CNN search space (DESIGN §3, CNN space; Stage 2).

Candidate keys (groups): ``num_conv_layers`` and ``channels_{i}`` (core; ``channels_0`` in
``first_channels``, then ``channels_i`` in ``[c_{i-1}, min(2 c_{i-1}, max_channels)]``);
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
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

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
from dnc.train.activations import check_activations
from dnc_cnn.network import (
    ConvNet,
    ConvPlan,
    late_layers,
    max_halvings,
    paper_shortcut_every,
    pool_locations,
    shortcut_starts,
)
from dnc_cnn.sparse import TAPS

SUBSTAGES = ("activation", "downsampling", "batchnorm", "dropout", "shortcuts", "kernel_sparsity")


class CNNSpace(SearchSpace):
    """CNNs of 3x3 convs with searched depth and widths, then grid-tuned architecture details.

    ``grid_substages()`` is ``grid_order`` (default: activation, downsampling, batchnorm,
    dropout, shortcuts), plus ``kernel_sparsity`` when ``kernel_sparsity`` is on. Each
    ``grid(substage, candidate)`` variant is a complete candidate; the list is deterministic and
    includes the candidate's own setting (the grid stage skips what was already tried).

    Example:
        >>> space = CNNSpace(conv_layers=(4, 16), first_channels=(16, 64))
        >>> cand = space.reference_candidate()
        >>> space.widths(cand), cand["downsample"], cand["shortcut_every"]
        ([32, 32, 64, 64, 128, 128, 256, 256], 'mmm', 'auto')
        >>> [v["downsample"] for v in space.grid("downsampling", cand)]
        ['mmm', 'msm', 'smm', 'ssm']
    """

    name = "cnn"

    def __init__(
        self,
        conv_layers: Sequence[int] = (4, 16),
        first_channels: Sequence[int] = (16, 64),
        max_channels: int = 512,
        default_channels: Sequence[int] = (32, 32, 64, 64, 128, 128, 256, 256),
        pool_thresholds: Sequence[int] = (64, 128, 256),
        activation: str = "relu",
        activations: Sequence[str] = ("relu", "leaky_relu", "elu", "gelu"),
        bn_fraction: float = 1.0,
        bn_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
        dropout_fraction: float = 1.0,
        dropout_fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
        drop_in: float = 0.1,
        drop_ins: Sequence[float] = (0.1, 0.2),
        drop_other: float = 0.3,
        drop_others: Sequence[float] = (0.15, 0.3, 0.45),
        shortcut_everys: Sequence[int] = (0, 4, 2),
        kernel_sparsity: bool = False,
        kernel_taps: int = 9,
        kernel_tap_choices: Sequence[int] = (9, 4, 2),
        kernel_dense_every: int = 8,
        grid_order: Sequence[str] = ("activation", "downsampling", "batchnorm", "dropout",
                                     "shortcuts"),
        training: TrainingBounds | Mapping[str, Any] | None = None,
    ) -> None:
        self.conv_layers = (int(conv_layers[0]), int(conv_layers[1]))
        self.first_channels = (int(first_channels[0]), int(first_channels[1]))
        self.max_channels = int(max_channels)
        self.default_channels = tuple(int(c) for c in default_channels)
        self.pool_thresholds = tuple(int(t) for t in pool_thresholds)
        self.activation = str(activation)
        self.activations = tuple(str(a) for a in activations)
        self.bn_fraction = float(bn_fraction)
        self.bn_fractions = tuple(float(f) for f in bn_fractions)
        self.dropout_fraction = float(dropout_fraction)
        self.dropout_fractions = tuple(float(f) for f in dropout_fractions)
        self.drop_in = float(drop_in)
        self.drop_ins = tuple(float(p) for p in drop_ins)
        self.drop_other = float(drop_other)
        self.drop_others = tuple(float(p) for p in drop_others)
        self.shortcut_everys = tuple(int(e) for e in shortcut_everys)
        if not isinstance(kernel_sparsity, bool):
            raise UserError(f"search_space.kernel_sparsity={kernel_sparsity!r}: use true or false")
        self.kernel_sparsity = kernel_sparsity
        self.kernel_taps = int(kernel_taps)
        self.kernel_tap_choices = tuple(int(t) for t in kernel_tap_choices)
        self.kernel_dense_every = int(kernel_dense_every)
        self.grid_order = tuple(str(s) for s in grid_order)
        self.training = settings_from(TrainingBounds, training, "search_space.training")
        self.check()

    # -- settings -----------------------------------------------------------------------------
    def check(self) -> None:
        lo, hi = self.conv_layers
        if not 1 <= lo <= hi:
            raise UserError(f"search_space.conv_layers=[{lo}, {hi}] must satisfy 1 <= low <= high")
        c_lo, c_hi = self.first_channels
        if not 1 <= c_lo <= c_hi <= self.max_channels:
            raise UserError(
                f"search_space.first_channels=[{c_lo}, {c_hi}] must satisfy "
                f"1 <= low <= high <= max_channels ({self.max_channels})"
            )
        if not self.default_channels or min(self.default_channels) < 1:
            raise UserError("search_space.default_channels must list one or more positive widths")
        if list(self.pool_thresholds) != sorted(set(self.pool_thresholds)):
            raise UserError(
                f"search_space.pool_thresholds={list(self.pool_thresholds)} must increase strictly"
            )
        check_activations((self.activation, *self.activations))
        fractions = {"bn_fraction": (self.bn_fraction, *self.bn_fractions),
                     "dropout_fraction": (self.dropout_fraction, *self.dropout_fractions)}
        for what, values in fractions.items():
            if not all(0.0 <= f <= 1.0 for f in values):
                raise UserError(f"search_space.{what}(s) must lie in [0, 1], got {list(values)}")
        probs = (self.drop_in, *self.drop_ins, self.drop_other, *self.drop_others)
        if not all(0.0 <= p < 1.0 for p in probs):
            raise UserError(
                f"search_space dropout probabilities must lie in [0, 1), got {list(probs)}"
            )
        if not self.shortcut_everys or any(e < 0 for e in self.shortcut_everys):
            raise UserError(
                f"search_space.shortcut_everys={list(self.shortcut_everys)}: give numbers >= 0 "
                "(0: no shortcuts)"
            )
        bad_taps = [t for t in (self.kernel_taps, *self.kernel_tap_choices) if t not in TAPS]
        if bad_taps:
            raise UserError(
                f"search_space.kernel_taps {bad_taps[0]}: choose 9 (dense), 4 or 2 nonzero taps"
            )
        if self.kernel_dense_every < 0:
            raise UserError("search_space.kernel_dense_every must be >= 0 (0: no dense kernels)")
        unknown_sub = [s for s in self.grid_order if s not in SUBSTAGES]
        if unknown_sub:
            raise UserError(
                f"search_space.grid_order: unknown sub-stage {unknown_sub[0]!r}; choose from "
                f"{', '.join(SUBSTAGES)}"
            )
        if "kernel_sparsity" in self.grid_order and not self.kernel_sparsity:
            raise UserError(
                "search_space.grid_order lists kernel_sparsity but search_space.kernel_sparsity "
                "is false; set it to true"
            )
        self.training.check()

    # -- sampling -----------------------------------------------------------------------------
    def _downsample_choices(self) -> tuple[str, ...]:
        return tuple("".join(p) for p in itertools.product("ms", repeat=len(self.pool_thresholds)))

    def _tap_choices(self) -> tuple[int, ...]:
        if not self.kernel_sparsity:
            return (self.kernel_taps,)
        return tuple(dict.fromkeys((*self.kernel_tap_choices, self.kernel_taps)))

    def sample(self, suggest: Suggest) -> Candidate:
        lo, hi = self.conv_layers
        default_n = min(max(len(self.default_channels), lo), hi)
        n = suggest.int("num_conv_layers", lo, hi, group="core", default=default_n)
        cand: Candidate = {"num_conv_layers": n}
        low, high = self.first_channels
        for i in range(n):
            default = self.default_channels[min(i, len(self.default_channels) - 1)]
            width = suggest.int(f"channels_{i}", low, high, group="core",
                                default=min(max(default, low), high))
            cand[f"channels_{i}"] = width
            low, high = width, min(2 * width, self.max_channels)

        def arch(name: str, choices: Sequence[Any], default: Any) -> None:
            choices = tuple(dict.fromkeys((*choices, default)))  # the default is always a choice
            cand[name] = suggest.categorical(name, choices, group="arch", default=default)

        arch("activation", self.activations, self.activation)
        arch("downsample", self._downsample_choices(), "m" * len(self.pool_thresholds))
        arch("bn_fraction", self.bn_fractions, self.bn_fraction)
        arch("dropout_fraction", self.dropout_fractions, self.dropout_fraction)
        arch("drop_in", self.drop_ins, self.drop_in)
        arch("drop_other", self.drop_others, self.drop_other)
        arch("shortcut_every", ("auto", *self.shortcut_everys), "auto")
        arch("kernel_taps", self._tap_choices(), self.kernel_taps)
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
        return pool_locations(self.widths(candidate), self.pool_thresholds)

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
        bn = set(late_layers(float(candidate.get("bn_fraction", self.bn_fraction)), n))
        do_fraction = float(candidate.get("dropout_fraction", self.dropout_fraction))
        dropped = set(late_layers(do_fraction, n))
        p_in = float(candidate.get("drop_in", self.drop_in))
        p_other = float(candidate.get("drop_other", self.drop_other))
        return ConvPlan(
            in_channels=c_in, num_classes=data.num_classes, channels=tuple(widths),
            pool=tuple(pool), stride=tuple(stride), bn=tuple(i in bn for i in range(n)),
            dropout=tuple((p_in if i == 0 else p_other) if i in dropped else 0.0 for i in range(n)),
            shortcuts=tuple(shortcut_starts(n, self.shortcut_every(candidate))),
            activation=str(candidate.get("activation", self.activation)),
            kernel_taps=int(candidate.get("kernel_taps", self.kernel_taps)),
            kernel_dense_every=self.kernel_dense_every,
        )

    def build(self, candidate: Mapping[str, Any], data: DataSpec) -> nn.Module:
        return ConvNet(self.plan(candidate, data))

    def describe(self, candidate: Mapping[str, Any]) -> str:
        c = candidate
        n_pools = len(self.pool_locations(c))
        text = (
            f"conv {'-'.join(map(str, self.widths(c)))} {c.get('activation', self.activation)} "
            f"ds {str(c.get('downsample', ''))[:n_pools] or '-'} "
            f"bn {float(c.get('bn_fraction', self.bn_fraction)):g} "
            f"drop {float(c.get('dropout_fraction', self.dropout_fraction)):g}"
            f"({float(c.get('drop_in', self.drop_in)):g}"
            f"/{float(c.get('drop_other', self.drop_other)):g}) "
            f"sc {c.get('shortcut_every', 'auto')}"
        )
        taps = int(c.get("kernel_taps", self.kernel_taps))
        if taps != 9:
            text += f" taps {taps}/9"
        return (f"{text} lr {float(c['lr']):.2g} wd {float(c['weight_decay']):.2g} "
                f"bs {int(c['batch_size'])}")

    # -- ramp kernel --------------------------------------------------------------------------
    def kernel_features(self) -> Sequence[Any]:
        """Layer-wise channel widths (bounds by the doubling rule) and the training
        hyperparameters; architecture choices searched by BO get ``dnc.bo``'s default
        categorical features."""
        from dnc.bo import LayerWidths, Scalar, doubling_bounds

        t = self.training
        bounds = doubling_bounds(self.first_channels, self.max_channels, self.conv_layers[1])
        return (
            LayerWidths("channels_{i}", count="num_conv_layers", bounds=bounds),
            Scalar("lr", *t.lr, log=True),
            Scalar("weight_decay", *t.weight_decay, log=True, zero_at_lower=True),
            Scalar("batch_size", *t.batch_size),
        )

    # -- grid ---------------------------------------------------------------------------------
    def grid_substages(self) -> Sequence[str]:
        order = list(self.grid_order)
        if self.kernel_sparsity and "kernel_sparsity" not in order:
            order.append("kernel_sparsity")
        return tuple(order)

    def grid(self, substage: str, candidate: Mapping[str, Any]) -> list[Candidate]:
        c = dict(candidate)
        if substage == "activation":
            return [{**c, "activation": a} for a in self.activations]
        if substage == "downsampling":
            k = len(self.pool_locations(c))
            tail = "m" * (len(self.pool_thresholds) - k)
            combos = itertools.product("ms", repeat=k)
            return [{**c, "downsample": "".join(p) + tail} for p in combos]
        if substage == "batchnorm":
            return [{**c, "bn_fraction": f} for f in self.bn_fractions]
        if substage == "dropout":
            return self._dropout_variants(c)
        if substage == "shortcuts":
            # the variant that "auto" already is stays "auto", so it is recognised as tried
            same = self.shortcut_every(c) if c.get("shortcut_every", "auto") == "auto" else None
            return [c if e == same else {**c, "shortcut_every": e} for e in self.shortcut_everys]
        if substage == "kernel_sparsity":
            if not self.kernel_sparsity:
                raise UserError(
                    "grid sub-stage kernel_sparsity needs search_space.kernel_sparsity=true"
                )
            return [{**c, "kernel_taps": t} for t in self._tap_choices()]
        return super().grid(substage, candidate)

    def _dropout_variants(self, c: Candidate) -> list[Candidate]:
        """Fractions x other-layer probabilities x (first-layer probabilities, when the first
        layer has dropout). Probabilities that do not apply keep the candidate's values."""
        n = int(c["num_conv_layers"])
        out: list[Candidate] = []
        for frac in self.dropout_fractions:
            layers = late_layers(frac, n)
            if not layers:
                out.append({**c, "dropout_fraction": frac})
                continue
            keep_other = (c.get("drop_other", self.drop_other),)
            others = self.drop_others if any(i > 0 for i in layers) else keep_other
            firsts = self.drop_ins if 0 in layers else (c.get("drop_in", self.drop_in),)
            for p_other in others:
                for p_in in firsts:
                    out.append({**c, "dropout_fraction": frac, "drop_in": p_in,
                                "drop_other": p_other})
        return out
