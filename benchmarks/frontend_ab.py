"""netspec's front end at an earlier commit against the working tree, in one process.

    python -m benchmarks.frontend_ab [REV] [--calls N]      # REV defaults to HEAD

On a shared, drifting machine two separate runs of the static benchmark can
differ by 1.5x with no code change. Here `git archive REV netspec/` is
imported as the package `netspec_base` (netspec's own imports are relative),
and the two versions' `netspec.infer(netspec.load(spec))` calls alternate,
N of each per spec, so both see the same machine. Prints best and median
milliseconds of each and the speed-up (base / working tree).
"""

from __future__ import annotations

import argparse
import importlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from .common import ROOT, SPECS, median, table

CASES = [("resnet18.yaml", (1, 224, 224)), ("torchvision/resnet18.yaml", (3, 224, 224)),
         ("googlenet.yaml", (1, 224, 224)), ("densenet.yaml", (1, 224, 224)),
         ("torchvision/resnet50.yaml", (3, 224, 224))]


def import_revision(rev: str, into: Path):
    """The `netspec` package of commit `rev`, importable as `netspec_base`."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "netspec"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(into, filter="data")
        except TypeError:  # a Python without extraction filters; git's own archive is trusted
            tar.extractall(into)
    (into / "netspec").rename(into / "netspec_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("netspec_base")


def alternate(base, new, calls: int) -> tuple[list[float], list[float]]:
    """Seconds per call of each, the order swapped every round."""
    for _ in range(10):
        base(), new()
    tb, tn = [], []
    for i in range(calls):
        for fn, out in ((base, tb), (new, tn)) if i % 2 else ((new, tn), (base, tb)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return tb, tn


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.frontend_ab", description=__doc__.splitlines()[0])
    parser.add_argument("rev", nargs="?", default="HEAD", help="the commit to compare with (default HEAD)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls of each version per spec")
    args = parser.parse_args(argv)
    import netspec

    tmp = Path(tempfile.mkdtemp(prefix="netspec-ab-"))
    try:
        try:
            base = import_revision(args.rev, tmp)
        except subprocess.CalledProcessError as exc:
            print(f"error: cannot read netspec/ at {args.rev!r}: {exc.stderr.decode().strip()}", file=sys.stderr)
            return 2
        rows = []
        for spec, shape in CASES:
            path = str(SPECS / spec)
            tb, tn = alternate(lambda: base.infer(base.load(path, {}, shape)),
                               lambda: netspec.infer(netspec.load(path, {}, shape)), args.calls)
            rows.append([spec, "×".join(map(str, shape)), f"{min(tb) * 1e3:.2f}", f"{median(tb) * 1e3:.2f}",
                         f"{min(tn) * 1e3:.2f}", f"{median(tn) * 1e3:.2f}", f"{min(tb) / min(tn):.2f}×",
                         f"{median(tb) / median(tn):.2f}×"])
            print(f"  {spec}: {rows[-1][-2]} best, {rows[-1][-1]} median", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(["spec", "input", f"{args.rev} best ms", f"{args.rev} median ms", "working tree best ms",
                 "working tree median ms", "speed-up (best)", "speed-up (median)"], rows))
    print(f"\n{args.calls} calls of each version per spec, alternating; `netspec.infer(netspec.load(spec))`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
