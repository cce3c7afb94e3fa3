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
