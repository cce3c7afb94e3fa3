"""Pooling: max/avg with PyTorch's exact ceil_mode rule, adaptive and global pools."""

from __future__ import annotations

from pydantic import Field

from .base import NonNegativeInt, Op, PositiveInt, ShapeError, StrictParams, fmt, tuple_of

IntOrList = PositiveInt | list[PositiveInt]


def pool_output(size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """ATen's pooling_output_shape: floor or ceil, and the last window must start inside."""
    numerator = size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class PoolParams(StrictParams):
    kernel: IntOrList = Field(description="window size")
    stride: IntOrList | None = Field(None, description="step; defaults to the kernel size")
    padding: NonNegativeInt | list[NonNegativeInt] = Field(0, description="implicit padding per side")
    ceil_mode: bool = Field(False, description="round the output size up instead of down")


class MaxPoolParams(PoolParams):
    dilation: IntOrList = Field(1, description="spacing between window elements")


class AvgPoolParams(PoolParams):
    count_include_pad: bool = Field(True, description="count padded zeros in the average")


class _Pool(Op):
    primary = "kernel"
    ranks = (2, 3, 4)
    module = ""

    def geometry(self, p, shape):
        n = len(shape) - 1
        kernel = tuple_of(p.kernel, n, "kernel", "kernel")
        stride = tuple_of(p.stride if p.stride is not None else p.kernel, n, "stride", "stride")
        padding = tuple_of(p.padding, n, "padding", "padding")
        dilation = tuple_of(getattr(p, "dilation", 1), n, "dilation", "dilation")
        return n, kernel, stride, padding, dilation

    def infer(self, p, shapes):
        shape = shapes[0]
        _, kernel, stride, padding, dilation = self.geometry(p, shape)
        sizes = []
        for size, k, s, pad, d in zip(shape[1:], kernel, stride, padding, dilation):
            if pad > k // 2:
                raise ShapeError(f"padding {pad} is more than half the kernel size {k}", field="padding",
                                 hint="PyTorch requires padding <= kernel // 2 for pooling")
            out = pool_output(size, k, s, pad, d, p.ceil_mode)
            if out < 1:
                raise ShapeError(f"input {fmt(shape)} is too small for a {k}-wide pooling window "
                                 f"(output size would be {out})", field="kernel",
                                 hint="use a smaller kernel, padding, or a larger input")
            sizes.append(out)
        return (shape[0], *sizes)

    def build(self, p, shapes):
        from torch import nn

        n, kernel, stride, padding, dilation = self.geometry(p, shapes[0])
        cls = getattr(nn, f"{self.module}{n}d")
        extra = {"dilation": dilation} if self.module == "MaxPool" else {"count_include_pad": p.count_include_pad}
        return cls(kernel, stride=stride, padding=padding, ceil_mode=p.ceil_mode, **extra)


class MaxPool(_Pool):
    """Max pooling (MaxPool1d/2d/3d by input rank)."""

    name, module = "maxpool", "MaxPool"
    Params = MaxPoolParams


class AvgPool(_Pool):
    """Average pooling (AvgPool1d/2d/3d by input rank)."""

    name, module = "avgpool", "AvgPool"
    Params = AvgPoolParams

    def infer(self, p, shapes):
        shape = shapes[0]
        kernel = self.geometry(p, shape)[1]
        if len(shape) == 4 and any(size < k for size, k in zip(shape[1:], kernel)):
            raise ShapeError(f"input {fmt(shape)} is smaller than the 3-d pooling window "
                             f"{'x'.join(map(str, kernel))}", field="kernel",
                             hint="PyTorch's AvgPool3d needs the input before padding to be at least the kernel")
        return super().infer(p, shapes)


class AdaptiveParams(StrictParams):
    size: IntOrList = Field(1, description="output size, one int or one per spatial dimension")


class _Adaptive(Op):
    Params = AdaptiveParams
    primary = "size"
    ranks = (2, 3, 4)
    module = ""

    def infer(self, p, shapes):
        shape = shapes[0]
        return (shape[0], *tuple_of(p.size, len(shape) - 1, "size", "size"))

    def build(self, p, shapes):
        from torch import nn

        n = len(shapes[0]) - 1
        size = tuple_of(p.size, n, "size", "size")
        return getattr(nn, f"{self.module}{n}d")(size if n > 1 else size[0])


class AdaptiveAvgPool(_Adaptive):
    """Average pooling to a fixed output size, whatever the input size."""

    name, module = "adaptive_avgpool", "AdaptiveAvgPool"


class AdaptiveMaxPool(_Adaptive):
    """Max pooling to a fixed output size, whatever the input size."""

    name, module = "adaptive_maxpool", "AdaptiveMaxPool"


class GlobalAvgPool(Op):
    """Mean over all spatial positions: (N, C, H, W) -> (N, C)."""

    name = "global_avgpool"
    ranks = (2, 3, 4)

    def infer(self, p, shapes):
        return (shapes[0][0],)

    def build(self, p, shapes):
        from torch import nn

        n = len(shapes[0]) - 1
        pool = getattr(nn, f"AdaptiveAvgPool{n}d")(1)
        return nn.Sequential(pool, nn.Flatten(1))
