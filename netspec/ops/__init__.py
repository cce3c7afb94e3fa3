"""All ops register themselves on import; adding an op means adding one class."""

from . import activation, conv, linear, merge, norm, pool, tensor  # noqa: F401
from .base import REGISTRY, Call, Op, Shape, ShapeError, fmt, get

__all__ = ["REGISTRY", "Call", "Op", "Shape", "ShapeError", "fmt", "get"]

# Ops from installed packages (entry point group `netspec.ops`), after the built-ins.
from ..plugins import load_plugins  # noqa: E402

load_plugins()
