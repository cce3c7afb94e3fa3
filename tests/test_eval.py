"""`netspec eval CHECKPOINT`: rebuilds the network from the checkpoint alone and tests it per class."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.train.evaluate import evaluate_checkpoint

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NETSPEC_DATA") or REPO.parent / "shared" / "data")
SPEC = """\
netspec: 1
name: small
input: [1, 28, 28]
network:
  - conv: {out: 8, kernel: 3, padding: 1}
  - batchnorm
  - relu
  - maxpool: {kernel: 2, stride: 2}
  - flatten
  - linear: 10
train: {data: synthetic, batch_size: 32, epochs: 2, limit_train: 256, limit_test: 200, ema: 0.9}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("eval")
    spec = tmp / "small.yaml"
    spec.write_text(SPEC)
    assert main(["train", str(spec), "--out", str(tmp / "run"), "--quiet"]) == 0
    spec.unlink()  # eval must not need the spec file
    return tmp / "run"


def test_eval_prints_a_per_class_table_and_the_training_accuracy(run, capsys):
    assert main(["eval", str(run / "last.pt")]) == 0
    out = capsys.readouterr().out
    for k in range(10):
        assert f"pattern-{k}" in out
    accuracy = float(re.search(r"test acc (\d\.\d+) on 200 images of synthetic", out).group(1))
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert accuracy == pytest.approx(last["test_acc"], abs=5e-4)


def test_eval_numbers_add_up_and_ema_weights_are_evaluated(run):
    result = evaluate_checkpoint(run / "last.pt")
    assert sum(result.counts) == 200 and all(0 <= c <= n for c, n in zip(result.correct, result.counts))
    ema = evaluate_checkpoint(run / "last.pt", use_ema=True)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert ema.weights == "ema" and ema.accuracy == pytest.approx(last["test_acc_ema"], abs=1e-6)


@pytest.mark.skipif(not (DATA / "FashionMNIST" / "raw").is_dir(), reason=f"Fashion-MNIST not in {DATA}")
def test_eval_on_other_data(run, capsys):
    assert main(["eval", str(run / "best.pt"), "--data", "fashion-mnist", "--data-dir", str(DATA),
                 "--limit-test", "100"]) == 0
    out = capsys.readouterr().out
    assert "Ankle boot" in out and "on 100 images of fashion-mnist" in out


def test_eval_errors(run, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.pt")]) == 2
    assert capsys.readouterr().err.startswith("error: no checkpoint at ")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["eval", str(tmp_path / "junk.pt")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def _edited(run: Path, tmp_path: Path, name: str, edit) -> Path:
    """A copy of the run's last.pt with `edit` applied to its dict."""
    import torch

    ckpt = torch.load(run / "last.pt", weights_only=True)
    edit(ckpt)
    path = tmp_path / f"{name}.pt"
    torch.save(ckpt, path)
    return path


def _unsafe(path: Path) -> None:
    import argparse

    import torch

    torch.save({"x": argparse.Namespace()}, path)  # unpickling it would import and build a class


@pytest.mark.parametrize("name, write, reason", [
    ("empty", lambda p, run: p.write_bytes(b""), "is not a readable checkpoint (the file is empty)"),
    ("truncated", lambda p, run: p.write_bytes((run / "last.pt").read_bytes()[:1000]),
     "is not a readable checkpoint (the file is truncated or damaged)"),
    ("junk", lambda p, run: p.write_bytes(b"not a checkpoint"),
     "is not a readable checkpoint (not a file written by torch.save)"),
    ("unsafe", lambda p, run: _unsafe(p),
     "is not a readable checkpoint (it holds Python objects besides tensors and plain data; "
     "netspec loads checkpoints with weights_only=True)"),
    ("folder", lambda p, run: p.mkdir(), "no checkpoint at {path} (a folder: name a .pt file in it)"),
])
def test_an_unreadable_checkpoint_is_one_line(run, tmp_path, capsys, name, write, reason):
    path = tmp_path / f"{name}.pt"
    write(path, run)
    for command in (["eval", str(path)], ["train", "--resume", str(path), "--out", str(tmp_path / "out")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        want = reason.format(path=path) if "{path}" in reason else f"{path} {reason}"
        assert err == f"error: {want}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, edit, message", [
    ("notext", lambda c: c["spec"].pop("text"), "holds no spec text to rebuild the network from; give the SPEC too"),
    ("noinput", lambda c: c.pop("input"), "is an incomplete checkpoint (it has no input)"),
    ("nohash", lambda c: c["spec"].pop("hash"), "is an incomplete checkpoint (it has no spec.hash)"),
    ("badconfig", lambda c: c["config"].update(batch_size=0),
     "holds an invalid training config (batch_size: Input should be greater than 0 (got 0))"),
    ("noweights", lambda c: c.update(model={}), "does not fit this network (the checkpoint has no 0.weight (and 8 more))"),
    ("wrongshape", lambda c: c["model"].update({"0.weight": c["model"]["0.weight"][:4]}),
     "does not fit this network (0.weight is [4, 1, 3, 3] in the checkpoint, [8, 1, 3, 3] in the network)"),
])
def test_a_checkpoint_missing_what_it_needs_is_one_line(run, tmp_path, capsys, name, edit, message):
    """The message names the checkpoint (not the spec's train section) and the whole reason, on one line."""
    path = _edited(run, tmp_path, name, edit)
    for command in (["eval", str(path)], ["train", "--resume", str(path), "--epochs", "3", "--out", str(tmp_path / "o")]):
        assert main(command) == 2
        assert capsys.readouterr().err == f"error: {path} {message}\n"
    assert not (tmp_path / "o").exists()


def test_eval_limit_test_0_means_all_and_device_errors_are_user_errors(run, capsys, monkeypatch):
    import torch

    assert main(["eval", str(run / "last.pt"), "--limit-test", "0"]) == 0
    assert "on 1000 images of synthetic" in capsys.readouterr().out  # the checkpoint's 200 dropped
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["eval", str(run / "last.pt"), "--device", "cuda"]) == 2
    assert capsys.readouterr().err == "error: --device cuda, but PyTorch sees no CUDA device\n"


def _image_folder(root: Path, classes: list[str]) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            Image.new("L", (28, 28)).save(root / split / name / "0.png")
    return root


def test_eval_on_data_with_fewer_classes_notes_the_extra_scores(run, tmp_path, capsys):
    """10 scores for 2 classes work (classes 0 and 1 are scored as trained); more classes than scores cannot."""
    pets = _image_folder(tmp_path / "pets", ["cat", "dog"])
    path = _edited(run, tmp_path, "noworkers", lambda c: c["config"].update(workers=0))  # no worker processes
    assert main(["eval", str(path), "--data", f"imagefolder:{pets}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"note: the network gives 10 scores per image for imagefolder:{pets}'s 2 classes; "
                          f"the extra 8 are never a target\n")
    assert out.count("note:") == 1 and "on 2 images of" in out

    many = _image_folder(tmp_path / "many", [f"c{k:02d}" for k in range(11)])
    assert main(["eval", str(path), "--data", f"imagefolder:{many}"]) == 2
    assert capsys.readouterr().err == (f"error: the network's output has shape [10] per image, but "
                                       f"imagefolder:{many} has 11 classes; end the network in linear(11) "
                                       f"(e.g. -p classes=11)\n")


def test_a_network_with_more_outputs_than_classes_trains_and_evaluates(tmp_path, capsys):
    """A checkpoint trained with 12 outputs on 10 classes (as -p classes=12 on Fashion-MNIST) is evaluated."""
    spec = tmp_path / "twelve.yaml"
    spec.write_text(SPEC.replace("linear: 10", "linear: 12").replace("epochs: 2", "epochs: 1"))
    assert main(["train", str(spec), "--out", str(tmp_path / "run")]) == 0
    note = ("note: the network gives 12 scores per image for synthetic's 10 classes; "
            "the extra 2 are never a target\n")
    assert capsys.readouterr().out.count(note) == 1
    assert main(["eval", str(tmp_path / "run" / "last.pt")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(note) and out.count("note:") == 1
    assert "pattern-9" in out and "pattern-10" not in out and "on 200 images of synthetic" in out
    result = evaluate_checkpoint(tmp_path / "run" / "last.pt")
    assert len(result.counts) == 10 and sum(result.counts) == 200
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert result.accuracy == pytest.approx(last["test_acc"], abs=5e-4)
