"""The command line's own contract: outputs it cannot write, flags it would ignore, pipes closed early."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from conftest import SPECS
from netspec.cli import main

LENET = str(SPECS / "lenet_bn.yaml")


def _writer(command, out):
    """A command that writes a file the user names, writing to `out`."""
    return {"schema": ["schema", "-o", str(out)],
            "emit": ["compile", LENET, "--emit", "python", "-o", str(out)],
            "graph": ["graph", LENET, "-o", str(out)]}[command]


@pytest.mark.parametrize("command", ["schema", "emit", "graph"])
@pytest.mark.parametrize("where", ["a directory", "under a file"])
def test_an_unwritable_output_is_one_line_rc_2_and_writes_nothing(tmp_path, capsys, command, where):
    if where == "a directory":
        out = tmp_path / "out.mmd"
        out.mkdir()
    else:
        (tmp_path / "file").write_text("not a folder")
        out = tmp_path / "file" / "out.mmd"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(_writer(command, out)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write {out}: ") and err.count("\n") == 1, err
    assert "internal" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_writing_through_a_symlink_keeps_the_link_and_the_file_mode(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert main(["schema", "-o", str(link)]) == 0
    assert link.is_symlink()
    assert '"$schema"' in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only file, as open() lets it")
def test_a_read_only_output_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "schema.json"
    out.write_text("keep me")
    out.chmod(0o444)
    assert main(["schema", "-o", str(out)]) == 2
    assert "read-only" in capsys.readouterr().err
    assert out.read_text() == "keep me"


@pytest.mark.parametrize("argv, words", [
    (["compile", LENET, "-o", "x.py"], "--emit python"),
    (["compile", LENET, "--code", "--json"], "--json"),
    (["compile", LENET, "--code", "--no-build"], "--no-build"),
    (["export", LENET, "-o", "x.onnx", "--ema"], "--weights"),
    (["compile", LENET, "--depth", "-1"], "0 or more"),
    (["diff", LENET, LENET, "--depth", "-2"], "0 or more"),
    (["graph", LENET, "-o", "x.mmd", "--expand", "-5"], "0 or more"),
])
def test_a_flag_that_would_be_ignored_is_an_error(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as exit:  # argparse's own refusals
        rc = exit.code
    assert rc == 2
    assert words in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_graph_expand_without_a_depth_opens_everything(tmp_path):
    shallow, deep = tmp_path / "a.mmd", tmp_path / "b.mmd"
    assert main(["graph", str(SPECS / "googlenet.yaml"), "-o", str(shallow), "--expand", "1"]) == 0
    assert main(["graph", str(SPECS / "googlenet.yaml"), "-o", str(deep), "--expand"]) == 0
    assert deep.read_text().count("-->") > shallow.read_text().count("-->")


@pytest.mark.parametrize("argv", [["compile", LENET], ["compile", LENET, "--json"], ["list"],
                                  ["compile", LENET, "--emit", "python"]])
def test_a_reader_that_stops_early_is_not_an_error(argv):
    """`netspec compile spec | head`: the pipe closes before netspec writes; it exits 0, silently."""
    proc = subprocess.Popen([sys.executable, "-m", "netspec", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 0, err
    assert err == ""


def test_check_goes_on_past_a_file_that_meets_a_bug(tmp_path, monkeypatch, capsys):
    import netspec.constraints

    real = netspec.constraints.input_range
    first = str(SPECS / "alexnet.yaml")

    def broken_for_the_first(path, *args, **kwargs):
        if str(path) == first:
            raise RuntimeError("a bug")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(netspec.constraints, "input_range", broken_for_the_first)
    assert main(["check", first, LENET, "--input-range"]) == 1
    captured = capsys.readouterr()
    assert f"{first}: internal error: RuntimeError: a bug" in captured.err
    assert f"{LENET}: input sizes:" in captured.out


def test_a_pipe_or_device_is_written_into_not_replaced(tmp_path):
    """-o /dev/stdout or a FIFO: a rename would put a regular file where the pipe was."""
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert main(["schema", "-o", str(fifo)]) == 0
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert b'"$schema"' in received[0]
    result = subprocess.run([sys.executable, "-m", "netspec", "schema", "-o", "/dev/stdout"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and '"$schema"' in result.stdout, result.stderr


def test_dev_stdout_redirected_to_a_file_is_written_at_its_place_not_replaced(tmp_path):
    """`netspec schema -o /dev/stdout >> log`: the log keeps what it held; a rename would have replaced it."""
    log = tmp_path / "log.txt"
    log.write_text("before\n")
    with open(log, "a") as out:
        result = subprocess.run([sys.executable, "-m", "netspec", "schema", "-o", "/dev/stdout"],
                                stdout=out, stderr=subprocess.PIPE, text=True)
        out.write("after\n")
    assert result.returncode == 0, result.stderr
    text = log.read_text()
    assert text.startswith("before\n{") and text.endswith("}\nafter\n")


LIBRARY = "netspec: 1\nblocks:\n  double_conv:\n    params: {out: int}\n    graph:\n      - conv: {out: $out, kernel: 3}\n"


def test_check_takes_folders_and_template_files(tmp_path, capsys):
    """`netspec check specs/` checks every YAML file under it; a `use:` file of templates is checked as one
    (it was 'missing required key name'), and a hidden folder is left out."""
    (tmp_path / "lib.yaml").write_text(LIBRARY)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "net.yml").write_text(
        "netspec: 1\nname: n\ninput: [1, 8, 8]\nuse: [../lib.yaml]\nnetwork:\n  - double_conv: {out: 4}\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "broken.yaml").write_text("not: [a spec")
    (tmp_path / "notes.txt").write_text("not yaml")
    (tmp_path / "compose.yml").write_text("version: 3\nservices: {}\n")  # a project's other YAML
    assert main(["check", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{tmp_path / 'lib.yaml'}: template file, declares double_conv; its layers are checked where a spec "
        f"uses them",
        f"{tmp_path / 'sub' / 'net.yml'}: ok, 40 parameters, output (N, 4, 6, 6)"]
    assert err == f"{tmp_path}: left out 1 YAML file without a 'netspec:' key\n"


def test_a_broken_spec_with_blocks_is_still_checked_as_a_spec(tmp_path, capsys):
    """Only a file of nothing but `netspec` and `blocks` is a template file: a spec's misspelt key stays
    the error, not 'input' unknown to a template file."""
    path = tmp_path / "b.yaml"
    path.write_text("netspec: 1\ninput: [1, 8, 8]\nblocks:\n  b:\n    graph: [relu]\nlayers:\n  - b\n")
    assert main(["check", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:6:1: error: unknown key 'layers'")


def test_check_locates_an_error_in_a_template_file_and_refuses_an_empty_folder(tmp_path, capsys):
    bad = tmp_path / "lib.yaml"
    bad.write_text(LIBRARY.replace("graph:", "grph:"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["check", str(bad), str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:5:5: error: unknown key 'grph'")
    assert f"{empty}:1:1: error: a folder with no .yaml or .yml files in it\n" in err
