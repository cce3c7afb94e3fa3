"""DDP through real torchrun (gloo on CPU): 2 processes match 1 process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from netspec.train import checkpoint

REPO = Path(__file__).resolve().parents[1]
# No BatchNorm (statistics are per rank under DDP) and no dropout (masks differ per rank).
SPEC = """\
netspec: 1
name: nobn
input: [1, 28, 28]
network:
  - conv: {out: 8, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 2, stride: 2}
  - flatten
  - linear: 10
train:
  data: synthetic
  batch_size: 64
  epochs: 2
  limit_train: 480          # 7.5 batches: the short last batch is split over the ranks too
  limit_test: 100           # not a multiple of 2 x batch: uneven test shards are summed right
  optimizer: {sgd: {lr: 0.1, momentum: 0.9, weight_decay: 0.001}}
  schedule: {cosine: {warmup_steps: 2}}
"""


def train(spec: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "netspec", "train", str(spec), "--out", str(out), *extra],
                          capture_output=True, text=True, env=env, timeout=240)


def test_two_gloo_processes_match_one_process(tmp_path):
    spec = tmp_path / "nobn.yaml"
    spec.write_text(SPEC)
    one = train(spec, tmp_path / "one")
    two = train(spec, tmp_path / "two", "--nproc", "2")  # starts torchrun with 2 workers
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert "cpu x2" in two.stdout and two.stdout.strip().endswith("on 2 x cpu")
    assert two.stdout.count("epoch 1/2") == 1  # rank 0 alone prints

    a = checkpoint.load(tmp_path / "one" / "last.pt")
    b = checkpoint.load(tmp_path / "two" / "last.pt")
    assert a["step"] == b["step"] == 16
    for name in a["model"]:
        torch.testing.assert_close(b["model"][name], a["model"][name], rtol=1e-4, atol=1e-5)
    assert not any(k.startswith("module.") for k in b["model"])

    def records(run):
        return [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    for r1, r2 in zip(records("one"), records("two"), strict=True):
        assert r2["test_acc"] == r1["test_acc"] and r2["train_acc"] == r1["train_acc"]  # summed over ranks
        assert abs(r2["loss"] - r1["loss"]) < 1e-4 and r2["lr"] == r1["lr"]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
