"""Ops from other packages through the `netspec.ops` entry point group.

The demo plugin in tests/plugin_pkg is made discoverable through the real
importlib.metadata mechanism without installing anything globally: a
`*.dist-info` directory (METADATA + entry_points.txt) and the package are
put in a temporary directory, which the child process gets on PYTHONPATH.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugin_pkg"

SPEC = """\
netspec: 1
name: plugged
input: [3, 8, 8]
network:
  - {space_to_depth: 2}
  - channel_scale
  - {conv: {out: 4, kernel: 1}}
  - flatten
  - {linear: 5}
"""


def fake_install(site: Path, name: str, entry_points: dict[str, str], package: Path | None = None) -> None:
    """What `pip install` leaves behind that importlib.metadata reads: a dist-info with entry points."""
    info = site / f"{name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    lines = ["[netspec.ops]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    if package is not None:
        shutil.copytree(package, site / package.name)


def run(site: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env["COLUMNS"] = "200"
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "netspec", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=site, timeout=300)


@pytest.fixture
def site(tmp_path):
    fake_install(tmp_path, "netspec_demo_plugin",
                 {"space_to_depth": "netspec_demo_plugin:SpaceToDepth",
                  "channel_scale": "netspec_demo_plugin:ChannelScale"},
                 PLUGIN / "netspec_demo_plugin")
    (tmp_path / "plugged.yaml").write_text(SPEC)
    return tmp_path


def test_plugin_ops_compile_and_run(site):
    code = textwrap.dedent("""
        import torch, netspec
        from netspec.plugins import PLUGINS
        net = netspec.load("plugged.yaml")
        print([n.shape for n, _ in net.nodes()][:2])
        m = netspec.compile(net)
        print(tuple(m(torch.randn(2, 3, 8, 8)).shape), sum(p.numel() for p in m.parameters()) == net.n_params)
        print(PLUGINS["space_to_depth"].dist)
    """)
    result = run(site, code=code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "[(12, 4, 4), (12, 4, 4)]"
    assert lines[1] == "(2, 5) True"
    assert lines[2] == "netspec_demo_plugin"
    assert "PluginWarning" not in result.stderr


def test_plugin_ops_in_cli(site):
    listed = run(site, "list")
    assert listed.returncode == 0, listed.stderr
    assert "space_to_depth" in listed.stdout and "channel_scale" in listed.stdout
    compiled = run(site, "compile", "plugged.yaml", "--json")
    assert compiled.returncode == 0, compiled.stderr
    bad = run(site, "check", "plugged.yaml", "--input", "3,7,7")  # 7 is not divisible by 2
    assert bad.returncode == 2
    assert "divisible by factor 2" in bad.stderr


def test_without_the_plugin_the_op_is_unknown(tmp_path):
    (tmp_path / "plugged.yaml").write_text(SPEC)
    result = run(tmp_path, "check", "plugged.yaml")
    assert result.returncode == 2
    assert "space_to_depth" in result.stderr and "Traceback" not in result.stderr


def test_broken_plugins_warn_and_netspec_keeps_working(tmp_path):
    broken = tmp_path / "broken_plugin"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    (broken / "notanop.py").write_text("class NotAnOp:\n    pass\n")
    fake_install(tmp_path, "broken_plugin", {"exploding": "broken_plugin:Op",
                                             "relu": "broken_plugin.notanop:NotAnOp"})
    fake_install(tmp_path, "wrong_kind", {"not_an_op": "os:getcwd"})
    result = run(tmp_path, "check", str(ROOT / "specs" / "lenet_bn.yaml"))
    assert result.returncode == 0, result.stderr
    assert "lenet_bn.yaml: ok" in result.stdout
    assert "Traceback" not in result.stderr
    assert "'exploding'" in result.stderr and "broken on purpose" in result.stderr
    assert "'relu' is a built-in op" in result.stderr
    assert "not a subclass of netspec.ops.Op" in result.stderr


def test_list_names_the_plugin_and_emit_refuses_its_custom_module(site):
    listed = run(site, "list")
    row = next(line for line in listed.stdout.splitlines() if " channel_scale " in line)
    assert "plugin netspec_demo_plugin" in row
    # channel_scale builds a module class of the plugin's own: a torch-only file cannot hold it
    emitted = run(site, "compile", "plugged.yaml", "--emit", "python", "-o", "out.py")
    assert emitted.returncode == 1
    assert "not a torch.nn module" in emitted.stderr and "Traceback" not in emitted.stderr
    assert not (site / "out.py").exists()
    # space_to_depth builds nn.PixelUnshuffle, which the file can rebuild
    (site / "s2d.yaml").write_text(SPEC.replace("  - channel_scale\n", ""))
    emitted = run(site, "compile", "s2d.yaml", "--emit", "python", "-o", "s2d.py")
    assert emitted.returncode == 0, emitted.stderr
    assert "nn.PixelUnshuffle(2)" in (site / "s2d.py").read_text()


def test_a_spec_cannot_name_a_python_module(tmp_path):
    """The package is importable here but not installed: naming it in a spec imports nothing."""
    shutil.copytree(PLUGIN / "netspec_demo_plugin", tmp_path / "netspec_demo_plugin")
    for name in ("netspec_demo_plugin:SpaceToDepth", "netspec_demo_plugin.SpaceToDepth", "os.system"):
        (tmp_path / "named.yaml").write_text(SPEC.replace("{space_to_depth: 2}", f"{{'{name}': 2}}"))
        code = textwrap.dedent("""
            import sys, netspec
            try:
                netspec.load("named.yaml")
            except netspec.SpecError as err:
                print(err.message)
            print(sorted(m for m in sys.modules if m.startswith("netspec_demo")))
        """)
        result = run(tmp_path, code=code)
        assert result.returncode == 0, result.stderr
        message, imported = result.stdout.splitlines()
        assert message == f"unknown op or template '{name}'"
        assert imported == "[]"


def test_input_range_probes_a_plugin_op(site):
    """netspec cannot derive a plugin op's size rule, so it probes; invalid sizes stay out of ranges."""
    result = run(site, "check", "-q", "--input-range", "plugged.yaml")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "plugged.yaml: input sizes: H, W must be 8 because flatten → linear(64) at 4"
    assert "found by probing sizes" in lines[-1]


def test_a_plugin_params_model_keeps_pydantic_conversions_while_built_ins_are_strict():
    """Plugins subclass Params: a tuple field takes YAML's list, an Enum its value; built-ins are strict."""
    import enum
    from typing import Tuple

    from pydantic import ValidationError

    from netspec.ops.base import REGISTRY, Params

    class Mode(enum.Enum):
        NEAREST = "nearest"

    class ResizeParams(Params):
        size: Tuple[int, int]
        mode: Mode = Mode.NEAREST

    p = ResizeParams.model_validate({"size": [14, 14], "mode": "nearest"})
    assert p.size == (14, 14) and p.mode is Mode.NEAREST
    assert ResizeParams.model_validate({"size": [14.0, 14]}).size == (14, 14)  # a whole float is an integer
    with pytest.raises(ValidationError):
        ResizeParams.model_validate({"size": [14, 14], "extra": 1})
    with pytest.raises(ValidationError):
        REGISTRY["linear"].Params.model_validate({"out": "4"})


@pytest.fixture
def enum_op():
    """An in-process plugin op, `crop_demo`, whose parameter `corner` is an Enum; unregistered after."""
    import enum

    from netspec.ops.base import REGISTRY, Op, Params

    class Corner(enum.Enum):
        TOP = "top"
        CENTER = "center"

    class CropParams(Params):
        corner: Corner = Corner.CENTER

    class Crop(Op):
        name = "crop_demo"
        Params = CropParams

    yield Crop.name
    REGISTRY.pop(Crop.name)


def test_the_schema_holds_what_a_plugin_op_refers_to(enum_op):
    """A plugin's Enum parameter is a `$ref` into `$defs`: the schema must hold it, or editors fail."""
    import jsonschema

    from netspec.schema import schema

    validator = jsonschema.Draft202012Validator(schema())
    ok = {"netspec": 1, "name": "t", "input": [1, 8, 8], "network": [{enum_op: {"corner": "top"}}]}
    validator.validate(ok)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**ok, "network": [{enum_op: {"corner": "left"}}]})


def test_a_plugin_enum_reads_as_the_spec_writes_it(tmp_path, enum_op):
    """explain, diff and graph labels show an Enum parameter by its value ('top'), not Python's repr."""
    import netspec
    from netspec.diff import diff
    from netspec.docs import explain
    from netspec.graph import write

    text = "netspec: 1\nname: t\ninput: [1, 8, 8]\nnetwork: [{%s: {corner: %s}}]\n"
    a, b = netspec.load_text(text % (enum_op, "top")), netspec.load_text(text % (enum_op, "center"))
    assert [n["param_changes"] for n in diff(a, b)["changed"]] == [{"corner": ["top", "center"]}]
    shown = explain(enum_op)
    assert "'top' | 'center'" in shown and "Corner" not in shown
    write(a, tmp_path / "a.mmd")
    assert "corner=top" in (tmp_path / "a.mmd").read_text()
