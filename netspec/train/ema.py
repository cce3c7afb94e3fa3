"""An exponential moving average of a network's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of the network whose weights trail the trained ones.

    It reads the plain module's parameters, which a torch.compile'd or DDP
    wrapper shares, so it is really updated whatever wraps the network.
    Buffers (BatchNorm statistics) are copied, not averaged.
    """

    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(net).eval().requires_grad_(False)
        self._pairs = [(e, p) for e, p in zip(self.module.parameters(), net.parameters())]
        self._buffers = list(zip(self.module.buffers(), net.buffers()))

    @torch.no_grad()
    def update(self) -> None:
        mine, theirs = [e for e, _ in self._pairs], [p.detach() for _, p in self._pairs]
        torch._foreach_lerp_(mine, theirs, 1.0 - self.decay)
        for e, b in self._buffers:
            e.copy_(b)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
