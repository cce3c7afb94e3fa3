"""`netspec compile --emit python`: the standalone file matches the compiled module key for key and output for output."""

import glob
import importlib.util
import subprocess
import sys

import pytest
import torch

import netspec
from netspec.cli import main
from netspec.emit import emit

# small valid inputs keep this fast; None keeps the spec's own input
CASES = [(path, None) for path in sorted(glob.glob("specs/*.yaml"))] + [
    ("specs/torchvision/resnet18.yaml", (3, 64, 64)),
    ("specs/torchvision/mobilenet_v2.yaml", (3, 64, 64)),
]
SMALL = {"specs/resnet18.yaml": (1, 32, 32), "specs/googlenet.yaml": (1, 48, 48),
         "specs/densenet.yaml": (1, 48, 48)}


ALLOWED_IMPORTS = {"import torch", "import torch.nn.functional as F", "from torch import nn",
                   "from collections import OrderedDict"}


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("spec,shape", CASES)
def test_emitted_file_matches(spec, shape, tmp_path):
    shape = shape or SMALL.get(spec)
    network = netspec.load(spec, input=shape)
    compiled = netspec.compile(network).eval()
    path = tmp_path / "model.py"
    path.write_text(emit(network))
    text = path.read_text()
    imports = {line for line in text.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= ALLOWED_IMPORTS and "import torch" in imports
    assert max(len(line) for line in text.splitlines() if "#" not in line) <= 100
    model = load_module(path, f"emitted_{tmp_path.name}").Model()
    assert list(model.state_dict()) == list(compiled.state_dict())
    model.load_state_dict(compiled.state_dict(), strict=True)
    model.eval()
    x = torch.randn(2, *network.input)
    with torch.no_grad():
        torch.testing.assert_close(model(x), compiled(x), rtol=1e-5, atol=1e-5)


def test_identical_blocks_share_a_class():
    text = emit(netspec.load("specs/torchvision/resnet18.yaml"))
    # the blocks that keep their width are one class, the downsampling ones another;
    # the numbers that differ between instances are the constructor's arguments
    assert text.count("\nclass BasicBlock(nn.Module)") == 1
    assert text.count("\nclass BasicBlockProject(nn.Module)") == 1
    assert "def __init__(self, out):" in text
    assert "nn.Sequential(BasicBlock(64), BasicBlock(64))" in text
    assert "BasicBlockProject(in_channels=64, out=128), BasicBlock(128)" in text
    assert "getattr(self" not in text


def test_arguments_are_named_after_template_parameters():
    text = emit(netspec.load("specs/googlenet.yaml"))
    assert "def __init__(self, in_channels, c1, c2, c3, c4):" in text
    assert "self.p2_2 = nn.Conv2d(c2[0], c2[1], 3, padding=1)" in text
    assert "Inception(in_channels=192, c1=64, c2=[96, 128], c3=[16, 32], c4=32)" in text
    assert "torch.cat([" in text and "F.max_pool2d(x, 3, stride=1, padding=1)" in text


def test_plain_chains_are_sequentials_with_default_arguments_left_out():
    text = emit(netspec.load("specs/resnet18.yaml"))
    assert "nn.Conv2d(1, 64, 7, stride=2, padding=3)," in text
    assert "nn.BatchNorm2d(64)," in text  # eps, momentum, affine: PyTorch's defaults
    assert "class Model(nn.Sequential):" in text
    assert "('7', nn.Linear(512, 10))" in text


def test_single_use_values_reuse_x():
    text = emit(netspec.load("specs/resnet18.yaml"))
    forward = text.split("class Residual(nn.Module)")[1].split("def forward(self, x):")[1].split("class")[0]
    # x is the block's input until the shortcut has used it; then the chain reuses it
    assert "x2 = F.relu(bn1)" in forward and "x = bn2 + x" in forward and "x = F.relu(x)" in forward


def test_emitted_file_runs_alone(tmp_path):
    out = tmp_path / "lenet.py"
    assert main(["compile", "specs/lenet_bn.yaml", "--emit", "python", "-o", str(out)]) == 0
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import lenet; "
            "print(tuple(lenet.Model().eval()(torch.randn(3, 1, 28, 28)).shape))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(3, 10)"


def test_bad_spec_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninput: [1, 8, 8]\nlayers:\n  - conv: {out: -1}\n")
    out = tmp_path / "model.py"
    assert main(["compile", str(bad), "--emit", "python", "-o", str(out)]) == 2
    assert not out.exists()


def test_string_arguments_are_quoted():
    from netspec.emit import flat, module_expr

    conv = torch.nn.Conv2d(3, 4, 3, padding="same", padding_mode="reflect", bias=False)
    assert flat(module_expr(conv), {}) == "nn.Conv2d(3, 4, 3, padding='same', bias=False, padding_mode='reflect')"
    pool = torch.nn.MaxPool2d((2, 3), ceil_mode=True)
    assert flat(module_expr(pool), {}) == "nn.MaxPool2d((2, 3), stride=(2, 3), ceil_mode=True)"


def test_non_torch_modules_are_refused():
    from netspec.emit import EmitError, module_expr

    class Custom(torch.nn.Module):
        pass

    with pytest.raises(EmitError, match="not a torch.nn module"):
        module_expr(Custom())


EVERY_OP = """
netspec: 1
name: every_op
input: [3, 17, 19]
network:
  - group: dag                # not a chain: a class whose forward uses functional calls
    layers:
      - {id: c, conv: {out: 8, kernel: 3, padding: same}}
      - {id: a, leaky_relu: 0.2}
      - gelu: {approximate: tanh}
      - silu
      - tanh
      - sigmoid
      - relu6
      - relu
      - identity
      - {id: m, maxpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true, dilation: 1}}
      - {id: v, from: a, avgpool: {kernel: 3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: false}}
      - {id: g, mul: [m, v]}
      - {id: d, dropout: 0.3}
      - {id: s, softmax: 1}
      - {id: n, layernorm: {dims: 2}}
      - {id: am, from: c, adaptive_maxpool: [2, 3]}
      - {id: aa, from: c, adaptive_avgpool: [2, 3]}
      - {id: sum, add: [am, aa]}
      - {concat: [sum, am]}
  - group: chain              # a chain: an nn.Sequential of modules
    layers:
      - conv: {out: 4, kernel: [1, 3], groups: 2, dilation: 2, padding: [0, 2], bias: false}
      - batchnorm: {eps: 0.001, momentum: 0.2}
      - global_avgpool
  - {id: lin, linear: 5}
  - flatten: {start: 1}
"""


def test_every_op_emits_and_matches(tmp_path):
    network = netspec.load_text(EVERY_OP, "every_op.yaml")
    assert set(ops_used(network)) >= set(netspec.ops.REGISTRY) - PLUGIN_OPS
    compiled = netspec.compile(network).eval()
    path = tmp_path / "every_op.py"
    path.write_text(emit(network))
    model = load_module(path, "emitted_every_op").Model()
    model.load_state_dict(compiled.state_dict(), strict=True)
    model.eval()
    x = torch.randn(3, *network.input)
    with torch.no_grad():
        torch.testing.assert_close(model(x), compiled(x), rtol=1e-5, atol=1e-5)
    text = path.read_text()
    assert "F.leaky_relu(c, 0.2)" in text and "F.dropout(g, 0.3, training=self.training)" in text
    assert "padding='same'" in text and "ceil_mode=True" in text


PLUGIN_OPS = {name for name, cls in netspec.ops.REGISTRY.items() if getattr(cls, "plugin", None)}


def ops_used(network):
    return {node.op for node, _ in network.nodes() if not node.group}


@pytest.mark.parametrize("name", ['a\\b"""c', "end\\", "quote'\"", "tab\tnew\nline", "bad\udcff"])
def test_any_spec_path_gives_valid_python(tmp_path, name):
    """The spec's path goes into the module docstring: escaped, it reads back as itself."""
    import ast

    text = "netspec: 1\nname: t\ninput: [3, 8, 8]\nnetwork: [relu]\n"
    source = emit(netspec.load_text(text, path=str(tmp_path / name) + ".yaml"))
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    assert docstring.startswith(f"t: generated by netspec {netspec.__version__} from {tmp_path / name}.yaml.\n")
    source.encode()  # written as UTF-8
