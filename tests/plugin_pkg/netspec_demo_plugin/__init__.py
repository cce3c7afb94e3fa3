"""Two example ops for netspec, registered by entry points (see pyproject.toml).

Like netspec's own ops, nothing here imports torch until `build` runs.
"""

from __future__ import annotations

from pydantic import Field, PositiveInt

from netspec.ops import Op, ShapeError
from netspec.ops.base import Params


class SpaceToDepthParams(Params):
    factor: PositiveInt = Field(2, description="block size: each factor x factor patch becomes channels")


class SpaceToDepth(Op):
    """Moves factor x factor spatial patches into channels (nn.PixelUnshuffle)."""

    name = "space_to_depth"
    Params = SpaceToDepthParams
    primary = "factor"
    ranks = (3,)

    def infer(self, p, shapes):
        c, h, w = shapes[0]
        if h % p.factor or w % p.factor:
            raise ShapeError(f"height {h} and width {w} must be divisible by factor {p.factor}", field="factor")
        return (c * p.factor ** 2, h // p.factor, w // p.factor)

    def build(self, p, shapes):
        from torch import nn

        return nn.PixelUnshuffle(p.factor)


class ChannelScale(Op):
    """Multiplies each channel by a learned scale, initialised to 1."""

    name = "channel_scale"

    def count_params(self, p, shapes):
        return shapes[0][0]

    def flops(self, p, shapes, out):
        n = 1
        for d in out:
            n *= d
        return n

    def build(self, p, shapes):
        import torch
        from torch import nn

        class Scale(nn.Module):
            def __init__(self, channels: int, rank: int):
                super().__init__()
                self.weight = nn.Parameter(torch.ones(channels, *([1] * (rank - 1))))

            def forward(self, x):
                return x * self.weight

        return Scale(shapes[0][0], len(shapes[0]))
