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
    assert ranges[0].too_small == "avgpool at transition3.3 needs an input of 2 or more (window 2, padding 0)"
    assert ranges[0].method == "derived"


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


# Networks whose sizes are awkward on purpose. Each is checked against the front end itself:
# every size from 1 to LIMIT elaborated (the other dimension at the spec's value).
AWKWARD = {
    # five stride-2 convs (ceil) against five 2x2 max pools (floor): only multiples of 32 agree,
    # a period too long for any probing window
    "period32": ("""
      input: [3, 64, 64]
      network:
        - parallel:
            - {layers: [{conv: {out: 4, kernel: 3, stride: 2, padding: 1}}], repeat: 5}
            - {layers: [{maxpool: 2}, {conv: {out: 4, kernel: 1}}], repeat: 5}
          merge: add
        - global_avgpool
        - linear: 2
    """, 140),
    # ceil_mode pooling (GoogLeNet in torchvision), dilation and 'same' padding
    "ceil_dilated_same": ("""
      input: [1, 40, 36]
      network:
        - conv: {out: 4, kernel: 3, dilation: 3}
        - maxpool: {kernel: 3, stride: 2, ceil_mode: true}
        - conv: {out: 4, kernel: 5, padding: same}
        - avgpool: {kernel: 3, stride: 2, ceil_mode: true, padding: 1}
        - conv: {out: 4, kernel: [3, 1], stride: [2, 3]}
    """, 90),
    # a branch pooled to a fixed size concatenated with one that is not: an upper bound too
    "interval": ("""
      input: [2, 12, 12]
      network:
        - parallel:
            - adaptive_avgpool: 6
            - maxpool: 2
          merge: concat
    """, 40),
    # branches with different strides agree on finitely many sizes
    "finite": ("""
      input: [2, 7, 7]
      network:
        - parallel:
            - maxpool: 2                                   # floor(s / 2)
            - maxpool: {kernel: 3, stride: 3, padding: 1}  # floor((s + 2) / 3)
          merge: concat
    """, 40),
    # weights sized by a spatial dimension: layernorm over H, W; a linear over W
    "weights": ("""
      input: [2, 20, 24]
      network:
        - conv: {out: 3, kernel: 3, stride: 2}
        - layernorm: {dims: 2}
        - linear: 5
    """, 70),
    # ceil_mode where the last window may start in the padding: probed, not derived
    "ceil_padding": ("""
      input: [1, 30, 30]
      network:
        - maxpool: {kernel: 3, stride: 3, padding: 1, ceil_mode: true}
        - conv: {out: 2, kernel: 3}
    """, 60),
    # a 1-d input
    "signal": ("""
      input: [1, 50]
      network:
        - conv: {out: 4, kernel: 7, stride: 3}
        - maxpool: 2
        - flatten
        - linear: 3
    """, 90),
}


def _awkward(name):
    body, limit = AWKWARD[name]
    import textwrap

    return f"netspec: 1\nname: {name}\n" + textwrap.dedent(body).strip() + "\n", limit


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_derived_ranges_equal_every_size_elaborated(name):
    text, limit = _awkward(name)
    base = netspec.load_text(text, f"{name}.yaml")
    ranges = input_range(f"{name}.yaml", text=text)
    expected = {"ceil_padding": ["probed", "probed"]}
    assert [r.method for r in ranges] == expected.get(name, ["derived"] * len(ranges)), name
    for axis, r in enumerate(ranges, start=1):
        for size in range(1, limit + 1):
            shape = list(base.input)
            shape[axis] = size
            try:
                net = netspec.load_text(text, f"{name}.yaml", input=tuple(shape))
            except netspec.SpecError:
                ok, same = False, False
            else:
                ok, same = True, net.n_params == base.n_params
            assert r.accepts(size) == ok, (name, r.name, size, r)
            assert r.keeps_weights(size) == same, (name, r.name, size, r)


def test_awkward_lines():
    def line(name):
        text, _ = _awkward(name)
        return describe(input_range(f"{name}.yaml", text=text))

    # 33..63: the pooled branch is down to 1 pixel, which broadcasts against the other's 2
    assert line("period32") == "H, W >= 32; H, W divisible by 32 (or 33..63)"
    assert line("interval") == "H, W in 12..13"
    assert line("finite") == "H, W in {2, 3, 4, 5, 7}"
    assert line("weights") == "H, W must be 20 x 24 because layernorm over 2 dimensions at 1 " \
                              "(H in 19..20; W in 23..24 give the same weights)"


SIZE_DEPENDENT = {
    # (the layer, the column of its expression): settings that follow the input size
    "pool_kernel": ('  - maxpool: {kernel: "${in.height // 4}"}\n  - flatten\n  - linear: 10\n', 23),
    "conv_out": ('  - conv: {out: "${in.width}", kernel: 3}\n  - global_avgpool\n  - linear: 10\n', 17),
    "structure": ('  - {maxpool: 2, if: "${in.shape[1] >= 16}"}\n  - conv: {out: 3, kernel: 3}\n', 22),
}


@pytest.mark.parametrize("name", sorted(SIZE_DEPENDENT))
def test_layers_that_follow_the_input_size_are_refused(tmp_path, capsys, name):
    """Derivation and probing both take layers as fixed; these are not (maxpool's kernel is 8 at 32 but
    4 at 16), so a range would be wrong: the spec is refused at the expression instead."""
    layers, col = SIZE_DEPENDENT[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text("netspec: 1\nname: t\ninput: [3, 32, 32]\nnetwork:\n" + layers)
    netspec.load(path)  # a valid spec
    assert main(["check", "--input-range", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:5:{col}: error: --input-range cannot work out the sizes this network takes, "
                          "because its layers change with the input size (this expression reads in."), err
    assert "Traceback" not in err


def test_a_template_that_reads_the_size_is_refused_where_it_is_used(tmp_path):
    text = ("netspec: 1\nname: t\ninput: [3, 32, 32]\nblocks:\n"
            "  down: {graph: [{maxpool: 2, if: '${in.height >= 16}'}]}\n"
            "  unused: {graph: [{conv: {out: '${in.width}', kernel: 1}}]}\n"
            "network:\n  - {down: {}, repeat: 3}\n  - residual: {out: 4}\n")
    with pytest.raises(netspec.SpecError) as err:
        input_range("t.yaml", text=text)
    assert (err.value.pos.line, err.value.pos.col) == (5, 35) and "in.height" in err.value.message
    # in.channels (residual reads it) is fixed by the layers before, and an unused template is no matter
    assert describe(input_range("t.yaml", text=text.replace("  - {down: {}, repeat: 3}\n", ""))) == "any H, W"


@pytest.mark.parametrize("budget", [60_000, 100_000, 1_000_000])
def test_the_parameter_budget_bounds_the_sizes_with_other_weights(budget, capsys):
    """The largest size netspec reports is the largest `load` accepts under the same --max-params."""
    ranges = input_range("specs/lenet_bn.yaml", max_params=budget)
    largest, told = ranges[0].within_budget
    assert told == budget
    netspec.load("specs/lenet_bn.yaml", input=(1, largest, 28), max_params=budget)
    with pytest.raises(netspec.SpecError, match="parameters"):
        netspec.load("specs/lenet_bn.yaml", input=(1, largest + 1, 28), max_params=budget)
    assert main(["check", "--input-range", "--max-params", str(budget), "specs/lenet_bn.yaml"]) == 0
    assert f"H, W <= {largest:,} " in capsys.readouterr().out


def test_sizes_that_keep_the_weights_have_no_budget_bound():
    assert all(r.within_budget is None for r in input_range("specs/resnet18.yaml", max_params=20_000_000))


def _docs_example(name: str) -> str:
    import re

    with open("docs/language.md", encoding="utf-8") as f:
        found = re.search(rf"```yaml\n(netspec: 1\nname: {name}\n.*?)```", f.read(), re.S)
    assert found, name
    return found.group(1)


def test_reading_the_input_where_it_does_not_follow_the_size_is_accepted(tmp_path, capsys):
    """The docs' squeeze-and-excitation block: in.features after global_avgpool is the channel count, the
    same at every size, so the layers do not change and the range is the usual one."""
    path = tmp_path / "with_blocks.yaml"
    path.write_text(_docs_example("with_blocks"))
    assert describe(input_range(path)) == "any H, W"
    for size in (1, 7, 100):  # what the line says, and the SE linears the same size as at 32
        net = netspec.load(path, input=(3, size, 32))
        assert [n.params.out for n, _ in net.nodes() if n.op == "linear"] == [8, 32]
    assert main(["check", "--input-range", str(path)]) == 0
    assert f"{path}: input sizes: any H, W" in capsys.readouterr().out


def test_a_vector_input_that_reads_its_features_has_no_size_to_choose(tmp_path, capsys):
    path = tmp_path / "mlp.yaml"
    path.write_text("netspec: 1\nname: mlp\ninput: [784]\nnetwork:\n"
                    "  - linear: ${in.features // 2}\n  - relu\n  - linear: 10\n")
    assert main(["check", "--input-range", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"{path}: input sizes: a vector input: no spatial size to choose" in captured.out
    assert captured.err == ""


def test_reading_the_features_after_a_flatten_is_refused(tmp_path, capsys):
    """After a flatten of a spatial input, in.features is C*H*W: the linear's size follows the input."""
    path = tmp_path / "flat.yaml"
    path.write_text("netspec: 1\nname: t\ninput: [3, 32, 32]\nnetwork:\n  - conv: {out: 8, kernel: 3, padding: 1}\n"
                    "  - flatten\n  - linear: ${in.features // 2}\n  - linear: 10\n")
    assert main(["check", "--input-range", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:7:13: error: --input-range cannot work out the sizes this network takes, "
                          "because its layers change with the input size (this expression reads in.features; "
                          "linear at 2 has out 4096 at H = 32, "), err
    assert "check one size with --input C,H,W instead" in err and "Traceback" not in err


@pytest.mark.parametrize("layer, col, fields", [
    ("linear: ${in.channels // 2}", 13, "in.channels"),   # after a flatten, the flattened size
    ("{linear: 5, repeat: '${in.shape[0] // 96}'}", 25, "in.shape"),  # 8 linears at 16
])
def test_other_reads_that_follow_the_size_are_refused(tmp_path, capsys, layer, col, fields):
    path = tmp_path / "t.yaml"
    path.write_text(f"netspec: 1\nname: t\ninput: [3, 16, 16]\nnetwork:\n  - flatten\n  - {layer}\n")
    assert main(["check", "--input-range", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:6:{col}: error: --input-range cannot work out") and f"reads {fields};" in err, err


def test_a_template_default_that_follows_the_size_is_refused_at_the_default():
    text = ("netspec: 1\nname: t\ninput: [3, 32, 32]\nblocks:\n"
            "  down:\n    params: {k: {type: int, default: '${in.height // 8}'}}\n    graph: [{maxpool: $k}]\n"
            "network:\n  - conv: {out: 4, kernel: 3}\n  - down\n  - global_avgpool\n")
    with pytest.raises(netspec.SpecError) as err:
        input_range("t.yaml", text=text)
    assert (err.value.pos.line, err.value.pos.col) == (6, 38), err.value
    assert "reads in.height; down at 1 has k " in err.value.message


def test_a_1d_input_is_told_its_own_dimensions():
    text = ("netspec: 1\nname: s\ninput: [2, 64]\nnetwork:\n  - conv: {out: 4, kernel: '${in.length // 8}'}\n"
            "  - global_avgpool\n")
    with pytest.raises(netspec.SpecError) as err:
        input_range("s.yaml", text=text)
    assert "conv at 0 has kernel 8 at L = 64, " in err.value.message
    assert err.value.diagnostic.hint.endswith("check one size with --input C,L instead")
