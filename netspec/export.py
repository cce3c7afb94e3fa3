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

The file is written atomically: it is exported to a temporary file beside
the target and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from .ir import Network


def export(network: Network, path, opset: int | None = None, dynamic_batch: bool = True,
           module=None) -> Path:
    """Write `network` as ONNX to `path`; returns the path.

    `module` is the compiled network to export (e.g. with trained weights);
    by default a freshly built one.
    """
    import torch

    from .build import build

    path = Path(path)
    module = (build(network) if module is None else module).eval()
    example = torch.randn(2 if dynamic_batch else 1, *network.input)
    kwargs = {"input_names": ["input"], "output_names": ["output"], "dynamo": True,
              "external_data": False, "verbose": False}
    if dynamic_batch:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("N")},)
    if opset is not None:
        kwargs["opset_version"] = opset
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                torch.onnx.export(module, (example,), tmp, **kwargs)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
