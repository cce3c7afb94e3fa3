"""What PyTorch itself does with an op: built here directly from torch.nn,
independently of netspec's builders, so the comparison means something."""

from __future__ import annotations

import torch
from torch import nn


def spatial(shape) -> int:
    return len(shape) - 1


def torch_layer(op: str, p: dict, shapes):
    """The torch module or function a user would write for this op."""
    n = spatial(shapes[0])
    if op == "conv":
        cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[n]
        return cls(shapes[0][0], p["out"], p["kernel"], stride=p.get("stride", 1),
                   padding=p.get("padding", 0), dilation=p.get("dilation", 1),
                   groups=p.get("groups", 1), bias=p.get("bias", True))
    if op == "linear":
        return nn.Linear(shapes[0][-1], p["out"], bias=p.get("bias", True))
    if op in ("maxpool", "avgpool"):
        kind = "MaxPool" if op == "maxpool" else "AvgPool"
        cls = getattr(nn, f"{kind}{n}d")
        extra = {"dilation": p.get("dilation", 1)} if op == "maxpool" else {}
        return cls(p["kernel"], stride=p.get("stride"), padding=p.get("padding", 0),
                   ceil_mode=p.get("ceil_mode", False), **extra)
    if op in ("adaptive_avgpool", "adaptive_maxpool"):
        kind = "AdaptiveAvgPool" if op == "adaptive_avgpool" else "AdaptiveMaxPool"
        return getattr(nn, f"{kind}{n}d")(p.get("size", 1))
    if op == "global_avgpool":
        return lambda x: x.mean(dim=tuple(range(2, x.dim())))
    if op == "batchnorm":
        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(shapes[0])]
        return cls(shapes[0][0])
    if op == "layernorm":
        return nn.LayerNorm(list(shapes[0][len(shapes[0]) - p.get("dims", 1):]))
    if op == "flatten":
        return nn.Flatten(p.get("start", 1), p.get("end", -1))
    if op == "softmax":
        return nn.Softmax(dim=p.get("dim", 1))
    if op == "dropout":
        return nn.Dropout(p.get("p", 0.5))
    if op == "add":
        return lambda *xs: sum(xs[1:], xs[0])
    if op == "mul":
        def product(*xs):
            out = xs[0]
            for x in xs[1:]:
                out = out * x
            return out
        return product
    if op == "concat":
        return lambda *xs: torch.cat(xs, dim=p.get("dim", 1))
    simple = {"relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
              "gelu": nn.GELU, "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU, "identity": nn.Identity}
    return simple[op]()


def torch_shape(op: str, p: dict, shapes, device: str = "cpu", batch: int = 2):
    """Output shape without the batch, or the exception PyTorch raised."""
    try:
        layer = torch_layer(op, p, shapes)
        if isinstance(layer, nn.Module):
            layer = layer.to(device)
        xs = [torch.zeros(batch, *s, device=device) for s in shapes]
        with torch.no_grad():
            out = layer(*xs)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        return exc
    assert out.shape[0] == batch, f"{op} changed the batch dimension"
    return tuple(out.shape[1:])
