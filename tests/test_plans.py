"""What elaboration and loading keep between loads (an op layer's plan, scalar and parameter memos)
changes no answer, and the planned path builds what the general walk builds.

Template layers are planned once per process and reused by every instance and
every later load; these tests load the same text again and again, and mix
specs that share templates, so a plan that remembered too much would show.
"""

from __future__ import annotations

import pytest

import netspec
from netspec.elaborate import Elaborator
from netspec.errors import SpecError
from netspec.load import load_text

from conftest import SPECS  # noqa: F401  (the zoo's folder)

HEAD = "netspec: 1\nname: t\ninput: [3, 8, 8]\n"


def _table(net):
    return [(n.path, n.op, n.inputs, n.shape, n.params, n.n_params, n.flops) for n, _ in net.nodes()]


def _error(text):
    with pytest.raises(SpecError) as info:
        netspec.load_text(text, "t.yaml")
    err = info.value
    return err.pos.line, err.pos.col, str(err)


@pytest.mark.parametrize("spec", ["resnet18.yaml", "googlenet.yaml", "densenet.yaml", "torchvision/resnet50.yaml"])
def test_loading_again_gives_the_same_network(spec):
    path = str(SPECS / spec)
    first = _table(netspec.load(path, input=(3, 64, 64) if "torchvision" in spec else (1, 64, 64)))
    for shape in [(1, 96, 96), (3, 224, 224)]:  # other shapes in between: plans must not hold shapes
        if "torchvision" in spec and shape[0] != 3:
            continue
        netspec.load(path, input=shape)
    again = _table(netspec.load(path, input=(3, 64, 64) if "torchvision" in spec else (1, 64, 64)))
    assert again == first


def test_a_template_instance_depends_on_its_arguments_not_on_the_last_instance():
    text = HEAD + "network:\n  - residual: {out: 8}\n  - residual: {out: 16, stride: 2}\n  - residual: {out: 16}\n"
    net = netspec.load_text(text)
    shapes = [n.shape for n in net.root.children]
    assert shapes == [(8, 8, 8), (16, 4, 4), (16, 4, 4)]
    projections = [any(c.name == "shortcut" for c in n.children) for n in net.root.children]
    assert projections == [True, True, False]  # 3 -> 8 channels, stride 2, then none


@pytest.mark.parametrize("bad", [
    "network:\n  - conv: {out: 4, kernal: 3}\n",           # a literal mapping that does not validate
    "network:\n  - conv\n",                                 # a bare op name that needs parameters
    "network:\n  - {id: x, relu}\n  - {id: x, relu}\n",     # a literal id used twice
    "network:\n  - {id: input, relu}\n",                    # a literal id that is reserved
])
def test_an_error_is_reported_on_every_load_not_only_the_first(bad):
    text = HEAD + bad
    first = _error(text)
    assert _error(text) == first
    assert _error(text) == first


def test_a_template_layer_that_fails_for_one_argument_still_works_for_another():
    blocks = ("blocks:\n  b:\n    params: {k: int}\n    graph:\n      - conv: {out: 4, kernel: $k}\n")
    good = HEAD + blocks + "network:\n  - b: {k: 3}\n"
    bad = HEAD + blocks + "network:\n  - b: {k: 0}\n"
    assert netspec.load_text(good).output == (4, 6, 6)
    line, col, message = _error(bad)
    assert "kernel" in message and line == 8
    assert netspec.load_text(good).output == (4, 6, 6)


def test_a_spec_block_may_shadow_a_builtin_template_used_by_another_spec():
    plain = netspec.load_text(HEAD + "network:\n  - residual: {out: 8}\n")
    shadowed = netspec.load_text(HEAD + "blocks:\n  residual:\n    params: {out: int}\n"
                                 "    graph: [{conv: {out: $out, kernel: 1}}]\nnetwork:\n  - residual: {out: 8}\n")
    assert [c.op for c in shadowed.root.children[0].children] == ["conv"]
    again = netspec.load_text(HEAD + "network:\n  - residual: {out: 8}\n")
    assert _table(again) == _table(plain)


def test_numbers_keep_the_type_their_tag_gives_them_across_files():
    assert load_text("a: 1\n") == {"a": 1} and type(load_text("a: 1\n")["a"]) is int
    doc = load_text("a: !!float 1\nb: 1\nc: !!str 1\n")
    assert (type(doc["a"]), type(doc["b"]), type(doc["c"])) == (float, int, str)
    assert type(load_text("a: 1\n")["a"]) is int


def test_a_second_document_is_refused_even_after_an_empty_first_one():
    for text in ["a: 1\n---\nb: 2\n", "---\n---\nb: 2\n"]:
        with pytest.raises(SpecError, match="exactly one YAML document"):
            load_text(text, "t.yaml")


# -- the planned path (Elaborator.planned) against the general walk ------------------------------
# A layer elaborated before goes straight from its plan to its node; with `planned` switched off every
# layer takes the general walk. Both must build the same network and report the same errors.

def _general_walk_only(monkeypatch):
    monkeypatch.setattr(Elaborator, "planned", lambda self, *args: False)


ZOO = sorted(str(p.relative_to(SPECS)) for p in [*SPECS.glob("*.yaml"), *SPECS.glob("torchvision/*.yaml")])


@pytest.mark.parametrize("spec", ZOO)
def test_the_planned_path_builds_what_the_general_walk_builds(spec, monkeypatch):
    path = str(SPECS / spec)
    netspec.load(path)  # every template layer planned
    planned = _table(netspec.load(path))
    _general_walk_only(monkeypatch)
    assert _table(netspec.load(path)) == planned


# a block whose layers use every shortcut of the planned path: ids, `from` (one name and a list), a
# listed `add`, `if` with a $name and with an expression, shorthand and mapping parameters
BLOCK = """blocks:
  b:
    params: {out: int, skip: bool, k: {type: int, default: 3}, p: {type: int, default: 1}}
    graph:
      - {id: c1, conv: {out: $out, kernel: $k, padding: "${k // 2}"}}
      - {id: n1, batchnorm}
      - relu
      - {id: side, from: input, if: $skip, conv: {out: $out, kernel: 1}}
      - {id: both, add: [n1, side]}
      - {id: lin, from: c1, linear: $out}
      - {from: [both], if: "${in.channels > 4}", maxpool: $p}
      - {from: [both, c1], concat}
"""


def test_the_planned_path_takes_every_kind_of_layer_it_handles(monkeypatch):
    text = HEAD + BLOCK + ("network:\n  - b: {out: 3, skip: true}\n  - b: {out: 6, skip: false}\n"
                           "  - b: {out: 12, skip: false, k: 5}\n  - b: {out: 24, skip: false, p: 2}\n")
    netspec.load_text(text)
    planned = _table(netspec.load_text(text))
    _general_walk_only(monkeypatch)
    general = _table(netspec.load_text(text))
    assert planned == general
    ops = [row[1] for row in general if row[0].startswith("1.")]
    assert ops == ["conv", "batchnorm", "relu", "add", "linear", "maxpool", "concat"]  # `side` skipped
    assert general[-1][3] == (48, 8, 8)


@pytest.mark.parametrize("network, message", [
    # the first instance plans the layers; a later one fails inside one of them
    ("  - b: {out: 3, skip: true}\n  - b: {out: 4, skip: false}\n", "cannot add shapes"),
    ("  - b: {out: 3, skip: true}\n  - b: {out: 0, skip: true}\n", "greater than 0"),
    ("  - b: {out: 3, skip: true}\n  - b: {out: 6, skip: false}\n  - b: {out: 12, skip: false, p: 20}\n",
     "pooling window"),
])
def test_an_error_inside_a_planned_layer_is_the_general_walks_error(network, message, monkeypatch):
    text = HEAD + BLOCK + "network:\n" + network
    planned = _error(text)
    assert message in planned[2]
    _general_walk_only(monkeypatch)
    assert _error(text) == planned


def test_an_if_that_is_not_a_boolean_is_reported_by_the_general_walk(monkeypatch):
    text = HEAD + ("blocks:\n  g:\n    params: {n: int}\n    graph:\n"
                   "      - {if: \"${n == 1 or n}\", relu}\n"
                   "network:\n  - g: {n: 1}\n  - g: {n: 2}\n")
    planned = _error(text)
    assert "'if' must be true or false, got 2" in planned[2]
    _general_walk_only(monkeypatch)
    assert _error(text) == planned


def test_the_same_arguments_on_another_input_shape_give_other_defaults():
    text = HEAD + "network:\n  - residual: {out: 8}\n  - residual: {out: 8}\n  - transition\n  - transition\n"
    for _ in range(2):  # the second load finds every instance's arguments remembered
        net = netspec.load_text(text)
        blocks = net.root.children
        assert [b.params["project"] for b in blocks[:2]] == [True, False]  # 3 -> 8 channels, then 8 -> 8
        assert [b.params["out"] for b in blocks[2:]] == [4, 2]  # in.channels // 2 of 8, then of 4
        assert blocks[0].params is not blocks[1].params


def test_forget_drops_what_is_kept_and_changes_no_answer():
    from netspec import api, elaborate, templates

    text = HEAD + "network:\n  - residual: {out: 8}\n  - {conv: {out: 4, kernel: $k}}\nparams: {k: 3}\n"
    kept = _table(netspec.load_text(text))
    api.forget()
    memos = (elaborate._VALIDATED, elaborate._ARGS, elaborate._RULES, elaborate._GOOD_NAMES)
    assert not any(memos) and templates.builtins.cache_info().currsize == 0
    assert _table(netspec.load_text(text)) == kept
    assert all(memos)  # filled again


# -- the memo of shape rules (elaborate._RULES) -------------------------------------------------------

class _Forgetful(dict):
    """A memo that never finds anything: every op's rule runs."""

    def get(self, key, default=None):
        return default


@pytest.mark.parametrize("spec", ZOO)
def test_remembered_shape_rules_change_no_answer(spec, monkeypatch):
    from netspec import elaborate

    path = str(SPECS / spec)
    shapes = [(3, 224, 224), (3, 64, 64)] if "torchvision" in spec else [(1, 224, 224), (1, 96, 96)]
    remembered = [_table(netspec.load(path, input=s)) for s in shapes for _ in range(2)]
    monkeypatch.setattr(elaborate, "_RULES", _Forgetful())
    computed = [_table(netspec.load(path, input=s)) for s in shapes for _ in range(2)]
    assert remembered == computed


def test_a_rule_that_held_on_one_shape_is_checked_again_on_another():
    text = HEAD + "network:\n  - conv: {out: 4, kernel: 5}\n  - relu\n"
    assert netspec.load_text(text).output == (4, 4, 4)
    with pytest.raises(SpecError, match="larger than the padded input"):
        netspec.load_text(text, input=(3, 3, 3))
    with pytest.raises(SpecError, match="larger than the padded input"):  # a failure is not remembered
        netspec.load_text(text, input=(3, 3, 3))
    assert netspec.load_text(text, input=(3, 6, 6)).output == (4, 2, 2)
