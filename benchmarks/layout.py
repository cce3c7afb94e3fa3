"""Memory layout on this CPU: one forward + backward in NCHW against channels-last (NHWC), per zoo model.

Not one of the issue's five benchmarks: it is the evidence behind the
runner's CPU default (`netspec.train.loop.default_channels_last`), which
chooses the layout per network because neither is faster for all of them.

    python -m benchmarks.run layout      # ~4 minutes on 2 cores

Per model, at the book's resolution: `netspec.compile` (PyTorch's default
init), the step `overhead.py` times (cross-entropy, forward + backward,
gradients set to None) at batch 32 (VGG-11 at full width: batch 8, as one
step at 32 takes ~12 s here), float32; two copies of the same weights, one
moved to channels-last with its batch.
Interleaved rounds, medians; the ratio is NCHW time over NHWC time (above 1:
channels-last is faster). The last column is what the default picks.
"""

from __future__ import annotations

import copy
import sys

from . import common
from .common import SPECS, interleaved, median, table
from .overhead import step_fn

# row -> (spec, params, input, batch)
MODELS = {
    "lenet_bn": ("lenet_bn.yaml", {}, (1, 28, 28), 32),
    "alexnet": ("alexnet.yaml", {}, (1, 224, 224), 32),
    "vgg11": ("vgg11.yaml", {}, (1, 224, 224), 8),
    "vgg11 ratio=4": ("vgg11.yaml", {"ratio": 4}, (1, 224, 224), 32),
    "nin": ("nin.yaml", {}, (1, 224, 224), 32),
    "googlenet": ("googlenet.yaml", {}, (1, 96, 96), 32),
    "resnet18": ("resnet18.yaml", {}, (1, 96, 96), 32),
    "densenet": ("densenet.yaml", {}, (1, 96, 96), 32),
}
QUICK = ("lenet_bn", "resnet18")
BUDGET_S = 8  # seconds of timed rounds per model, after warm-up


def run(quick: bool = False) -> dict:
    import torch

    import netspec
    from netspec.train.loop import default_channels_last

    common.header("Memory layout on this CPU: NCHW against channels-last, one forward + backward")
    rows, raw = [], {}
    for name, (spec, params, shape, batch) in MODELS.items():
        if quick and name not in QUICK:
            continue
        torch.manual_seed(0)
        net = netspec.load(str(SPECS / spec), params, shape)
        module = netspec.compile(net).train()
        x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
        nhwc = copy.deepcopy(module).to(memory_format=torch.channels_last)
        fns = {"NCHW": step_fn(module, x, y), "NHWC": step_fn(nhwc, x.contiguous(memory_format=torch.channels_last), y)}
        t = interleaved(fns, repeats=3 if quick else 5, warmup=2, target_s=0.25, budget_s=2 if quick else BUDGET_S)
        ratio = median(t["NCHW"]) / median(t["NHWC"])
        picked = "NHWC" if default_channels_last(torch.device("cpu"), module) else "NCHW"
        right = (picked == "NHWC") == (ratio > 1)
        rows.append([name, "×".join(map(str, shape)), batch, f"{batch / median(t['NCHW']):,.1f}",
                     f"{batch / median(t['NHWC']):,.1f}", common.x(ratio), len(t["NCHW"]),
                     picked + ("" if right else " (the slower)")])
        raw[name] = {"seconds": t, "batch": batch, "input": shape, "ratio": ratio, "default": picked}
        print(f"  {name}: NCHW/NHWC {ratio:.2f}", flush=True)
    print(table(["model", "input", "batch", "NCHW img/s", "NHWC img/s", "NHWC speed-up", "rounds",
                 "CPU default"], rows))
    result = {"rows": rows, "raw": raw}
    common.save("layout", result)
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv)
