"""Input constraints: the smallest valid size, fixed sizes and divisibility, checked against PyTorch."""

import pytest

import netspec
from netspec.cli import main
from netspec.constraints import describe, input_range

EVEN_ONLY = """
netspec: 1
name: even
input: [3, 32, 32]
network:
  - conv: {out: 8, kernel: 3, padding: 1}
  - parallel:
      - maxpool: 2                                   # floor(H / 2)
      - conv: {out: 8, kernel: 3, stride: 2, padding: 1}   # ceil(H / 2)
    merge: add
  - adaptive_avgpool: 1
  - flatten
  - linear: 10
"""


def test_resnet18_any_size():
    ranges = input_range("specs/resnet18.yaml")
    assert [r.name for r in ranges] == ["H", "W"]
    assert all(r.min == 1 and r.period == 1 and r.fixed is None for r in ranges)
    assert describe(ranges) == "any H, W"


def test_densenet_minimum():
    ranges = input_range("specs/densenet.yaml")
    assert describe(ranges) == "H, W >= 29; any size"
    assert "too small" in ranges[0].too_small


def test_alexnet_fixed_by_flatten_linear():
    ranges = input_range("specs/alexnet.yaml")
    text = describe(ranges)
    assert text.startswith("H, W must be 224 because flatten → linear(6400) at fc1.0"), text
    assert ranges[0].fixed == (193, 224)  # conv s4, pool s2, pool s2: all give 5x5 before flatten
    for h in (193, 224):
        assert netspec.load("specs/alexnet.yaml", input=(1, h, 224)).n_params == 46_764_746
    for h in (192, 225):
        assert netspec.load("specs/alexnet.yaml", input=(1, h, 224)).n_params != 46_764_746


def test_torchvision_alexnet_adaptive_pool_frees_the_size():
    assert describe(input_range("specs/torchvision/alexnet.yaml")) == "H, W >= 63; any size"


def test_divisibility_from_branches_with_different_rounding():
    ranges = input_range("even.yaml", text=EVEN_ONLY)
    assert all(r.period == 2 and r.residues == [0] for r in ranges)
    assert ranges[0].extra == [3]  # 3 -> 1 and 2 rows: the 1 broadcasts
    assert describe(ranges) == "H, W >= 2; H, W divisible by 2 (or 3)"
    netspec.load_text(EVEN_ONLY, "even.yaml", input=(3, 30, 32))
    with pytest.raises(netspec.SpecError):
        netspec.load_text(EVEN_ONLY, "even.yaml", input=(3, 31, 32))


def test_vector_input():
    text = "netspec: 1\nname: mlp\ninput: [20]\nnetwork: [{linear: 5}]\n"
    assert describe(input_range("mlp.yaml", text=text)) == "a vector input: no spatial size to choose"


@pytest.mark.parametrize("spec", ["specs/densenet.yaml", "specs/nin.yaml", "specs/torchvision/vgg16_bn.yaml"])
def test_minimum_agrees_with_pytorch(spec):
    torch = pytest.importorskip("torch")
    ranges = input_range(spec)
    base = netspec.load(spec)
    c, h, w = base.input
    low = ranges[0].min
    model = netspec.compile(spec, input=(c, low, w)).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, c, low, w))
    assert tuple(out.shape[1:]) == base.output
    # one below the minimum: PyTorch refuses it too (built at the spec's own size)
    model = netspec.compile(spec).eval()
    with torch.no_grad(), pytest.raises(RuntimeError):
        model(torch.zeros(1, c, low - 1, w))


def test_fixed_size_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    model = netspec.compile("specs/lenet_bn.yaml").eval()
    ranges = input_range("specs/lenet_bn.yaml")
    lo, hi = ranges[0].fixed
    with torch.no_grad():
        for h in (lo, hi):
            assert model(torch.zeros(2, 1, h, 28)).shape == (2, 10)
        for h in (lo - 1, hi + 1):
            with pytest.raises(RuntimeError):
                model(torch.zeros(2, 1, h, 28))


def test_check_input_range_cli(capsys):
    assert main(["check", "--input-range", "specs/alexnet.yaml", "specs/densenet.yaml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "specs/densenet.yaml: input sizes: H, W >= 29; any size" in out
    assert any(line.startswith("specs/alexnet.yaml: input sizes: H, W must be 224") for line in out)
