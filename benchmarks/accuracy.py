"""5. Accuracy on CPU: the best Fashion-MNIST test accuracy within 15 minutes on 2 cores.

The recipe trains the zoo's ResNet-18 (specs/resnet18.yaml, the book's
network) on the full Fashion-MNIST (60,000 training images, 10,000 test
images) with netspec train's own flags:

    python -m netspec train specs/resnet18.yaml RECIPE [--amp] [--no-channels-last] --threads T --epochs E
        --device cpu --out DIR

Precision, threads, memory layout and epochs are fitted to the machine it
runs on, so that the run fits the budget anywhere: bf16 autocast only where
the CPU computes bf16 itself (AVX-512 BF16 or AMX; elsewhere it is emulated
and several times slower than fp32); the fastest of 1 or 2 threads,
channels-last or not, by a short calibration run of each (10 steps on a
subset, timed by netspec's own examples/sec); then as many epochs (at most
12) as that rate fits in the budget. The run's curves.png is copied to
benchmarks/accuracy_curve.png and its per-epoch metrics go to
benchmarks/results/accuracy.json.

    python -m benchmarks.accuracy [--out DIR]     # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

from . import common
from .common import SPECS

SPEC = SPECS / "resnet18.yaml"
# Why these: the native 28x28 (no resize; 48x48 was 1.5x slower a step); AdamW with a one-cycle
# schedule, which converges in few epochs (a 3-epoch pilot on 20,000 images reached 0.887); label
# smoothing against the overfitting the runner's augmentation-free data invites. The cap was 8 epochs
# (1,880 steps of 256), what fitted on 2026-11-22's AVX-512 machine with bf16; it is 12 since that kind
# of machine came back (2026-12-02, run Q): the budget decides, and the cap only keeps a fast machine
# from running the one-cycle schedule far past where the curve flattens.
RECIPE = ["--resize", "28", "--batch-size", "256", "--optimizer", "adamw", "--lr", "0.003",
          "--schedule", "onecycle", "--label-smoothing", "0.1"]
MAX_EPOCHS = 12
BUDGET_S = 15 * 60
TRAIN, TEST = 60_000, 10_000
STARTUP_S = 15  # process start, data loading, the first steps' warm-up (measured: 8-12 s)
CALIBRATION = ["--limit-train", "2560", "--limit-test", "256"]  # 10 steps of 256
SETTINGS = [(1, True), (2, True), (1, False), (2, False)]  # (threads, channels-last)


def command(out: str, amp: bool, setting: tuple[int, bool], epochs: int, extra=()) -> list[str]:
    threads, channels_last = setting
    return [sys.executable, "-m", "netspec", "train", str(SPEC.relative_to(common.ROOT)), *RECIPE,
            *(["--amp"] if amp else []), *([] if channels_last else ["--no-channels-last"]),
            "--threads", str(threads), "--epochs", str(epochs),
            "--device", "cpu", "--data-dir", common.data_dir(), "--out", out, "--quiet", *extra]


def _metrics(out: str) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines() if line.strip()]


def calibrate(out: str, amp: bool) -> dict:
    """Training examples/sec for 1 and 2 threads, channels-last and not, 10 steps each (start-up excluded)."""
    rates = {}
    for setting in SETTINGS:
        shutil.rmtree(out, ignore_errors=True)
        common.run_cmd(command(out, amp, setting, 1, CALIBRATION))
        rates[setting] = _metrics(out)[-1]["examples_per_sec"]
        print(f"  calibration: {_name(setting)}: {rates[setting]:.0f} examples/s", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return rates


def _name(setting: tuple[int, bool]) -> str:
    threads, channels_last = setting
    return f"{threads} thread{'s' if threads > 1 else ''}, {'channels-last' if channels_last else 'NCHW'}"


def epochs_for(rate: float, budget_s: float = BUDGET_S) -> int:
    """Epochs that fit the budget at `rate`: each trains on TRAIN images and tests on TEST (a forward
    pass, counted at half a training step's cost), with 10 % to spare."""
    epoch_s = TRAIN / rate + TEST / (2 * rate)
    return max(1, min(MAX_EPOCHS, math.floor((0.9 * budget_s - STARTUP_S) / epoch_s)))


def run(quick: bool = False, out: str = "/tmp/netspec-accuracy") -> dict:
    import os

    common.header("5. Accuracy on CPU (full Fashion-MNIST, 15-minute budget)")
    amp = common.native_bf16()
    print(f"bf16 autocast: {'on (native bf16)' if amp else 'off (this CPU would emulate bf16): fp32'}")
    t_cal = time.perf_counter()
    rates = calibrate(out, amp)
    calibration_s = time.perf_counter() - t_cal
    setting = max(rates, key=rates.get)
    epochs = epochs_for(rates[setting])
    print(f"  fastest: {_name(setting)}; {epochs} epoch{'s' if epochs > 1 else ''} fit the budget", flush=True)
    cmd = command(out, amp, setting, epochs)
    if quick:
        cmd += ["--limit-train", "2048", "--limit-test", "512", "--max-steps", "4"]
    if Path(out).exists():
        shutil.rmtree(out)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    _, stdout = common.run_cmd(cmd)
    wall = time.perf_counter() - t0
    epochs_run = _metrics(out)
    last = epochs_run[-1]
    shown = " ".join(["python", *cmd[1:]])
    print(f"$ {shown}")
    print(stdout.strip().splitlines()[-1])
    rows = [[e["epoch"], f"{e['loss']:.3f}", f"{e['train_acc']:.4f}", f"{e['test_acc']:.4f}",
             f"{e['lr']:.2e}", f"{e['examples_per_sec']:.0f}", f"{e['seconds']:.0f}"] for e in epochs_run]
    print(table := common.table(["epoch", "loss", "train acc", "test acc", "lr (last step)", "examples/s",
                                 "train s"], rows))
    best = max(e["test_acc"] for e in epochs_run)
    print(f"\nwall clock {wall / 60:.1f} min (budget 15; calibration before it {calibration_s:.0f} s); "
          f"final test acc {last['test_acc']:.4f}; load average {os.getloadavg()} (at the start {load0})")
    if not quick:
        shutil.copy(Path(out) / "curves.png", Path(__file__).parent / "accuracy_curve.png")
    result = {"command": shown, "wall_s": wall, "calibration_s": calibration_s,
              "calibration_rates": {_name(k): v for k, v in rates.items()}, "amp": amp, "setting": _name(setting), "epochs_planned": epochs, "epochs": epochs_run, "final": last,
              "best_test_acc": best, "within_budget": wall <= BUDGET_S, "loadavg_start": load0,
              "loadavg_end": os.getloadavg(), "table": table, "machine": common.machine()}
    if not quick:
        common.save("accuracy", result)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.accuracy")
    p.add_argument("--out", default="/tmp/netspec-accuracy", help="the run folder")
    p.add_argument("--quick", action="store_true", help="four steps on a subset (a smoke test)")
    args = p.parse_args(argv)
    run(args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
