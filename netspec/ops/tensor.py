"""Ops that reshape or regularise without learning: flatten, dropout."""

from __future__ import annotations

from pydantic import Field, confloat

from .base import Op, ShapeError, StrictParams, fmt, prod


class FlattenParams(StrictParams):
    start: int = Field(1, description="first dimension to flatten (the batch is 0)")
    end: int = Field(-1, description="last dimension to flatten")


class Flatten(Op):
    """Flattens dimensions start..end into one (nn.Flatten)."""

    name = "flatten"
    Params = FlattenParams

    def infer(self, p, shapes):
        full = (None, *shapes[0])
        rank = len(full)
        start, end = (d + rank if d < 0 else d for d in (p.start, p.end))
        if not (0 <= start < rank and 0 <= end < rank):
            raise ShapeError(f"flatten dims {p.start}..{p.end} out of range for a {rank}-d input "
                             f"{fmt(shapes[0])}", field="start")
        if start > end:
            raise ShapeError(f"flatten start {p.start} comes after end {p.end}", field="start")
        if start == 0 and end > 0:
            raise ShapeError("flattening the batch dimension is not supported (it is symbolic)",
                             field="start")
        if start == end:
            return shapes[0]
        return (*full[1:start], prod(full[start:end + 1]), *full[end + 1:])

    def build(self, p, shapes):
        from torch import nn

        return nn.Flatten(p.start, p.end)


class DropoutParams(StrictParams):
    p: confloat(ge=0.0, le=1.0) = Field(0.5, description="probability of zeroing an element")


class Dropout(Op):
    """Zeroes elements with probability p during training (nn.Dropout)."""

    name = "dropout"
    Params = DropoutParams
    primary = "p"

    def build(self, p, shapes):
        from torch import nn

        return nn.Dropout(p.p)
