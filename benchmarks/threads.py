"""PyTorch's CPU threads on a busy machine: 1 thread against the default, alternating.

Not one of the issue's benchmarks: it measures the condition the others ran
in. With another process on one of the cores, a parallel region waits for the
thread that lost its core, so 2 threads can be many times slower than 1.

    python -m benchmarks.run threads      # ~1 minute; prints the load average too

Workloads: netspec's data step at 224 (a batch of 128 Fashion-MNIST-sized
images to float and `F.interpolate` to 224×224), and one bf16-autocast
training step of the zoo's ResNet-18 at 28×28, batch 256 (section 5's recipe).
"""

from __future__ import annotations

import os
import sys

from . import common
from .common import SPECS, interleaved, median, table


def run(quick: bool = False) -> dict:
    import torch
    import torch.nn.functional as F

    import netspec

    common.header("PyTorch threads under contention (1 thread against the default)")
    default = max(2, os.cpu_count() or 2)  # the default PyTorch picks: one thread per core
    load0 = os.getloadavg()
    images = torch.randint(0, 256, (128, 1, 28, 28), dtype=torch.uint8)

    def resize():
        F.interpolate(images.float().div_(255), size=(224, 224), mode="bilinear", align_corners=False)

    net = netspec.compile(str(SPECS / "resnet18.yaml"), (1, 28, 28)).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    x, y = torch.rand(256, 1, 28, 28), torch.randint(0, 10, (256,))

    def train_step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    rows, raw = [], {}
    for name, fn, batch in (("resize 128 images to 224×224", resize, 128),
                            ("resnet18 @28 bf16 train step, batch 256", train_step, 256)):
        def with_threads(n, fn=fn):
            def call():
                torch.set_num_threads(n)
                fn()
            return call
        t = interleaved({"1": with_threads(1), str(default): with_threads(default)},
                        repeats=3 if quick else 7, warmup=1, target_s=0.3)
        one, many = median(t["1"]), median(t[str(default)])
        rows.append([name, f"{batch / many:,.0f}", f"{batch / one:,.0f}", common.x(many / one)])
        raw[name] = t
    torch.set_num_threads(default)
    print(table(["workload", f"{default} threads img/s", "1 thread img/s", "1 thread / default"], rows))
    print(f"\nload average {[round(v, 2) for v in load0]} at the start, "
          f"{[round(v, 2) for v in os.getloadavg()]} at the end")
    result = {"rows": rows, "raw": raw, "default_threads": default, "loadavg_start": load0,
              "loadavg_end": os.getloadavg()}
    common.save("threads", result)
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv)
