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
    imports = [line for line in text.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import torch", "from torch import nn"]
    model = load_module(path, f"emitted_{tmp_path.name}").Model()
    assert list(model.state_dict()) == list(compiled.state_dict())
    model.load_state_dict(compiled.state_dict(), strict=True)
    model.eval()
    x = torch.randn(2, *network.input)
    with torch.no_grad():
        torch.testing.assert_close(model(x), compiled(x), rtol=1e-5, atol=1e-5)


def test_identical_blocks_share_a_class():
    text = emit(netspec.load("specs/torchvision/resnet18.yaml"))
    # layer1's two blocks are the same structure: one class, used twice
    assert text.count("\nclass BasicBlock(nn.Module)") == 1
    assert text.count("BasicBlock()") == 2


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
    from netspec.emit import _constructor

    conv = torch.nn.Conv2d(3, 4, 3, padding="same", padding_mode="reflect", bias=False)
    assert _constructor(conv) == ("nn.Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding='same', "
                                  "bias=False, padding_mode='reflect')")


def test_non_torch_modules_are_refused():
    from netspec.emit import EmitError, _constructor

    class Custom(torch.nn.Module):
        pass

    with pytest.raises(EmitError, match="only torch.nn modules"):
        _constructor(Custom())
