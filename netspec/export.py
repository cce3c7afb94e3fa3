"""export: a compiled network as an ONNX file, through torch.onnx.

The module is exported in eval mode (batch norm uses its running
statistics, dropout is off) with the `torch.export`-based exporter
(`dynamo=True`), the one torch supports going forward. The batch dimension
is dynamic (with `dynamic_batch=False` it is fixed at 1): the file's input is `input` of shape (N, C, H, W) and its
output is `output` of shape (N, ...), so one file serves any batch size.
Height and width stay fixed at the spec's input size, because netspec's
shapes (and every flatten -> linear) are worked out for that size.

Each ONNX node keeps the netspec path of the module it came from in its
`pkg.torch.onnx.name_scopes` metadata (e.g. `stage2.0.conv1`).

The file is exported to a temporary folder first and written to its place
atomically only once it is complete (and, from the command line, checked
against PyTorch), so a failure leaves the old file, or none, behind.

`load_weights` puts trained weights in first (a netspec checkpoint, or a
plain state_dict file); `verify` runs the file in onnxruntime against
PyTorch; `summary` reads back what was written (size, opset, node count).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path

from .files import write_atomic
from .ir import Network


class ExportError(Exception):
    """Export cannot proceed: a missing package, or weights that do not fit (exit 2, no traceback)."""


def _require(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError(f"{what} needs the '{module}' package: pip install 'netspec[export]' "
                          "(onnx, onnxscript, onnxruntime)") from None


def opset_range() -> tuple[int, int]:
    """The opsets torch.onnx's exporter takes at all: from torch's oldest (7) to the newest the `onnx`
    package knows. Its ONNX functions are written for one opset (18 so far) and converted to the one
    asked; where that conversion fails (an older opset and an op it cannot take down, such as
    resnet18's at 17), it silently keeps 18, so what was written is read back (`written_opset`)."""
    onnx = _require("onnx", "ONNX export")
    try:
        from torch.onnx._constants import ONNX_MIN_OPSET as low
    except ImportError:  # a private module: where it moves, the value it had
        low = 7
    return low, onnx.defs.onnx_opset_version()


def check_opset(opset: int) -> int:
    low, high = opset_range()
    if not low <= opset <= high:
        raise ExportError(f"opset {opset} is not supported: the installed exporter takes opsets {low} to {high}")
    return opset


def written_opset(path) -> int | None:
    """The default-domain opset an ONNX file declares."""
    onnx = _require("onnx", "reading the exported file")
    return _opset_of(onnx.load(str(path), load_external_data=False))


def _opset_of(model) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _check_written(path, opset: int) -> None:
    """The file holds the opset asked for: the exporter does not say when its conversion failed."""
    wrote = written_opset(path)
    if wrote != opset:
        if wrote is None:
            raise ExportError(f"could not write opset {opset} for this network: the file declares none; "
                              f"leave out --opset")
        untried = range(opset + 1, wrote)  # the exporter may convert to these even where it failed at `opset`
        between = "" if not untried else f", and {untried[0]} may" if len(untried) == 1 else \
            f", and {untried[0]} to {untried[-1]} may"
        raise ExportError(f"could not write opset {opset} for this network: the exporter could not convert to "
                          f"it and kept opset {wrote}; --opset {wrote} works{between}")


@contextlib.contextmanager
def _quiet(*names: str):
    """Quiets the exporter's logged warnings: that it converts to an older opset, and, where that fails
    and it keeps its own, a traceback (`_check_written` says so in one line instead)."""
    import logging

    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def exported(network: Network, opset: int | None = None, dynamic_batch: bool = True, module=None):
    """`network` exported to a temporary ONNX file (its path), removed afterwards, so that it can be
    checked before it replaces anything the user has. With `opset`, an ExportError where the file
    came out in another opset (the exporter's conversion failed and kept its own).

    `module` is the compiled network to export (e.g. with trained weights);
    by default a freshly built one.
    """
    import torch

    from .build import build

    _require("onnxscript", "ONNX export (torch.onnx's exporter)")
    if opset is not None:
        check_opset(opset)
    module = (build(network) if module is None else module).eval()
    example = torch.randn(2 if dynamic_batch else 1, *network.input)
    kwargs = {"input_names": ["input"], "output_names": ["output"], "dynamo": True,
              "external_data": False, "verbose": False}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("N")},)
    if opset is not None:
        kwargs["opset_version"] = opset
    with tempfile.TemporaryDirectory(prefix="netspec-export-") as folder:
        tmp = Path(folder) / "model.onnx"
        with warnings.catch_warnings(), _quiet("torch.onnx", "onnxscript"):
            warnings.simplefilter("ignore")
            with torch.no_grad():
                torch.onnx.export(module, (example,), str(tmp), **kwargs)
        if opset is not None:
            _check_written(tmp, opset)
        yield tmp


def export(network: Network, path, opset: int | None = None, dynamic_batch: bool = True,
           module=None) -> Path:
    """Write `network` as ONNX to `path` (atomically); returns the path."""
    with exported(network, opset, dynamic_batch, module) as tmp:
        write_atomic(path, tmp.read_bytes())
    return Path(path)


def load_weights(module, path, ema: bool = False) -> str:
    """Load trained weights into `module` (strict); returns what was loaded, for the message.

    `path` is a netspec checkpoint (`netspec train` writes them: the model's
    weights, or with `ema` their moving average) or a file holding a plain
    state_dict. Both are read with `weights_only=True`: no pickled code runs.
    """
    import torch

    from .train.checkpoint import BEST_THEN_LAST, in_run, unreadable_reason

    given, path = path, in_run(path, BEST_THEN_LAST)
    if not Path(path).is_file():
        raise ExportError(f"no weights file at {path}" + (" (a folder: name a .pt file in it)"
                                                           if Path(path).is_dir() else ""))
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing a file
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ExportError(f"{path} is not a readable weights file ({unreadable_reason(Path(path), exc)})") from None
    what, trained_for = "state_dict", None
    if isinstance(data, dict) and str(data.get("format", "")).startswith("netspec-checkpoint"):
        from .train.checkpoint import clean_state_dict

        key = "ema" if ema else "model"
        if data.get(key) is None:
            raise ExportError(f"{path} holds no {key} weights")
        source = "a netspec checkpoint" if path == Path(given) else path  # a run folder's: say which file
        what = f"{key} weights of {source} (epoch {data.get('epoch', '?')})"
        spec = data.get("spec") or {}
        trained_for = spec.get("path") or spec.get("name")
        data = clean_state_dict(data[key])
    elif ema:
        raise ExportError(f"{path} is a plain state_dict: --ema needs a netspec checkpoint")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ExportError(f"{path} holds a {type(data).__name__}, not a state_dict")
    problems = _mismatch(module.state_dict(), data)
    if problems:
        origin = f" (it was trained for {trained_for})" if trained_for else ""
        raise ExportError(f"the weights in {path} do not fit this network{origin}: {problems}")
    module.load_state_dict(data, strict=True)
    return what


def _mismatch(expected: dict, given: dict) -> str:
    """'2 missing (a.weight, a.bias), 1 reshaped (fc.weight: (10, 84) here, (3, 84) in the file)', or ''."""
    def listing(keys, limit=4):
        return ", ".join(keys[:limit]) + (f", +{len(keys) - limit} more" if len(keys) > limit else "")

    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    reshaped = [f"{k}: {tuple(expected[k].shape)} here, {tuple(given[k].shape)} in the file"
                for k in expected if k in given and hasattr(given[k], "shape")
                and tuple(given[k].shape) != tuple(expected[k].shape)]
    parts = [f"{len(keys)} {label} ({listing(keys)})" for keys, label in
             ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "reshaped")) if keys]
    return "; ".join(parts)


def verify(path, module, network: Network, batch: int = 2, seed: int = 0) -> float:
    """Run the file in onnxruntime and the module in PyTorch on one random batch: max |difference|."""
    import numpy as np
    import torch

    ort = _require("onnxruntime", "checking the exported file")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *network.input, generator=generator)
    module = module.eval()
    with torch.no_grad():
        expected = module(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    if got.shape != expected.shape:
        raise ExportError(f"onnxruntime gives shape {got.shape}, PyTorch {expected.shape}")
    return float(np.max(np.abs(got - expected))) if got.size else 0.0


def summary(path) -> dict:
    """What the file holds: size, opset, node and initializer counts, input and output shapes."""
    onnx = _require("onnx", "reading the exported file")
    model = onnx.load(str(path), load_external_data=False)

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {
        "bytes": Path(path).stat().st_size, "opset": _opset_of(model), "nodes": len(model.graph.node),
        "initializers": len(model.graph.initializer),
        "inputs": {v.name: dims(v) for v in model.graph.input},
        "outputs": {v.name: dims(v) for v in model.graph.output},
    }
