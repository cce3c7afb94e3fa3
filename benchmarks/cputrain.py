"""netspec train's two CPU settings, each against PyTorch's defaults, alternating in one process.

Not one of the issue's benchmarks: the evidence for `keep_memory`
(netspec/train/memory.py) and `gemm_weight_grads` (netspec/train/cpu_conv.py),
which `netspec train` turns on for float32 CPU training (the GEMM only where
PyTorch runs its AVX2 kernels: with AVX-512 oneDNN's own kernel was faster).

    python -m benchmarks.run cputrain      # ~6 minutes

Workload: e2e's ResNet-18 epoch, three fp32 training steps of batch 256 at
96×96 in channels-last memory (`netspec train`'s CPU layout for it). Each
sample builds nothing: it runs the three steps under one setting (kept memory
is entered afresh, so its first step pays its page faults as a run's would),
the order of the settings reversed every other round. Reported: the first
step and the later ones, minor page faults per step, and the resident memory
after the steps. Then, per layer, where the GEMM's threshold comes from: a 3×3
conv's forward + weight gradient (batch 256, channels-last, the input needing
no gradient) with outputs from 1×1 to 6×6, PyTorch's path against the GEMM.
"""

from __future__ import annotations

import resource
import sys
import time

from . import common
from .common import SPECS, median, table

STEPS = 3
SETTINGS = {  # name -> (keep memory, GEMM weight gradients)
    "PyTorch's defaults": (False, False),
    "kept memory": (True, False),
    "GEMM weight grads": (False, True),
    "both": (True, True),
}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def run(quick: bool = False) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import netspec
    from netspec.train.cpu_conv import GemmGradConv2d, default_on
    from netspec.train.memory import kept

    common.header("netspec train's CPU settings against PyTorch's defaults (ResNet-18 @96, fp32, channels-last)")
    batch = 64 if quick else 256
    torch.manual_seed(0)
    net = netspec.compile(str(SPECS / "resnet18.yaml"), (1, 96, 96)).train().to(memory_format=torch.channels_last)
    convs = [m for m in net.modules() if type(m) is nn.Conv2d]
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x = torch.randn(batch, 1, 96, 96).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    samples = {name: [] for name in SETTINGS}

    def epoch(name):
        keep, gemm = SETTINGS[name]
        for conv in convs:
            conv.__class__ = GemmGradConv2d if gemm else nn.Conv2d
        steps, faults0 = [], resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with kept(keep):
            for _ in range(STEPS):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y).backward()
                opt.step()
                steps.append(time.perf_counter() - t0)
            rss = rss_mib()
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / STEPS
        return {"steps": steps, "faults_per_step": faults, "rss_mib": rss}

    for name in SETTINGS:  # warm-up: oneDNN's kernels, the allocator
        epoch(name)
    names = list(SETTINGS)
    for r in range(1 if quick else 2):
        for name in (names if r % 2 == 0 else names[::-1]):
            samples[name].append(epoch(name))

    def total(name):
        return median([sum(s["steps"]) for s in samples[name]])

    base = total(names[0])
    rows = [[name, f"{median([s['steps'][0] for s in samples[name]]):.2f}",
             f"{median([t for s in samples[name] for t in s['steps'][1:]]):.2f}", f"{total(name):.2f}",
             common.x(base / total(name)), f"{median([s['faults_per_step'] for s in samples[name]]):,.0f}",
             f"{median([s['rss_mib'] for s in samples[name]]):,.0f}"] for name in names]
    print(table(["setting", "first step s", "later steps s", f"{STEPS} steps s", "× defaults", "page faults per step",
                 "RSS after, MiB"], rows))
    gemm_here = default_on(torch.device("cpu"), amp=False, compiled=False)
    print(f"\nbatch {batch}, {len(samples[names[0]])} rounds after a warm-up round; medians. netspec train's "
          f"CPU default on this {torch.backends.cpu.get_cpu_capability()} CPU: "
          f"{'both' if gemm_here else 'kept memory (the GEMM is on only where PyTorch runs its AVX2 kernels)'}")
    result = {"rows": rows, "samples": samples, "batch": batch, "steps": STEPS,
              "speedup": {name: base / total(name) for name in names}, "layers": layers(quick)}
    common.save("cputrain", result)
    return result


def layers(quick: bool) -> list:
    """Forward + weight gradient of one 3x3 conv, padding 1, per output size: PyTorch's against the GEMM."""
    import torch
    import torch.nn.functional as F

    from netspec.train.cpu_conv import SMALL_OUTPUT, _GemmWeightGrad, default_on

    batch, rows = 64 if quick else 256, []
    gemm_here = default_on(torch.device("cpu"), amp=False, compiled=False)
    for channels, size in ((512, 1), (512, 2), (256, 2), (512, 3), (256, 4), (256, 6)):
        x, grad = (torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
                   for _ in range(2))
        w = torch.randn(channels, channels, 3, 3).contiguous(memory_format=torch.channels_last).requires_grad_()
        t = common.interleaved({
            "pytorch": lambda: F.conv2d(x, w, None, 1, 1).backward(grad),
            "gemm": lambda: _GemmWeightGrad.apply(x, w, None, (1, 1), (1, 1)).backward(grad)},
            repeats=3 if quick else 5, inner=1)
        rows.append([f"{channels}→{channels}, {size}×{size}", size * size, f"{median(t['pytorch']) * 1e3:.0f}",
                     f"{median(t['gemm']) * 1e3:.0f}", common.x(common.paired_ratio(t["pytorch"], t["gemm"])),
                     "GEMM" if size * size <= SMALL_OUTPUT and gemm_here else "PyTorch's"])
    print(f"\nOne 3×3 conv, forward + weight gradient, batch {batch}, channels-last, fp32:\n")
    print(table(["layer", "output positions", "PyTorch ms", "GEMM ms", "GEMM speed-up", "netspec train uses"],
                rows))
    return rows


if __name__ == "__main__":
    run("--quick" in sys.argv)
