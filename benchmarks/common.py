"""Shared helpers: interleaved timing, medians and ratios, tables, the machine.

Every benchmark compares a candidate with a baseline measured in the same run:
the two are timed in alternating order, round after round, after warm-up, and
the figure reported is a ratio of medians (the machine may be shared, so
absolute times are noisy; ratios of interleaved medians are much less so).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from netspec.files import write_atomic

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path("/work/shared/data")


def data_dir() -> str:
    """Where Fashion-MNIST lies: $NETSPEC_DATA, else ../shared/data beside the repo, else /work/shared/data."""
    if os.environ.get("NETSPEC_DATA"):
        return os.environ["NETSPEC_DATA"]
    beside = ROOT.parent / "shared" / "data"
    return str(beside if (beside / "FashionMNIST" / "raw").is_dir() else DEFAULT_DATA)


def median(xs) -> float:
    return statistics.median(xs)


def interleaved(fns: dict, repeats: int, warmup: int = 1, inner: int | dict | None = None,
                target_s: float = 0.02, budget_s: float | None = None,
                max_repeats: int = 101) -> dict[str, list[float]]:
    """Seconds per call of each function, timed round-robin.

    Each round times every function once, the order reversed every other round
    so that neither side always runs first. `inner` calls are averaged per
    sample (chosen from the warm-up so that a sample lasts ~`target_s` when
    None), to lift fast functions above timer noise.
    """
    names = list(fns)
    per, call_s = {}, {}
    for name in names:
        t0 = time.perf_counter()
        for _ in range(max(1, warmup)):
            fns[name]()
        dt = call_s[name] = (time.perf_counter() - t0) / max(1, warmup)
        if isinstance(inner, dict):
            per[name] = inner.get(name, 1)
        elif inner is not None:
            per[name] = inner
        else:
            per[name] = max(1, min(1000, int(target_s / max(dt, 1e-9))))
    if budget_s is not None:
        round_s = sum(per[name] * call_s[name] for name in names)
        repeats = max(repeats, min(max_repeats, int(budget_s / max(round_s, 1e-9))))
    times = {name: [] for name in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn, n = fns[name], per[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return times


def paired_ratio(base: list[float], cand: list[float]) -> float:
    """Median of the per-round ratios base/cand (each round ran both back to back)."""
    return median([b / c for b, c in zip(base, cand)])


def median_ci(xs, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap confidence interval of the median (percentile method)."""
    import random

    rng = random.Random(seed)
    meds = sorted(median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    lo = meds[int((1 - level) / 2 * resamples)]
    hi = meds[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return lo, hi


def quartiles(xs) -> tuple[float, float]:
    """First and third quartiles (the spread of per-round ratios)."""
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return q[0], q[2]


def run_cmd(cmd: list[str], env: dict | None = None, cwd: Path = ROOT, timeout: float | None = None):
    """Run a command; (seconds of wall clock, stdout). Raises when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return dt, proc.stdout


# --- the machine ------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    import torch

    info = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_bf16(),
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "commit": _git_commit(),
    }
    try:
        import torchvision
        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return info


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 itself (AVX-512 BF16 or AMX); elsewhere autocast emulates it, slowly."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or None
    except OSError:
        return None


def describe_machine(info: dict) -> str:
    gpu = info["cuda"] or "none"
    return (f"{info['cpu']} ({info.get('cpu_capability')}, native bf16: {'yes' if info.get('native_bf16') else 'no'}), "
            f"{info['cores']} cores, torch {info['torch']} ({info['torch_threads']} threads), "
            f"Python {info['python']}, GPU: {gpu}, load average at start {info['loadavg']}, "
            f"commit {info['commit']}, {info['date']}")


# --- output -------------------------------------------------------------------

def table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A Markdown table; `align` is one letter per column (l or r), numbers right by default."""
    def cell(v):
        return "" if v is None else str(v)

    if align is None:
        align = "".join("r" if rows and isinstance(rows[0][i], (int, float)) or
                        (rows and _numeric(str(rows[0][i]))) else "l" for i in range(len(headers)))
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _numeric(s: str) -> bool:
    s = s.replace(",", "").replace("×", "").replace("x", "").replace("%", "").strip()
    try:
        float(s)
        return True
    except ValueError:
        return False


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


def x(ratio: float) -> str:
    return f"{ratio:.2f}×" if ratio < 10 else f"{ratio:.0f}×"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def save(name: str, payload: dict, command: str | None = None) -> Path:
    """benchmarks/results/NAME.json (the raw numbers behind a printed table); `command` names the
    benchmarks that produced it when that is not NAME."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    threads = f" --threads {os.environ['OMP_NUM_THREADS']}" if any(
        part.startswith("threads") for part in RESULTS_DIR.parts[-2:]) else ""
    quick = " --quick" if RESULTS_DIR.name == "quick" and command is None else ""
    payload = {"command": f"python -m benchmarks.run {name if command is None else command}{quick}{threads}".rstrip(),
               **payload}
    write_atomic(path, (json.dumps(payload, indent=2, default=str) + "\n").encode())  # never half a file
    return path


def header(title: str) -> None:
    print(f"\n## {title}\n", flush=True)
