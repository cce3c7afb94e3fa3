"""`netspec export`: onnxruntime agrees with PyTorch, onnx shape inference agrees with netspec."""

import ast
import glob

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import netspec  # noqa: E402
from netspec.cli import main  # noqa: E402
from netspec.export import export  # noqa: E402

ZOO = sorted(glob.glob("specs/*.yaml"))
SMALL = {"specs/resnet18.yaml": (1, 32, 32), "specs/googlenet.yaml": (1, 48, 48),
         "specs/densenet.yaml": (1, 48, 48), "specs/lenet_bn.yaml": None}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every zoo model exported once (at a small input where the spec allows one)."""
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for spec in ZOO:
        network = netspec.load(spec, input=SMALL.get(spec))
        path = export(network, root / (network.name + ".onnx"))
        out[spec] = (network, path)
    return out


@pytest.mark.parametrize("spec", ["specs/resnet18.yaml", "specs/lenet_bn.yaml", "specs/googlenet.yaml"])
def test_onnxruntime_matches_pytorch(spec, exported):
    network, path = exported[spec]
    torch.manual_seed(0)
    module = netspec.compile(network)
    # give batch norm non-trivial running statistics, then compare in eval mode
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    module.eval()
    session_path = export(network, path.with_name("cmp_" + path.name), module=module)
    session = ort.InferenceSession(str(session_path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # the batch axis is dynamic
        x = torch.randn(batch, *network.input)
        with torch.no_grad():
            expected = module(x).numpy()
        (got,) = session.run(None, {"input": x.numpy()})
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def dims(value):
    return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim)


@pytest.mark.parametrize("spec", ZOO)
def test_shape_inference_agrees(spec, exported):
    network, path = exported[spec]
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    graph = model.graph
    assert dims(graph.input[0]) == ("N", *network.input)
    assert dims(graph.output[0]) == ("N", *network.output)
    # intermediate values: each ONNX node records the netspec path of the module it came from
    shapes = {v.name: dims(v) for v in graph.value_info}
    produced: dict[str, set] = {}
    for node in graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        if len(scopes) >= 2:
            for name in node.output:
                if name in shapes:
                    produced.setdefault(scopes[1], set()).add(shapes[name])
    checked = 0
    for node, _ in network.nodes():
        if node.group or node.path not in produced:
            continue
        assert ("N", *node.shape) in produced[node.path], (node.path, node.shape, produced[node.path])
        checked += 1
    assert checked >= 3, "too few intermediate values could be matched to netspec nodes"


def test_cli_export_and_atomic(tmp_path, capsys):
    out = tmp_path / "lenet.onnx"
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(out)]) == 0
    onnx.checker.check_model(onnx.load(str(out)))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninput: [1, 8, 8]\nlayers:\n  - conv: {out: -1}\n")
    target = tmp_path / "sub" / "bad.onnx"
    assert main(["export", str(bad), "-o", str(target)]) == 2
    assert not target.exists()
    assert not (tmp_path / "sub").exists() or not any((tmp_path / "sub").iterdir())
