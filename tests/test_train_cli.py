"""`netspec train` from the command line: flags, exit codes, one-sentence errors, nothing written on error."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest
import torch

from conftest import overcommits_always
from netspec.cli import main
from netspec.train import checkpoint
from netspec.train.cli import add_train_arguments, worker_argv

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
netspec: 1
name: small
input: [1, 28, 28]
params: {width: 4, classes: 10}
network:
  - conv: {out: $width, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 2, stride: 2}
  - flatten
  - linear: $classes
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
    assert saved["spec"]["params"] == {"width": 6, "classes": 10}
    assert checkpoint.load(run / "last.pt")["model"]["0.weight"].shape[0] == 6


@pytest.mark.parametrize("args, message", [
    (["--data", "mnist", "--data-dir", "nowhere"], "error: mnist not found (looked in "),
    (["--epochs", "0"], "error: epochs: Input should be greater than 0"),
    (["--data", "fashion_mnist"], "did you mean 'fashion-mnist'?"),
    (["--resume", "missing.pt"], "error: no checkpoint at missing.pt"),
    (["--threads", "0"], "error: threads: Input should be greater than or equal to 1"),
    (["--threads", "-1"], "error: threads: Input should be greater than or equal to 1"),
    (["--lr", "inf"], "error: optimizer.sgd.lr: Input should be a finite number"),
    (["--lr", "nan"], "error: optimizer.sgd.lr: Input should be a finite number"),
    (["--lr", "-1"], "error: optimizer.sgd.lr: Input should be greater than 0"),
    (["--optimizer", "adamw", "--lr", "1e38"], "error: optimizer.adamw.lr: Input should be less than or equal to 1000"),
    (["--seed", "99999999999999999999"], "error: seed: Input should be less than or equal to 4294967295"),
    (["--compile", "bogus"], "error: unknown torch.compile backend 'bogus'; choose one of "),
    (["-p", "classes=5"], "error: the network's output has shape [5] per image, but synthetic has 10 classes"),
    (["--device", "cuda"], "error: --device cuda, but PyTorch sees no CUDA device"),
    (["--resume", "."], "error: no checkpoint at . (a folder: name a .pt file in it)"),
])
def test_errors_are_one_sentence_exit_2_and_write_nothing(spec, capsys, monkeypatch, args, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", str(spec), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) or message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not Path("runs").exists()


@pytest.mark.skipif(overcommits_always(), reason="vm.overcommit_memory=1: a terabyte allocation may succeed "
                    "and the kernel kill the process when it is touched")
def test_out_of_memory_is_one_sentence_exit_2_and_writes_nothing(spec, capsys):
    """A resize to 10^6 pixels a side asks for terabytes: the user's to lower, not a bug (once a traceback-less
    'internal error', exit 1)."""
    spec.write_text(SPEC.replace("  - flatten\n", "  - adaptive_avgpool: 1\n  - flatten\n"))  # any size fits
    assert main(["train", str(spec), "--resize", "1000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory: ") and "a smaller network, input or batch needs less" in err
    assert err.count("\n") == 1 and not Path("runs").exists()


def test_only_allocation_failures_count_as_out_of_memory(capsys):
    from netspec.cli import unexpected

    assert unexpected(MemoryError()) == 2
    assert capsys.readouterr().err.startswith("error: out of memory: MemoryError;")
    assert unexpected(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB\nmore")) == 2
    assert capsys.readouterr().err.startswith("error: out of memory: CUDA out of memory. Tried to allocate 2 GiB;")
    assert unexpected(RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)")) == 1
    assert capsys.readouterr().err.startswith("internal error: RuntimeError: mat1 and mat2")
    assert unexpected(OSError(12, "Cannot allocate memory")) == 2  # a DataLoader worker's fork, say
    assert capsys.readouterr().err.startswith("error: out of memory: [Errno 12] Cannot allocate memory;")
    worker = RuntimeError("Caught RuntimeError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                          "call last):\n  ...\nRuntimeError: DefaultCPUAllocator: can't allocate memory: 9 GB")
    assert unexpected(worker) == 2
    assert capsys.readouterr().err.startswith("error: out of memory: DefaultCPUAllocator: can't allocate memory: 9 GB;")
    assert unexpected(ValueError("whether the run ran out of memory: no")) == 1  # only what an allocation raises
    assert unexpected(OSError(2, "No such file")) == 1


def test_a_run_folder_stands_for_its_best_pt_to_eval_and_export_and_its_last_pt_to_resume(spec, capsys, tmp_path):
    assert main(["train", str(spec), "--quiet", "--out", "run"]) == 0
    capsys.readouterr()
    assert main(["eval", "run/best.pt"]) == 0
    by_file = capsys.readouterr().out
    assert main(["eval", "run"]) == 0
    out, err = capsys.readouterr()
    assert out == by_file and "after epoch 1" in by_file and err == f"evaluating {Path('run', 'best.pt')}\n"
    assert main(["export", str(spec), "--weights", "run", "--no-check", "-o", "net.onnx"]) == 0
    assert f"model weights of {Path('run', 'best.pt')} (epoch 1)" in capsys.readouterr().err
    assert main(["train", "--resume", "run", "--epochs", "2", "--quiet"]) == 0
    assert checkpoint.load("run/last.pt")["epoch"] == 2
    Path("run/best.pt").unlink()  # e.g. a run stopped before its first epoch ended: its last.pt stands in
    assert main(["eval", "run"]) == 0
    assert "after epoch 2" in capsys.readouterr().out
    Path("onlybest").mkdir()
    Path("run/last.pt").rename("onlybest/best.pt")
    assert main(["train", "--resume", "onlybest", "--quiet"]) == 2  # resuming means its last.pt
    assert "no checkpoint at onlybest (a folder: name a .pt file in it)" in capsys.readouterr().err
    Path("empty").mkdir()
    assert main(["eval", "empty"]) == 2
    assert capsys.readouterr().err == "error: no checkpoint at empty (a folder: name a .pt file in it)\n"


def test_a_network_that_does_not_fit_the_resized_images_says_the_size(spec, capsys):
    """The error points into the spec, which names 28x28: it must say the size `resize` set."""
    assert main(["train", str(spec), "--resize", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:8:23: error: maxpool: ") and "Traceback" not in err
    assert "at the size 1x1 that resize gives the images (the spec's input is 28x28)" in err
    assert main(["train", str(spec), "--resize", "200000"]) == 2  # flatten -> linear: 4 * 10^11 weights
    err = capsys.readouterr().err
    assert "more than 10,000,000,000 parameters" in err and "at the size 200000x200000" in err
    assert "hint: train at a smaller size (resize)" in err and "--max-params" not in err  # train has none
    spec.write_text(SPEC.replace("input: [1, 28, 28]", "input: [1, 4, 28, 28]"))  # a volume is not an image
    assert main(["train", str(spec), "--resize", "28"]) == 2
    assert capsys.readouterr().err.startswith("error: the runner trains on images")
    assert not Path("runs").exists()


def test_every_setting_of_the_train_section_has_a_flag():
    """Every top-level setting of a spec's `train:` has a flag (--grad-clip was once missing); an optimizer's
    or a schedule's own settings (momentum, betas, warmup ...) have none but --lr."""
    from netspec.train.cli import OVERRIDES
    from netspec.train.config import TrainConfig

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    assert {field for _, field in OVERRIDES} | {"optimizer", "schedule"} >= set(TrainConfig.model_fields)
    assert {flag for flag, _ in OVERRIDES} <= flags


def test_grad_clip_and_amp_dtype_flags_reach_the_run(spec, capsys):
    assert main(["train", str(spec), "--out", "run", "--grad-clip", "0.5", "--amp", "--amp-dtype", "float16"]) == 0
    assert ", cpu, fp16, run folder run" in capsys.readouterr().out  # the header once said nothing of it
    config = json.loads(Path("run/config.json").read_text())["config"]
    assert config["grad_clip"] == 0.5 and config["amp_dtype"] == "float16"
    assert main(["train", "--resume", "run", "--quiet", "--epochs", "2", "--grad-clip", "0"]) == 0
    assert checkpoint.load("run/last.pt")["config"]["grad_clip"] is None


def test_a_run_that_fails_before_its_first_save_leaves_no_folder(spec, capsys, monkeypatch):
    """A run folder is made at the first write: a diverged (or failed) run leaves no lone config.json."""
    from netspec.train import loop

    monkeypatch.setattr(loop.F, "cross_entropy", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    assert main(["train", str(spec), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "at epoch 1" in err and "no checkpoint had been written yet" in err and err.count("\n") == 1
    assert not Path("runs").exists()


def test_an_existing_run_is_never_merged_into(spec, capsys):
    """--out naming a run folder is refused; resuming it, or --overwrite, writes there."""
    assert main(["train", str(spec), "--quiet", "--out", "run"]) == 0
    before = {p.name: p.stat().st_mtime_ns for p in Path("run").iterdir()}
    assert main(["train", str(spec), "--quiet", "--out", "run", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: run already holds a run; continue it with --resume run/last.pt, choose another --out, "
                   "or pass --overwrite to replace it\n")
    assert {p.name: p.stat().st_mtime_ns for p in Path("run").iterdir()} == before
    assert main(["train", str(spec), "--quiet", "--out", "run", "--resume", "run/last.pt", "--epochs", "2"]) == 0
    assert main(["train", str(spec), "--quiet", "--out", "run", "--overwrite", "-p", "width=3"]) == 0
    assert checkpoint.load("run/last.pt")["epoch"] == 1  # a new run, not the resumed one
    assert len(Path("run/metrics.jsonl").read_text().splitlines()) == 1  # its records only
    Path("empty").mkdir()
    assert main(["train", str(spec), "--quiet", "--out", "empty"]) == 0  # an empty folder is no run


def test_more_outputs_than_classes_train_and_resume_with_one_note(spec, capsys):
    """-p classes=12 on 10 classes: trained and resumed, said once (not with --quiet); fewer is an error."""
    note = ("note: the network gives 12 scores per image for synthetic's 10 classes; "
            "the extra 2 are never a target\n")
    assert main(["train", str(spec), "-p", "classes=12", "--out", "run"]) == 0
    assert capsys.readouterr().out.count(note) == 1
    assert checkpoint.load(Path("run") / "last.pt")["model"]["4.weight"].shape[0] == 12
    assert main(["train", "--resume", "run/last.pt", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(note) == 1 and "epoch 2/2" in out
    assert main(["train", str(spec), "-p", "classes=12", "--out", "quiet", "--quiet"]) == 0
    assert "note:" not in capsys.readouterr().out

    assert main(["train", str(spec), "-p", "classes=8", "--out", "fewer"]) == 2
    assert capsys.readouterr().err == ("error: the network's output has shape [8] per image, but synthetic has "
                                       "10 classes; end the network in linear(10) (e.g. -p classes=10)\n")
    assert not Path("fewer").exists()


def test_a_checkpoint_outside_a_run_folder_resumes_into_a_new_one(spec):
    """A last.pt copied to the current folder does not turn it into a run folder."""
    assert main(["train", str(spec), "--quiet", "--out", "run"]) == 0
    Path("copy.pt").write_bytes(Path("run/last.pt").read_bytes())
    assert main(["train", "--resume", "copy.pt", "--epochs", "2", "--quiet"]) == 0
    assert not Path("config.json").exists() and not Path("last.pt").exists()
    [run] = list(Path("runs").iterdir())
    assert checkpoint.load(run / "last.pt")["epoch"] == 2
    assert "with --resume, the checkpoint's run folder if it is one, else a new one" in " ".join(_help().split())


@pytest.mark.parametrize("out, message", [
    ("afile", "error: run folder afile is a file"),
    ("afile/run", "error: cannot make run folder afile/run: afile is a file"),
])
def test_an_out_that_cannot_be_a_folder_is_a_user_error(spec, capsys, out, message):
    Path("afile").write_text("x")
    assert main(["train", str(spec), "--quiet", "--out", out]) == 2
    assert capsys.readouterr().err == message + "\n"
    assert sorted(p.name for p in Path(".").iterdir()) == ["afile", "small.yaml"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_is_a_user_error(spec, capsys):
    Path("locked").mkdir(mode=0o500)
    assert main(["train", str(spec), "--quiet", "--out", "locked/run"]) == 2
    assert capsys.readouterr().err == "error: cannot make run folder locked/run: locked is not writable\n"


@pytest.mark.parametrize("args, message", [
    (["--input", "abc"], "argument --input: expected C,H,W like 1,224,224, got 'abc'"),
    (["--input", "1,0,28"], "argument --input: sizes must be positive, got '1,0,28'"),
    (["--nproc", "0"], "argument --nproc: must be 1 or more, got 0"),
    (["--nproc", "-1"], "argument --nproc: must be 1 or more, got -1"),
])
def test_bad_values_are_usage_errors(spec, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["train", str(spec), *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not Path("runs").exists()


def _resolve(monkeypatch) -> dict:
    """What `netspec train ...` would train, from now on without training it."""
    from netspec.train import loop

    seen = {}
    monkeypatch.setattr(loop, "run_training", lambda config, source, options: seen.update(
        config=config, source=source, options=options))
    return seen


@pytest.fixture
def resolved(monkeypatch):
    return _resolve(monkeypatch)


@pytest.mark.parametrize("args, compile", [
    (["--compile", "{spec}"], True),
    (["--compile", "aot_eager", "{spec}"], "aot_eager"),
    (["{spec}", "--compile=eager"], "eager"),
    (["--no-compile", "{spec}"], False),
])
def test_compile_does_not_swallow_the_spec(spec, resolved, args, compile):
    assert main(["train", *[a.format(spec=spec) for a in args]]) == 0
    assert resolved["source"].name == "small" and resolved["config"].compile == compile


def test_flags_turn_off_what_the_checkpoint_set(spec, monkeypatch):
    assert main(["train", str(spec), "--quiet", "--out", "run", "--ema", "0.9", "--checkpoint-every", "1",
                 "--max-steps", "4"]) == 0
    ckpt = torch.load("run/last.pt", weights_only=True)
    ckpt["config"].update(compile="aot_eager", download=True)  # as if trained so (compiling takes long)
    torch.save(ckpt, "run/last.pt")
    resolved = _resolve(monkeypatch)
    assert main(["train", "--resume", "run/last.pt", "--epochs", "2", "--ema", "0", "--checkpoint-every", "0",
                 "--max-steps", "0", "--limit-train", "0", "--no-compile", "--no-download"]) == 0
    c = resolved["config"]
    assert (c.ema, c.checkpoint_every, c.max_steps, c.limit_train, c.compile, c.download) == (None,) * 4 + (False,) * 2
    monkeypatch.setenv("COLUMNS", "400")
    help_text = " ".join(_help().split())  # --help says how
    for words in ("0.999; 0: none)", "(0: no limit)", "first N images only (0: all)", "(0: never)",
                  "--no-compile turns it off", "--download, --no-download"):
        assert words in help_text


def _help() -> str:
    parser = argparse.ArgumentParser(prog="netspec train")
    add_train_arguments(parser)
    return parser.format_help()


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


def test_a_failed_download_is_one_line_and_leaves_no_folder(spec, capsys, monkeypatch):
    """torchvision makes the raw folder, then fails with a message of several lines."""
    import urllib.error

    import torchvision.datasets.mnist as tv_mnist

    def offline(url, download_root, filename=None, md5=None):
        Path(download_root, filename or "part").write_bytes(b"half")
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    assert main(["train", str(spec), "--data", "mnist", "--data-dir", "data", "--download"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: mnist could not be downloaded to data/MNIST/raw (<urlopen error [Errno -2] Name or service "
                   "not known>); check the network, or put the torchvision files there yourself\n")
    assert sorted(p.name for p in Path(".").iterdir()) == ["small.yaml"]
