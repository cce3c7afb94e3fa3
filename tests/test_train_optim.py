"""Learning-rate schedules, optimizers and weight initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch import nn

from netspec.train.config import TrainConfig
from netspec.train.optim import build_optimizer, init_weights, lr_factor


def factors(schedule, epochs=4, steps=10, lr=0.1):
    config = TrainConfig(epochs=epochs, schedule=schedule, optimizer={"sgd": {"lr": lr}})
    f = lr_factor(config, steps)
    return [f(s) for s in range(epochs * steps)]


def test_constant_with_warmup_ramps_linearly_then_holds():
    f = factors({"constant": {"warmup_epochs": 1}})
    assert f[0] == pytest.approx(1 / 11) and f[9] == pytest.approx(10 / 11)
    assert f[10:] == [1.0] * 30


def test_step_decays_every_n_epochs():
    f = factors({"step": {"every": 2, "gamma": 0.5}})
    assert f[0] == f[19] == 1.0 and f[20] == f[39] == 0.5


def test_cosine_ends_at_min_lr():
    f = factors({"cosine": {"min_lr": 0.001, "warmup_steps": 5}})
    assert f[5] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[5:], f[6:]))
    config = TrainConfig(epochs=4, schedule={"cosine": {"min_lr": 0.001}}, optimizer={"sgd": {"lr": 0.1}})
    assert lr_factor(config, 10)(40) == pytest.approx(0.01)  # 0.001 / 0.1 after the last step


def test_onecycle_rises_then_falls():
    f = factors("onecycle")
    peak = max(range(len(f)), key=f.__getitem__)
    assert f[0] == pytest.approx(1 / 25) and f[peak] == pytest.approx(1.0) and peak == 12
    assert f[-1] < 0.01


def test_optimizers():
    net = nn.Linear(3, 2)
    sgd = build_optimizer(net, TrainConfig(optimizer={"sgd": {"lr": 0.2, "momentum": 0.9, "nesterov": True,
                                                              "weight_decay": 1e-3}}))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 1e-3
    adamw = build_optimizer(net, TrainConfig(optimizer={"adamw": {"betas": [0.8, 0.9]}}))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)
    adam = build_optimizer(net, TrainConfig(optimizer={"adam": {"lr": 0.01, "weight_decay": 1e-4}}))
    assert type(adam) is torch.optim.Adam and adam.defaults["weight_decay"] == 1e-4 and adam.defaults["lr"] == 0.01
    assert TrainConfig(optimizer="adam").optimizer.settings.weight_decay == 0  # torch.optim.Adam's default


_SETTING = st.one_of(st.floats(-2, 2), st.floats(allow_nan=True, allow_infinity=True), st.booleans())


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["sgd", "adam", "adamw"]),
       values=st.dictionaries(st.sampled_from(["lr", "momentum", "weight_decay", "nesterov", "beta1", "beta2"]),
                              _SETTING, max_size=4))
def test_every_optimizer_setting_the_config_accepts_torch_accepts(name, values):
    """What the `train:` section lets through must not fail when training starts (betas of 1.5 once did)."""
    if name != "sgd":
        values = {k: v for k, v in values.items() if k not in ("momentum", "nesterov")}
        if "beta1" in values or "beta2" in values:
            values["betas"] = [values.pop("beta1", 0.9), values.pop("beta2", 0.999)]
    values = {k: v for k, v in values.items() if not k.startswith("beta") or k == "betas"}
    try:
        config = TrainConfig(optimizer={name: values})
    except ValidationError:
        return
    net = nn.Linear(3, 2)
    optimizer = build_optimizer(net, config)
    net(torch.ones(1, 3)).sum().backward()
    optimizer.step()


def test_xavier_is_the_books_uniform_init_of_conv_and_linear_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 64, 5), nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(400, 300))
    bias = net[0].bias.clone()
    init_weights(net, "xavier")
    for layer, fan_in, fan_out in ((net[0], 25, 64 * 25), (net[3], 400, 300)):
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound  # uniform over the whole range
    assert torch.equal(net[0].bias, bias) and torch.equal(net[1].weight, torch.ones(64))
    before = net[0].weight.clone()
    init_weights(net, "default")
    assert torch.equal(net[0].weight, before)
    init_weights(net, "kaiming")
    assert torch.equal(net[3].bias, torch.zeros(300))
