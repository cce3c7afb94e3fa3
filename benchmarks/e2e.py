"""4. End to end: `netspec train` versus the book's training loop, on the same subset.

Both run as fresh processes on the first N images of Fashion-MNIST with the
book's recipe (batch size, learning rate, resize), one epoch, then test
accuracy on the first M test images:

  netspec:  python -m netspec train specs/MODEL.yaml --epochs 1 --limit-train N --limit-test M
              --batch-size B --lr LR [--resize R] --device cpu --out DIR --quiet
  book:     python -m benchmarks.booktrain MODEL --epochs 1 --limit-train N --limit-test M

The figure is examples/sec of the training pass, wall clock, data loading
included (netspec's metrics.jsonl; the book loop measures the same span), and
the whole process's wall clock (imports, data, training, testing). Rounds
alternate the order; medians. The variants beside the defaults are shown for
information and run in the first round only, which keeps `make bench` near
10 minutes.

On CPU netspec runs float32 like the book (the like-for-like ratio), with its
CPU defaults (the target is judged on these: the memory layout is chosen per
network, channels-last for ResNet-18 and NCHW, the book's, for LeNet; see
`default_channels_last`; freed memory is kept in the process, and the weight
gradients of convs with at most 3x3 outputs are one matrix product: see
`benchmarks/cputrain.py`) and with the other layout forced, and also with
`--amp` (bf16 autocast; fast where the CPU has AVX-512 BF16 or AMX,
emulated and slower elsewhere). When CUDA is
present, the GPU variant runs too: the book loop on the GPU (float32, NCHW,
DataLoader, `.to(device)` per batch) against netspec train's GPU defaults
(bf16 autocast, channels-last, data resident on the GPU) and with
`--compile`, two epochs each, the second epoch's rate compared.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from . import common
from .common import SPECS, median, table

# model -> (resize or None, batch, lr, CPU subset: train, test)
CPU_CASES = {
    "lenet_bn": (None, 256, 1.0, 20_480, 2_048),
    "resnet18": (96, 256, 0.05, 768, 256),
}
GPU_CASES = {
    "lenet_bn": (None, 256, 1.0, 60_000, 10_000),
    "resnet18": (96, 256, 0.05, 60_000, 10_000),
}
GPU_VARIANTS = {"netspec (bf16, channels-last)": [], "netspec --compile": ["--compile"]}  # netspec train's GPU defaults
DEFAULTS = "netspec (defaults: fp32, layout by network)"  # the variant the CPU target is judged on
OTHER = "netspec, the other layout"
RATE = re.compile(r"([0-9.]+) examples/sec")


def netspec_cmd(model, resize, batch, lr, n_train, n_test, epochs, out, device, extra=()):
    cmd = [sys.executable, "-m", "netspec", "train", str(SPECS / f"{model}.yaml"), "--epochs", str(epochs),
           "--limit-train", str(n_train), "--limit-test", str(n_test), "--batch-size", str(batch), "--lr", str(lr),
           "--device", device, "--data-dir", common.data_dir(), "--out", str(out), "--quiet", *extra]
    if resize:
        cmd += ["--resize", str(resize)]
    return cmd


def book_cmd(model, resize, batch, lr, n_train, n_test, epochs, device):
    cmd = [sys.executable, "-m", "benchmarks.booktrain", model, "--epochs", str(epochs), "--limit-train", str(n_train),
           "--limit-test", str(n_test), "--batch-size", str(batch), "--lr", str(lr), "--device", device]
    if resize:
        cmd += ["--resize", str(resize)]
    return cmd


def default_layout(model: str) -> bool:
    """Whether `netspec train` picks channels-last for this zoo model on CPU."""
    import torch

    import netspec
    from netspec.train.loop import default_channels_last

    return default_channels_last(torch.device("cpu"), netspec.compile(str(SPECS / f"{model}.yaml")))


def run_netspec(cmd, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    wall, stdout = common.run_cmd(cmd)
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = epochs[-1]
    return {"rate": last["examples_per_sec"], "process_s": wall, "test_acc": last["test_acc"],
            "line": stdout.strip().splitlines()[-1]}


def run_book(cmd) -> dict:
    wall, stdout = common.run_cmd(cmd)
    epochs = [line for line in stdout.splitlines() if line.startswith("# epoch")]
    last = epochs[-1]
    return {"rate": float(RATE.search(last).group(1)), "process_s": wall,
            "test_acc": float(last.rsplit("test acc ", 1)[1]), "line": stdout.strip().splitlines()[-1]}


def compare(cases: dict, device: str, variants: dict, epochs: int, rounds: dict, once=()) -> list[dict]:
    """Each model's loops in alternating order, `rounds[model]` times; the variants in `once` (shown for
    information, not judged) only in the first round, to keep `make bench` near 10 minutes."""
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="netspec-bench-"))
    try:
        for model, (resize, batch, lr, n_train, n_test) in cases.items():
            runs = {"book": lambda: run_book(book_cmd(model, resize, batch, lr, n_train, n_test, epochs, device))}
            extras = {name: extra(model) if callable(extra) else extra for name, extra in variants.items()}
            for name, extra in extras.items():
                out = tmp / f"{model}-{name.replace(' ', '_')}"
                runs[name] = (lambda e=extra, o=out: run_netspec(
                    netspec_cmd(model, resize, batch, lr, n_train, n_test, epochs, o, device, e), o))
            samples = {k: [] for k in runs}
            names = list(runs)
            for r in range(rounds[model]):
                for name in (names if r % 2 == 0 else names[::-1]):
                    if r == 0 or name not in once:
                        samples[name].append(runs[name]())
            rate = {k: median([s["rate"] for s in v]) for k, v in samples.items()}
            proc = {k: median([s["process_s"] for s in v]) for k, v in samples.items()}
            acc = {k: v[-1]["test_acc"] for k, v in samples.items()}
            results.append({"model": model, "device": device, "resize": resize or 28, "batch": batch, "lr": lr,
                            "n_train": n_train, "n_test": n_test, "epochs": epochs, "rate": rate,
                            "process_s": proc, "test_acc": acc, "samples": samples,
                            "commands": {"book": " ".join(book_cmd(model, resize, batch, lr, n_train, n_test, epochs,
                                                                   device)[1:]),
                                         **{k: " ".join(netspec_cmd(model, resize, batch, lr, n_train, n_test,
                                                                    epochs, "DIR", device, e)[1:])
                                            for k, e in extras.items()}}})
            print(f"  {model} {device}: " + ", ".join(f"{k} {v:.0f}/s" for k, v in rate.items()), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def rows_of(results, variants):
    rows = []
    for r in results:
        for name in ["book", *variants]:
            rows.append([r["model"], r["resize"], r["device"], name, f"{r['rate'][name]:,.0f}",
                         common.x(r["rate"][name] / r["rate"]["book"]), f"{r['process_s'][name]:.1f}",
                         common.x(r["process_s"]["book"] / r["process_s"][name]), f"{r['test_acc'][name]:.3f}"])
    return rows


HEADERS = ["model", "input", "device", "loop", "train examples/s", "× book", "process s", "× book (process)",
           "test acc"]



def gpu_section(device: str = "cuda", cases: dict = GPU_CASES, variants: dict = GPU_VARIANTS,
                rounds: int = 1) -> dict:
    """The GPU variant: the book's loop on the GPU against `netspec train`'s GPU defaults and `--compile`,
    two epochs each, the second epoch's rate compared; `rounds` alternating rounds per model.

    `device` is a parameter so that the tests can run this whole path on the CPU with a tiny subset:
    a GPU is lent rarely and briefly (benchmarks/gpu_run.sh), and its run must not be the first
    time this code runs."""
    import torch

    gpu = compare(cases, device, variants, 2, {m: rounds for m in cases})
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else device
    print(f"\nGPU: {name}, second epoch of two\n")
    print(table(HEADERS, rows_of(gpu, variants)))
    best = [max(r["rate"][k] for k in variants) / r["rate"]["book"] for r in gpu]
    ok = min(best) >= 3
    print(f"\n- target ≥3× on GPU: {common.verdict(ok)} "
          f"({', '.join('%s %.2f×' % (r['model'], v) for r, v in zip(gpu, best))})")
    return {"gpu": gpu, "gpu_name": name, "gpu_rows": rows_of(gpu, variants), "target_gpu": [ok, best]}

def run(quick: bool = False) -> dict:
    import torch

    common.header("4. End to end: netspec train versus the book's loop (Fashion-MNIST subset)")
    cases = dict(CPU_CASES)
    if quick:
        cases = {"lenet_bn": (None, 256, 1.0, 10_240, 1_024), "resnet18": (96, 256, 0.05, 512, 256)}
    nhwc = {m: default_layout(m) for m in cases}
    layouts = {m: "channels-last" if v else "NCHW" for m, v in nhwc.items()}
    print("The CPU default layout: " + ", ".join(f"{m} {v}" for m, v in layouts.items()) + "\n")
    # the variant shown beside the defaults forces the layout they do not pick
    cpu_variants = {DEFAULTS: [], OTHER: lambda m: ["--no-channels-last"] if nhwc[m] else ["--channels-last"]}
    if common.native_bf16():
        cpu_variants["netspec --amp (bf16)"] = ["--amp"]
    else:
        print("This CPU has no native bfloat16 (AVX-512 BF16 or AMX): the --amp variant, emulated and several "
              "times slower, is left out.\n")
    cpu = compare(cases, "cpu", cpu_variants, 1, {"lenet_bn": 1 if quick else 2, "resnet18": 1 if quick else 2},
                  once=[k for k in cpu_variants if k != DEFAULTS])
    print(table(HEADERS, rows_of(cpu, cpu_variants)))
    print("\nTest accuracy after one epoch on a small subset is shown to prove both loops learn, "
          "not as a result.")
    def ratios(keys):
        return [max(r["rate"][k] for k in keys) / r["rate"]["book"] for r in cpu]

    def each(values):
        return ", ".join("%s %.2f×" % (r["model"], v) for r, v in zip(cpu, values))
    defaults = ratios([DEFAULTS])
    other = ratios([OTHER])
    amp = ratios(["netspec --amp (bf16)"]) if "netspec --amp (bf16)" in cpu_variants else []
    ok = min(defaults) >= 1.2
    print(f"\n- target ≥1.2× on CPU, float32 like the book, the runner's CPU defaults: {common.verdict(ok)} "
          f"({each(defaults)}); the other layout: {each(other)}; bf16 autocast: {each(amp) or 'not run'}")
    result = {"cpu": cpu, "cpu_rows": rows_of(cpu, cpu_variants), "target_cpu": [ok, defaults, other, amp],
              "cpu_layout": layouts}
    if torch.cuda.is_available():
        result.update(gpu_section(rounds=2))
    else:
        print("\nNo CUDA device: the GPU variant did not run.")
        result["gpu"] = None
    common.save("e2e", result)
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv)
