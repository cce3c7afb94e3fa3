"""The runner: it learns, resumes exactly, never loses work, and writes nothing on bad input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import netspec
from netspec.train import checkpoint
from netspec.train.checkpoint import ResumeError
from netspec.train.config import TrainConfig
from netspec.train.data import DataError
from netspec.train.loop import Diverged, RunOptions, default_channels_last, run_training
from netspec.train.model import ModelSource

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NETSPEC_DATA") or REPO.parent / "shared" / "data")
needs_fmnist = pytest.mark.skipif(not (DATA / "FashionMNIST" / "raw").is_dir(),
                                  reason=f"Fashion-MNIST not found in {DATA} (set NETSPEC_DATA)")

LENET_BN = """\
netspec: 1
name: lenet_bn
input: [1, 28, 28]
params: {classes: 10}
network:
  - conv: {out: 6, kernel: 5, padding: 2}
  - batchnorm
  - sigmoid
  - avgpool: {kernel: 2, stride: 2}
  - conv: {out: 16, kernel: 5}
  - batchnorm
  - sigmoid
  - avgpool: {kernel: 2, stride: 2}
  - flatten
  - linear: 120
  - batchnorm
  - sigmoid
  - linear: 84
  - batchnorm
  - sigmoid
  - linear: $classes
"""


def lenet_bn(tmp_path) -> ModelSource:
    """specs/lenet_bn.yaml when the zoo has it, else the same network written here."""
    path = REPO / "specs" / "lenet_bn.yaml"
    if not path.exists():
        path = tmp_path / "lenet_bn.yaml"
        path.write_text(LENET_BN)
    return ModelSource.from_spec(netspec.load(path))


def tiny(shape) -> nn.Module:
    """Conv, BatchNorm and Dropout: every kind of state a resume must restore."""
    c, h, w = shape
    return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.3), nn.Flatten(), nn.Linear(8 * (h // 2) * (w // 2), 10))


TINY = ModelSource("tiny", (1, 28, 28), tiny, spec_hash="tiny-v1")
QUICK = dict(data="synthetic", batch_size=64, limit_train=512, limit_test=128)


def run(config: dict, tmp_path, name="run", model=TINY, **options):
    options.setdefault("progress", "quiet")
    return run_training(TrainConfig(**config), model, RunOptions(out=tmp_path / name, **options))


@needs_fmnist
def test_short_real_run_learns_and_writes_everything(tmp_path, capsys):
    config = dict(data_dir=str(DATA), limit_train=4000, limit_test=1000, batch_size=64, epochs=2,
                  optimizer={"sgd": {"lr": 0.9}})
    result = run(config, tmp_path, model=lenet_bn(tmp_path), progress="plain")
    assert result.test_acc > 0.6, result.line  # chance is 0.1
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}, \d+\.\d examples/sec on cpu",
                        out[-1])
    assert out[-1] == result.line and sum(re.match(r"epoch \d/2: loss", line) is not None for line in out) == 2
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for key in ("epoch", "step", "loss", "train_acc", "test_acc", "lr", "examples_per_sec", "seconds"):
        assert key in records[-1]
    assert records[-1]["step"] == 2 * 63 and records[-1]["lr"] == 0.9
    assert (result.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["config"]["optimizer"] == {"sgd": {"lr": 0.9, "momentum": 0.0, "weight_decay": 0.0,
                                                    "nesterov": False}}
    assert saved["spec"]["name"] == "lenet_bn"
    best = checkpoint.load(result.run_dir / "best.pt")
    assert best["spec"]["text"] and best["spec"]["hash"] == netspec.spec_hash(netspec.load_text(best["spec"]["text"]))


RESUME = dict(QUICK, epochs=2, seed=3, ema=0.9,
              optimizer={"sgd": {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "nesterov": True}},
              schedule={"cosine": {"warmup_steps": 3}})


def _same_state(a: dict, b: dict):
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    momentum = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
    assert all(torch.equal(x, s["momentum_buffer"]) for x, s in zip(momentum, b["optimizer"]["state"].values()))
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] and a["step"] == b["step"]


@pytest.mark.parametrize("augment", [False, True])
def test_resume_is_bit_identical_at_epoch_and_mid_epoch(tmp_path, augment):
    """With augmentation too: its random numbers follow the seed, epoch and batch, not the process's RNG."""
    config = dict(RESUME, augment=augment)
    straight = run(config, tmp_path, "straight")
    first = run(dict(config, max_steps=8), tmp_path, "first")  # stops at the end of epoch 1
    assert checkpoint.load(first.run_dir / "last.pt")["epoch"] == 1
    resumed = run(config, tmp_path, "resumed", resume=first.run_dir / "last.pt")
    cut = run(dict(config, max_steps=11), tmp_path, "cut")  # stops in the middle of epoch 2
    assert checkpoint.load(cut.run_dir / "last.pt")["batch"] == 3
    finished = run(config, tmp_path, "finished", resume=cut.run_dir / "last.pt")

    want = checkpoint.load(straight.run_dir / "last.pt")
    _same_state(want, checkpoint.load(resumed.run_dir / "last.pt"))
    _same_state(want, checkpoint.load(finished.run_dir / "last.pt"))
    assert finished.test_acc == straight.test_acc
    assert finished.loss == pytest.approx(straight.loss)  # the cut epoch's running numbers carried over
    assert want["epoch"] == 2 and want["step"] == 16


def test_checkpoint_every_n_steps_and_best(tmp_path):
    result = run(dict(QUICK, epochs=1, checkpoint_every=3, max_steps=7), tmp_path)
    last = checkpoint.load(result.run_dir / "last.pt")
    assert last["step"] == 7 and last["epoch"] == 0 and last["batch"] == 7
    assert (result.run_dir / "best.pt").exists()
    assert not list(result.run_dir.glob("*.tmp"))  # written to a temporary file, then renamed


def test_checkpoint_loads_weights_only_and_holds_everything(tmp_path):
    result = run(dict(QUICK, epochs=1), tmp_path)
    ckpt = torch.load(result.run_dir / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "rng", "epoch", "step", "config", "spec", "input", "data"):
        assert key in ckpt
    assert {"torch", "python", "numpy"} <= set(ckpt["rng"])
    assert ckpt["spec"]["hash"] == "tiny-v1" and ckpt["config"]["data"] == "synthetic"
    net = tiny((1, 28, 28))
    net.load_state_dict(ckpt["model"])


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    exploding = dict(QUICK, epochs=3, schedule={"step": {"every": 1, "gamma": 1e30}})
    with pytest.raises(Diverged, match=r"the loss became .* at epoch 2.*last good checkpoint is .*last\.pt"):
        run(exploding, tmp_path)
    kept = checkpoint.load(tmp_path / "run" / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in kept["model"].values())
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_bad_input_writes_nothing(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(DataError):
        run_training(TrainConfig(data="mnist", data_dir=str(tmp_path / "nowhere")), TINY,
                     RunOptions(runs_root=root, progress="quiet"))
    assert not root.exists()

    first = run(dict(QUICK, epochs=1), tmp_path, "first")
    other = ModelSource("tiny", (1, 28, 28), tiny, spec_hash="tiny-v2")
    with pytest.raises(ResumeError, match="different spec.*--force"):
        run_training(TrainConfig(**dict(QUICK, epochs=2)), other,
                     RunOptions(runs_root=root, resume=first.run_dir / "last.pt", progress="quiet"))
    assert not root.exists()
    forced = run(dict(QUICK, epochs=2), tmp_path, "forced", model=other, resume=first.run_dir / "last.pt", force=True)
    assert forced.epoch == 2

    wrong_classes = ModelSource("five", (1, 28, 28), lambda s: nn.Sequential(nn.Flatten(), nn.Linear(784, 5)), "x")
    with pytest.raises(Exception, match="10 classes"):
        run_training(TrainConfig(**QUICK), wrong_classes, RunOptions(runs_root=root, progress="quiet"))
    assert not root.exists()


def test_compiled_run_saves_plain_keys_and_really_updates_the_ema(tmp_path):
    result = run(dict(QUICK, epochs=1, limit_train=256, compile="aot_eager", ema=0.5), tmp_path)
    ckpt = checkpoint.load(result.run_dir / "last.pt")
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in [*ckpt["model"], *ckpt["ema"]])
    torch.manual_seed(0)
    fresh = tiny((1, 28, 28))
    fresh.load_state_dict(ckpt["ema"])  # loads into an uncompiled module
    w_model, w_ema = ckpt["model"]["0.weight"], ckpt["ema"]["0.weight"]
    assert not torch.equal(w_model, w_ema)
    # after 4 steps with decay 0.5 the average sits close to the trained weights, far from the start
    torch.manual_seed(0)
    start = tiny((1, 28, 28))
    nn.init.xavier_uniform_(start[0].weight)
    assert (w_ema - w_model).norm() < (w_ema - start[0].weight).norm()
    assert result.test_acc_ema is not None


@pytest.mark.parametrize("resize", [None, 40])
def test_bf16_autocast_on_cpu_and_label_smoothing_train(tmp_path, resize):
    """Resized: evaluation asks for its batches under autocast, and the resize must not run in bf16."""
    result = run(dict(QUICK, epochs=2, amp=True, label_smoothing=0.1, optimizer="adamw",
                      schedule="onecycle", init="kaiming", resize=resize), tmp_path)
    assert result.test_acc > 0.5 and torch.isfinite(torch.tensor(result.loss))


def test_channels_last_by_default_on_cuda_on_cpu_for_wide_convs_and_never_on_mps():
    def convs(*widths):
        return nn.Sequential(*[nn.Conv2d(1, w, 3) for w in widths], nn.Flatten(), nn.LazyLinear(10))
    cpu = torch.device("cpu")
    assert default_channels_last(torch.device("cuda")) and default_channels_last(torch.device("cuda"), convs(4))
    assert default_channels_last(cpu, convs(6, 16, 32)) and default_channels_last(cpu, convs(512))
    assert not default_channels_last(cpu, convs(6, 16)) and not default_channels_last(cpu, convs(31))
    assert not default_channels_last(cpu, nn.Sequential(nn.Flatten(), nn.Linear(784, 512)))  # no conv at all
    assert not default_channels_last(cpu, nn.Conv1d(1, 64, 3))  # NHWC is for 2-D images
    assert not default_channels_last(torch.device("mps"), convs(64))


def test_channels_last_trains_as_contiguous_does(tmp_path):
    """The same arithmetic in NHWC memory: equal up to float rounding.

    Three input channels, so NHWC weights are told apart from NCHW ones by
    their strides. No dropout: its random mask follows the memory order, so it
    differs between the layouts.
    """
    def net(shape):
        return nn.Sequential(*[m for m in tiny(shape) if not isinstance(m, nn.Dropout)])
    rgb = ModelSource("tiny", (3, 28, 28), net, spec_hash="tiny-rgb")
    config = dict(QUICK, epochs=1, max_steps=4)
    on = run(dict(config, channels_last=True), tmp_path, "on", model=rgb)
    off = run(dict(config, channels_last=False), tmp_path, "off", model=rgb)
    nhwc, nchw = (checkpoint.load(r.run_dir / "last.pt")["model"] for r in (on, off))
    assert nhwc["0.weight"].is_contiguous(memory_format=torch.channels_last) and not nhwc["0.weight"].is_contiguous()
    assert nchw["0.weight"].is_contiguous()
    for name in nchw:
        torch.testing.assert_close(nhwc[name], nchw[name], rtol=1e-4, atol=1e-5)
    assert on.loss == pytest.approx(off.loss, rel=1e-4)


@pytest.mark.parametrize("augment", [False, True])
def test_augment_changes_training_batches_only(tmp_path, monkeypatch, augment):
    """The model trains on augmented batches when asked (one call per batch, evaluation never augmented)."""
    from netspec.train import loop
    from netspec.train.data import load_data

    seen, calls, step, augmented = [], [], loop._Run._step, loop.flip_and_shift
    monkeypatch.setattr(loop._Run, "_step", lambda self, x, y, stats: (seen.append(x.clone()), step(self, x, y, stats)))
    monkeypatch.setattr(loop, "flip_and_shift", lambda *a: (calls.append(1), augmented(*a))[1])
    settings = dict(QUICK, epochs=1, batch_size=32, limit_train=64, augment=augment)
    run(settings, tmp_path)
    config = TrainConfig(**settings)
    plain = [x for x, _ in load_data(config, (1, 28, 28), torch.device("cpu")).train.train_batches(32, config.seed, 0)]
    assert len(seen) == len(plain) == 2 and len(calls) == (2 if augment else 0)
    assert all(torch.equal(a, b) for a, b in zip(seen, plain)) is not augment


def test_a_run_stopped_at_max_steps_is_not_resumed_past_it(tmp_path):
    """Resuming with the max_steps the checkpoint holds trained one step more on each resume; now it is
    refused, and a larger max_steps stops exactly there."""
    first = run(dict(QUICK, epochs=2, max_steps=5), tmp_path)  # 8 steps an epoch: stops mid-epoch
    last = first.run_dir / "last.pt"
    with pytest.raises(ResumeError, match=r"already trained 5 steps \(max_steps 5\); pass --max-steps with more"):
        run(dict(QUICK, epochs=2, max_steps=5), tmp_path, resume=last)
    assert checkpoint.load(last)["step"] == 5
    assert run(dict(QUICK, epochs=2, max_steps=7), tmp_path, resume=last).step == 7
    assert checkpoint.load(last)["step"] == 7


def test_a_run_resumed_into_another_folder_keeps_its_earlier_epochs(tmp_path):
    """--resume A/last.pt --out B: B's metrics and curves start at epoch 1, not at the resume; A is untouched."""
    first = run(dict(QUICK, epochs=2), tmp_path, name="a")
    before = (first.run_dir / "metrics.jsonl").read_text()
    second = run(dict(QUICK, epochs=3), tmp_path, name="b", resume=first.run_dir / "last.pt")
    lines = (second.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert "\n".join(lines[:2]) + "\n" == before
    assert (first.run_dir / "metrics.jsonl").read_text() == before


@pytest.mark.parametrize("change", [dict(batch_size=32), dict(seed=1), dict(limit_train=256), dict(data="mnist")])
def test_a_mid_epoch_resume_refuses_settings_that_reorder_the_epoch(tmp_path, change):
    """The rest of an epoch is the rest of ITS batch order: another order would skip or repeat images."""
    first = run(dict(QUICK, epochs=2, max_steps=3), tmp_path)
    (key, value), = change.items()
    with pytest.raises(ResumeError, match=rf"stopped in the middle of epoch 1, whose remaining batches depend on "
                                          rf"{key} \(.* there, {value} now\); resume with the same {key}"):
        run(dict(QUICK, epochs=2, **change), tmp_path, "other", resume=first.run_dir / "last.pt")
    assert not (tmp_path / "other").exists()
    # at the end of an epoch the next one starts afresh: any order will do
    whole = run(dict(QUICK, epochs=1), tmp_path, "whole")
    assert run(dict(QUICK, epochs=2, seed=1), tmp_path, "whole", resume=whole.run_dir / "last.pt").epoch == 2


def _poison_after(monkeypatch, step: int):
    """Make the weights nan right after optimizer step `step` (its loss was still finite)."""
    from netspec.train import loop

    original = loop._Run._step

    def poisoned(self, x, y, stats):
        original(self, x, y, stats)
        if self.step + 1 == step:
            with torch.no_grad():
                next(self.net.parameters()).fill_(float("nan"))
    monkeypatch.setattr(loop._Run, "_step", poisoned)


def test_weights_that_became_nan_are_never_saved_as_good(tmp_path, monkeypatch):
    _poison_after(monkeypatch, 16)  # the last step of epoch 2
    with pytest.raises(Diverged, match=r"the weights became infinite or nan at epoch 2, step 16; .*"
                                       r"last good checkpoint is .*last\.pt"):
        run(dict(QUICK, epochs=3, ema=0.5), tmp_path)
    kept = checkpoint.load(tmp_path / "run" / "last.pt")
    assert kept["epoch"] == 1 and all(torch.isfinite(t).all() for t in kept["model"].values())
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_nan_weights_at_a_periodic_save_are_not_saved(tmp_path, monkeypatch):
    _poison_after(monkeypatch, 3)
    with pytest.raises(Diverged, match="no checkpoint had been written yet"):
        run(dict(QUICK, epochs=1, checkpoint_every=3), tmp_path)
    assert not (tmp_path / "run").exists()


def test_metrics_are_strict_json(tmp_path):
    from netspec.train.metrics import MetricsLog

    log = MetricsLog(tmp_path)
    log.append({"epoch": 1, "loss": float("inf"), "lr": float("nan"), "test_acc": 0.5})
    text = (tmp_path / "metrics.jsonl").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) == {
        "epoch": 1, "loss": None, "lr": None, "test_acc": 0.5}


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"),
                                   RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")])
def test_a_failed_save_leaves_no_temporary_file_and_says_why(tmp_path, monkeypatch, error):
    """A full disk: torch.save fails half-way (with RuntimeError from its zip writer)."""
    from netspec.train.checkpoint import SaveError

    first = run(dict(QUICK, epochs=1), tmp_path)
    good = (first.run_dir / "last.pt").read_bytes()

    def half(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half")
        raise error
    monkeypatch.setattr(checkpoint.torch, "save", half)
    reason = "No space left on device" if isinstance(error, OSError) else r"\(is the disk full\?\)"
    with pytest.raises(SaveError, match=rf"could not write .*last\.pt:? {reason}"):
        run(dict(QUICK, epochs=2), tmp_path, resume=first.run_dir / "last.pt")
    assert sorted(p.name for p in first.run_dir.iterdir()) == ["best.pt", "config.json", "curves.png", "last.pt",
                                                                "metrics.jsonl"]
    assert (first.run_dir / "last.pt").read_bytes() == good


def test_plain_output_reports_progress_within_an_epoch(tmp_path, capsys, monkeypatch):
    """Logs of long epochs (stdout not a terminal) get a line every Reporter.plain_every seconds."""
    from netspec.train.progress import Reporter

    monkeypatch.setattr(Reporter, "plain_every", 0.0)
    run(dict(QUICK, epochs=1), tmp_path, progress="plain")
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if re.fullmatch(r"epoch 1/1: step \d/8, loss \d\.\d{3} acc \d\.\d{3} [\d,]+ ex/s",
                                                    line)]
    assert len(steps) == 8 and steps[-1].startswith("epoch 1/1: step 8/8")
