"""`netspec train` from the command line: flags, exit codes, one-sentence errors, nothing written on error."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch

from netspec.cli import main
from netspec.train import checkpoint
from netspec.train.cli import add_train_arguments, worker_argv

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
netspec: 1
name: small
input: [1, 28, 28]
params: {width: 4}
network:
  - conv: {out: $width, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 2, stride: 2}
  - flatten
  - linear: 10
train:
  data: synthetic
  batch_size: 32
  epochs: 1
  limit_train: 128
  limit_test: 32
"""


@pytest.fixture
def spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default run folders land in tmp_path/runs
    path = tmp_path / "small.yaml"
    path.write_text(SPEC)
    return path


def test_train_quiet_prints_only_the_last_line_and_writes_the_run(spec, capsys):
    assert main(["train", str(spec), "--quiet", "--epochs", "2", "--lr", "0.2", "-p", "width=6"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("loss ") and out[0].endswith("examples/sec on cpu")
    [run] = list(Path("runs").iterdir())
    assert run.name.startswith("small-")
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["epochs"] == 2 and saved["config"]["optimizer"]["sgd"]["lr"] == 0.2
    assert saved["spec"]["params"] == {"width": 6}
    assert checkpoint.load(run / "last.pt")["model"]["0.weight"].shape[0] == 6


@pytest.mark.parametrize("args, message", [
    (["--data", "mnist", "--data-dir", "nowhere"], "error: mnist not found (looked in "),
    (["--epochs", "0"], "error: epochs: Input should be greater than 0"),
    (["--data", "fashion_mnist"], "did you mean 'fashion-mnist'?"),
    (["--resume", "missing.pt"], "error: no checkpoint at missing.pt"),
    (["--threads", "0"], "error: threads: Input should be greater than or equal to 1"),
    (["--threads", "-1"], "error: threads: Input should be greater than or equal to 1"),
])
def test_errors_are_one_sentence_exit_2_and_write_nothing(spec, capsys, args, message):
    assert main(["train", str(spec), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) or message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not Path("runs").exists()


@pytest.mark.parametrize("shape", ["[784]", "[16, 100]", "[1, 8, 8, 8]"])
def test_an_input_that_is_not_an_image_is_refused_before_any_data_is_made(spec, capsys, shape):
    spec.write_text(SPEC.replace("input: [1, 28, 28]", f"input: {shape}").replace(
        """  - conv: {out: $width, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 2, stride: 2}
""", ""))
    assert main(["train", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "must be [C, H, W]" in err and shape in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not Path("runs").exists()


def test_invalid_train_section_is_reported_at_its_yaml_line(spec, capsys):
    spec.write_text(SPEC.replace("epochs: 1", "epoch: 1"))
    assert main(["train", str(spec)]) == 2
    err = capsys.readouterr().err
    line = SPEC.splitlines().index("  epochs: 1") + 1
    assert err.startswith(f"{spec}:{line}:3: error: unknown key 'epoch'") and "did you mean 'epochs'?" in err
    spec.write_text(SPEC.replace("batch_size: 32", "batch_size: -32"))
    assert main(["train", str(spec)]) == 2
    assert "'train.batch_size': input should be greater than 0" in capsys.readouterr().err
    assert not Path("runs").exists()


@pytest.mark.parametrize("value, message", [
    ("0", "input should be greater than or equal to 1, got 0"),
    ("-1", "input should be greater than or equal to 1, got -1"),
    ("x", "input should be a valid integer"),
])
def test_bad_threads_in_the_spec_is_reported_at_its_yaml_line(spec, capsys, value, message):
    spec.write_text(SPEC + f"  threads: {value}\n")
    assert main(["train", str(spec)]) == 2
    err = capsys.readouterr().err
    line = len(SPEC.splitlines()) + 1
    assert err.startswith(f"{spec}:{line}:") and f"'train.threads': {message}" in err and "Traceback" not in err
    assert not Path("runs").exists()


def test_threads_that_is_not_a_number_is_a_usage_error(spec, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", str(spec), "--threads", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --threads: invalid int value: 'x'" in err and "Traceback" not in err


def test_threads_reach_torch_during_the_run_and_are_recorded(spec, monkeypatch):
    from netspec.train import loop

    before = torch.get_num_threads()
    want = 1 if before > 1 else 2
    seen, step = [], loop._Run._step
    monkeypatch.setattr(loop._Run, "_step", lambda self, *a: (seen.append(torch.get_num_threads()), step(self, *a)))
    try:
        assert main(["train", str(spec), "--quiet", "--threads", str(want)]) == 0
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {want}
    [run] = list(Path("runs").iterdir())
    assert json.loads((run / "config.json").read_text())["config"]["threads"] == want


@pytest.mark.parametrize("width, flag, nhwc", [(32, [], True), (4, [], False), (32, ["--no-channels-last"], False),
                                               (4, ["--channels-last"], True)])
def test_the_cpu_layout_follows_the_network_width_unless_a_flag_says(spec, width, flag, nhwc):
    assert main(["train", str(spec), "--quiet", "--input", "3,28,28", "--out", "run", "-p", f"width={width}",
                 *flag]) == 0
    weight = checkpoint.load("run/last.pt")["model"]["0.weight"]  # (width, 3, 3, 3): the layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last) == nhwc and weight.is_contiguous() != nhwc
    assert json.loads(Path("run/config.json").read_text())["config"]["channels_last"] == (
        {"--no-channels-last": False, "--channels-last": True}[flag[0]] if flag else None)


def test_resume_with_a_changed_spec_is_refused_unless_forced(spec, capsys):
    assert main(["train", str(spec), "--quiet", "--out", "run"]) == 0
    spec.write_text(SPEC.replace("width: 4", "width: 5"))
    assert main(["train", str(spec), "--resume", "run/last.pt", "--epochs", "2"]) == 2
    assert "different spec" in capsys.readouterr().err
    assert main(["train", str(spec), "--resume", "run/last.pt", "--epochs", "2", "--force", "--quiet"]) == 2
    assert "does not fit this network" in capsys.readouterr().err  # width 5 cannot take width 4's weights
    # the checkpoint alone is enough to go on: it holds the spec
    assert main(["train", "--resume", "run/last.pt", "--epochs", "2", "--quiet"]) == 0
    assert checkpoint.load("run/last.pt")["epoch"] == 2
    assert main(["train", "--resume", "run/last.pt", "--quiet"]) == 2
    assert "already trained 2 epochs" in capsys.readouterr().err


def test_worker_argv_round_trips_every_flag():
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    argv = ["s.yaml", "-p", "a=1", "--input", "1,32,32", "--data", "mnist", "--data-dir", "d", "--download",
            "--epochs", "3", "--batch-size", "64", "--lr", "0.1", "--optimizer", "adamw", "--schedule", "cosine",
            "--resize", "32", "--device", "cpu", "--no-amp", "--channels-last", "--compile", "--seed", "7",
            "--label-smoothing", "0.1", "--init", "kaiming", "--workers", "2", "--threads", "1", "--no-keep-memory", "--gemm-weight-grads", "--augment", "--ema", "0.99",
            "--max-steps", "9",
            "--limit-train", "100", "--limit-test", "10", "--checkpoint-every", "5", "--out", "o",
            "--resume", "r.pt", "--force", "--quiet", "--nproc", "2"]
    args = parser.parse_args(argv)
    again = parser.parse_args(worker_argv(args))
    assert vars(again) == {**vars(args), "nproc": None}
    assert parser.parse_args(worker_argv(parser.parse_args(["--resize", "20,30", "--compile", "aot_eager"]))).resize == (20, 30)


def test_train_cli_module_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, netspec.cli, netspec.train, netspec.train.cli; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
