"""Run the benchmarks: `python -m benchmarks.run [NAME ...] [--quick] [--full]`.

NAME is static, overhead, data, e2e (all four when none is given: what
`make bench` runs, about 8-10 minutes on 2 calm CPU cores) or accuracy (a
15-minute training run, never part of the default) or threads (1 thread
against the default, to read the machine's contention) or layout (NCHW
against channels-last per zoo model: the evidence for the CPU default) or
cputrain (netspec train's CPU settings, kept memory and GEMM weight
gradients, against PyTorch's defaults) or gpu
(the GPU variant of e2e alone, for a lent GPU machine: benchmarks/gpu_run.sh). --quick runs a reduced
version of each for a smoke test (a few minutes); --full also runs
`torch.compile` for every seed model in `overhead`; --threads N sets
PyTorch's CPU threads, in this process and (OMP_NUM_THREADS) in the processes
it starts (default: PyTorch's own, one per core), and writes the raw numbers
to benchmarks/results/threadsN/ instead. A --quick run writes its raw numbers
to benchmarks/results/quick/ (not kept in git), so that a smoke test never
replaces the figures RESULTS.md quotes.

Each prints Markdown tables of ratios against a baseline measured in the same
run and writes its raw numbers to benchmarks/results/NAME.json.
"""

from __future__ import annotations

import sys
import time

from . import common

DEFAULT = ["static", "overhead", "data", "e2e"]
ALL = DEFAULT + ["accuracy", "threads", "layout", "cputrain", "gpu"]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    quick, full = "--quick" in argv, "--full" in argv
    threads = None
    if "--threads" in argv:
        i = argv.index("--threads")
        threads = int(argv[i + 1])
        del argv[i:i + 2]
        import os

        import torch
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
        common.RESULTS_DIR = common.RESULTS_DIR / f"threads{threads}"
    if quick:
        common.RESULTS_DIR = common.RESULTS_DIR / "quick"
    names = [a for a in argv if not a.startswith("-")] or DEFAULT
    unknown = [n for n in names if n not in ALL]
    if unknown:
        print(f"error: unknown benchmark {', '.join(unknown)}; choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
    info = common.machine()
    print(f"# netspec benchmarks\n\nMachine: {common.describe_machine(info)}")
    import os
    busy = os.getloadavg()[0]
    if busy > 0.5 and (threads or info["torch_threads"]) > 1:
        print(f"\nwarning: load average {busy:.2f} before starting: another process is using the CPU. PyTorch's "
              f"{info['torch_threads']} threads slow down many-fold when one of their cores is taken (the "
              f"in-process sides suffer more than worker processes); --threads 1 gives steadier ratios.")
    started = time.perf_counter()
    results = {}
    for name in names:
        t0 = time.perf_counter()
        module = __import__(f"benchmarks.{name}", fromlist=["run"])
        kwargs = {"full": full} if name == "overhead" else {}
        results[name] = module.run(quick=quick, **kwargs)
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nTotal {time.perf_counter() - started:.0f} s; load average at the end "
          f"{[round(v, 2) for v in os.getloadavg()]} (at the start {info['loadavg']}).")
    common.save("machine" if names == DEFAULT else f"machine-{'-'.join(names)}",
                {"machine": info, "benchmarks": names, "quick": quick, "full": full, "threads": threads,
                 "seconds": time.perf_counter() - started}, command=" ".join(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
