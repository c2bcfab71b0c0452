"""The CNN of the Deep-n-Cheap CNN space: the module a ``dnc_cnn.layout.ConvPlan`` describes
(the paper's placement rules are there). ``num_conv_layers`` blocks ``conv 3x3 -> [2x2
max-pool] -> [batch-norm] -> [+ shortcut] -> activation -> [dropout]``, then global average
pooling and one linear layer; a shortcut adds the output of layer ``s`` to layer ``s + 2``
before its activation, average-pooled for every downsampling in between and zero-padded to the
wider channel count.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from dnc.train.activations import activation
from dnc_cnn.layout import ConvPlan
from dnc_cnn.sparse import KernelSparseConv2d


class ConvNet(nn.Module):
    """The network of a ``ConvPlan``; maps ``batch x C x H x W`` to ``batch x num_classes``.

    ``count_params()`` counts the weights that may be nonzero (kernel-sparse convs count their
    mask), which the trainer reports as ``numparams``.

    Example:
        >>> plan = ConvPlan(1, 10, channels=(16, 32), pool=(False, False), stride=(1, 1),
        ...                 bn=(True, True), dropout=(0.1, 0.3), shortcuts=())
        >>> ConvNet(plan)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    def __init__(self, plan: ConvPlan) -> None:
        super().__init__()
        self.plan = plan
        act = activation(plan.activation)
        convs, pools, norms, acts, drops = [], [], [], [], []
        c_in = plan.in_channels
        for i, c in enumerate(plan.channels):
            bias = not plan.bn[i]  # a bias before batch-norm is redundant
            if i > 0 and plan.kernel_taps != 9:
                conv: nn.Module = KernelSparseConv2d(
                    c_in,
                    c,
                    taps=plan.kernel_taps,
                    dense_every=plan.kernel_dense_every,
                    stride=plan.stride[i],
                    padding=1,
                    bias=bias,
                )
            else:
                conv = nn.Conv2d(c_in, c, 3, stride=plan.stride[i], padding=1, bias=bias)
            convs.append(conv)
            pools.append(nn.MaxPool2d(2, ceil_mode=True) if plan.pool[i] else nn.Identity())
            norms.append(nn.BatchNorm2d(c) if plan.bn[i] else nn.Identity())
            acts.append(act())
            drops.append(nn.Dropout(plan.dropout[i]) if plan.dropout[i] > 0 else nn.Identity())
            c_in = c
        self.convs = nn.ModuleList(convs)
        self.pools = nn.ModuleList(pools)
        self.norms = nn.ModuleList(norms)
        self.acts = nn.ModuleList(acts)
        self.drops = nn.ModuleList(drops)
        self.head = nn.Linear(c_in, plan.num_classes)
        # shortcut from the output of layer s into layer s + 2: (halvings, extra channels)
        down = plan.downsamples
        self._save_before = frozenset(s + 1 for s in plan.shortcuts)
        self._join: dict[int, tuple[int, int]] = {
            s + 2: (int(down[s + 1]) + int(down[s + 2]), plan.channels[s + 2] - plan.channels[s])
            for s in plan.shortcuts
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x
        for i, (conv, pool, norm, act, drop) in enumerate(
            zip(self.convs, self.pools, self.norms, self.acts, self.drops, strict=True)
        ):
            if i in self._save_before:
                skip = x
            x = norm(pool(conv(x)))
            join = self._join.get(i)
            if join is not None:
                x = x + _match(skip, *join)
            x = drop(act(x))
        return self.head(x.mean(dim=(2, 3)))

    def count_params(self) -> int:
        """Trainable parameters that may be nonzero."""
        total = 0
        for module in self.modules():
            for name, p in module.named_parameters(recurse=False):
                if not p.requires_grad:
                    continue
                if name == "weight" and isinstance(module, KernelSparseConv2d):
                    total += module.nonzero_weights()
                else:
                    total += p.numel()
        return total


def _match(skip: torch.Tensor, halvings: int, extra_channels: int) -> torch.Tensor:
    """The shortcut branch: average-pool for each downsampling, zero-pad the new channels."""
    for _ in range(halvings):
        skip = F.avg_pool2d(skip, 2, ceil_mode=True)
    if extra_channels:
        skip = F.pad(skip, (0, 0, 0, 0, 0, extra_channels))
    return skip
