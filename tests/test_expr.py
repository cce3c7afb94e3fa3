"""Expressions are data: a whitelist evaluator, never eval."""

from __future__ import annotations

import pytest

from netspec.expr import ExprError, evaluate, substitute


@pytest.mark.parametrize("source,expected", [
    ("1 + 2 * 3", 7), ("7 // 2", 3), ("7 / 2", 3.5), ("2 ** 10", 1024), ("-3 % 2", 1),
    ("out * 4", 256), ("stride != 1 or in.channels != out", True), ("in.height // 2", 14),
    ("max(in.channels, 8)", 32), ("[1, out][1]", 64), ("'a' if out > 10 else 'b'", "a"),
    ("make_divisible(32 * 0.75, 8)", 24), ("in.shape", [32, 28, 28]), ("in.rank", 3),
])
def test_evaluates(source, expected):
    assert evaluate(source, {"out": 64, "stride": 1}, (32, 28, 28)) == expected


@pytest.mark.parametrize("shape", [(3, 5, 7), (3, 2, 5, 7)])
def test_height_and_width_are_the_last_two_dimensions(shape):
    """An image is (C, H, W) and a volume (C, D, H, W), as Conv3d reads it: in a volume too, in.height is H
    and in.width is W (not D and H)."""
    assert evaluate("[in.height, in.width]", {}, shape) == [5, 7]


@pytest.mark.parametrize("source,fragment", [
    ("__import__('os').system('echo hi')", "not allowed"),
    ("().__class__.__bases__", "not allowed"),
    ("out.__class__", "attribute access is not allowed"),
    ("__builtins__", "reserved"),
    ("(lambda: 1)()", "not allowed"),
    ("[x for x in [1, 2]]", "not allowed"),
    ("open('/etc/passwd')", "calling 'open' is not allowed"),
    ("1 / 0", "division by zero"),
    ("10 ** 100", "exponent too large"),
    ("9 ** 64 ** 2", "exponent too large"),
    ("nope + 1", "unknown name 'nope'"),
    ("in.depth", "unknown field 'in.depth'"),
    ("1 +", "syntax error"),
    ("'a' * 1000000000", "cannot compute"),
])
def test_rejects(source, fragment):
    with pytest.raises(ExprError, match=None) as err:
        evaluate(source, {"out": 64}, (3, 8, 8))
    assert fragment in err.value.message


def test_substitute_forms():
    names = {"out": 64}
    assert substitute("$out", names) == 64
    assert substitute("${out // 2}", names) == 32
    assert substitute("block${out}", names) == "block64"
    assert substitute("plain", names) == "plain"
    with pytest.raises(ExprError, match="did you mean|unknown"):
        substitute("$ot", names)


def test_unknown_name_hint():
    with pytest.raises(ExprError) as err:
        evaluate("chanels + 1", {"channels": 3})
    assert err.value.hint == "did you mean 'channels'?"


@pytest.mark.parametrize("source,message,hint", [
    ("make_divisible(10)", "make_divisible() takes 2 or 3 arguments, got 1", "make_divisible(value, divisor"),
    ("make_divisible(10, 8, 1, 2)", "make_divisible() takes 2 or 3 arguments, got 4", "make_divisible(value, divisor"),
    ("min()", "min() takes at least 1 argument, got 0", None),
    ("abs(1, 2)", "abs() takes 1 argument, got 2", None),
])
def test_a_wrong_number_of_arguments_says_how_many(source, message, hint):
    """Not Python's "_make_divisible() missing 1 required positional argument: 'divisor'"."""
    with pytest.raises(ExprError) as err:
        evaluate(source, {})
    assert err.value.message == message
    assert (hint in err.value.hint) if hint else err.value.hint is None
