"""Optimizer, learning-rate schedule and weight initialisation from a TrainConfig."""

from __future__ import annotations

import math

import torch
from torch import nn


def init_weights(net: nn.Module, kind: str) -> None:
    """`xavier` (the book: Xavier-uniform conv and linear weights), `kaiming`, or `default`.

    `kaiming` is torchvision's ResNet recipe for convolutions (normal, fan-out)
    and He-uniform over fan-in for linear layers, with zero biases. Otherwise
    biases and normalisation layers keep PyTorch's initialisation.
    """
    if kind == "default":
        return
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)):
            if kind == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def build_optimizer(net: nn.Module, config) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay, nesterov), Adam or AdamW, as the config says."""
    opt = config.optimizer.settings
    if config.optimizer.name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=opt.lr, momentum=opt.momentum,
                               weight_decay=opt.weight_decay, nesterov=opt.nesterov)
    adam = torch.optim.Adam if config.optimizer.name == "adam" else torch.optim.AdamW
    return adam(net.parameters(), lr=opt.lr, weight_decay=opt.weight_decay,
                             betas=tuple(opt.betas))


def lr_factor(config, steps_per_epoch: int):
    """The multiplier of the base rate at each optimizer step (0-based), per step not per epoch.

    The schedule spans `epochs`; max_steps only stops early, so a run cut
    short by it resumes on the same curve.
    """
    sched, name = config.schedule.settings, config.schedule.name
    total = config.epochs * steps_per_epoch
    warmup = sched.warmup_steps or round(sched.warmup_epochs * steps_per_epoch)
    base_lr = config.optimizer.settings.lr

    if name == "onecycle":
        rise = warmup or max(1, round(sched.pct * total))
        low, end = 1 / sched.div, 1 / sched.final_div

        def onecycle(step: int) -> float:
            if step < rise:
                return low + (1 - low) * (1 - math.cos(math.pi * step / rise)) / 2
            t = min(1.0, (step - rise) / max(1, total - rise))
            return end + (1 - end) * (1 + math.cos(math.pi * t)) / 2
        return onecycle

    def after_warmup(step: int) -> float:
        if name == "step":
            return sched.gamma ** ((step // steps_per_epoch) // sched.every)
        if name == "cosine":
            floor = sched.min_lr / base_lr
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * (1 + math.cos(math.pi * t)) / 2
        return 1.0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return after_warmup(step)
    return factor


def build_scheduler(optimizer, config, steps_per_epoch: int):
    """A LambdaLR stepped after every optimizer step (its state dict holds only numbers)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
