"""The loader keeps positions, refuses duplicate keys and tags, and bounds aliases."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from netspec.errors import SpecError
from netspec.load import Map, Seq, load_text


def test_positions_of_mappings_sequences_and_scalars():
    doc = load_text("a: 1\nb:\n  - x\n  - {c: 2}\n", "f.yaml")
    assert isinstance(doc, Map) and isinstance(doc["b"], Seq)
    assert (doc.at("a").line, doc.at("a").col) == (1, 4)
    assert (doc["b"].at(1).line, doc["b"].at(1).col) == (4, 5)
    assert (doc["b"][1].at("c").line, doc["b"][1].at("c").col) == (4, 9)
    assert doc.key_pos["b"].line == 2


def test_scalars_have_yaml_types():
    doc = load_text("i: 3\nf: 0.5\nb: true\nn: null\ns: '3'\n")
    assert doc == {"i": 3, "f": 0.5, "b": True, "n": None, "s": "3"}


def test_duplicate_key_is_an_error_at_the_second_key():
    with pytest.raises(SpecError) as err:
        load_text("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert (err.value.pos.line, err.value.pos.col) == (3, 1)
    assert "duplicate key 'a'" in err.value.message


@pytest.mark.parametrize("text", [
    "a: !!python/object/apply:os.system ['echo hi']\n",
    "a: !!python/name:os.system\n",
    "a: !custom 3\n",
    "a: !!python/object:__main__.X {}\n",
])
def test_python_and_custom_tags_are_refused(text):
    with pytest.raises(SpecError, match="tag"):
        load_text(text)


def test_billion_laughs_fails_after_bounded_work(monkeypatch):
    """Aliases are counted before they are copied: the copies made stay under the limit (the
    document would expand to 9^10 nodes)."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    loader = importlib.import_module("netspec.load")
    copied = []

    def counting(value):
        copied.append(_size(value))
        return real(value)
    real = loader._relocated
    monkeypatch.setattr(loader, "_relocated", counting)
    with pytest.raises(SpecError, match="too large"):
        load_text("\n".join(lines) + "\n")
    assert copied and sum(copied) <= loader.MAX_ALIAS_NODES


def _size(value) -> int:
    if isinstance(value, dict):
        return 1 + sum(_size(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_size(v) for v in value)
    return 1


def test_aliases_are_independent_copies():
    doc = load_text("a: &x {k: 1}\nb: *x\n")
    assert doc["a"] == doc["b"] and doc["a"] is not doc["b"]


def test_merge_keys_work_and_explicit_keys_win():
    doc = load_text("base: &b {kernel: 3, padding: 1}\nconv: {<<: *b, padding: 0}\n")
    assert doc["conv"] == {"kernel": 3, "padding": 0}


def test_deep_nesting_is_refused():
    with pytest.raises(SpecError, match="nesting"):
        load_text("a: " + "[" * 200 + "]" * 200 + "\n")


def test_syntax_error_has_a_location():
    with pytest.raises(SpecError) as err:
        load_text("a: [1, 2\nb: 3\n", "f.yaml")
    assert err.value.pos.file == "f.yaml" and err.value.pos.line >= 2
    assert "YAML syntax" in err.value.message


def test_tab_indentation_is_located():
    with pytest.raises(SpecError) as err:
        load_text("a:\n\tb: 1\n", "f.yaml")
    assert (err.value.pos.line, err.value.pos.col) == (2, 1)


# -- libyaml and PyYAML's own parser give the same documents -------------------------------
import yaml  # noqa: E402
from hypothesis import given, strategies as st  # noqa: E402

import importlib  # noqa: E402

loader = importlib.import_module("netspec.load")  # the module; `netspec.load` is also a function

SPEC_AND_TEMPLATE_FILES = sorted(Path(__file__).parents[1].glob("specs/**/*.yaml")) + sorted(
    Path(loader.__file__).parent.glob("templates/*.yaml"))


def snapshot(text: str, parser):
    """Everything the loader gives for `text` with one parser: values and every position, or the error."""
    saved, loader._C_LOADER = loader._C_LOADER, parser
    try:
        return _frozen(load_text(text, "x.yaml"))
    except SpecError as err:
        return ("error", err.pos, err.message)
    finally:
        loader._C_LOADER = saved


def _frozen(value):
    if isinstance(value, Map):
        return ("map", value.pos, [(k, value.key_pos[k], value.val_pos[k], _frozen(v)) for k, v in value.items()])
    if isinstance(value, Seq):
        return ("seq", value.pos, value.item_pos, [_frozen(v) for v in value])
    return (type(value).__name__, value)


needs_libyaml = pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="PyYAML built without libyaml")


@needs_libyaml
@pytest.mark.parametrize("path", SPEC_AND_TEMPLATE_FILES, ids=lambda p: p.name)
def test_libyaml_and_pure_python_load_every_spec_alike(path):
    text = path.read_text()
    assert not loader._NOT_PLAIN.search(text), "this file would not take the libyaml path"
    fast = snapshot(text, yaml.CSafeLoader)
    assert fast[0] == "map"
    assert fast == snapshot(text, None)


YAML_PIECES = st.sampled_from(["a", "b: ", "- ", "1", "-2", "0x1f", "1_0", "3.5", "1e3", ".inf", "yes", "No", "~",
                               "null", "'q'", '"\\u00e9"', "2024-01-01", "<<: ", "&x ", "*x", "!!str ", "!!int ",
                               "{", "}", "[", "]", ", ", ": ", "\n", "\n  ", "\n- ", "#c", "é", "|\n  t", "? ",
                               "\t", "$", "${a+1}", "\u2028", "\x85", "\r\n", " ", "  ", "- - ", "a: b: c",
                               "--- ", "...", "%YAML 1.1\n---", "\\", "@", "`", "%", "|", ">", "-", "? a\n: b",
                               "[a: 1]", "{a}", '"\\x41"', '"\\ud800"', "!x ", "!!python/none "])


@needs_libyaml
@given(text=st.lists(YAML_PIECES, max_size=24).map("".join))
def test_libyaml_and_pure_python_agree_on_any_text(text):
    assert snapshot(text, yaml.CSafeLoader) == snapshot(text, None)


@given(text=st.one_of(st.text(), st.lists(YAML_PIECES, max_size=24).map("".join)))
def test_the_quick_precheck_finds_every_text_the_full_one_sends_to_pure_python(text):
    if loader._NOT_PLAIN.search(text):
        assert loader._SUSPECT.search(text)


@pytest.mark.parametrize("text", ["a: !!int ", "a: !!float x", "a: !!bool maybe", "a: !!int 99999999999999999999e"])
def test_a_scalar_its_tag_cannot_read_is_a_located_error(text):
    with pytest.raises(SpecError) as err:
        load_text(text)
    assert (err.value.pos.line, err.value.pos.col) == (1, 4)
    assert "bad scalar" in err.value.message


# -- load_file reads what a text-mode read gives ------------------------------------------------
from netspec.load import load_file  # noqa: E402


@given(body=st.lists(st.sampled_from(["a", ": ", "1", "\n", "\r\n", "\r", "- ", "é", " "]), max_size=30).map("".join))
def test_load_file_reads_the_text_a_text_mode_read_gives(tmp_path_factory, body):
    path = tmp_path_factory.mktemp("f") / "s.yaml"
    path.write_bytes(body.encode("utf-8"))
    with open(path, encoding="utf-8") as handle:
        expected = handle.read()
    try:
        doc, text = load_file(path)
    except SpecError as err:
        assert err.pos.file == str(path) and "cannot read" not in err.message
        return
    assert text == expected
    assert doc == load_text(expected, str(path))


def test_load_file_reports_a_missing_or_undecodable_file_at_its_name(tmp_path):
    with pytest.raises(SpecError, match="file not found"):
        load_file(tmp_path / "absent.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="cannot read file") as err:
        load_file(bad)
    assert err.value.pos.file == str(bad)


def test_loading_pauses_the_garbage_collector_and_restores_it():
    """A full collection walks every object the process holds, and reading and elaborating make no cycles
    worth one: none runs during a load, and the collector is as it was afterwards, error or not."""
    import gc

    import netspec

    deep = "netspec: 1\nname: deep\ninput: [1, 8, 8]\nnetwork:\n  - {conv: {out: 4, kernel: 3, padding: 1}, repeat: 2000}\n"
    during = {"load": False, "collections": 0}

    def seen(phase, info):
        if phase == "start" and during["load"]:
            during["collections"] += 1
    gc.callbacks.append(seen)
    try:
        gc.collect()  # counts at zero: the call's own few allocations cannot start one before the load does
        during["load"] = True
        net = netspec.load_text(deep)
        during["load"] = False
        assert len(net.root.children) == 2000 and gc.isenabled()
        with pytest.raises(SpecError):
            netspec.load_text(deep.replace("conv:", "convv:"))
        assert gc.isenabled()
        gc.disable()
        netspec.load_text(deep)
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(seen)
    assert during["collections"] == 0


@pytest.mark.parametrize("text, value", [("1e-5", 1e-5), ("2.5E3", 2500.0), ("-1e+2", -100.0), (".5e1", 5.0),
                                         ("1.0e5", 1e5), ("1e", "1e"), ("e5", "e5"), ("1e5x", "1e5x")])
def test_exponent_floats_are_numbers_as_in_yaml_1_2_and_json(text, value):
    """PyYAML's YAML 1.1 reads 1e-5 as text; the schema, editors and Python read a number."""
    assert load_text(f"x: {text}\n")["x"] == value
    assert type(load_text(f"x: {text}\n")["x"]) is type(value)


def test_an_exponent_float_works_in_a_spec_and_on_the_command_line():
    import torch

    import netspec

    text = ("netspec: 1\nname: t\ninput: [2, 8, 8]\nparams: {drop: 1e-1}\n"
            "network: [{batchnorm: {eps: 1e-3}}, {dropout: $drop}, flatten, {linear: 4}]\n")
    for params, p in ((None, 0.1), ({"drop": "2e-1"}, 0.2)):
        model = netspec.compile(netspec.load_text(text, params=params))
        norm, = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        drop, = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        assert norm.eps == 1e-3 and drop.p == p
