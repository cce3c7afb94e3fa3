"""netspec diff: nodes matched by path; added, removed, changed; totals and deltas."""

import json

import netspec
from netspec.cli import main
from netspec.diff import diff, summary_line, to_json

BASE = """
netspec: 1
name: small
input: [3, 32, 32]
network:
  - group: stem
    layers: [{conv: {out: 16, kernel: 3, padding: 1}}, relu]
  - group: body
    layers:
      - {residual: {out: 16}}
  - adaptive_avgpool: 1
  - flatten
  - linear: 10
"""


def test_classes_change_only_touches_the_head():
    a = netspec.load("specs/resnet18.yaml")
    b = netspec.load("specs/resnet18.yaml", params={"classes": 100})
    result = diff(a, b)
    assert result["added"] == [] and result["removed"] == []
    assert [c["path"] for c in result["changed"]] == ["7"]
    head = result["changed"][0]
    assert head["param_changes"] == {"out": [10, 100]}
    assert head["params_delta"] == 512 * 90 + 90
    t = result["totals"]
    assert t["params"] == [a.n_params, b.n_params] and t["params_delta"] == b.n_params - a.n_params
    assert t["output"] == [[None, 10], [None, 100]]
    assert {g["path"]: g["status"] for g in result["groups"]}["stage1"] == "same"


def test_vgg_ratio_changes_widths_and_the_first_linear():
    a = netspec.load("specs/vgg11.yaml")
    b = netspec.load("specs/vgg11.yaml", params={"ratio": 4})
    result = diff(a, b)
    changed = {c["path"]: c for c in result["changed"]}
    assert changed["b1.0"]["param_changes"] == {"out": [64, 16]}
    assert changed["fc1.0"]["changes"] == ["n_params"]  # in_features 25088 -> 6272
    assert changed["fc1.0"]["in_shapes"] == [[[None, 25088]], [[None, 6272]]]
    assert "fc2" not in changed
    assert sum(g["params_delta"] for g in result["groups"]) == result["totals"]["params_delta"] < 0


def test_added_block_is_reported_once_with_its_subtree():
    a = netspec.load_text(BASE, "a.yaml")
    b = netspec.load_text(BASE.replace("      - {residual: {out: 16}}\n",
                                       "      - {residual: {out: 16}}\n      - {residual: {out: 16}}\n"),
                          "b.yaml")
    result = diff(a, b)
    assert [e["path"] for e in result["added"]] == ["body.1"]
    assert result["added"][0]["op"] == "residual" and result["added"][0]["nodes"] > 1
    assert result["added"][0]["params"] == b.n_params - a.n_params
    assert result["added"][0]["ops"] == 7  # conv1, bn1, relu, conv2, bn2, add, relu
    assert summary_line(result).startswith("1 added, 0 removed, 0 changed; parameters")
    assert result["removed"] == []
    back = diff(b, a)
    assert [e["path"] for e in back["removed"]] == ["body.1"] and back["added"] == []
    body = {g["path"]: g for g in result["groups"]}["body"]
    assert body["status"] == "changed" and body["params_delta"] == b.n_params - a.n_params


def test_op_and_input_changes():
    a = netspec.load_text(BASE, "a.yaml")
    b = netspec.load_text(BASE.replace("adaptive_avgpool: 1", "adaptive_maxpool: 1"), "b.yaml")
    (entry,) = diff(a, b)["changed"]
    assert entry["op_before"] == "adaptive_avgpool" and entry["op"] == "adaptive_maxpool"
    assert "op" in entry["changes"]


def test_identical():
    a = netspec.load("specs/alexnet.yaml")
    result = diff(a, netspec.load("specs/alexnet.yaml"))
    assert result["identical"] and not result["changed"]
    json.dumps(to_json(result))


def test_cli_json_and_table(capsys):
    assert main(["diff", "specs/resnet18.yaml", "specs/resnet18.yaml", "--pb", "classes=100", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["totals"]["params_delta"] == 46170 and "_order" not in out
    assert main(["diff", "specs/vgg11.yaml", "specs/vgg11.yaml", "--pb", "ratio=4"]) == 0
    text = capsys.readouterr().out
    assert "-85,712,832" in text and "b3.2" in text and "weightless" in text
    assert main(["diff", "specs/vgg11.yaml", "specs/vgg11.yaml", "--exit-code"]) == 0
    assert main(["diff", "specs/vgg11.yaml", "specs/vgg11.yaml", "-p", "ratio=2", "--pb", "ratio=4",
                 "--exit-code"]) == 1
    capsys.readouterr()


def test_cli_spec_error_exits_2(capsys):
    assert main(["diff", "specs/vgg11.yaml", "specs/vgg11.yaml", "--pb", "nope=1"]) == 2
    assert "unknown param 'nope'" in capsys.readouterr().err


def test_diff_and_input_range_never_import_torch():
    import subprocess
    import sys

    code = ("import sys; from netspec.cli import main; "
            "main(['diff', 'specs/vgg11.yaml', 'specs/vgg11.yaml', '--pb', 'ratio=4', '--json']); "
            "main(['check', '--input-range', 'specs/alexnet.yaml']); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_checkpoint_compatibility():
    a = netspec.load("specs/resnet18.yaml")
    same = diff(a, netspec.load("specs/resnet18.yaml"))["checkpoint"]
    assert same["loads"] and same["params_carried"] == a.n_params
    # a new head: only the last linear is reshaped, everything else carries over
    b = netspec.load("specs/resnet18.yaml", params={"classes": 100})
    c = diff(a, b)["checkpoint"]
    assert not c["loads"] and c["reshaped"] == ["7"] and not c["added"] and not c["moved"]
    assert c["params_carried"] == b.n_params - (512 * 100 + 100)
    assert len(c["kept"]) == 37  # 20 convs and 17 batch norms (running statistics too): all but the head


def test_checkpoint_sees_renumbered_layers_and_changed_settings():
    a = netspec.load_text(BASE, "a.yaml")
    # a dropout before the head renumbers the linear from 4 to 5: same weights, new state_dict key
    b = netspec.load_text(BASE.replace("  - linear: 10\n", "  - dropout: 0.2\n  - linear: 10\n"), "b.yaml")
    c = diff(a, b)["checkpoint"]
    assert c["moved"] == [["4", "5"]] and not c["loads"]
    assert c["params_carried"] == b.n_params
    # a new stride keeps every tensor's shape: it loads, but the reviewer is told
    s = netspec.load_text(BASE.replace("{conv: {out: 16, kernel: 3, padding: 1}}",
                                       "{conv: {out: 16, kernel: 3, padding: 1, stride: 2}}"), "s.yaml")
    c = diff(a, s)["checkpoint"]
    assert c["loads"] and c["settings_changed"] == ["stem.0"]


def test_checkpoint_lines_in_the_table(capsys):
    assert main(["diff", "specs/resnet18.yaml", "specs/resnet18.yaml", "--pb", "classes=100"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "does not load into B (strict): 1 reshaped" in text
    assert "11,173,248 of B's 11,224,548 parameters can come from A" in text
