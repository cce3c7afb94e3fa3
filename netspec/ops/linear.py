"""linear: a fully connected layer over the last dimension; in_features is inferred."""

from __future__ import annotations

from pydantic import Field

from .base import Op, PositiveInt, StrictParams, prod


class LinearParams(StrictParams):
    out: PositiveInt = Field(description="output features")
    bias: bool = Field(True, description="learn an additive bias")


class Linear(Op):
    """Fully connected layer applied to the last dimension (nn.Linear)."""

    name = "linear"
    Params = LinearParams
    primary = "out"

    def infer(self, p: LinearParams, shapes):
        return (*shapes[0][:-1], p.out)

    def count_params(self, p: LinearParams, shapes):
        return shapes[0][-1] * p.out + (p.out if p.bias else 0)

    def flops(self, p: LinearParams, shapes, out):
        return 2 * prod(shapes[0]) * p.out

    def build(self, p: LinearParams, shapes):
        from torch import nn

        return nn.Linear(shapes[0][-1], p.out, bias=p.bias)
