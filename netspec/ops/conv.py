"""conv: 1-d/2-d/3-d convolution; in_channels comes from the input."""

from __future__ import annotations

from math import prod
from typing import Literal

from pydantic import Field

from .base import NonNegativeInt, Op, PositiveInt, ShapeError, StrictParams, fmt, tuple_of

IntOrList = PositiveInt | list[PositiveInt]


class ConvParams(StrictParams):
    out: PositiveInt = Field(description="output channels")
    kernel: IntOrList = Field(description="kernel size, one int or one per spatial dimension")
    stride: IntOrList = Field(1, description="stride")
    padding: NonNegativeInt | list[NonNegativeInt] | Literal["same", "valid"] = Field(
        0, description="zero padding per side, or 'same' / 'valid'")
    dilation: IntOrList = Field(1, description="spacing between kernel elements")
    groups: PositiveInt = Field(1, description="blocked connections; groups = in channels is depthwise")
    bias: bool = Field(True, description="learn an additive bias")


def conv_output(size: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """PyTorch's formula: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


class Conv(Op):
    """Convolution over 1, 2 or 3 spatial dimensions (Conv1d/2d/3d by input rank)."""

    name = "conv"
    Params = ConvParams
    primary = "out"
    ranks = (2, 3, 4)

    def rank_hint(self, shape):
        return "a conv needs (N, C, ...) input; a flatten or linear before it removed the spatial dimensions"

    def geometry(self, p: ConvParams, shape):
        n = len(shape) - 1
        if p.kernel.__class__ is p.stride.__class__ is p.dilation.__class__ is p.padding.__class__ is int:
            return n, (p.kernel,) * n, (p.stride,) * n, (p.padding,) * n, (p.dilation,) * n  # the usual case
        kernel = tuple_of(p.kernel, n, "kernel", "kernel")
        stride = tuple_of(p.stride, n, "stride", "stride")
        dilation = tuple_of(p.dilation, n, "dilation", "dilation")
        if p.padding == "same":
            if any(s != 1 for s in stride):
                raise ShapeError("padding 'same' is not supported for strided convolutions "
                                 "(PyTorch refuses it)", field="padding",
                                 hint="use stride 1, or give the padding as a number")
            padding = None
        else:
            padding = (0,) * n if p.padding == "valid" else tuple_of(p.padding, n, "padding", "padding")
        return n, kernel, stride, padding, dilation

    def infer(self, p: ConvParams, shapes):
        return self.rules(p, shapes)[0]

    def count_params(self, p: ConvParams, shapes):
        return self.rules(p, shapes)[1]

    def flops(self, p: ConvParams, shapes, out):
        return self.rules(p, shapes)[2]

    def rules(self, p: ConvParams, shapes):
        """Shape, parameters and FLOPs from one reading of the geometry."""
        self.check_inputs(shapes)
        shape = shapes[0]
        channels = shape[0]
        n, kernel, stride, padding, dilation = self.geometry(p, shape)
        if channels % p.groups:
            raise ShapeError(f"input channels ({channels}) must be divisible by groups ({p.groups})",
                             field="groups")
        if p.out % p.groups:
            raise ShapeError(f"out channels ({p.out}) must be divisible by groups ({p.groups})",
                             field="groups")
        if padding is None:
            out = (p.out, *shape[1:])
        else:
            sizes = []
            for size, k, s, pad, d in zip(shape[1:], kernel, stride, padding, dilation):
                effective = d * (k - 1) + 1
                if size + 2 * pad < effective:
                    raise ShapeError(
                        f"kernel {effective} (dilated) is larger than the padded input {size + 2 * pad} "
                        f"(input {fmt(shape)}, padding {pad})", field="kernel",
                        hint="use a smaller kernel or more padding, or a larger input")
                sizes.append(conv_output(size, k, s, pad, d))
            out = (p.out, *sizes)
        taps = (channels // p.groups) * prod(kernel)
        return out, p.out * taps + (p.out if p.bias else 0), 2 * prod(out) * taps

    def build(self, p: ConvParams, shapes):
        from torch import nn

        n, kernel, stride, padding, dilation = self.geometry(p, shapes[0])
        cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[n - 1]
        return cls(shapes[0][0], p.out, kernel, stride=stride,
                   padding="same" if padding is None else padding,
                   dilation=dilation, groups=p.groups, bias=p.bias)
