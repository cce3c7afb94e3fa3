"""The op registry: one small class per op, found by name.

An op is its parameter model (pydantic, the single source for validation,
the JSON Schema and `netspec list`), its exact PyTorch shape rule, its
parameter and FLOP counts, and how to build it. Shapes never include the
batch dimension, which stays symbolic. Building imports torch lazily so the
front end stays torch-free.
"""

from __future__ import annotations

import enum

import math
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

Shape = tuple[int, ...]
# The largest size, stride, padding or count netspec takes: PyTorch's pooling holds them in C ints
# (2**31 passed netspec's checks, then failed in the forward pass), and no real layer comes near.
MAX_INT = 2**31 - 1
PositiveInt = Annotated[int, Field(gt=0, le=MAX_INT)]
NonNegativeInt = Annotated[int, Field(ge=0, le=MAX_INT)]
REGISTRY: dict[str, type["Op"]] = {}


class ShapeError(Exception):
    """An input the op cannot take; `field` names the parameter to point at."""

    def __init__(self, message: str, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message, self.hint, self.field = message, hint, field


class Params(BaseModel):
    """Base of an op's parameters, a plugin's too: unknown keys are errors, a whole float is an integer,
    and otherwise pydantic's usual conversions apply (a list for a tuple, a string for an Enum)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _whole(cls, value):
        return whole(value)


def whole(value):
    """Whole floats as ints, in lists too: JSON Schema counts 2.0 as an integer, and `${c / 2}` gives one."""
    if value.__class__ is float and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [whole(v) for v in value]
    return value


def plain(value):
    """A parameter value as a spec writes it: an Enum (a plugin's) by its value, a tuple as a list."""
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class StrictParams(Params):
    """Base of the built-in ops' parameters: types are strict, as in the JSON Schema (`kernel: true`,
    `out: "4"` and `bias: 1` are errors). Built-in fields are plain numbers, booleans, lists and
    literals, which strict mode reads as YAML writes them; a plugin may opt in by subclassing this."""

    model_config = ConfigDict(strict=True)


class NoParams(StrictParams):
    pass


@dataclass
class Call:
    """A node built as a plain function call in the generated forward."""

    function: Any
    kwargs: dict = field(default_factory=dict)
    variadic: bool = False  # pass the inputs as one list (torch.cat)


class Op:
    """Base class; subclasses set `name` and `Params` and override the rules."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams
    primary: ClassVar[str | None] = None  # `linear: 10` means `linear: {out: 10}`
    inputs: ClassVar[tuple[int, int | None]] = (1, 1)  # min, max number of inputs
    ranks: ClassVar[tuple[int, ...] | None] = None  # accepted input ranks (no batch)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

    def check_inputs(self, shapes: list[Shape]) -> None:
        if self.ranks is None:
            return
        for shape in shapes:
            if len(shape) not in self.ranks:
                want = " or ".join(str(r + 1) for r in self.ranks)
                raise ShapeError(f"{self.name} expects a {want}-d input (batch included), "
                                 f"got {len(shape) + 1}-d {fmt(shape)}", hint=self.rank_hint(shape))

    def rank_hint(self, shape: Shape) -> str | None:
        return None

    def infer(self, p, shapes: list[Shape]) -> Shape:
        return shapes[0]

    def count_params(self, p, shapes: list[Shape]) -> int:
        return 0

    def flops(self, p, shapes: list[Shape], out: Shape) -> int:
        """FLOPs per sample, counting a multiply-add as 2 (torch.utils.flop_counter)."""
        return 0

    def rules(self, p, shapes: list[Shape]) -> tuple[Shape, int, int]:
        """Output shape, parameter count and FLOPs in one call (what elaboration needs of an op).

        A function of `p` and `shapes` alone: elaboration remembers its result for the same
        parameters object on the same input shapes (a failure is not remembered)."""
        self.check_inputs(shapes)
        out = self.infer(p, shapes)
        return out, self.count_params(p, shapes), self.flops(p, shapes, out)

    def build(self, p, shapes: list[Shape]):
        raise NotImplementedError


def fmt(shape: Shape) -> str:
    return "(N, " + ", ".join(map(str, shape)) + ")" if shape else "(N)"


def tuple_of(value, n: int, what: str, field_name: str) -> tuple[int, ...]:
    """Expand an int to n values, or check a list has n values."""
    if isinstance(value, int):
        return (value,) * n
    if len(value) != n:
        raise ShapeError(f"{what} has {len(value)} values but the input has {n} spatial "
                         f"dimension{'s' if n != 1 else ''}", field=field_name)
    return tuple(value)


def prod(values) -> int:
    return math.prod(values)


def get(name: str) -> type[Op] | None:
    return REGISTRY.get(name)
