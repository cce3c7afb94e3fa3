"""specs/torchvision/ against torchvision.models itself (weights=None, never
downloaded): torchvision's state_dict loads into the compiled spec with
strict=True, the parameter counts agree, and both give the same outputs in
eval mode. The structure is checked at a small input where the model accepts
one (adaptive pooling makes that valid for all six); resnet18 is also run at
the full 224.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from conftest import SPECS
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import netspec
from reference_models import randomize_norms

TV = SPECS / "torchvision"

# spec / torchvision name -> (test input side, REFERENCE.md parameter count or None)
MODELS = {
    "resnet18": (64, 11_689_512),
    "resnet50": (64, 25_557_032),
    "vgg16_bn": (32, None),
    "alexnet": (64, 61_100_840),
    "densenet121": (64, 7_978_856),
    "mobilenet_v2": (64, 3_504_872),
}


def torchvision_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    randomize_norms(model)
    return model


def loaded(name: str, side: int, reference: nn.Module) -> nn.Module:
    compiled = netspec.compile(TV / f"{name}.yaml", input=(3, side, side)).eval()
    compiled.load_state_dict(reference.state_dict(), strict=True)
    return compiled


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name", list(MODELS))
def test_loads_torchvision_weights_and_computes_the_same(name):
    side, expected_params = MODELS[name]
    reference = torchvision_model(name)
    network = netspec.load(TV / f"{name}.yaml", input=(3, side, side))
    compiled = loaded(name, side, reference)

    n_params = sum(p.numel() for p in reference.parameters())
    assert network.n_params == n_params == sum(p.numel() for p in compiled.parameters())
    if expected_params is not None:
        assert n_params == expected_params
    assert list(compiled.state_dict()) == list(reference.state_dict())

    torch.manual_seed(1)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        expected = reference(x)
    with torch.no_grad():
        got = compiled(x)
    assert got.shape == expected.shape == (2, 1000)
    assert expected.std() > 1e-3  # a constant output would prove nothing
    diff = max_diff(got, expected)
    assert diff < 1e-4, f"max abs difference {diff}"
    assert 2 * network.flops == counter.get_total_flops()  # per image, batch of 2


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_is_written_for_224(name):
    network = netspec.load(TV / f"{name}.yaml")
    assert network.input == (3, 224, 224)
    assert network.output == (1000,)
    assert (TV / f"{name}.yaml").read_text().startswith(
        "# yaml-language-server: $schema=../../schema/netspec.schema.json\n")


def test_resnet18_at_full_size():
    reference = torchvision_model("resnet18")
    compiled = loaded("resnet18", 224, reference)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        diff = max_diff(compiled(x), reference(x))
    assert diff < 1e-4, f"max abs difference {diff}"


def test_resnet50_blocks_project_only_where_torchvision_does():
    reference = torchvision.models.resnet50(weights=None)
    network = netspec.load(TV / "resnet50.yaml")
    ours = sorted(node.path for node, _ in network.nodes() if node.path.endswith(".downsample"))
    theirs = sorted(name for name, _ in reference.named_modules() if name.endswith(".downsample"))
    assert ours == theirs == [f"layer{i}.0.downsample" for i in range(1, 5)]


def test_mobilenet_v2_depthwise_and_residuals():
    network = netspec.load(TV / "mobilenet_v2.yaml")
    paths = {node.path: node for node, _ in network.nodes()}
    depthwise = paths["features.2.conv.1.0"]  # the expanded 3x3 conv of the second block
    assert depthwise.params.groups == depthwise.in_shapes[0][0] == 96
    adds = [node.path for node, _ in network.nodes() if node.op == "add"]
    reference = torchvision.models.mobilenet_v2(weights=None)
    residual = [f"features.{i}" for i, block in enumerate(reference.features)
                if getattr(block, "use_res_connect", False)]
    assert [path.rsplit(".", 1)[0] for path in adds] == residual


def test_skipped_group_is_referable_by_its_name():
    """An `if: false` group passes its input through under its group name (the optional downsample)."""
    text = """
netspec: 1
name: t
input: [4, 8, 8]
network:
  - {id: a, relu}
  - group: shortcut
    from: input
    if: false
    layers: [{conv: {out: 4, kernel: 1}}]
  - add: [a, shortcut]
"""
    network = netspec.load_text(text)
    assert network.n_params == 0
    assert network.root.children[-1].inputs == ["a", "input"]
