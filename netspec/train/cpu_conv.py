"""Conv weight gradients as one matrix product where the output is tiny (CPU training).

oneDNN's direct kernel for a convolution's weight gradient is slow when the
output has only a few positions: most of them touch the zero padding, and the
sum over batch x positions is short. The same sum done as unfold + one
matrix product (MKL) was 1.5-10x faster for 3x3 convs with 1x1 to 3x3
outputs and slower from 4x4 on, hence SMALL_OUTPUT; three ResNet-18 training
steps at 96x96 (batch 256), where it takes stage 4, went 1.15x faster
(`python -m benchmarks.run cputrain`, benchmarks/RESULTS.md section 7).
That was on an AVX2 CPU. With AVX-512, oneDNN's own kernel wins at every
size (the same layers 0.61-0.88x, the steps 0.87x), so the runner's default
is on only where PyTorch runs its AVX2 kernels: `default_on`.
The forward pass and the input's gradient stay PyTorch's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL_OUTPUT = 9  # output positions (H x W) up to which the weight gradient is one matrix product


class _GemmWeightGrad(torch.autograd.Function):
    """F.conv2d whose backward computes the weight gradient as unfold(x) times the output gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = list(stride), list(padding)
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, ctx.stride, ctx.padding, [1, 1], False, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            cols = F.unfold(x, weight.shape[2:], padding=ctx.padding, stride=ctx.stride)  # N, C*kh*kw, positions
            grad_w = torch.einsum("nop,nkp->ok", grad.reshape(*grad.shape[:2], -1), cols).reshape(weight.shape)
        if ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


def output_positions(conv: nn.Conv2d, x: torch.Tensor) -> int:
    (h, w), (kh, kw), (sh, sw), (ph, pw) = x.shape[-2:], conv.kernel_size, conv.stride, conv.padding
    return ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)


class GemmGradConv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, same forward) that trains its tiny-output calls through _GemmWeightGrad."""

    def _conv_forward(self, x, weight, bias):
        if (x.dim() == 4 and x.device.type == "cpu" and self.groups == 1 and self.dilation == (1, 1)
                and self.padding_mode == "zeros" and isinstance(self.padding, tuple)
                and torch.is_grad_enabled() and weight.requires_grad and not torch.is_autocast_enabled("cpu")
                and output_positions(self, x) <= SMALL_OUTPUT):
            return _GemmWeightGrad.apply(x, weight, bias, self.stride, self.padding)
        return super()._conv_forward(x, weight, bias)


def default_on(device: torch.device, amp: bool, compiled: bool) -> bool:
    """The runner's default: float32 CPU training, eager, on a CPU where PyTorch picked its AVX2 kernels
    (the only kind measured faster with the GEMM)."""
    return (device.type == "cpu" and not amp and not compiled
            and torch.backends.cpu.get_cpu_capability() == "AVX2")


def use_gemm_weight_grads(net: nn.Module) -> int:
    """Make every plain nn.Conv2d in `net` a GemmGradConv2d (parameters and state dict unchanged); how many."""
    convs = [m for m in net.modules() if type(m) is nn.Conv2d]
    for conv in convs:
        conv.__class__ = GemmGradConv2d
    return len(convs)
