"""Element-wise activations and softmax: the shape passes through."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import NoParams, Op, ShapeError, StrictParams, fmt


def _module(class_name: str, **kwargs):
    from torch import nn

    return getattr(nn, class_name)(**kwargs)


class Simple(Op):
    """An activation with no parameters, built as `torch.nn.<module>`."""

    module: str = ""

    def build(self, p, shapes):
        return _module(self.module)


class ReLU(Simple):
    """max(0, x)."""
    name, module = "relu", "ReLU"


class ReLU6(Simple):
    """min(max(0, x), 6), as in MobileNet."""
    name, module = "relu6", "ReLU6"


class Sigmoid(Simple):
    """1 / (1 + exp(-x)), LeNet's activation."""
    name, module = "sigmoid", "Sigmoid"


class Tanh(Simple):
    """Hyperbolic tangent."""
    name, module = "tanh", "Tanh"


class SiLU(Simple):
    """x * sigmoid(x) (swish)."""
    name, module = "silu", "SiLU"


class Identity(Simple):
    """Passes its input through unchanged."""
    name, module = "identity", "Identity"


class GeluParams(StrictParams):
    approximate: Literal["none", "tanh"] = Field("none", description="exact or tanh approximation")


class GELU(Op):
    """Gaussian error linear unit."""

    name = "gelu"
    Params = GeluParams

    def build(self, p, shapes):
        return _module("GELU", approximate=p.approximate)


class LeakyParams(StrictParams):
    slope: float = Field(0.01, description="slope for negative inputs (any number, as in PyTorch)")


class LeakyReLU(Op):
    """max(0, x) + slope * min(0, x)."""

    name = "leaky_relu"
    Params = LeakyParams
    primary = "slope"

    def build(self, p, shapes):
        return _module("LeakyReLU", negative_slope=p.slope)


class SoftmaxParams(StrictParams):
    dim: int = Field(1, description="dimension to normalise, counting the batch as 0 (which is refused)")


class Softmax(Op):
    """Softmax along `dim` (PyTorch numbering: the batch is dimension 0)."""

    name = "softmax"
    Params = SoftmaxParams
    primary = "dim"

    def infer(self, p, shapes):
        rank = len(shapes[0]) + 1
        if not -rank <= p.dim < rank:
            raise ShapeError(f"dim {p.dim} is out of range for a {rank}-d input {fmt(shapes[0])}",
                             field="dim")
        if p.dim % rank == 0:  # each sample's output would depend on the others in its batch
            raise ShapeError(f"dim {p.dim} is the batch dimension: softmax over it mixes the samples of a batch",
                             hint="dim 1 (the default) is the channels or features; -1 is the last dimension",
                             field="dim")
        return shapes[0]

    def build(self, p, shapes):
        return _module("Softmax", dim=p.dim)


__all__ = ["NoParams"]
