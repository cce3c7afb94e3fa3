"""The seven book specs in specs/ against the independent plain-PyTorch
references in reference_models.py (and the figures of REFERENCE.md).

Per model: the parameter count, the static FLOPs (against FlopCounterMode on
the built module and against REFERENCE.md), the output shape after every
top-level stage, and the function itself: the reference's weights and
buffers are copied into the compiled module in order, and both must give the
same outputs on random input in eval mode.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch
from conftest import SPECS
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

import netspec
import reference_models as rm
from netspec.cli import main

# reference name -> (spec file, params given to the spec)
SPEC_OF = {
    "alexnet": ("alexnet.yaml", {}),
    "vgg11": ("vgg11.yaml", {}),
    "vgg11_ratio4": ("vgg11.yaml", {"ratio": 4}),
    "nin": ("nin.yaml", {}),
    "googlenet": ("googlenet.yaml", {}),
    "lenet_bn": ("lenet_bn.yaml", {}),
    "resnet18": ("resnet18.yaml", {}),
    "densenet": ("densenet.yaml", {}),
}
NAMES = list(rm.MODELS)

# The book's Fashion-MNIST recipes (REFERENCE.md): resize, batch size, SGD learning rate.
RECIPES = {
    "alexnet": (224, 128, 0.01),
    "vgg11": (224, 128, 0.05),
    "nin": (224, 128, 0.1),
    "googlenet": (96, 128, 0.1),
    "lenet_bn": (None, 256, 1.0),
    "resnet18": (96, 256, 0.05),
    "densenet": (96, 256, 0.1),
}


def test_every_reference_model_has_a_spec():
    assert set(SPEC_OF) == set(rm.MODELS)
    assert {path for path, _ in SPEC_OF.values()} == {f"{name}.yaml" for name in RECIPES}


def copy_in_order(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of `source` into `target`, matched by position."""
    src, dst = source.state_dict(), target.state_dict()
    assert len(src) == len(dst), f"{len(src)} tensors in the reference, {len(dst)} compiled"
    for (src_key, src_value), (dst_key, dst_value) in zip(src.items(), dst.items()):
        assert src_value.shape == dst_value.shape, (src_key, dst_key, src_value.shape, dst_value.shape)
        assert src_key.rsplit(".", 1)[-1] == dst_key.rsplit(".", 1)[-1], (src_key, dst_key)
    target.load_state_dict(OrderedDict(zip(dst.keys(), src.values())), strict=True)


class StageRecorder(fx.Interpreter):
    """Runs a compiled network and keeps the output of every top-level node."""

    def __init__(self, module):
        super().__init__(module)
        self.outputs: list[torch.Tensor] = []

    def run_node(self, node):
        result = super().run_node(node)
        if node.op not in ("placeholder", "output"):
            self.outputs.append(result)
        return result


@pytest.fixture(scope="module", params=NAMES)
def pair(request):
    """(name, network, reference, compiled) with the reference's weights in the compiled module."""
    name = request.param
    builder, shape, _, _ = rm.MODELS[name]
    spec, params = SPEC_OF[name]
    torch.manual_seed(0)
    reference = builder().eval()
    rm.randomize_norms(reference)
    network = netspec.load(SPECS / spec, params=params, input=shape)
    compiled = netspec.compile(network).eval()
    copy_in_order(reference, compiled)
    yield name, network, reference, compiled


def test_parameter_count(pair):
    name, network, reference, compiled = pair
    expected = rm.MODELS[name][2]
    assert network.n_params == expected
    assert rm.count_params(compiled) == expected
    assert rm.count_params(reference) == expected


def test_flops(pair):
    """Static FLOPs equal FlopCounterMode's on the built module, and REFERENCE.md to 3 decimals."""
    name, network, _, compiled = pair
    x = torch.randn(1, *rm.MODELS[name][1])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        compiled(x)
    assert network.flops == counter.get_total_flops()
    assert round(network.flops / 1e9, 3) == pytest.approx(rm.MODELS[name][3], abs=1e-9)


def test_stage_shapes_and_function(pair):
    """Same shape (static and run) after every stage, and the same outputs with the same weights."""
    name, network, reference, compiled = pair
    torch.manual_seed(1)
    x = torch.randn(2, *rm.MODELS[name][1])
    with torch.no_grad():
        expected = rm.stage_outputs(reference, x)
        recorder = StageRecorder(compiled)
        final = recorder.run(x)
        direct = compiled(x)
    got = recorder.outputs
    assert len(got) == len(expected) == len(rm.STAGES[name])
    static = [(None, *node.shape) for node in network.root.children]
    assert static == [(None, *out.shape[1:]) for out in expected]
    for stage, ours, theirs in zip(rm.STAGES[name], got, expected):
        assert ours.shape == theirs.shape, stage
        diff = (ours - theirs).abs().max().item()
        assert diff < 1e-5, f"stage {stage}: max abs difference {diff}"
    assert tuple(final.shape) == (2, rm.NUM_CLASSES)
    diff = (direct - reference(x)).abs().max().item()
    assert diff < 1e-5, f"max abs difference {diff}"
    assert direct.std() > 1e-3  # a constant output would prove nothing


@pytest.mark.parametrize("name", list(RECIPES))
def test_spec_header_and_train_recipe(name):
    text = (SPECS / f"{name}.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../schema/netspec.schema.json\n")
    resize, batch_size, lr = RECIPES[name]
    expected = {"data": "fashion-mnist", "batch_size": batch_size, "epochs": 10,
                "optimizer": {"sgd": {"lr": lr}}}
    if resize is not None:
        expected["resize"] = resize
    assert netspec.load(SPECS / f"{name}.yaml").train == expected


def test_vgg11_ratio_divides_every_conv_width():
    full = netspec.load(SPECS / "vgg11.yaml")
    quarter = netspec.load(SPECS / "vgg11.yaml", params={"ratio": 4})
    widths = [n.shape[0] for n, _ in full.nodes() if n.op == "conv"]
    assert widths == [64, 128, 256, 256, 512, 512, 512, 512]
    assert [n.shape[0] for n, _ in quarter.nodes() if n.op == "conv"] == [w // 4 for w in widths]


def test_inferred_widths():
    """AlexNet's 6400, VGG's 512*7*7 and DenseNet's channels come from inference."""
    alexnet = netspec.load(SPECS / "alexnet.yaml")
    assert {n.path: n.shape for n, _ in alexnet.nodes()}["flatten"] == (6400,)
    vgg = netspec.load(SPECS / "vgg11.yaml")
    assert {n.path: n.shape for n, _ in vgg.nodes()}["flatten"] == (512 * 7 * 7,)
    densenet = netspec.load(SPECS / "densenet.yaml")
    channels = [node.shape[0] for node in densenet.root.children[:8]]
    assert channels == rm.DENSENET_CHANNELS


def test_resnet18_stage_shapes_at_224_from_the_cli(capsys):
    assert main(["compile", str(SPECS / "resnet18.yaml"), "--input", "1,224,224", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    top = [node for node in report["nodes"] if "." not in node["path"]]
    assert [node["shape"] for node in top] == [[None, *shape[1:]] for _, shape in rm.RESNET18_STAGE_SHAPES_224]
    assert report["params"] == rm.MODELS["resnet18"][2]  # the same at any input size
    assert report["output"] == [None, 10]
