"""Bad specs: one located error (line AND column), exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

import netspec
from netspec.cli import main

HEAD = "netspec: 1\nname: t\ninput: [3, 8, 8]\n"

CASES = [
    # (spec text, line, col, message fragment, hint fragment or None)
    (HEAD + "network:\n  - conv: {out: 4, kernal: 3}\n", 5, 20, "unknown key 'kernal'", "did you mean 'kernel'"),
    (HEAD + "network:\n  - convv: {out: 4}\n", 5, 5, "unknown op or template 'convv'", "did you mean 'conv'"),
    (HEAD + "network:\n  - conv: {out: -4, kernel: 3}\n", 5, 17, "'conv.out': input should be greater than 0", None),
    (HEAD + "network:\n  - conv: {out: four, kernel: 3}\n", 5, 17, "'conv.out': input should be a valid integer", None),
    (HEAD + "network:\n  - conv: {kernel: 3}\n", 5, 11, "missing required key 'conv.out'", None),
    (HEAD + "network:\n  - conv: {out: 4, kernel: 9}\n", 5, 28, "kernel 9 (dilated) is larger than the padded input 8", "smaller kernel"),
    (HEAD + "network:\n  - relu\n  - add: [input, nowhere]\n", 6, 18, "no node 'nowhere' before this point", None),
    (HEAD + "network:\n  - {id: a, from: b, relu}\n  - {id: b, from: a, relu}\n", 5, 19, "no node 'b' before this point", "cycle"),
    (HEAD + "network:\n  - {id: a, conv: {out: 4, kernel: 1}}\n  - add: [a, input]\n", 6, 5, "cannot add shapes (N, 4, 8, 8) and (N, 3, 8, 8)", "projection"),
    (HEAD + "network:\n  - {id: a, conv: {out: 4, kernel: 3}}\n  - concat: [a, input]\n", 6, 5, "cannot concat (N, 4, 6, 6) and (N, 3, 8, 8)", None),
    (HEAD + "network:\n  - flatten\n  - conv: {out: 4, kernel: 3}\n", 6, 5, "conv expects a 3 or 4 or 5-d input", "flatten"),
    (HEAD + "network:\n  - conv: {out: \"${5 / 2}\", kernel: 1}\n", 5, 17, "'conv.out': input should be a valid integer, got 2.5", None),
    (HEAD + "network:\n  - conv: {out: \"${4 // 0}\", kernel: 1}\n", 5, 17, "division by zero", None),
    (HEAD + "params: {w: 4}\nnetwork:\n  - conv: {out: $W, kernel: 1}\n", 6, 17, "unknown name 'W'", "did you mean 'w'"),
    (HEAD + "network:\n  - {relu, repeat: 1000000}\n", 5, 20, "more than the limit", None),
    (HEAD + "network:\n  - linear: 2000000000\n", 5, 5, "more than 10,000,000,000 parameters", "--max-params"),
    (HEAD + "blocks:\n  loop: {graph: [loop]}\nnetwork:\n  - loop\n", 5, 18, "template 'loop' is recursive", None),
    (HEAD + "network:\n  - residual: {out: 4, strid: 2}\n", 5, 24, "template 'residual' has no parameter 'strid'", "did you mean 'stride'"),
    (HEAD + "network:\n  - residual: {stride: 2}\n", 5, 15, "template 'residual' needs parameter 'out'", None),
    (HEAD + "network:\n  - {id: x, relu}\n  - {id: x, relu}\n", 6, 10, "duplicate id 'x'", None),
    ("netspec: 2\nname: t\ninput: [3, 8, 8]\nnetwork: [relu]\n", 1, 10, "'netspec': input should be 1", None),
    ("netspec: 1\nname: t\nnetwork: [relu]\n", 1, 1, "missing required key 'input'", None),
    (HEAD + "network:\n  - maxpool: {kernel: 2, padding: 2}\n", 5, 35, "padding 2 is more than half the kernel size 2", None),
    (HEAD + "network:\n  - {conv: {out: 4, kernel: 1}, relu: null}\n", 5, 33, "a layer holds one op", None),
    (HEAD + "nework:\n  - relu\n", 4, 1, "unknown key 'nework'", "did you mean 'network'"),
]


@pytest.mark.parametrize("text,line,col,message,hint", CASES)
def test_located_error(tmp_path, text, line, col, message, hint):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(netspec.SpecError) as err:
        netspec.load(path)
    diag = err.value.diagnostic
    assert message in diag.message
    assert (diag.pos.file, diag.pos.line, diag.pos.col) == (str(path), line, col), diag.format()
    if hint:
        assert diag.hint and hint in diag.hint


def test_error_inside_a_template_names_the_expansion_chain(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(HEAD + "network:\n  - group: stage2\n    layers:\n      - residual: {out: 4, stride: 9}\n"
                    "      - residual: {out: 0}\n")
    with pytest.raises(netspec.SpecError) as err:
        netspec.load(path)
    text = err.value.format()
    assert "residual.yaml" in err.value.pos.file
    assert f"in residual (stage2.1) from {path}:8:9" in text


def test_cli_exit_code_2_and_one_line_no_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(CASES[0][0])
    assert main(["compile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:5:20: error: unknown key 'kernal'")
    assert "Traceback" not in err


def test_check_many_files_reports_each(tmp_path, capsys):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(HEAD + "network: [relu]\n")
    bad.write_text(CASES[1][0])
    assert main(["check", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert "good.yaml: ok" in captured.out
    assert captured.err.count("error:") == 1


def test_no_partial_output_file_on_error(tmp_path):
    out = tmp_path / "schema.json"
    bad = tmp_path / "bad.yaml"
    bad.write_text(CASES[0][0])
    result = subprocess.run([sys.executable, "-m", "netspec", "compile", str(bad), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == "" and not out.exists()


def test_nested_train_key_gets_a_did_you_mean(tmp_path, capsys):
    path = tmp_path / "t.yaml"
    path.write_text(HEAD + "network: [flatten, {linear: 10}]\ntrain:\n  optimizer: {sgd: {lrr: 0.1}}\n")
    assert main(["train", str(path), "--data", "synthetic", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6:21: error: unknown key 'lrr'" in err and "did you mean 'lr'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,valid", [
    (HEAD + "network: [flatten, {linear: true}]\n", False),
    (HEAD + "network: [{conv: {out: 4, kernel: true}}]\n", False),
    (HEAD + "network: [{conv: {out: 4, kernel: [3, true]}}]\n", False),
    (HEAD + "network: [{dropout: true}]\n", False),
    (HEAD + "network: [{conv: {out: 4, kernel: 3, bias: 1}}]\n", False),
    (HEAD + "network: [{conv: {out: '4', kernel: 3}}]\n", False),
    (HEAD + "network: [{maxpool: {kernel: 2, ceil_mode: 'true'}}]\n", False),
    ("netspec: 1\nname: t\ninput: [true, 8, 8]\nnetwork: [relu]\n", False),
    ("netspec: 1\nname: t\ninput: ['4', 8, 8]\nnetwork: [relu]\n", False),
    ("netspec: true\nname: t\ninput: [3, 8, 8]\nnetwork: [relu]\n", False),
    # a whole float is an integer (as in JSON Schema), and expressions stand for their values
    ("netspec: 1.0\nname: t\ninput: [3.0, 8, 8]\nnetwork: [{conv: {out: 4.0, kernel: [3, 3.0]}}]\n", True),
    (HEAD + "params: {c: 8, b: false}\nnetwork: [{conv: {out: '${c / 2}', kernel: $c, bias: $b}}, {dropout: '${1 / 4}'}]\n", True),
])
def test_types_are_strict_and_agree_with_the_schema(text, valid):
    """pydantic's lax mode took `true` as 1 and '4' as 4; the JSON Schema never did."""
    import json

    import jsonschema
    import yaml

    from netspec.schema import schema_text

    schema_ok = jsonschema.Draft202012Validator(json.loads(schema_text())).is_valid(yaml.safe_load(text))
    try:
        netspec.load_text(text)
        netspec_ok = True
    except netspec.SpecError:
        netspec_ok = False
    assert (schema_ok, netspec_ok) == (valid, valid)


def test_two_use_files_defining_one_template_is_an_error_naming_both(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("blocks:\n  blk: {graph: [relu]}\n")
    (tmp_path / "b.yaml").write_text("netspec: 1\nblocks:\n  other: {graph: [relu]}\n  blk: {graph: [sigmoid]}\n")
    spec = tmp_path / "net.yaml"
    spec.write_text(HEAD + "use: [a.yaml, b.yaml]\nnetwork: [blk]\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'b.yaml'}:4:3: error: template 'blk' is defined both in 'a.yaml' and in "
                          "'b.yaml'\n"), err
    spec.write_text(HEAD + "use: [a.yaml, a.yaml]\nnetwork: [blk]\n")
    assert main(["check", str(spec)]) == 2
    assert capsys.readouterr().err.startswith(f"{spec}:4:15: error: template file 'a.yaml' is listed twice in 'use'")
    # the spec's own blocks still take precedence over a use: file (and built-ins), as before
    spec.write_text(HEAD + "use: [a.yaml]\nblocks:\n  blk: {graph: [flatten]}\nnetwork: [blk]\n")
    assert netspec.load(spec).output == (192,)


@pytest.mark.parametrize("given,message", [
    ("classes=", "param 'classes' is an integer here, but the override -p classes= gives no value"),
    ("classes=null", "param 'classes' is an integer here, but the override 'null' is null"),
    ("classes=abc", "param 'classes' is an integer here, but the override 'abc' is a string"),
])
def test_a_bad_param_override_says_what_was_given(tmp_path, capsys, given, message):
    path = tmp_path / "net.yaml"
    path.write_text(HEAD + "params: {classes: 10, suffix: x}\nnetwork: [flatten, {linear: $classes}]\n")
    assert main(["check", str(path), "-p", given]) == 2
    assert capsys.readouterr().err.startswith(f"{path}:4:19: error: {message}")
    assert main(["check", str(path), "-p", "suffix="]) == 0  # an empty string is a string
