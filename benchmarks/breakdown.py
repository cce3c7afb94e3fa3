"""Where a static load's time goes: the parts of `netspec.load` + `netspec.infer`, in one process.

    python -m benchmarks.breakdown [SPEC] [--input C,H,W]    # default: specs/resnet18.yaml at 1,224,224

Not a comparison with a baseline: it says what is left to speed up. Parts,
timed alternately, best and median of 400 calls each:
  - libyaml's events alone (PyYAML's C binding, nothing built): the floor
    of any reader that keeps PyYAML;
  - libyaml's composer (`yaml.compose` with CSafeLoader: node objects with
    marks, built in C, without netspec's positions, duplicate-key and alias
    checks): what a reader on top of it would start from;
  - reading (`load_file`: the text to positioned mappings and lists);
  - elaborating the parsed document (validation, templates, shapes);
  - the row table (`report.rows`);
  - the whole `load` + `infer`;
and the cost of one residual block: `load_text` of 50 against 10 repeated
`residual` blocks (64 channels at 56×56), divided by 40.
"""

from __future__ import annotations

import argparse
import time

from .common import SPECS, median, table


def timed(fns: dict, calls: int) -> dict:
    """Seconds per call of each, alternating, after 30 warm-up calls of each."""
    for fn in fns.values():
        for _ in range(30):
            fn()
    out = {name: [] for name in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - start)
    return out


def blocks(n: int) -> str:
    return f"netspec: 1\nname: blocks\ninput: [64, 56, 56]\nnetwork:\n  - {{residual: {{out: 64}}, repeat: {n}}}\n"


def main(argv=None) -> int:
    import yaml

    from netspec import api
    from netspec.load import load_file
    from netspec.report import rows

    parser = argparse.ArgumentParser(prog="python -m benchmarks.breakdown")
    parser.add_argument("spec", nargs="?", default=str(SPECS / "resnet18.yaml"))
    parser.add_argument("--input", default="1,224,224")
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args(argv)
    shape = tuple(int(v) for v in args.input.split(","))
    doc, text = load_file(args.spec)
    net = api.load(args.spec, input=shape)

    def events():
        loader = yaml.CSafeLoader(text)
        try:
            while loader.get_event() is not None:
                pass
        finally:
            loader.dispose()

    fns = {"libyaml events alone": events,
           "libyaml compose (C)": lambda: yaml.compose(text, Loader=yaml.CSafeLoader), "read (load_file)": lambda: load_file(args.spec),
           "elaborate": lambda: api._elaborate(doc, text, args.spec, None, shape, 10**10),
           "row table": lambda: rows(net), "load + infer": lambda: rows(api.load(args.spec, input=shape)),
           "10 residual blocks": lambda: api.load_text(blocks(10)),
           "50 residual blocks": lambda: api.load_text(blocks(50))}
    t = timed(fns, args.calls)
    print(f"{args.spec} at {shape}, {len(text)} bytes, {args.calls} alternating calls of each\n")
    print(table(["part", "best ms", "median ms"],
                [[k, f"{min(v) * 1e3:.3f}", f"{median(v) * 1e3:.3f}"] for k, v in t.items() if "blocks" not in k]))
    per_block = [(min(t["50 residual blocks"]) - min(t["10 residual blocks"])) / 40,
                 (median(t["50 residual blocks"]) - median(t["10 residual blocks"])) / 40]
    print(f"\none residual block (8 nodes): {per_block[0] * 1e6:.0f} µs best, {per_block[1] * 1e6:.0f} µs median")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
