"""docs/language.md cannot drift from the code: every example in it is checked here.

```yaml           a complete spec: it must load (and build, where torch is installed);
                  a following `<!-- output: (N, ...) -->` states its output shape
```yaml fragment  part of a spec: it must be valid YAML
```yaml error     must fail to load with the message in the following `<!-- error: ... -->`
```yaml file=NAME a template file, written beside the specs before they load
"""

import re
from pathlib import Path

import pytest
import yaml

import netspec
from netspec import ops
from netspec.templates import builtins

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
BLOCK = re.compile(r"^```yaml([^\n]*)\n(.*?)^```\n(?:<!-- (output|error): (.*?) -->)?", re.S | re.M)


def blocks():
    found = []
    for match in BLOCK.finditer(DOC.read_text()):
        info, body, kind, expected = match.groups()
        line = DOC.read_text()[:match.start()].count("\n") + 1
        found.append((line, info.strip(), body, kind, expected))
    return found


def ids(items):
    return [f"line{line}" for line, *_ in items]


ALL = blocks()
SPECS = [b for b in ALL if b[1] == ""]
ERRORS = [b for b in ALL if b[1] == "error"]
FRAGMENTS = [b for b in ALL if b[1] == "fragment"]
FILES = [b for b in ALL if b[1].startswith("file=")]


@pytest.fixture
def folder(tmp_path):
    for _, info, body, _, _ in FILES:
        (tmp_path / info.removeprefix("file=")).write_text(body)
    return tmp_path


def test_the_doc_has_examples():
    assert len(SPECS) >= 15 and len(ERRORS) >= 15 and FRAGMENTS and FILES
    assert {info for _, info, *_ in ALL} <= {"", "error", "fragment"} | {b[1] for b in FILES}


@pytest.mark.parametrize("line, info, body, kind, expected", SPECS, ids=ids(SPECS))
def test_spec_examples(folder, line, info, body, kind, expected):
    path = folder / f"example_{line}.yaml"
    path.write_text(body)
    network = netspec.load(path)
    assert kind == "output", f"docs/language.md:{line}: a spec example needs <!-- output: ... -->"
    assert ops.fmt(network.output) == expected, f"docs/language.md:{line}"
    try:
        import torch
    except ImportError:
        return
    model = netspec.compile(network).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, *network.input))
    assert tuple(out.shape) == (2, *network.output)


@pytest.mark.parametrize("line, info, body, kind, expected", ERRORS, ids=ids(ERRORS))
def test_error_examples(folder, line, info, body, kind, expected):
    assert kind == "error", f"docs/language.md:{line}: an error example needs <!-- error: ... -->"
    path = folder / f"example_{line}.yaml"
    path.write_text(body)
    with pytest.raises(netspec.SpecError) as err:
        netspec.load(path)
    assert expected in str(err.value), f"docs/language.md:{line}: {err.value}"


@pytest.mark.parametrize("line, info, body, kind, expected", FRAGMENTS, ids=ids(FRAGMENTS))
def test_fragments_are_yaml(line, info, body, kind, expected):
    assert yaml.safe_load(body) is not None


def test_every_op_and_builtin_template_is_documented():
    text = DOC.read_text()
    core = [name for name, cls in ops.REGISTRY.items() if cls.__module__.startswith("netspec.ops")]
    missing = [name for name in [*core, *builtins()] if f"`{name}`" not in text]
    assert not missing, f"not in docs/language.md: {missing}"


def test_list_and_explain_come_from_the_registry_with_types_and_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    from netspec.cli import main
    from netspec.docs import explain

    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in [*ops.REGISTRY, *builtins()]:
        assert f" {name} " in listed
    # one parameter per line: name, type (rich markup must not eat `[int]`), default
    assert "kernel: int | list[int]" in listed and "stride: int | list[int] = 1" in listed
    assert "out: int = ${in.channels // 2}" in listed  # a template's default expression, as written
    for name, cls in ops.REGISTRY.items():
        text = explain(name)
        for field_name, field in cls.Params.model_fields.items():
            assert f"  {field_name}: " in text
            if field.description:
                assert field.description in text
    assert "netspec/templates/residual.yaml" in explain("residual")
