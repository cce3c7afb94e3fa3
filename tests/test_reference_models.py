"""Checks the plain-PyTorch references against the figures in REFERENCE.md."""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))

import reference_models as rm  # noqa: E402

NAMES = list(rm.MODELS)


@pytest.fixture(scope="module")
def built() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: rm.MODELS[name][0]().eval() for name in NAMES}


def _input(name: str) -> torch.Tensor:
    return torch.randn(1, *rm.MODELS[name][1])


@pytest.mark.parametrize("name", NAMES)
def test_param_count(built, name):
    assert rm.count_params(built[name]) == rm.MODELS[name][2]


@pytest.mark.parametrize("name", NAMES)
def test_forward_and_flops(built, name):
    """One counted forward per model: output (1, 10) and GFLOPs to 3 decimals."""
    from torch.utils.flop_counter import FlopCounterMode

    model = built[name]
    x = _input(name)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        y = model(x)
    assert tuple(y.shape) == (1, rm.NUM_CLASSES)
    assert torch.isfinite(y).all()
    gflops = counter.get_total_flops() / 1e9
    assert round(gflops, 3) == pytest.approx(rm.MODELS[name][3], abs=1e-9), gflops


@pytest.mark.parametrize("name", NAMES)
def test_stage_names(built, name):
    assert [n for n, _ in built[name].named_children()] == rm.STAGES[name]


def test_stage_outputs_end_in_model_output(built):
    model = built["lenet_bn"]
    x = _input("lenet_bn")
    with torch.no_grad():
        outs = rm.stage_outputs(model, x)
        y = model(x)
    assert len(outs) == len(rm.STAGES["lenet_bn"])
    torch.testing.assert_close(outs[-1], y)


def test_resnet18_stage_shapes_224(built):
    model = built["resnet18"]
    with torch.no_grad():
        outs = rm.stage_outputs(model, torch.randn(1, 1, 224, 224))
    got = list(zip(rm.STAGES["resnet18"], (tuple(o.shape) for o in outs)))
    assert got == rm.RESNET18_STAGE_SHAPES_224


def test_densenet_channels(built):
    model = built["densenet"]
    with torch.no_grad():
        outs = rm.stage_outputs(model, _input("densenet"))
    # b1, dense1, transition1, ..., dense4
    assert [o.shape[1] for o in outs[:8]] == rm.DENSENET_CHANNELS


def test_registration_order_inception():
    inc = rm.Inception(192, 64, (96, 128), (16, 32), 32)
    names = [n for n, _ in inc.named_parameters()]
    assert names == [
        "p1_1.weight", "p1_1.bias",
        "p2_1.weight", "p2_1.bias", "p2_2.weight", "p2_2.bias",
        "p3_1.weight", "p3_1.bias", "p3_2.weight", "p3_2.bias",
        "p4_2.weight", "p4_2.bias",
    ]


def test_registration_order_residual():
    res = rm.Residual(64, 128, use_1x1conv=True, strides=2)
    names = [n.split(".")[0] for n, _ in res.named_parameters()]
    assert list(dict.fromkeys(names)) == ["conv1", "bn1", "conv2", "bn2", "conv3"]
    assert tuple(res.conv3.weight.shape) == (128, 64, 1, 1)


def test_registration_order_dense_conv_block():
    blk = rm.conv_block(64, 32)
    assert [type(m) for m in blk] == [nn.BatchNorm2d, nn.ReLU, nn.Conv2d]
