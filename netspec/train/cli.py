"""`netspec train` and `netspec eval`: flags, and the glue from flags to the runner.

netspec.cli imports this module only when one of these commands runs (it
imports torch through the runner). Errors the user must fix print one
sentence `error: ...` to stderr and return 2; spec errors propagate to
netspec.cli, which prints them located.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..cli import input_shape, unexpected, whole_number

# (flag, TrainConfig field) for every flag that overrides the spec's `train:` section
OVERRIDES = [
    ("--data", "data"), ("--data-dir", "data_dir"), ("--download", "download"), ("--epochs", "epochs"),
    ("--batch-size", "batch_size"), ("--lr", "lr"), ("--optimizer", "optimizer"), ("--schedule", "schedule"),
    ("--resize", "resize"), ("--device", "device"), ("--amp", "amp"), ("--channels-last", "channels_last"),
    ("--compile", "compile"), ("--seed", "seed"), ("--max-steps", "max_steps"),
    ("--limit-train", "limit_train"), ("--limit-test", "limit_test"), ("--checkpoint-every", "checkpoint_every"),
    ("--ema", "ema"), ("--label-smoothing", "label_smoothing"), ("--init", "init"), ("--workers", "workers"),
    ("--threads", "threads"), ("--keep-memory", "keep_memory"),
    ("--gemm-weight-grads", "gemm_weight_grads"), ("--augment", "augment"), ("--grad-clip", "grad_clip"),
    ("--amp-dtype", "amp_dtype"),
]


class _Compile(argparse.Action):
    """`--compile [BACKEND]`. A backend is a name; a path after the flag (`--compile net.yaml`) is the
    SPEC, which nargs='?' would otherwise swallow as a backend."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value is not None and not value.isidentifier():
            namespace.compile_spec, value = value, None  # run_train puts it back as the spec
        setattr(namespace, self.dest, True if value is None else value)


def _size(text: str):
    parts = text.replace("x", ",").split(",")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 96 or 96,128, got '{text}'") from None
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="fashion-mnist (default), mnist, cifar10, synthetic or imagefolder:PATH")
    p.add_argument("--data-dir", help="folder holding the data sets (else $NETSPEC_DATA, else ~/.cache/netspec/data)")
    p.add_argument("--download", action=argparse.BooleanOptionalAction,
                   help="download a missing torchvision data set")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--device", help="auto (default: cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--limit-test", type=int, metavar="N", help="test on the first N images only (0: all)")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", help="the spec to train (optional with --resume: the checkpoint holds it)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override a spec param")
    p.add_argument("--input", type=input_shape, help="input shape C,H,W (overrides the spec's)")
    _data_args(p)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, help="learning rate of the chosen optimizer")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--schedule", choices=["constant", "step", "cosine", "onecycle"])
    p.add_argument("--resize", type=_size, metavar="SIZE", help="resize images to SIZE or H,W on the device")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random flips and shifts (up to 1/8 of a side) of training images (default: off)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="autocast in bf16 (or --amp-dtype) (default: on for CUDA)")
    p.add_argument("--amp-dtype", choices=["bfloat16", "float16"],
                   help="autocast's type: float16 (with a gradient scaler) for GPUs without bf16")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                   help="NHWC memory (default: on for CUDA; on CPU for networks with a conv of 32+ channels; off for MPS)")
    p.add_argument("--compile", nargs="?", action=_Compile, metavar="BACKEND",
                   help="torch.compile, with BACKEND (default inductor); --no-compile turns it off")
    p.add_argument("--no-compile", dest="compile", action="store_const", const=False, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradients' norm to NORM (0: no clipping)")
    p.add_argument("--init", choices=["xavier", "kaiming", "default"])
    p.add_argument("--workers", type=int, help="DataLoader workers for image folders (at most one per core)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="PyTorch CPU threads (default: one per core; fewer on a busy machine)")
    p.add_argument("--keep-memory", action=argparse.BooleanOptionalAction,
                   help="keep freed memory in the process: fewer page faults (default: on for CPU, Linux/glibc)")
    p.add_argument("--gemm-weight-grads", action=argparse.BooleanOptionalAction,
                   help="weight gradients of convs with <= 3x3 outputs as one matrix product (default: on for "
                        "fp32 CPU training without --compile where PyTorch runs its AVX2 kernels)")
    p.add_argument("--ema", type=float, metavar="DECAY", help="keep an EMA of the weights (e.g. 0.999; 0: none)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N steps in all (0: no limit)")
    p.add_argument("--limit-train", type=int, metavar="N", help="train on the first N images only (0: all)")
    p.add_argument("--checkpoint-every", type=int, metavar="N", help="also write last.pt every N steps (0: never)")
    p.add_argument("--out", help="run folder (default runs/NAME-TIMESTAMP; with --resume, the checkpoint's "
                                 "run folder if it is one, else a new one)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a run exactly where it stopped, from its last.pt or its run folder (flags "
                        "override its settings; "
                        "0 turns off a count it set, --no-X a switch)")
    p.add_argument("--force", action="store_true", help="resume even if the spec has changed")
    p.add_argument("--quiet", action="store_true", help="print only the last line")
    p.add_argument("--nproc", type=whole_number(1), metavar="N", help="train on N processes (starts torchrun)")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a last.pt or best.pt, or a run folder (its best.pt, else its last.pt)")
    _data_args(p)
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights")


def _errors():
    from .checkpoint import ResumeError, SaveError
    from .config import ConfigError
    from .data import DataError
    from .loop import TrainError
    return ConfigError, DataError, ResumeError, SaveError, TrainError


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def run_train(args) -> int:
    """Validate flags, spec and config, then train; the exit code."""
    swallowed = getattr(args, "compile_spec", None)  # `--compile SPEC`: see _Compile
    if swallowed:
        if args.spec:
            return _fail(f"--compile takes a backend name, not '{swallowed}'")
        args.spec = swallowed
        del args.compile_spec
    if args.nproc and args.nproc > 1 and "LOCAL_RANK" not in os.environ:
        return launch(args.nproc, worker_argv(args))
    errors = _errors()
    try:
        config, source, ckpt = resolve(args)
        from .loop import RunOptions, run_training
        options = RunOptions(out=Path(args.out) if args.out else None, resume=args.resume, force=args.force,
                             overwrite=args.overwrite, quiet=args.quiet)
        run_training(config, source, options)
        return 0
    except errors as e:
        from .loop import Interrupted
        if os.environ.get("RANK", "0") == "0":  # under torchrun, say it once
            print(str(e) if isinstance(e, Interrupted) else f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)


def resolve(args):
    """The spec (from SPEC or the checkpoint), the config (spec or checkpoint, then flags), the checkpoint."""
    from pydantic import ValidationError

    from . import checkpoint
    from .config import ConfigError, TrainConfig, apply_overrides
    from .model import ModelSource, load_spec_text

    if args.resume:
        args.resume = str(checkpoint.in_run(args.resume, ("last.pt",)))
    ckpt = checkpoint.load(args.resume, checkpoint.NEEDED_TO_RESUME) if args.resume else None
    if args.spec:
        import netspec
        from netspec.api import parse_assignments
        spec = netspec.load(args.spec, parse_assignments(args.param), args.input)
    elif ckpt is not None:
        record = ckpt["spec"]
        spec = load_spec_text(checkpoint.spec_text(ckpt, args.resume), record.get("params") or {},
                              record.get("path"), record.get("input"))
    else:
        raise ConfigError("give a SPEC to train, or --resume CHECKPOINT")
    source = ModelSource.from_spec(spec, getattr(spec, "params", None))
    if ckpt is not None:
        base = checkpoint.config_of(ckpt, args.resume)
    else:
        try:
            base = TrainConfig.from_section(spec.train)
        except ValidationError as e:
            raise located_error(e, getattr(spec, "file", None) or args.spec) from None
    config = apply_overrides(base, {field: getattr(args, field) for _, field in OVERRIDES})
    _check_resized(spec, config.image_size)
    return config, source, ckpt


def _check_resized(spec, size) -> None:
    """The network at the size `resize` gives the images, checked before any data is read; its error says
    that size, since the spec names another."""
    import netspec
    from netspec.elaborate import OverBudget
    from netspec.errors import SpecError

    if size is None or len(spec.input) != 3 or tuple(size) == tuple(spec.input[1:]):
        return  # not resized, or not an image: the runner says so
    try:
        netspec.infer(spec, input=(spec.input[0], *size))
    except SpecError as err:
        d = err.diagnostic
        hint = "train at a smaller size (resize)" if isinstance(err, OverBudget) else d.hint  # no --max-params here
        raise SpecError(d.pos, f"{d.message}, at the size {size[0]}x{size[1]} that resize gives the images "
                        f"(the spec's input is {'x'.join(map(str, spec.input[1:]))})", hint, d.chain) from None


def launch(nproc: int, argv: list[str]) -> int:
    """Start torchrun with `nproc` workers (through netspec.train.torchrun); the workers' exit code.

    This process imports no torch: it only waits. torchrun runs in its own
    session, so a Ctrl-C (or Ctrl-\\) at the terminal reaches only this
    process, which passes it on once (the terminal would otherwise send it to
    torchrun and the workers too). Every SIGINT, SIGTERM, SIGHUP (the terminal
    closed) or SIGQUIT this process gets is passed on to torchrun, which
    passes it to the workers: on SIGINT and SIGTERM they save and exit. Should
    this process die without passing anything on (SIGKILL), the kernel sends
    torchrun a SIGTERM (Linux), so no worker is ever left behind.
    """
    import signal
    import subprocess
    cmd = [sys.executable, "-m", "netspec.train.torchrun", str(nproc), *argv]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_stopped_with_this_process())
    signals = [signal.SIGINT, signal.SIGTERM,
               *(getattr(signal, name) for name in ("SIGHUP", "SIGQUIT") if hasattr(signal, name))]
    # a signal this process ignores (SIGHUP under nohup; SIGINT for a shell's background job) stays
    # ignored: torchrun inherited the same disposition, and so the run goes on, as without --nproc
    previous = {s: signal.signal(s, lambda signum, frame: proc.send_signal(signum))
                for s in signals if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell says


def _stopped_with_this_process():
    """A preexec_fn that has the kernel send the child SIGTERM when this process dies, however it
    dies (Linux's PR_SET_PDEATHSIG); None where there is no prctl. This process must not run threads:
    the signal comes when the thread that started the child ends."""
    if not sys.platform.startswith("linux"):
        return None
    import signal
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    except (ImportError, OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        PR_SET_PDEATHSIG = 1
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # it died before the prctl: the kernel will not say so
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def located_error(error, path: str):
    """A `train:` section error at its YAML line (a SpecError), or one line when the file is gone."""
    from .config import ConfigError, TrainConfig, describe_error
    try:
        from netspec.load import load_file
        from netspec.spec import located
        doc, _ = load_file(path)
        return located(error, doc["train"], doc.at("train"), TrainConfig, prefix="train.")
    except Exception:  # no file to point into: say it in one line
        return ConfigError(f"{path}: {describe_error(error)}")


def worker_argv(args) -> list[str]:
    """The command line again, for each torchrun worker, without --nproc."""
    argv = [args.spec] if args.spec else []
    for item in args.param:
        argv += ["-p", item]
    if args.input:
        argv += ["--input", ",".join(map(str, args.input))]
    for flag, field in OVERRIDES:
        value = getattr(args, field)
        if value is None:
            continue
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append("--no-" + flag[2:])
        elif isinstance(value, tuple):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv.append(f"{flag}={value}")  # = keeps a value like -1 or a backend name with its flag
    for flag in ("out", "resume"):
        if getattr(args, flag):
            argv += [f"--{flag}", str(getattr(args, flag))]
    for flag in ("force", "overwrite", "quiet"):
        argv += [f"--{flag}"] * bool(getattr(args, flag))
    return argv


def run_eval(args) -> int:
    errors = _errors()
    try:
        from .evaluate import evaluate_checkpoint, print_evaluation
        overrides = {"data": args.data, "data_dir": args.data_dir, "download": args.download,
                     "batch_size": args.batch_size, "device": args.device, "limit_test": args.limit_test}
        from .checkpoint import BEST_THEN_LAST, in_run
        path = in_run(args.checkpoint, BEST_THEN_LAST)
        if path != Path(args.checkpoint):  # a run folder: say which of its files
            print(f"evaluating {path}", file=sys.stderr)
        print_evaluation(evaluate_checkpoint(path, overrides, use_ema=args.ema))
        return 0
    except errors as e:
        return _fail(str(e), getattr(e, "exit_code", 2))


def main(argv=None) -> int:
    """`python -m netspec.train SPEC ...`: the train command alone (what torchrun workers run).

    Exit codes as `netspec train`'s: a located spec error is 2, a bug 1 with one line.
    """
    parser = argparse.ArgumentParser(prog="netspec train")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    from netspec.errors import SpecError
    first = os.environ.get("RANK", "0") == "0"  # under torchrun, say it once
    try:
        return run_train(args)
    except SpecError as err:
        if first:
            print(err.format(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        return unexpected(exc)
