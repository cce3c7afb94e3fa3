"""The pipeline end to end: spec text -> shapes -> nn.Module, the CLI, the schema."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import torch
import yaml
from conftest import REPO, SPECS, spec_text

import netspec
from netspec.cli import main
from netspec.schema import schema_text

RESNET = SPECS / "resnet18.yaml"


def run_json(capsys, *args) -> dict:
    assert main(["compile", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_resnet18_at_224_has_the_reference_stage_shapes_and_parameters(capsys):
    report = run_json(capsys, str(RESNET), "--input", "1,224,224")
    shapes = {node["path"]: node["shape"] for node in report["nodes"]}
    assert shapes["b1"] == [None, 64, 56, 56]
    assert shapes["stage1"] == [None, 64, 56, 56]
    assert shapes["stage2"] == [None, 128, 28, 28]
    assert shapes["stage3"] == [None, 256, 14, 14]
    assert shapes["stage4"] == [None, 512, 7, 7]
    assert report["output"] == [None, 10]
    assert report["params"] == 11_178_378  # ../shared/REFERENCE.md
    assert report["input"] == [1, 224, 224]


def test_compile_table_and_param_override(capsys):
    assert main(["compile", str(RESNET), "-p", "classes=100"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(N, 100)" in out and "stage4" in out and "multiply-add counts as 2" in out
    assert main(["compile", str(RESNET), "-p", "clases=100"]) == 2
    assert "did you mean 'classes'" in capsys.readouterr().err


def test_module_tree_mirrors_the_spec():
    model = netspec.compile(RESNET)
    keys = list(model.state_dict())
    assert "stage2.0.conv1.weight" in keys
    assert "stage2.0.shortcut.weight" in keys      # projection: channels and stride change
    assert "stage2.1.shortcut.weight" not in keys  # identity shortcut
    assert "stage1.0.shortcut.weight" not in keys
    assert "def forward" in model.stage2.get_submodule("0").code


def test_static_shapes_equal_a_real_forward_at_every_node():
    network = netspec.load(RESNET, input=(1, 64, 80))
    model = netspec.compile(network)
    seen = {}
    for name, module in model.named_modules():
        if name:
            module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:])))
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 80))
    assert tuple(out.shape) == (2, *network.output)
    checked = 0
    for node, _ in network.nodes():
        if node.path in seen:
            assert seen[node.path] == node.shape, node.path
            checked += 1
    assert checked > 40


def test_front_end_never_imports_torch():
    code = ("import sys, netspec; from netspec.cli import main; n = netspec.load(sys.argv[1]); "
            "netspec.infer(n); rc = main(['check', sys.argv[1], '-q']); "
            "assert rc == 0; print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(RESNET)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_schema_file_is_current():
    if (REPO / "schema" / "netspec.schema.json").read_text() != schema_text():
        pytest.fail("schema/netspec.schema.json is stale: run `make schema`")


def test_every_spec_validates_against_the_schema_and_names_it():
    schema = json.loads(schema_text())
    specs = sorted(SPECS.rglob("*.yaml"))
    assert specs
    for path in specs:
        text = path.read_text()
        jsonschema.validate(yaml.safe_load(text), schema)
        assert text.startswith("# yaml-language-server: $schema="), path


def test_schema_rejects_an_unknown_op_parameter():
    schema = json.loads(schema_text())
    doc = yaml.safe_load(spec_text("- conv: {out: 4, kernal: 3}"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_user_templates_in_the_spec_and_in_a_used_file(write_spec):
    write_spec("""
        netspec: 1
        blocks:
          conv_bn:
            params: {out: int, act: {type: bool, default: true}}
            graph:
              - {id: conv, conv: {out: $out, kernel: 3, padding: 1, bias: false}}
              - {id: bn, batchnorm}
              - {if: $act, relu}
    """, "lib.yaml")
    path = write_spec("""
        netspec: 1
        name: net
        input: [3, 16, 16]
        use: [lib.yaml]
        blocks:
          twice:
            params: {out: int}
            graph: [{conv_bn: {out: $out}, repeat: 2}]
        network:
          - {id: stem, conv_bn: {out: 8, act: false}}
          - twice: {out: 16}
          - global_avgpool
          - linear: 10
    """)
    network = netspec.load(path)
    model = netspec.compile(network)
    keys = list(model.state_dict())
    assert "stem.conv.weight" in keys and "1.1.bn.running_mean" in keys
    expected = (3 * 8 * 9 + 16) + (8 * 16 * 9 + 32) + (16 * 16 * 9 + 32) + (16 * 10 + 10)
    assert network.n_params == expected == sum(p.numel() for p in model.parameters())
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_parallel_repeat_if_and_interpolated_ids(write_spec):
    path = write_spec(spec_text("""
        - {id: "c${i}", conv: {out: 4, kernel: 1}, repeat: 3}
        - id: cat
          parallel:
            - [{conv: {out: 2, kernel: 1}}]
            - {conv: {out: 3, kernel: 3, padding: 1}}
            - [{if: false, conv: {out: 99, kernel: 1}}]
          merge: concat
        - {id: gate, from: c1, conv: {out: 1, kernel: 1}}
        - mul: [cat, gate]
    """, input=(3, 8, 8)))
    network = netspec.load(path)
    assert network.output == (9, 8, 8)  # 2 + 3 + the skipped branch passes its 4 through
    model = netspec.compile(network)
    assert {"c0.weight", "c1.weight", "c2.weight", "gate.weight"} <= set(model.state_dict())
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 9, 8, 8)


def test_infer_returns_the_table():
    rows = netspec.infer(RESNET)
    assert rows[-1]["path"] == "7" and rows[-1]["shape"] == [None, 10]
    assert sum(r["params"] for r in rows if r["path"].count(".") == 0) == 11_178_378


def test_list_and_explain(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "conv" in out and "residual" in out and "inception" in out
    assert main(["explain", "residual"]) == 0
    assert "project" in capsys.readouterr().out


def test_repeat_with_from_feeds_the_first_copy_and_chains_the_rest(write_spec):
    path = write_spec(spec_text("""
        - {id: a, conv: {out: 4, kernel: 1}}
        - relu
        - {from: a, conv: {out: 5, kernel: 1}, repeat: 3}
    """, input=(3, 8, 8)))
    network = netspec.load(path)
    assert network.n_params == (3 * 4 + 4) + (4 * 5 + 5) + 2 * (5 * 5 + 5)
    assert [node.inputs for node, _ in network.nodes()][2:] == [["a"], ["2"], ["3"]]
