"""Every op: the static shape equals PyTorch's, and netspec rejects an input
statically exactly when PyTorch raises (over generated parameters and shapes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from torch_reference import torch_shape

from netspec import ops


def static_shape(op: str, params: dict, shapes):
    """netspec's answer: the shape, or the error it reports."""
    cls = ops.get(op)
    try:
        p = cls.Params.model_validate(params)
        instance = cls()
        instance.check_inputs(shapes)
        return instance.infer(p, shapes)
    except (ops.ShapeError, ValidationError) as exc:
        return exc


def agree(op: str, params: dict, shapes, device: str = "cpu"):
    ours = static_shape(op, params, shapes)
    theirs = torch_shape(op, params, shapes, device=device)
    if isinstance(theirs, Exception):
        assert isinstance(ours, Exception), f"PyTorch raised {theirs!r} but netspec said {ours}"
    else:
        assert not isinstance(ours, Exception), f"netspec rejected ({ours}) what PyTorch runs: {theirs}"
        assert ours == theirs


small = st.integers(1, 9)
image = st.tuples(st.integers(1, 6), small, small)
spatial = st.one_of(image, st.tuples(st.integers(1, 6), small))  # 2-d or 1-d convs and pools


@given(shape=spatial, out=st.integers(1, 6), kernel=st.integers(1, 5), stride=st.integers(1, 3),
       padding=st.one_of(st.integers(0, 3), st.sampled_from(["same", "valid"])),
       dilation=st.integers(1, 3), groups=st.integers(1, 3), bias=st.booleans())
def test_conv(shape, out, kernel, stride, padding, dilation, groups, bias):
    agree("conv", dict(out=out, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                       groups=groups, bias=bias), [shape])


@given(shape=image, out=st.integers(1, 4), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2))
def test_conv_rectangular(shape, out, kh, kw, sh, sw, ph, pw):
    agree("conv", dict(out=out, kernel=[kh, kw], stride=[sh, sw], padding=[ph, pw]), [shape])


@given(op=st.sampled_from(["maxpool", "avgpool"]), shape=spatial, kernel=st.integers(1, 5),
       stride=st.one_of(st.none(), st.integers(1, 3)), padding=st.integers(0, 3),
       dilation=st.integers(1, 2), ceil_mode=st.booleans())
def test_pools(op, shape, kernel, stride, padding, dilation, ceil_mode):
    params = dict(kernel=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
    if op == "maxpool":
        params["dilation"] = dilation
    agree(op, params, [shape])


@given(op=st.sampled_from(["adaptive_avgpool", "adaptive_maxpool", "global_avgpool"]),
       shape=spatial, size=st.integers(1, 5))
def test_adaptive_pools(op, shape, size):
    agree(op, {} if op == "global_avgpool" else {"size": size}, [shape])


shapes_any = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)


@given(shape=shapes_any, out=st.integers(1, 7), bias=st.booleans())
def test_linear(shape, out, bias):
    agree("linear", {"out": out, "bias": bias}, [shape])


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple))
def test_batchnorm(shape):
    agree("batchnorm", {}, [shape])


@given(shape=shapes_any, dims=st.integers(1, 4))
def test_layernorm(shape, dims):
    if dims > len(shape):  # would normalise over the symbolic batch: refused by design
        assert isinstance(static_shape("layernorm", {"dims": dims}, [shape]), ops.ShapeError)
        return
    agree("layernorm", {"dims": dims}, [shape])


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       start=st.integers(-4, 3), end=st.integers(-4, 3))
def test_flatten(shape, start, end):
    if start == 0 or (start + len(shape) + 1) % (len(shape) + 1) == 0:
        return  # flattening the symbolic batch is refused by design: tested below
    agree("flatten", {"start": start, "end": end}, [shape])


def test_flatten_refuses_the_batch():
    assert isinstance(static_shape("flatten", {"start": 0}, [(3, 4)]), ops.ShapeError)


@given(shape=shapes_any, dim=st.integers(-4, 3))
def test_softmax(shape, dim):
    if dim % (len(shape) + 1) == 0:
        return  # over the batch: refused by design, tested below
    agree("softmax", {"dim": dim}, [shape])


@pytest.mark.parametrize("slope", [-1.0, -0.2, 0.0, 3.0])
def test_leaky_relu_takes_any_slope(slope):
    """PyTorch takes a negative slope too (it was refused)."""
    agree("leaky_relu", {"slope": slope}, [(3, 4)])


@pytest.mark.parametrize("dim", [0, -3])
def test_softmax_refuses_the_batch(dim):
    """PyTorch runs it, but each sample's output would then depend on the rest of its batch."""
    error = static_shape("softmax", {"dim": dim}, [(3, 4)])
    assert isinstance(error, ops.ShapeError) and "batch dimension" in error.message


@given(p=st.floats(-0.5, 1.5, allow_nan=False))
def test_dropout(p):
    agree("dropout", {"p": p}, [(3, 4)])


@given(op=st.sampled_from(["relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "leaky_relu", "identity"]),
       shape=shapes_any)
def test_activations(op, shape):
    agree(op, {}, [shape])


dims = st.sampled_from([1, 2, 3])


@given(op=st.sampled_from(["add", "mul"]), rank=st.integers(1, 3), data=st.data())
def test_elementwise_broadcasting(op, rank, data):
    shapes = [tuple(data.draw(st.lists(dims, min_size=rank, max_size=rank))) for _ in range(data.draw(st.integers(2, 3)))]
    agree(op, {}, shapes)


@given(rank=st.integers(1, 3), dim=st.integers(-4, 3), data=st.data())
def test_concat(rank, dim, data):
    shapes = [tuple(data.draw(st.lists(dims, min_size=rank, max_size=rank))) for _ in range(data.draw(st.integers(1, 3)))]
    if dim % (rank + 1) == 0 and -(rank + 1) <= dim <= rank:
        assert isinstance(static_shape("concat", {"dim": dim}, shapes), ops.ShapeError)
        return  # concatenating along the batch is refused by design
    agree("concat", {"dim": dim}, shapes)


@pytest.mark.parametrize("op,params,shape", [
    ("conv", {"out": 4, "kernel": 3}, (3, 2, 2)),            # kernel larger than input
    ("conv", {"out": 4, "kernel": 3, "stride": 2, "padding": "same"}, (3, 8, 8)),
    ("conv", {"out": 4, "kernel": 3, "groups": 2}, (3, 8, 8)),  # channels not divisible
    ("maxpool", {"kernel": 2, "padding": 2}, (3, 8, 8)),     # padding more than half the kernel
    ("avgpool", {"kernel": 5}, (3, 4, 4)),                   # window larger than input
    ("concat", {}, None),
])
def test_known_rejections_match_pytorch(op, params, shape):
    shapes = [(3, 4, 4), (3, 5, 5)] if shape is None else [shape]
    assert isinstance(static_shape(op, params, shapes), Exception)
    assert isinstance(torch_shape(op, params, shapes), Exception)


@pytest.mark.parametrize("op", sorted(ops.REGISTRY))
def test_every_op_builds_with_matching_parameter_count(op):
    """The static parameter count equals the built module's, on a typical input."""
    samples = {"conv": ({"out": 5, "kernel": 3, "groups": 1}, [(4, 7, 7)]),
               "linear": ({"out": 3}, [(6,)]), "layernorm": ({"dims": 2}, [(3, 4, 5)]),
               "maxpool": ({"kernel": 2}, [(3, 6, 6)]), "avgpool": ({"kernel": 2}, [(3, 6, 6)]),
               "add": ({}, [(3, 4, 4), (3, 4, 4)]), "mul": ({}, [(3, 4, 4), (3, 1, 1)]),
               "concat": ({}, [(3, 4, 4), (2, 4, 4)])}
    params, shapes = samples.get(op, ({}, [(3, 4, 4)]))
    cls = ops.get(op)
    p = cls.Params.model_validate(params)
    built = cls().build(p, shapes)
    count = sum(t.numel() for t in built.parameters()) if hasattr(built, "parameters") else 0
    assert count == cls().count_params(p, shapes)
    assert static_shape(op, params, shapes) == torch_shape(op, params, shapes)


@pytest.mark.parametrize("op, params", [
    ("maxpool", {"kernel": 1, "stride": "N"}), ("avgpool", {"kernel": 1, "stride": "N"}),
    ("maxpool", {"kernel": 1, "padding": 0, "dilation": "N"}),
])
def test_a_pool_setting_of_2_to_the_31_is_refused_as_pytorch_refuses_it(op, params):
    """2**31 once passed netspec and failed in the forward pass ('cannot be converted to type int')."""
    for value, runs in ((ops.base.MAX_INT, True), (ops.base.MAX_INT + 1, False)):
        p = {k: value if v == "N" else v for k, v in params.items()}
        agree(op, p, [(3, 8, 8)])
        assert isinstance(static_shape(op, p, [(3, 8, 8)]), Exception) is not runs


def test_every_size_is_at_most_max_int_a_deliberate_limit_for_convs():
    """Convs hold their settings in 64 bits; netspec refuses 2**31 for them too, as no layer comes near."""
    assert isinstance(static_shape("conv", {"out": 2, "kernel": 1, "stride": 2**31}, [(3, 8, 8)]), ValidationError)
    assert isinstance(static_shape("linear", {"out": 2**31}, [(4,)]), ValidationError)
    assert static_shape("conv", {"out": 2, "kernel": 1, "stride": 2**31 - 1}, [(3, 8, 8)]) == (2, 1, 1)
