"""``ChannelShuffle``: the module form of ``F.channel_shuffle`` (ShuffleNet; the op is
``ops.shape.ChannelShuffleFn``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from ..module import Module


class ChannelShuffle(Module):
    """Interleave the channels of ``groups`` groups (as ``torch.nn.ChannelShuffle``).

    Args:
        groups: number of groups g to divide the channels in.

    Shape: (N, C, *) -> (N, C, *), C divisible by g.
    """

    def __init__(self, groups: int):
        super().__init__()
        if not isinstance(groups, int | np.integer) or isinstance(groups, bool):
            raise TypeError(f"ChannelShuffle: groups must be an int, got {groups!r}")
        self.groups = int(groups)

    def forward(self, input: Any) -> Any:
        return F.channel_shuffle(input, self.groups)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
