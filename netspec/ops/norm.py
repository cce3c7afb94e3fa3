"""batchnorm and layernorm; the normalised width comes from the input."""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PositiveFloat

from .base import Op, PositiveInt, ShapeError, StrictParams, fmt, prod


class BatchNormParams(StrictParams):
    eps: PositiveFloat = Field(1e-5, description="added to the variance for stability")
    momentum: NonNegativeFloat = Field(0.1, description="running statistics update factor")
    affine: bool = Field(True, description="learn a scale and a shift")


class BatchNorm(Op):
    """Batch normalisation over channels: BatchNorm1d for (N, C) or (N, C, L), 2d for images."""

    name = "batchnorm"
    Params = BatchNormParams
    ranks = (1, 2, 3, 4)

    def count_params(self, p, shapes):
        return 2 * shapes[0][0] if p.affine else 0

    def build(self, p, shapes):
        from torch import nn

        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(shapes[0])]
        return cls(shapes[0][0], eps=p.eps, momentum=p.momentum, affine=p.affine)


class LayerNormParams(StrictParams):
    dims: PositiveInt = Field(1, description="how many trailing dimensions to normalise over")
    eps: PositiveFloat = Field(1e-5, description="added to the variance for stability")
    affine: bool = Field(True, description="learn a scale and a shift")


class LayerNorm(Op):
    """Layer normalisation over the last `dims` dimensions (nn.LayerNorm)."""

    name = "layernorm"
    Params = LayerNormParams

    def normalized(self, p, shape):
        if p.dims > len(shape):
            raise ShapeError(f"cannot normalise over {p.dims} dimensions of an input {fmt(shape)}",
                             field="dims")
        return shape[len(shape) - p.dims:]

    def infer(self, p, shapes):
        self.normalized(p, shapes[0])
        return shapes[0]

    def count_params(self, p, shapes):
        return 2 * prod(self.normalized(p, shapes[0])) if p.affine else 0

    def build(self, p, shapes):
        from torch import nn

        return nn.LayerNorm(list(self.normalized(p, shapes[0])), eps=p.eps, elementwise_affine=p.affine)
