"""4, on a GPU alone: the end-to-end GPU variant without the CPU sections.

    python -m benchmarks.run gpu

For a lent GPU machine, whose time is short (benchmarks/gpu_run.sh runs it
there): the book's loop on the GPU against `netspec train`'s GPU defaults
and `--compile`, one round per model, full Fashion-MNIST, two epochs each
(`e2e.gpu_section`). Raw numbers: benchmarks/results/e2e-gpu.json.
"""

from __future__ import annotations

import sys

from . import common, e2e


def run(quick: bool = False) -> dict:
    import torch

    common.header("4, GPU: netspec train versus the book's loop on the same GPU (full Fashion-MNIST)")
    if not torch.cuda.is_available():
        print("No CUDA device: nothing to run here (the CPU end-to-end figures come from `e2e`).")
        return {"gpu": None}
    cases = e2e.GPU_CASES
    if quick:
        cases = {model: (*recipe[:3], 10_240, 2_048) for model, recipe in cases.items()}
    result = e2e.gpu_section(cases=cases)
    common.save("e2e-gpu", result)
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv)
