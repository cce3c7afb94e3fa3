"""Ctrl-C and SIGTERM save a checkpoint at the next step and exit with a message (a real process)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netspec.train import checkpoint

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
netspec: 1
name: small
input: [1, 28, 28]
network:
  - conv: {out: 8, kernel: 3, padding: 1}
  - relu
  - maxpool: {kernel: 2, stride: 2}
  - flatten
  - linear: 10
train: {data: synthetic, batch_size: 32, epochs: 1000}
"""


def netspec_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "netspec", "train", *map(str, args)]


def env():
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_a_checkpoint_and_exits_with_a_message(tmp_path, signum):
    spec = tmp_path / "small.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    proc = subprocess.Popen(netspec_cmd(spec, "--out", out, "--checkpoint-every", 5, "--limit-test", 64, "--quiet"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        deadline = time.time() + 60
        while not (out / "last.pt").exists():  # training is under way
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "training never started"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, stderr
    assert f"interrupted by {name}" in stderr and f"--resume {out / 'last.pt'}" in stderr
    assert "Traceback" not in stderr
    stopped_at = int(re.search(r"step (\d+);", stderr).group(1))
    saved = checkpoint.load(out / "last.pt")
    assert saved["step"] == stopped_at > 0  # saved at the signal, not at the last periodic save
    if signum == signal.SIGINT:
        return
    # and the run goes on from there
    more = saved["step"] + 3
    done = subprocess.run(netspec_cmd(spec, "--resume", out / "last.pt", "--max-steps", more, "--quiet"),
                          capture_output=True, text=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loss ") and checkpoint.load(out / "last.pt")["step"] == more
