"""GEMM weight gradients (netspec.train.cpu_conv): the same outputs and gradients as nn.Conv2d, taken only
where the output is tiny, and switched on by the runner for float32 CPU training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import netspec
from netspec.cli import main
from netspec.train import loop
from netspec.train.cpu_conv import SMALL_OUTPUT, GemmGradConv2d, use_gemm_weight_grads

from test_train_cli import SPEC

REPO = Path(__file__).resolve().parents[1]


def conv_pair(cin, cout, kernel, stride, padding, bias):
    torch.manual_seed(0)
    plain = nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias).double()
    swapped = nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias).double()
    swapped.load_state_dict(plain.state_dict())
    assert use_gemm_weight_grads(swapped) == 1 and isinstance(swapped, GemmGradConv2d)
    return plain, swapped


def grads(conv, x, seed):
    x = x.clone().requires_grad_(True)
    y = conv(x)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype))
    return y, [x.grad, *(p.grad for p in conv.parameters())]


@settings(deadline=None, max_examples=60)
@given(n=st.integers(1, 4), cin=st.integers(1, 5), cout=st.integers(1, 5), kernel=st.integers(1, 4),
       stride=st.integers(1, 3), padding=st.integers(0, 2), h=st.integers(1, 9), w=st.integers(1, 9),
       bias=st.booleans(), channels_last=st.booleans(), seed=st.integers(0, 9))
def test_outputs_and_gradients_equal_nn_conv2d(n, cin, cout, kernel, stride, padding, h, w, bias, channels_last,
                                               seed):
    if h + 2 * padding < kernel or w + 2 * padding < kernel:
        return  # PyTorch refuses these; nothing to compare
    plain, swapped = conv_pair(cin, cout, kernel, stride, padding, bias)
    x = torch.randn(n, cin, h, w, dtype=torch.double, generator=torch.Generator().manual_seed(seed))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y0, g0 = grads(plain, x, seed)
    y1, g1 = grads(swapped, x, seed)
    gemm = y1.grad_fn.__class__.__name__.startswith("_GemmWeightGrad")
    assert gemm == (y1.shape[2] * y1.shape[3] <= SMALL_OUTPUT)  # the product only where the output is tiny
    torch.testing.assert_close(y1, y0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b)


def test_no_grad_frozen_weights_and_bf16_autocast_take_pytorchs_path(monkeypatch):
    from netspec.train import cpu_conv

    calls, apply = [], cpu_conv._GemmWeightGrad.apply
    monkeypatch.setattr(cpu_conv._GemmWeightGrad, "apply", lambda *a: (calls.append(1), apply(*a))[1])
    _, swapped = conv_pair(3, 4, 3, 1, 1, True)
    x = torch.randn(2, 3, 3, 3, dtype=torch.double)
    swapped(x)
    assert len(calls) == 1  # the control: a tiny output in training goes through the product
    with torch.no_grad():
        swapped(x)
    swapped.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        swapped(x.float())
    swapped.requires_grad_(False)
    swapped(x.float())
    assert len(calls) == 1


def test_resnet18_steps_the_same_with_the_swap_and_keeps_its_state_dict():
    torch.manual_seed(0)
    plain = netspec.compile(str(REPO / "specs/resnet18.yaml"), (1, 32, 32)).double()  # last stage: 1x1 outputs
    swapped = netspec.compile(str(REPO / "specs/resnet18.yaml"), (1, 32, 32)).double()
    swapped.load_state_dict(plain.state_dict())
    convs = sum(type(m) is nn.Conv2d for m in plain.modules())
    assert use_gemm_weight_grads(swapped) == convs > 0 and list(swapped.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 1, 32, 32, dtype=torch.double)
    for net in (plain, swapped):
        net(x).logsumexp(1).sum().backward()
    for (name, a), b in zip(swapped.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


@pytest.mark.parametrize("capability, flags, swapped", [
    ("AVX2", [], True), ("AVX2", ["--no-gemm-weight-grads"], False), ("AVX2", ["--amp"], False),
    ("AVX2", ["--amp", "--gemm-weight-grads"], True),
    ("AVX512", [], False), ("AVX512", ["--gemm-weight-grads"], True)])  # oneDNN's AVX-512 kernel is the faster
def test_the_runner_swaps_for_fp32_cpu_training_on_avx2_unless_told(tmp_path, monkeypatch, capability, flags,
                                                                      swapped):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text(SPEC)
    seen, step = [], loop._Run._step
    monkeypatch.setattr(loop._Run, "_step", lambda self, *a: (
        seen.append({type(m) for m in self.net.modules() if isinstance(m, nn.Conv2d)}), step(self, *a)))
    assert main(["train", "small.yaml", "--quiet", "--device", "cpu", "--out", "run", *flags]) == 0
    assert seen and all(kinds == ({GemmGradConv2d} if swapped else {nn.Conv2d}) for kinds in seen)
    recorded = json.loads(Path("run/config.json").read_text())["config"]["gemm_weight_grads"]
    assert recorded == (False if "--no-gemm-weight-grads" in flags else True if "--gemm-weight-grads" in flags
                        else None)
