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

ZOO = sorted(glob.glob("specs/*.yaml")) + sorted(glob.glob("specs/torchvision/*.yaml"))
# smaller inputs where the spec allows them keep the exports fast; the shapes are checked at these
SMALL = {"specs/resnet18.yaml": (1, 32, 32), "specs/googlenet.yaml": (1, 48, 48),
         "specs/densenet.yaml": (1, 48, 48), "specs/lenet_bn.yaml": None,
         # without an adaptive pool, a smaller input also shrinks the classifier (and the file)
         "specs/alexnet.yaml": (1, 96, 96), "specs/vgg11.yaml": (1, 64, 64),
         **{spec: (3, 64, 64) for spec in ZOO if spec.startswith("specs/torchvision/")}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every zoo model exported once (at a small input where the spec allows one)."""
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for spec in ZOO:
        network = netspec.load(spec, input=SMALL.get(spec))
        path = export(network, root / (spec.replace("/", "_") + ".onnx"))
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


def batched(inferred: tuple, shape) -> bool:
    """ONNX's shape equals netspec's, with a symbolic batch: N, or a fresh symbol where a reshape
    (flatten) keeps ONNX from proving it is still N."""
    return isinstance(inferred[0], str) and bool(inferred[0]) and tuple(inferred[1:]) == tuple(shape)


@pytest.mark.parametrize("spec", ZOO)
def test_shape_inference_agrees(spec, exported):
    network, path = exported[spec]
    model = onnx.load(str(path))
    # forget every shape the exporter wrote down, so that ONNX works them all out itself
    del model.graph.value_info[:]
    for value in model.graph.output:
        value.type.tensor_type.ClearField("shape")
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph
    assert dims(graph.input[0]) == ("N", *network.input)
    assert batched(dims(graph.output[0]), network.output)
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
        assert any(batched(d, node.shape) for d in produced[node.path]), (node.path, node.shape,
                                                                          produced[node.path])
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


def test_cli_static_batch_is_checked_at_batch_1(tmp_path, capsys):
    """The file's batch is fixed at 1: the onnxruntime check once fed it 2, an internal error."""
    out = tmp_path / "lenet.onnx"
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(out), "--static-batch"]) == 0
    err = capsys.readouterr().err
    assert "onnxruntime matches PyTorch" in err and "on a random batch of 1" in err
    assert "input (1, 1, 28, 28) -> output (1, 10)" in err


def test_cli_exports_trained_weights_and_checks_them(tmp_path, capsys):
    network = netspec.load("specs/lenet_bn.yaml")
    torch.manual_seed(1)
    trained = netspec.compile(network)
    for m in trained.modules():  # weights no fresh module has
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
    trained.eval()
    ckpt = tmp_path / "last.pt"
    torch.save({"format": "netspec-checkpoint/1", "model": {"_orig_mod." + k: v for k, v in
                                                             trained.state_dict().items()}, "epoch": 3}, ckpt)
    out = tmp_path / "lenet.onnx"
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(out), "--weights", str(ckpt)]) == 0
    err = capsys.readouterr().err
    assert "model weights of a netspec checkpoint (epoch 3)" in err
    assert "onnxruntime matches PyTorch" in err
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(4, *network.input)
    with torch.no_grad():
        expected = trained(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, rtol=1e-4, atol=1e-4)

    # a plain state_dict works too; weights of another network are refused cleanly
    plain = tmp_path / "plain.pt"
    torch.save(trained.state_dict(), plain)
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(out), "--weights", str(plain), "--no-check"]) == 0
    assert "state_dict" in capsys.readouterr().err
    wrong = tmp_path / "wrong.pt"
    torch.save(netspec.compile("specs/lenet_bn.yaml", params={"classes": 3}).state_dict(), wrong)
    target = tmp_path / "never.onnx"
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(target), "--weights", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert "do not fit this network" in err and "fc3" in err and "Traceback" not in err
    assert not target.exists()
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(target), "--weights", str(ckpt), "--ema"]) == 2
    assert "holds no ema weights" in capsys.readouterr().err


def test_missing_exporter_package_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import fails as if not installed
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'netspec[export]'" in err and "Traceback" not in err


@pytest.mark.parametrize("verdict", [1.0, RuntimeError("boom")])
def test_a_failed_check_leaves_the_old_file(tmp_path, capsys, monkeypatch, verdict):
    import netspec.export

    def verify(*args, **kwargs):
        if isinstance(verdict, Exception):
            raise verdict
        return verdict

    monkeypatch.setattr(netspec.export, "verify", verify)
    out = tmp_path / "lenet.onnx"
    out.write_bytes(b"the old file")
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(out)]) == 1
    assert out.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["lenet.onnx"]


@pytest.mark.parametrize("opset", ["5", "6", "29", "999", "-1", "x"])
def test_unsupported_opset_is_refused_before_any_work(tmp_path, capsys, opset):
    """Outside what torch.onnx takes at all (7 to the newest opset onnx knows): refused by argparse."""
    out = tmp_path / "lenet.onnx"
    with pytest.raises(SystemExit) as exit:
        main(["export", "specs/lenet_bn.yaml", "-o", str(out), f"--opset={opset}"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "argument --opset:" in err and "Traceback" not in err
    assert ("expected a whole number" if opset == "x" else f"opset {opset} is not supported") in err
    assert not out.exists()


def test_opset_range_is_what_the_exporter_takes():
    from netspec.export import opset_range

    assert opset_range() == (7, onnx.defs.onnx_opset_version())


@pytest.mark.parametrize("opset", [16, 17])
def test_an_older_opset_is_written_where_the_exporter_converts_the_network(tmp_path, capsys, opset):
    """torch's ONNX functions are written for opset 18; lenet's ops convert down, so the file is that opset
    (not 18 under another name) and onnxruntime runs it as PyTorch does."""
    out = tmp_path / "lenet.onnx"
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(out), f"--opset={opset}"]) == 0
    err = capsys.readouterr().err
    assert "onnxruntime matches PyTorch" in err and f"opset {opset}," in err
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    network = netspec.load("specs/lenet_bn.yaml")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(3, *network.input)
    assert session.run(None, {"input": x.numpy()})[0].shape == (3, 10)


def test_an_opset_the_exporter_cannot_convert_to_is_refused(tmp_path, capsys, monkeypatch):
    """resnet18 at opset 17: the down-conversion fails (an axes input it cannot turn back into an
    attribute) and the exporter silently keeps 18. That is one line, rc 2, and nothing written."""
    import netspec.export

    wrote = []
    real = netspec.export._check_written

    def check(path, opset):
        wrote.append(netspec.export.written_opset(path))
        real(path, opset)

    monkeypatch.setattr(netspec.export, "_check_written", check)
    out = tmp_path / "resnet18.onnx"
    out.write_bytes(b"the old file")
    assert main(["export", "specs/resnet18.yaml", "--input", "1,16,16", "-o", str(out), "--opset", "17"]) == 2
    assert wrote == [18]  # the exporter really did substitute its own opset
    err = capsys.readouterr().err
    assert err == "error: could not write opset 17 for this network: the exporter could not convert to it " \
                  "and kept opset 18; --opset 18 works\n", err
    assert out.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["resnet18.onnx"]


def test_the_advice_names_the_opsets_left_to_try(tmp_path, capsys):
    """lenet at 15 falls back to 18, yet 16 and 17 convert (the test above): the message may not call 18 the
    oldest that works."""
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(tmp_path / "l.onnx"), "--opset", "15"]) == 2
    assert capsys.readouterr().err.endswith("kept opset 18; --opset 18 works, and 16 to 17 may\n")
    assert list(tmp_path.iterdir()) == []


def test_a_newer_opset_is_written():
    from netspec.export import exported, summary

    with exported(netspec.load("specs/lenet_bn.yaml"), opset=19) as tmp:
        assert summary(tmp)["opset"] == 19


class _NotATensor:
    pass


@pytest.mark.parametrize("name, write, reason", [
    ("empty.pt", lambda p: p.write_bytes(b""), "the file is empty"),
    ("text.pt", lambda p: p.write_text("garbage\n"), "not a file written by torch.save"),
    ("truncated.pt", lambda p: (torch.save({"w": torch.ones(64)}, p), p.write_bytes(p.read_bytes()[:200])),
     "truncated or damaged"),
    ("objects.pt", lambda p: torch.save({"w": _NotATensor()}, p), "Python objects besides tensors"),
    ("folder", lambda p: p.mkdir(), "(a folder: name a .pt file in it)"),
])
def test_an_unreadable_weights_file_is_one_line(tmp_path, capsys, name, write, reason):
    weights = tmp_path / name
    write(weights)
    target = tmp_path / "never.onnx"
    assert main(["export", "specs/lenet_bn.yaml", "-o", str(target), "--weights", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and reason in err, err
    assert not target.exists()
