"""The `netspec` command line. Spec errors exit 2 with a located message; bugs exit 1."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import sys

from .errors import Pos, SpecError, own_message
from .files import OutputError


def _spec_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a spec param (repeatable)")
    parser.add_argument("--input", type=input_shape, help="input shape C,H,W (overrides the spec's)")
    parser.add_argument("--max-params", type=_budget, default=None,
                        help="refuse networks with more parameters (default 10 billion)")


def _budget(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        try:  # 1e12 and 2.5e9 are whole numbers too
            number = float(text)
            value = int(number) if number.is_integer() else None
        except (ValueError, OverflowError):
            value = None
        if value is None:
            raise argparse.ArgumentTypeError(f"expected a whole number of parameters, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"the budget must be at least 1, got {value}")
    return value


def whole_number(least: int):
    """An argparse type: a whole number of at least `least` (a depth from 0, a count from 1)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be {least} or more, got {value}")
        return value

    return parse


def input_shape(text: str) -> tuple[int, ...]:
    """An argparse type: an input shape C,H,W (or CxHxW)."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected C,H,W like 1,224,224, got '{text}'") from None
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"sizes must be positive, got '{text}'")
    return shape


def _load(args, path=None):
    from .api import load, parse_assignments
    from .elaborate import DEFAULT_MAX_PARAMS

    return load(path or args.spec, parse_assignments(args.param), args.input,
                args.max_params or DEFAULT_MAX_PARAMS)


def cmd_compile(args) -> int:
    from .report import summary, table, totals_line

    network = _load(args)
    if args.emit:
        return _emit_python(args, network)
    if args.no_build:
        module = None
    else:
        from .build import build

        module = build(network)
        built = sum(p.numel() for p in module.parameters())
        if built != network.n_params:
            raise RuntimeError(f"built module has {built} parameters, inference said {network.n_params}")
    if args.json:
        print(json.dumps(summary(network)))
        return 0
    console = _console()
    console.print(table(network, args.depth))
    console.print(totals_line(network), highlight=False)
    if args.code and module is not None:
        console.print(module.code, highlight=False, markup=False)
    return 0


def _emit_python(args, network) -> int:
    from .emit import EmitError, emit
    from .files import write_atomic

    try:
        text = emit(network)
    except EmitError as exc:
        print(f"error: cannot write {network.name} as plain PyTorch: {exc}", file=sys.stderr)
        return 1
    if args.output:
        write_atomic(args.output, text.encode())
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def cmd_graph(args) -> int:
    from .graph import GraphvizMissing, write

    network = _load(args)
    try:
        diagram = write(network, args.output, args.expand, args.direction)
    except (GraphvizMissing, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {len(diagram.boxes())} boxes, {len(diagram.edges)} edges", file=sys.stderr)
    return 0


def cmd_export(args) -> int:
    from .export import ExportError, exported, load_weights, summary, verify
    from .files import write_atomic
    from .report import human

    network = _load(args)
    try:
        from .build import build

        module = build(network)
        loaded = load_weights(module, args.weights, args.ema) if args.weights else "untrained weights"
        with exported(network, opset=args.opset, dynamic_batch=not args.static_batch, module=module) as tmp:
            info = summary(tmp)
            if not args.no_check:  # before the file is written: a failed check leaves the old one
                batch = 1 if args.static_batch else 2  # a fixed batch is 1
                diff = verify(tmp, module, network, batch)
                verdict = "matches" if diff <= 1e-4 else "DIFFERS FROM"
                print(f"onnxruntime {verdict} PyTorch: max |difference| {diff:.1e} on a random batch of {batch}",
                      file=sys.stderr)
                if diff > 1e-4:
                    print(f"error: {args.output} not written", file=sys.stderr)
                    return 1
            write_atomic(args.output, tmp.read_bytes())
        (name, shape), = info["inputs"].items()
        (out_name, out_shape), = info["outputs"].items()
        print(f"wrote {args.output}: {human(info['bytes'], 'B')}, opset {info['opset']}, {info['nodes']} nodes, "
              f"{loaded}; {name} {_dims(shape)} -> {out_name} {_dims(out_shape)}", file=sys.stderr)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _opset(text: str) -> int:
    """--opset: a whole number among those torch.onnx's exporter takes (checked before any work; whether
    it really writes that opset for this network is checked once it has written the file)."""
    from .export import ExportError, check_opset

    try:
        opset = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    try:
        return check_opset(opset)
    except ExportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dims(dims) -> str:
    return "(" + ", ".join(map(str, dims)) + ")"


def cmd_check(args) -> int:
    """Every file gets its verdict: one bad file, or a bug met in one, does not hide the rest."""
    failed = crashed = 0
    for given in args.specs:
        files = _yaml_files(given)
        left_out = 0
        for path in files or [given]:  # an empty folder is reported by _check_one
            try:
                left_out += not _check_one(args, path, in_folder=bool(files))
            except SpecError as err:
                failed += 1
                print(err.format(), file=sys.stderr)
            except Exception as exc:  # a bug in netspec: say which file met it and go on
                crashed += internal_error(exc, f"{path}: ")
        if left_out:
            print(f"{given}: left out {left_out} YAML file{'s' * (left_out > 1)} without a 'netspec:' key",
                  file=sys.stderr)
    return 1 if crashed else 2 if failed else 0


def _yaml_files(path) -> list[str] | None:
    """A folder's .yaml and .yml files, sorted (hidden ones, and folders linked in, left out); None for a file."""
    from pathlib import Path

    if not Path(path).is_dir():
        return None
    return [str(file) for file in sorted(Path(path).rglob("*")) if file.suffix in (".yaml", ".yml")
            and file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)]


def _check_one(args, path, in_folder: bool) -> bool:
    """Check one file, read once; False where a folder's YAML file is not netspec's (a CI or compose file)."""
    from pathlib import Path

    from .api import _elaborate, parse_assignments
    from .elaborate import DEFAULT_MAX_PARAMS
    from .load import Map, load_file

    if Path(path).is_dir():
        raise SpecError(Pos(str(path), 1, 1), "a folder with no .yaml or .yml files in it")
    doc, text = load_file(path)
    if in_folder and isinstance(doc, Map) and "netspec" not in doc:
        return False
    if isinstance(doc, Map) and "blocks" in doc and set(doc) <= {"netspec", "blocks"}:
        from .templates import template_file

        names = list(template_file(doc, str(path)))
        if not args.quiet:  # its layers depend on arguments, and may name templates of other files
            print(f"{path}: template file, declares {', '.join(names) or 'nothing'}; its layers are checked "
                  f"where a spec uses them")
        return True
    network = _elaborate(doc, text, str(path), parse_assignments(args.param), args.input,
                         args.max_params or DEFAULT_MAX_PARAMS)
    if not args.quiet:
        print(f"{path}: ok, {network.n_params:,} parameters, output (N, "
              f"{', '.join(map(str, network.output))})")
    if args.input_range:
        from .constraints import describe, input_range, reasons

        ranges = input_range(path, parse_assignments(args.param), args.input, max_params=args.max_params)
        print(f"{path}: input sizes: {describe(ranges)}")
        for line in reasons(ranges):
            print(f"  {line}")
    return True


def cmd_diff(args) -> int:
    from .api import load, parse_assignments
    from .diff import diff, render, to_json
    from .elaborate import DEFAULT_MAX_PARAMS

    budget = args.max_params or DEFAULT_MAX_PARAMS
    common = parse_assignments(args.param)
    a = load(args.a, {**common, **parse_assignments(args.pa)}, args.input, budget)
    b = load(args.b, {**common, **parse_assignments(args.pb)}, args.input, budget)
    result = diff(a, b)
    if args.json:
        print(json.dumps(to_json(result)))
    else:
        console = _console()
        for part in render(result, args.depth, args.all):
            console.print(part, highlight=False)
    return 1 if args.exit_code and not result["identical"] else 0


def cmd_schema(args) -> int:
    from .schema import schema_text

    text = schema_text()
    if args.output:
        from .files import write_atomic

        write_atomic(args.output, text.encode())
    else:
        print(text, end="")
    return 0


def cmd_list(args) -> int:
    from .docs import list_table

    _console().print(list_table())
    return 0


def cmd_explain(args) -> int:
    from .docs import explain

    print(explain(args.name))
    return 0


def parser(argv=None) -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="netspec", description="Neural networks as YAML, compiled to PyTorch.")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compile", help="infer shapes, build the module, print the table")
    p.add_argument("spec")
    _spec_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--depth", type=whole_number(0), default=None, help="show nodes down to this nesting depth")
    p.add_argument("--code", action="store_true", help="also print the generated forward code")
    p.add_argument("--no-build", action="store_true", help="stop after shape inference (no torch)")
    p.add_argument("--emit", choices=["python"], help="write the network as a standalone PyTorch file")
    p.add_argument("-o", "--output", help="with --emit: write to this file instead of stdout")
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("graph", help="draw the network: .svg, .png (Graphviz), .dot, .mmd (Mermaid)")
    p.add_argument("spec")
    _spec_args(p)
    p.add_argument("-o", "--output", required=True, help="output file; the format comes from its extension")
    p.add_argument("--expand", nargs="?", type=whole_number(0), const=None, default=0, metavar="DEPTH",
                   help="open groups and templates (all, or down to DEPTH levels)")
    p.add_argument("--direction", choices=["TB", "LR"], default="TB", help="top-to-bottom or left-to-right")
    p.set_defaults(run=cmd_graph)

    p = sub.add_parser("export", help="export to ONNX (eval mode, dynamic batch)")
    p.add_argument("spec")
    _spec_args(p)
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=_opset, default=None, help="ONNX opset version (default: torch's)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch size at 1 instead of N")
    p.add_argument("--weights", metavar="FILE",
                   help="trained weights: a netspec checkpoint, a run folder (its best.pt, else last.pt) or a "
                        "state_dict file (default: untrained)")
    p.add_argument("--ema", action="store_true", help="with a checkpoint: export its EMA weights")
    p.add_argument("--no-check", action="store_true",
                   help="skip running the file in onnxruntime against PyTorch")
    p.set_defaults(run=cmd_export)

    p = sub.add_parser("check", help="validate specs fast (no torch); one line per error")
    p.add_argument("specs", nargs="+", help="spec files, template files (`use:`), or folders of them "
                   "(their YAML files with a netspec: key; folders linked in are not followed)")
    _spec_args(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument("--input-range", action="store_true",
                   help="also state which input sizes each spec accepts (smallest H, W; divisibility; fixed sizes)")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("diff", help="what changed between two specs: nodes, shapes, parameter counts")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    _spec_args(p)
    p.add_argument("--pa", action="append", default=[], metavar="NAME=VALUE", help="override a param of A only")
    p.add_argument("--pb", action="append", default=[], metavar="NAME=VALUE", help="override a param of B only")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--depth", type=whole_number(0), default=None, help="list changed nodes down to this nesting depth")
    p.add_argument("--all", action="store_true", help="also list weightless nodes whose shape merely followed")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the architectures differ")
    p.set_defaults(run=cmd_diff)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec language")
    p.add_argument("-o", "--output", help="write to this file instead")
    p.set_defaults(run=cmd_schema)

    p = sub.add_parser("list", help="list ops and templates with their parameters")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("explain", help="explain one op or template")
    p.add_argument("name")
    p.set_defaults(run=cmd_explain)

    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    _train_commands(sub, bool(words) and words[0] in ("train", "eval"))
    return root


def _train_commands(sub, wanted: bool) -> None:
    """train/eval live in netspec.train, which imports torch: only load it when they run."""
    train = sub.add_parser("train", help="train a spec (Fashion-MNIST by default)")
    evaluate = sub.add_parser("eval", help="evaluate a checkpoint: accuracy and a per-class table")
    if not wanted:
        return
    from .train import cli as train_cli

    train_cli.add_train_arguments(train)
    train.set_defaults(run=train_cli.run_train)
    train_cli.add_eval_arguments(evaluate)
    evaluate.set_defaults(run=train_cli.run_eval)


def _flag_problem(args) -> str | None:
    """Flags that would be silently ignored in this combination: say so instead."""
    command = args.command
    if command == "compile":
        if args.output and not args.emit:
            return "-o/--output writes the --emit python file; add --emit python (the table goes to stdout)"
        if args.code and (args.no_build or args.json or args.emit):
            other = "--no-build" if args.no_build else "--json" if args.json else "--emit"
            return f"--code prints the built module's forward code, which {other} does not show"
    if command == "export" and args.ema and not args.weights:
        return "--ema chooses the EMA weights of a checkpoint; give the checkpoint with --weights"
    return None


def main(argv=None) -> int:
    args = parser(argv).parse_args(argv)
    problem = _flag_problem(args)
    if problem:
        print(f"netspec {args.command}: error: {problem}", file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except SpecError as err:
        print(err.format(), file=sys.stderr)
        return 2
    except OutputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `netspec compile ... | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except Exception as exc:
        return unexpected(exc)


_NO_MEMORY = re.compile(r"out of memory|can't allocate memory|cannot allocate memory", re.IGNORECASE)


def unexpected(exc: Exception) -> int:
    """An exception no command expected: memory that could not be had (too big a network, input, batch or
    resize: the user's to change) is one line and exit code 2; anything else is a bug in netspec."""
    text = own_message(exc)
    if not (isinstance(exc, MemoryError) or isinstance(exc, OSError) and exc.errno == errno.ENOMEM
            or isinstance(exc, RuntimeError) and _NO_MEMORY.search(text)):
        return internal_error(exc)
    detail = text.splitlines()[0] if text else type(exc).__name__
    detail = re.sub(r"^\[enforce fail at [^]]*\] (err == 0\. )?", "", detail)
    print(f"error: out of memory: {detail[:200]}; a smaller network, input or batch needs less", file=sys.stderr)
    return 2


def internal_error(exc: Exception, where: str = "") -> int:
    """Say a bug in netspec in one line (re-raised with NETSPEC_DEBUG set, for the traceback); exit code 1."""
    if os.environ.get("NETSPEC_DEBUG"):
        raise exc
    print(f"{where}internal error: {type(exc).__name__}: {exc} (set NETSPEC_DEBUG=1 for a traceback)",
          file=sys.stderr)
    return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _console():
    """A rich Console whose broken pipe ends the command quietly (rich's own exits with 1)."""
    from rich.console import Console

    class QuietOnBrokenPipe(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    return QuietOnBrokenPipe()


if __name__ == "__main__":
    sys.exit(main())
