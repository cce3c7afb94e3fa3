"""Ops that join several inputs: add and mul (broadcasting), concat."""

from __future__ import annotations

import operator

from pydantic import Field

from .base import Call, Op, ShapeError, StrictParams, fmt


def broadcast(shapes, what: str):
    """PyTorch broadcasting over equal-rank inputs (the batch is shared)."""
    ranks = {len(s) for s in shapes}
    if len(ranks) > 1:
        raise ShapeError(f"{what} needs inputs of the same rank, got "
                         + ", ".join(fmt(s) for s in shapes))
    out = []
    for dims in zip(*shapes):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise ShapeError(f"cannot {what} shapes " + " and ".join(fmt(s) for s in shapes)
                             + " (sizes must match or be 1)",
                             hint="a projection (1x1 conv) on one branch can make the channels match")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


class _Elementwise(Op):
    inputs = (2, None)
    function = None

    def infer(self, p, shapes):
        return broadcast(shapes, self.name)

    def build(self, p, shapes):
        return Call(self.function)


class Add(_Elementwise):
    """Element-wise sum of two or more inputs (residual connections)."""

    name, function = "add", operator.add


class Mul(_Elementwise):
    """Element-wise product of two or more inputs (gating, squeeze-excitation)."""

    name, function = "mul", operator.mul


class ConcatParams(StrictParams):
    dim: int = Field(1, description="dimension to join along (the batch is 0; 1 = channels)")


class Concat(Op):
    """Joins inputs along `dim` (torch.cat); the other dimensions must match."""

    name = "concat"
    Params = ConcatParams
    inputs = (1, None)

    def infer(self, p, shapes):
        rank = len(shapes[0]) + 1
        if any(len(s) + 1 != rank for s in shapes):
            raise ShapeError("concat needs inputs of the same rank, got " + ", ".join(fmt(s) for s in shapes))
        if not -rank <= p.dim < rank:
            raise ShapeError(f"dim {p.dim} is out of range for {rank}-d inputs", field="dim")
        dim = p.dim % rank
        if dim == 0:
            raise ShapeError("cannot concatenate along the batch dimension", field="dim")
        axis = dim - 1
        for shape in shapes[1:]:
            if shape[:axis] + shape[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
                raise ShapeError(f"cannot concat {fmt(shapes[0])} and {fmt(shape)} along dim {p.dim}: "
                                 "the other dimensions differ",
                                 hint="pad or pool the branches to the same spatial size")
        total = sum(s[axis] for s in shapes)
        return (*shapes[0][:axis], total, *shapes[0][axis + 1:])

    def build(self, p, shapes):
        import torch

        return Call(torch.cat, {"dim": p.dim}, variadic=True)
