"""`$name` and `${...}` expressions: data, never code.

An expression is parsed with `ast` and walked by a small evaluator that knows
numbers, strings, booleans, lists, arithmetic, comparisons, `and`/`or`/`not`,
`a if c else b`, a few pure functions, and the input shape as `in.channels`,
`in.height`, `in.width`, `in.features`, `in.rank`, `in.shape`. Anything else
(attribute access on other names, subscripts of unknown things, calls to
anything but the whitelist, lambdas, comprehensions, dunder names) is an
error. Nothing is ever passed to `eval`.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re

from .errors import did_you_mean

MAX_INT = 10**15
REF = re.compile(r"^\$([A-Za-z][A-Za-z0-9_]*)$")
INTERP = re.compile(r"\$\{([^}]*)\}")
IN_ATTR = re.compile(r"(?<![A-Za-z0-9_.])in\s*\.")
IN_NAME = "_in_"
SHAPE_ATTRS = ("channels", "height", "width", "features", "rank", "shape", "length")


class ExprError(Exception):
    """An expression that cannot be evaluated; the caller adds the location."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


class InShape:
    """The `in` object of expressions: the shape of the current input."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)

    def attr(self, name: str):
        shape = self.shape
        if name == "rank":
            return len(shape)
        if name == "shape":
            return list(shape)
        if name == "channels":
            return shape[0]
        if name == "features":
            return shape[-1]
        if name == "length" and len(shape) >= 2:
            return shape[1]
        if name == "height" and len(shape) >= 2:  # H of (C, H, W) and of a volume's (C, D, H, W)
            return shape[-2] if len(shape) >= 3 else shape[1]
        if name == "width" and len(shape) >= 3:  # W, the last
            return shape[-1]
        raise ExprError(f"in.{name} is not defined for an input of shape {fmt_shape(shape)}")


def fmt_shape(shape) -> str:
    return "(N, " + ", ".join(str(d) for d in shape) + ")" if shape else "(N)"


def _make_divisible(value, divisor, min_value=None):
    """The channel rounding of MobileNet (torchvision's `_make_divisible`)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


FUNCTIONS = {
    "min": min, "max": max, "abs": abs, "int": int, "float": float, "round": round,
    "floor": math.floor, "ceil": math.ceil, "len": len, "sum": sum,
    "make_divisible": _make_divisible,
}

ARITY = {"min": (1, None), "max": (1, None), "abs": (1, 1), "int": (1, 1), "float": (1, 1), "round": (1, 2),
         "floor": (1, 1), "ceil": (1, 1), "len": (1, 1), "sum": (1, 1), "make_divisible": (2, 3)}
SIGNATURES = {"make_divisible": "make_divisible(value, divisor, min_value=divisor)", "round": "round(x, digits=0)"}

_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}


def _check_size(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ExprError(f"number too large ({len(str(abs(value)))} digits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExprError("result is not a finite number")
    if isinstance(value, complex):
        raise ExprError("result is not a real number")
    return value


class _Evaluator:
    def __init__(self, names: dict, in_shape: InShape | None):
        self.names, self.in_shape = names, in_shape

    def visit(self, node):
        method = _VISITORS.get(node.__class__)
        if method is None:
            raise ExprError(f"'{type(node).__name__}' is not allowed in an expression",
                            hint="expressions allow numbers, names, arithmetic, comparisons, "
                                 "and/or/not, 'a if c else b', lists and " + ", ".join(sorted(FUNCTIONS)))
        return method(self, node)

    def visit_Expression(self, node):
        return self.visit(node.body)

    def visit_Constant(self, node):
        if isinstance(node.value, (int, float, str, bool)) or node.value is None:
            return _check_size(node.value)
        raise ExprError(f"constant {node.value!r} is not allowed")

    def visit_Name(self, node):
        name = node.id
        if name == IN_NAME:
            raise ExprError("'in' must be followed by a field, e.g. in.channels")
        if name.startswith("_"):
            raise ExprError(f"name '{name}' is not allowed (names starting with '_' are reserved)")
        if name in ("true", "True"):
            return True
        if name in ("false", "False"):
            return False
        if name in self.names:
            return self.names[name]
        raise ExprError(f"unknown name '{name}'", hint=did_you_mean(name, list(self.names)))

    def visit_Attribute(self, node):
        if isinstance(node.value, ast.Name) and node.value.id == IN_NAME:
            if self.in_shape is None:
                raise ExprError("'in' is not available here (there is no input yet)")
            if node.attr not in SHAPE_ATTRS:
                raise ExprError(f"unknown field 'in.{node.attr}'",
                                hint=did_you_mean(node.attr, SHAPE_ATTRS) or
                                "fields are " + ", ".join(SHAPE_ATTRS))
            return self.in_shape.attr(node.attr)
        raise ExprError("attribute access is not allowed (only in.channels, in.height, ...)")

    def visit_List(self, node):
        return [self.visit(e) for e in node.elts]

    visit_Tuple = visit_List

    def visit_Subscript(self, node):
        target = self.visit(node.value)
        index = self.visit(node.slice)
        if not isinstance(target, list) or not isinstance(index, int) or isinstance(index, bool):
            raise ExprError("only a list can be indexed, by an integer")
        if not -len(target) <= index < len(target):
            raise ExprError(f"index {index} out of range for a list of {len(target)}")
        return target[index]

    def visit_UnaryOp(self, node):
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(value, (int, float)):
            return -value if isinstance(node.op, ast.USub) else +value
        raise ExprError(f"cannot apply '{type(node.op).__name__}' to {value!r}")

    def visit_BinOp(self, node):
        func = _BINOPS.get(type(node.op))
        if func is None:
            raise ExprError(f"operator '{type(node.op).__name__}' is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        if not numbers:
            if isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, (str, list)):
                return left + right
            raise ExprError(f"cannot compute {left!r} {_symbol(node.op)} {right!r}")
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > MAX_INT):
            raise ExprError("exponent too large")
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ExprError("division by zero")
        try:
            return _check_size(func(left, right))
        except ArithmeticError as exc:  # 0 ** -1, a float power that overflows
            raise ExprError(f"cannot compute {left!r} {_symbol(node.op)} {right!r}: {exc}") from None

    def visit_BoolOp(self, node):
        value = None
        for operand in node.values:
            value = self.visit(operand)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def visit_Compare(self, node):
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.visit(comparator)
            func = _CMPOPS.get(type(op))
            if func is None:
                raise ExprError(f"comparison '{type(op).__name__}' is not allowed")
            try:
                ok = func(left, right)
            except TypeError:
                raise ExprError(f"cannot compare {left!r} with {right!r}") from None
            if not ok:
                return False
            left = right
        return True

    def visit_IfExp(self, node):
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Call(self, node):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = ast.unparse(node.func).replace(IN_NAME, "in")
            raise ExprError(f"calling '{name[:60]}' is not allowed",
                            hint="allowed functions: " + ", ".join(sorted(FUNCTIONS)))
        if node.keywords:
            raise ExprError("keyword arguments are not allowed in expressions")
        name = node.func.id
        low, high = ARITY.get(name, (0, None))
        if len(node.args) < low or (high is not None and len(node.args) > high):
            want = f"at least {low}" if high is None else f"{low}" if low == high else f"{low} or {high}"
            raise ExprError(f"{name}() takes {want} argument{'s' if (high or low) > 1 else ''}, "
                            f"got {len(node.args)}", hint=SIGNATURES.get(name))
        args = [self.visit(a) for a in node.args]
        try:
            return _check_size(FUNCTIONS[node.func.id](*args))
        except ExprError:
            raise
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ExprError(f"{node.func.id}(): {exc}") from None


_VISITORS = {getattr(ast, name[len("visit_"):]): method for name, method in vars(_Evaluator).items()
             if name.startswith("visit_") and name != "visit_"}  # syntax node class -> its rule


def _symbol(op) -> str:
    return {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
            ast.Mod: "%", ast.Pow: "**"}.get(type(op), "?")


def evaluate(source: str, names: dict, in_shape=None):
    """Evaluate one `${...}` body."""
    if len(source) > 1000:
        raise ExprError("expression longer than 1000 characters")
    tree = _parsed(source)
    try:
        return _Evaluator(names, InShape(in_shape) if in_shape is not None else None).visit(tree)
    except RecursionError:
        raise ExprError("expression nested too deeply") from None


@functools.lru_cache(maxsize=4096)
def _parsed(source: str) -> ast.Expression:
    """The syntax tree of one expression; the same text recurs in every instance of a template."""
    text = IN_ATTR.sub(IN_NAME + ".", source.strip())
    if not text:
        raise ExprError("empty expression")
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"expression syntax error: {exc.msg} in '{source.strip()}'") from None
    except (ValueError, MemoryError, RecursionError):
        raise ExprError(f"cannot parse expression '{source.strip()}'") from None


def has_expr(value) -> bool:
    return isinstance(value, str) and ("$" in value)


def substitute(value, names: dict, in_shape=None):
    """Resolve `$name`, a whole `${...}`, or `${...}` pieces inside a string."""
    if not isinstance(value, str) or "$" not in value:
        return value
    ref = REF.match(value)
    if ref:
        name = ref.group(1)
        if name in names:
            return names[name]
        raise ExprError(f"unknown name '{name}'", hint=did_you_mean(name, list(names)))
    stripped = value.strip()
    whole = INTERP.fullmatch(stripped)
    if whole:
        return evaluate(whole.group(1), names, in_shape)
    if "${" not in value:
        raise ExprError(f"'{value}' is not an expression: write $name or ${{...}}")
    if value.count("${") != len(INTERP.findall(value)):
        raise ExprError(f"unterminated '${{' in '{value}'")
    return INTERP.sub(lambda m: _text(evaluate(m.group(1), names, in_shape)), value)


def _text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
