"""DDP through real torchrun (gloo on CPU): 2 processes match 1 process on the same global batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def train(spec: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netspec", "train", str(spec), "--out", str(out), *extra],
                          capture_output=True, text=True, env=ENV, timeout=240)


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

    # cut in the middle of epoch 2 and resumed: rank 0 saved the epoch's numbers summed over the ranks,
    # and only rank 0 carries them on (every rank did, so they counted twice)
    cut = train(spec, tmp_path / "cut", "--nproc", "2", "--max-steps", "11")
    assert cut.returncode == 0, cut.stderr
    assert checkpoint.load(tmp_path / "cut" / "last.pt")["batch"] == 3
    resumed = train(spec, tmp_path / "cut", "--nproc", "2", "--max-steps", "0", "--resume", tmp_path / "cut" / "last.pt")
    assert resumed.returncode == 0, resumed.stderr
    for r1, r2 in zip(records("one"), records("cut"), strict=True):
        assert r2["train_acc"] == r1["train_acc"] and abs(r2["loss"] - r1["loss"]) < 1e-4


def test_a_worker_user_error_is_one_line_and_exit_2(tmp_path):
    """Found by each worker (the batch does not split over 2): said once, with no torchrun traceback."""
    spec = tmp_path / "nobn.yaml"
    spec.write_text(SPEC)
    done = train(spec, tmp_path / "run", "--nproc", "2", "--batch-size", "63")
    assert done.returncode == 2
    assert done.stderr == "error: batch size 63 does not split evenly over 2 processes\n"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_launcher_stops_the_workers_cleanly(tmp_path, signum):
    """Ctrl-C (or SIGTERM) to `netspec train --nproc 2` alone: the workers save and exit, none is left
    behind, and the exit code is the signal's, without torchrun's tracebacks."""
    spec = tmp_path / "nobn.yaml"
    spec.write_text(SPEC.replace("epochs: 2", "epochs: 1000"))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "netspec", "train", str(spec), "--out", str(out), "--nproc", "2",
                             "--checkpoint-every", "3", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.time() + 120
        while not (out / "last.pt").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline, "training never started"
            time.sleep(0.1)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert stderr.startswith(f"interrupted by {name} at epoch ") and stderr.count("\n") == 1, stderr
    assert checkpoint.load(out / "last.pt")["step"] > 0
    time.sleep(0.5)
    assert not _processes_with(str(out)), "workers left running"


def _started(tmp_path: Path, nohup: bool = False) -> tuple[subprocess.Popen, Path]:
    """`netspec train --nproc 2` of a long run, once its workers have written a checkpoint; output to files
    (a pipe would stay open in any process left behind). `nohup`: started with SIGHUP ignored."""
    spec = tmp_path / "nobn.yaml"
    spec.write_text(SPEC.replace("epochs: 2", "epochs: 1000"))
    out = tmp_path / "run"
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "netspec", "train", str(spec), "--out", str(out),
                                 "--nproc", "2", "--checkpoint-every", "3", "--quiet"],
                                stdout=stdout, stderr=stderr, env=ENV, start_new_session=True,  # as `setsid`
                                preexec_fn=(lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if nohup else None)
    deadline = time.time() + 120
    while not (out / "last.pt").exists():
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        assert time.time() < deadline, "training never started"
        time.sleep(0.1)
    return proc, out


def _all_gone(text: str, seconds: float) -> bool:
    deadline = time.time() + seconds
    while _processes_with(text):
        if time.time() > deadline:
            return False
        time.sleep(0.2)
    return True


def _kill_left_over(proc: subprocess.Popen, text: str) -> None:
    """The launcher and whatever it started (their command lines name the test's own folder)."""
    proc.kill()
    proc.wait()
    for pid in _processes_with(text):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_a_hangup_of_the_launcher_stops_the_workers(tmp_path):
    """The terminal closed (SIGHUP to the launcher's process group, which torchrun, in its own session,
    is not in): the launcher passes it on, torchrun stops the workers, none is left running."""
    proc, out = _started(tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGHUP)  # what a closing terminal sends its foreground group
        assert _all_gone(str(out), 60), "workers left running"
        assert proc.wait(timeout=30) == 128 + signal.SIGHUP, (tmp_path / "stderr").read_text()
    finally:
        _kill_left_over(proc, str(out))


def test_under_nohup_a_hangup_does_not_stop_the_run(tmp_path):
    """`nohup netspec train --nproc 2 ...`: SIGHUP is ignored, as a one-process run ignores it."""
    proc, out = _started(tmp_path, nohup=True)
    try:
        os.killpg(proc.pid, signal.SIGHUP)
        time.sleep(3)
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        assert len(_processes_with(str(out))) >= 3  # the launcher, torchrun, the workers
        proc.terminate()
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert _all_gone(str(out), 60), "workers left running"
    finally:
        _kill_left_over(proc, str(out))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_launcher_still_stops_the_workers(tmp_path):
    """SIGKILL of the launcher passes nothing on itself: the kernel tells torchrun (SIGTERM), which stops
    the workers, and they save on the way out."""
    proc, out = _started(tmp_path)
    try:
        proc.kill()
        proc.wait()
        assert _all_gone(str(out), 60), "workers left running"
        assert checkpoint.load(out / "last.pt")["step"] > 0
        assert "interrupted by SIGTERM at epoch " in (tmp_path / "stderr").read_text()
    finally:
        _kill_left_over(proc, str(out))


def _processes_with(text: str) -> list[int]:
    """Processes whose command line mentions `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found
