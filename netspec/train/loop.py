"""The training loop: one generic runner for any network, read top to bottom.

run_training validates everything that can fail (data, checkpoint, network)
before it creates the run folder, then trains epoch by epoch, evaluating after
each, writing metrics.jsonl, curves.png, last.pt and best.pt on rank 0. It
stops cleanly at a signal (after saving), at max_steps, or at a non-finite
loss (keeping the last good checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint, cpu_conv, distributed
from .augment import batch_generator, flip_and_shift
from .checkpoint import ResumeError, SaveError
from .config import ConfigError
from .data import load_data
from .ema import EMA
from .memory import kept
from .metrics import MetricsLog, final_line, plot_curves
from .model import ModelSource
from .optim import build_optimizer, build_scheduler, init_weights
from .progress import Reporter


class TrainError(Exception):
    """A run that stopped; the message says why and what was kept."""

    exit_code = 1


class Diverged(TrainError):
    pass


class Interrupted(TrainError):
    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


@dataclass
class RunOptions:
    """How this invocation runs, as opposed to what it trains (TrainConfig)."""

    out: Path | None = None         # run folder; default runs/NAME-TIMESTAMP
    resume: Path | None = None      # a checkpoint to continue from
    force: bool = False             # resume even if the spec changed
    overwrite: bool = False         # replace the run already in `out`
    quiet: bool = False             # print only the last line
    progress: str | None = None     # rich | plain | quiet; None: rich on a terminal
    runs_root: Path = Path("runs")


@dataclass
class Result:
    run_dir: Path | None
    loss: float
    train_acc: float
    test_acc: float
    examples_per_sec: float
    device: str
    epoch: int
    step: int
    line: str
    test_acc_ema: float | None = None


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """auto: CUDA, then MPS, then CPU. Under torchrun each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}, but PyTorch sees no CUDA device")
        if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}, but PyTorch sees {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps, but PyTorch sees no MPS device")
    return torch.device(name)


def check_backend(backend) -> None:
    """A torch.compile backend named by the user must exist, before anything is written."""
    if isinstance(backend, str):
        import torch._dynamo
        if backend not in torch._dynamo.list_backends(exclude_tags=()):  # debug ones (aot_eager) too
            raise ConfigError(f"unknown torch.compile backend '{backend}'; choose one of "
                              f"{', '.join(torch._dynamo.list_backends())}, or aot_eager or eager to debug")


def check_outputs(net, data) -> str | None:
    """One forward pass in eval mode: the network must give a score for each class of the data.

    More scores than classes work (the extra ones are never a target, e.g. a network trained with
    `-p classes=12`): the result is then a note to print; fewer are an error.
    """
    x, _ = next(iter(data.test.test_batches(2)))
    was_training = net.training
    with torch.no_grad():
        out = net.eval()(x)
    net.train(was_training)
    k = len(data.classes)
    if out.ndim != 2 or out.shape[1] < k:
        raise ConfigError(f"the network's output has shape {list(out.shape[1:])} per image, but {data.name} "
                          f"has {k} classes; end the network in linear({k}) (e.g. -p classes={k})")
    extra = out.shape[1] - k
    if extra:
        return (f"note: the network gives {out.shape[1]} scores per image for {data.name}'s {k} classes; "
                f"the extra {extra} {'is' if extra == 1 else 'are'} never a target")
    return None


RUN_FILES = ("config.json", "metrics.jsonl", "curves.png", "last.pt", "best.pt")
ORDER_KEYS = ("data", "seed", "batch_size", "limit_train")  # what decides an epoch's batches


def is_run_dir(path: Path) -> bool:
    return any((Path(path) / name).exists() for name in RUN_FILES)


def check_run_dir(path: Path) -> None:
    """A run folder that cannot be made or written is a user error, found before any work."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"run folder {path} is a file")
    parent = Path(path)
    while not os.path.exists(parent):
        parent = parent.parent
    if not os.path.isdir(parent):
        raise ConfigError(f"cannot make run folder {path}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot make run folder {path}: {parent} is not writable")


@contextlib.contextmanager
def writing(path):
    """An OSError while writing the run's files stops the run with one line (disk full, permissions)."""
    try:
        yield
    except OSError as e:
        raise SaveError(f"could not write {path}: {e.strerror or e}") from None


WIDE_CONV = 32  # output channels from which a 2-D convolution trains faster in NHWC on CPU


def default_channels_last(device: torch.device, net=None) -> bool:
    """Whether NHWC memory is the faster default: on CUDA always; on CPU for a network whose widest 2-D
    convolution has at least WIDE_CONV output channels; never on MPS.

    `python -m benchmarks.run layout` timed a training step of each zoo model both ways, four
    times: LeNet (6 and 16 channels) ran 0.77-0.90x as fast in NHWC; NiN, VGG-11 at ratio 4,
    GoogLeNet, ResNet-18 and DenseNet 1.07-1.36x faster; AlexNet and full-width VGG-11 0.87-1.20x
    (faster in 5 of 8). The choice depends only on the network, so a seed's dropout masks (which
    follow the memory order) are the same every run.
    """
    if device.type == "cuda":
        return True
    if device.type != "cpu" or net is None:
        return False
    return max((m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)), default=0) >= WIDE_CONV


def evaluate(net, split, batch_size: int, device, autocast, world, channels_last: bool,
             num_classes: int) -> torch.Tensor:
    """Per-class [correct, count] over a test split (all ranks' shares summed)."""
    counts = torch.zeros(2, num_classes, device=device)
    was_training = net.training
    net.eval()
    with torch.no_grad(), autocast():
        for x, y in split.test_batches(batch_size, world.rank, world.size):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            hit = (net(x).argmax(1) == y).float()
            counts[0].index_add_(0, y, hit)
            counts[1].index_add_(0, y, torch.ones_like(hit))
    net.train(was_training)
    return distributed.sum_all(counts, world)


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set a flag the loop reads at the next step; a second Ctrl-C aborts."""
    flag = {"signum": None}
    previous = {}

    def handler(signum, frame):
        flag["signum"] = flag["signum"] or signum  # the first one names the stop
        signal.signal(signum, previous.get(signum, signal.SIG_DFL))

    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: no handlers
        pass
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def new_run_dir(root: Path, name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / f"{name}-{stamp}", 1
    while path.exists():
        n += 1
        path = root / f"{name}-{stamp}-{n}"
    return path


def run_training(config, model: ModelSource, options: RunOptions | None = None) -> Result:
    """Train `model` as `config` says; returns the final numbers (raises TrainError & co.)."""
    options = options or RunOptions()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = pick_device(config.device, 0)
    world = distributed.setup(device.type)
    try:
        if world.distributed and device.type == "cuda":
            device = torch.device("cuda", world.local_rank)
            torch.cuda.set_device(device)
        keep = config.keep_memory if config.keep_memory is not None else device.type == "cpu"
        with kept(keep):
            result = _Run(config, model, options, device, world).train()
        distributed.finish(world)
        return result
    finally:
        distributed.teardown(world)


class _Run:
    def __init__(self, config, model: ModelSource, options: RunOptions, device, world):
        self.config, self.source, self.options, self.device, self.world = config, model, options, device, world
        self.report = Reporter(options.progress, options.quiet, enabled=world.main)
        if config.batch_size % world.size:
            raise ConfigError(f"batch size {config.batch_size} does not split evenly over {world.size} processes")

        # Everything that can fail comes before anything is written; the run folder is made at the first write.
        ckpt = checkpoint.load(options.resume, checkpoint.NEEDED_TO_RESUME) if options.resume else None
        if ckpt is not None:
            if ckpt["spec"]["hash"] != model.spec_hash and not options.force:
                raise ResumeError(f"{options.resume} was trained from a different spec "
                                  f"({ckpt['spec'].get('name')}); pass --force to resume anyway")
            self._check_resume(ckpt)
        run_dir = self._choose_run_dir(ckpt)
        self.run_dir = run_dir if world.main else None
        self.metrics = None  # opened with the folder
        check_backend(config.compile)
        self.data = load_data(config, model.input, device)
        self.shape = (model.input[0], *(config.image_size or model.input[1:]))

        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.net = model.build(self.shape)
        init_weights(self.net, config.init)
        cuda = device.type == "cuda"
        self.amp = config.amp if config.amp is not None else cuda
        self.amp_dtype = torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16
        self.channels_last = (default_channels_last(device, self.net) if config.channels_last is None
                              else config.channels_last)
        self.net.to(device)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if (config.gemm_weight_grads if config.gemm_weight_grads is not None
                else cpu_conv.default_on(device, self.amp, bool(config.compile))):
            cpu_conv.use_gemm_weight_grads(self.net)
        self.outputs_note = check_outputs(self.net, self.data)
        self.steps_per_epoch = self.data.train.num_batches(config.batch_size, world.size)
        self.optimizer = build_optimizer(self.net, config)
        self.scheduler = build_scheduler(self.optimizer, config, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp and self.amp_dtype == torch.float16)
        self.ema = EMA(self.net, config.ema) if config.ema else None
        torch.manual_seed(config.seed + 1 + world.rank)  # dropout differs across ranks

        self.epoch, self.batch, self.step, self.best = 0, 0, 0, -1.0
        self.lr = config.optimizer.settings.lr
        # loss sum, correct, count (over all ranks), seconds of an unfinished epoch
        self.partial = torch.zeros(4)
        if ckpt is not None:
            self._restore(ckpt)
        self.start_epoch = self.epoch

        fwd = self.net
        if config.compile:
            fwd = torch.compile(fwd, backend="inductor" if config.compile is True else config.compile)
        self.eval_net = fwd
        if world.distributed:
            from torch.nn.parallel import DistributedDataParallel
            fwd = DistributedDataParallel(fwd, device_ids=[device.index] if cuda else None)
        self.fwd = fwd

    def _check_resume(self, ckpt: dict) -> None:
        """Refuse a resume that would train nothing, or skip or repeat images of the unfinished epoch."""
        path, config = self.options.resume, self.config
        if ckpt["epoch"] >= config.epochs:
            raise ResumeError(f"{path} has already trained {ckpt['epoch']} epochs; pass --epochs with more to go on")
        if config.max_steps is not None and ckpt["step"] >= config.max_steps:
            raise ResumeError(f"{path} has already trained {ckpt['step']} steps (max_steps {config.max_steps}); "
                              f"pass --max-steps with more, or --max-steps 0 for no limit")
        was = ckpt["config"] if isinstance(ckpt["config"], dict) else {}
        changed = [k for k in ORDER_KEYS if ckpt["batch"] and was.get(k) != getattr(config, k)]
        if changed:
            k = changed[0]
            then, now = (str(v).lower() for v in (was.get(k), getattr(config, k)))  # None: none
            raise ResumeError(f"{path} stopped in the middle of epoch {ckpt['epoch'] + 1}, whose remaining batches "
                              f"depend on {k} ({then} there, {now} now); resume with the same {k}, "
                              f"or from a checkpoint at the end of an epoch")

    def _restore(self, ckpt: dict) -> None:
        path = self.options.resume
        checkpoint.load_weights(self.net, ckpt["model"], str(path))
        if self.ema is not None and ckpt.get("ema") is not None:
            checkpoint.load_weights(self.ema.module, ckpt["ema"], f"{path}'s EMA")
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            checkpoint.set_rng_state(ckpt["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ResumeError(f"{path} does not fit this run ({reason})") from None
        self.epoch, self.batch, self.step = ckpt["epoch"], ckpt["batch"], ckpt["step"]
        self.best = ckpt.get("best_test_acc", -1.0)
        self.partial = ckpt["partial"].clone()

    def _choose_run_dir(self, ckpt) -> Path:
        """Where this run writes, checked now and made at the first write.

        A resumed run goes on in its checkpoint's folder when that is a run
        folder (not, say, a checkpoint copied to the home folder). An existing
        run is never merged into: only resuming it or --overwrite writes there.
        """
        own = Path(self.options.resume).parent if ckpt is not None else None
        if self.options.out:
            path = Path(self.options.out)
        elif own is not None and (own / "config.json").is_file():
            path = own
        else:
            path = new_run_dir(Path(self.options.runs_root), self.source.name)
        check_run_dir(path)
        resuming_here = own is not None and os.path.isdir(path) and os.path.samefile(path, own)
        self.replace = self.options.overwrite and not resuming_here
        if is_run_dir(path) and not (resuming_here or self.options.overwrite):
            raise ConfigError(f"{path} already holds a run; continue it with --resume {path / 'last.pt'}, "
                              f"choose another --out, or pass --overwrite to replace it")
        return path

    def _open_run_dir(self) -> None:
        """Make the run folder and config.json at the first write: a run that fails before leaves nothing."""
        if self.metrics is not None:
            return
        run_dir = self.run_dir
        with writing(run_dir / "config.json"):
            run_dir.mkdir(parents=True, exist_ok=True)
            if self.replace:
                for name in RUN_FILES:
                    (run_dir / name).unlink(missing_ok=True)
            info = {"config": self.config.to_dict(),
                    "spec": {k: v for k, v in self.source.record().items() if k != "text"},
                    "input": list(self.shape), "device": str(self.device), "world_size": self.world.size,
                    "data": self.data.description, "torch": torch.__version__}
            (run_dir / "config.json").write_text(json.dumps(info, indent=2) + "\n")
            metrics = MetricsLog(run_dir)
            if self.options.resume:
                metrics.truncate_after(self.start_epoch, MetricsLog(Path(self.options.resume).parent))
        self.metrics = metrics

    # --- one step, one epoch ---------------------------------------------------

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def _step(self, x, y, stats) -> None:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            logits = self.fwd(x)
            loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.lr = self.optimizer.param_groups[0]["lr"]  # the rate this step used
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update()
        with torch.no_grad():
            n = len(y)
            stats[0] += loss.detach().float() * n
            stats[1] += (logits.argmax(1) == y).sum()
            stats[2] += n

    def _check_finite(self, stats) -> None:
        value = stats[0].item()
        if distributed.any_rank(not math.isfinite(value), self.world, self.device):
            self._diverged(f"the loss became {'nan' if math.isnan(value) else 'infinite or nan'}")

    def _check_weights(self) -> None:
        """Weights the last step made infinite or nan (the loss before that step was fine) are never saved."""
        tensors = [*self.net.state_dict().values(), *(self.ema.state_dict().values() if self.ema else ())]
        if not all(torch.isfinite(t).all() for t in tensors if t.is_floating_point()):
            self._diverged("the weights became infinite or nan")

    def _diverged(self, what: str) -> None:
        ours = self.run_dir and not (self.replace and self.metrics is None)  # not the run --overwrite replaces
        kept = (f"the last good checkpoint is {self.run_dir / 'last.pt'}"
                if ours and (self.run_dir / "last.pt").exists() else "no checkpoint had been written yet")
        raise Diverged(f"{what} at epoch {self.epoch + 1}, step {self.step}; "
                       f"training stopped and {kept}; try a lower learning rate")

    def train(self) -> Result:
        config, world = self.config, self.world
        self.report.info(f"training {self.source.name} on {self.data.description}, input {list(self.shape)}, "
                         f"{self.device}{f' x{world.size}' if world.distributed else ''}"
                         f"{(', bf16' if self.amp_dtype == torch.bfloat16 else ', fp16') if self.amp else ''}"
                         f"{', channels-last' if self.channels_last else ''}"
                         f"{', run folder ' + str(self.run_dir) if self.run_dir else ''}")
        if self.outputs_note:
            self.report.info(self.outputs_note)
        check_every = 1 if self.device.type == "cpu" and not world.distributed else 25
        examples = seconds_total = 0.0  # trained in this invocation, for the last line
        record, at_max = None, False
        with stop_on_signals() as stop:
            while self.epoch < config.epochs and not at_max:
                # the unfinished epoch's numbers are sums over all ranks: rank 0 carries them on
                stats = (self.partial[:3] if world.main else torch.zeros(3)).to(self.device)
                resumed_count, seconds = float(self.partial[2]), float(self.partial[3])
                resumed_seconds = seconds
                self.report.start_epoch(self.epoch + 1, config.epochs, self.steps_per_epoch, self.batch)
                self.fwd.train()
                started = time.perf_counter()
                for x, y in self.data.train.train_batches(config.batch_size, config.seed, self.epoch,
                                                          world.rank, world.size, start=self.batch):
                    if config.augment:
                        x = flip_and_shift(x, batch_generator(config.seed, self.epoch, self.batch, world.rank))
                    self._step(x, y, stats)
                    self.step += 1
                    self.batch += 1
                    if self.step % check_every == 0:
                        self._check_finite(stats)
                    if self.report.wants_update():
                        n = stats[2].item()
                        self.report.update(self.batch, stats[0].item() / n, stats[1].item() / n,
                                           (n - resumed_count) * world.size
                                           / (seconds - resumed_seconds + time.perf_counter() - started))
                    signalled = distributed.any_rank(stop["signum"] is not None, world, self.device)
                    at_max = config.max_steps is not None and self.step >= config.max_steps
                    periodic = config.checkpoint_every and self.step % config.checkpoint_every == 0
                    if at_max:
                        break
                    if signalled or (periodic and self.batch < self.steps_per_epoch):
                        self._check_finite(stats)
                        self._check_weights()
                        elapsed = self._sync_time(started)
                        summed = distributed.sum_all(stats.clone(), world)
                        self.partial = torch.tensor([*summed.tolist(), seconds + elapsed])
                        self._save("last.pt")
                        if signalled:
                            self._interrupted(stop["signum"])
                        started = time.perf_counter() - elapsed  # leave the save out of the timing
                seconds += self._sync_time(started)
                self._check_finite(stats)
                stats = distributed.sum_all(stats, world).cpu()
                self.partial = torch.tensor([*stats.tolist(), seconds])
                examples += float(stats[2]) - resumed_count
                seconds_total += seconds - resumed_seconds
                record = self._end_epoch(stats, seconds, finished=self.batch >= self.steps_per_epoch)
        if at_max:
            self.report.info(f"stopped at max_steps {config.max_steps}")
        rate = examples / seconds_total if seconds_total > 0 else 0.0
        where = f"{world.size} x {self.device}" if world.distributed else str(self.device)
        line = final_line(record["loss"], record["train_acc"], record["test_acc"], rate, where)
        self.report.final(line)
        return Result(self.run_dir, record["loss"], record["train_acc"], record["test_acc"], rate, where,
                      self.epoch, self.step, line, record.get("test_acc_ema"))

    def _interrupted(self, signum) -> None:
        self.report.close()
        signum = signum or signal.SIGTERM
        where = self.run_dir / "last.pt" if self.run_dir else "last.pt"
        raise Interrupted(f"interrupted by {signal.Signals(signum).name} at epoch {self.epoch + 1}, "
                          f"step {self.step}; saved {where}; continue with --resume {where}", signum)

    def _sync_time(self, started: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - started

    def _end_epoch(self, stats, seconds: float, finished: bool) -> dict:
        """Evaluate, log, plot and save; `finished` is False when max_steps cut the epoch short."""
        self._check_weights()
        n = float(stats[2])
        test = evaluate(self.eval_net, self.data.test, self.config.batch_size, self.device, self.autocast,
                        self.world, self.channels_last, len(self.data.classes)).sum(1)
        record = {"epoch": self.epoch + 1, "step": self.step, "loss": float(stats[0]) / n,
                  "train_acc": float(stats[1]) / n, "test_acc": float(test[0] / test[1]),
                  "lr": self.lr, "examples_per_sec": n / max(seconds, 1e-9),
                  "seconds": seconds}
        if self.ema is not None:
            ema = evaluate(self.ema.module, self.data.test, self.config.batch_size, self.device, self.autocast,
                           self.world, self.channels_last, len(self.data.classes)).sum(1)
            record["test_acc_ema"] = float(ema[0] / ema[1])
        if finished:  # else self.partial keeps the unfinished epoch's numbers for last.pt
            self.epoch, self.batch = self.epoch + 1, 0
            self.partial = torch.zeros(4)
        self.report.end_epoch(record, self.config.epochs)
        if self.world.main:
            self._open_run_dir()
            with writing(self.metrics.path):
                self.metrics.append(record)
            better = record["test_acc"] > self.best
            self.best = max(self.best, record["test_acc"])
            self._save("last.pt")
            if better:
                self._save("best.pt")
            with writing(self.run_dir / "curves.png"):
                plot_curves(self.metrics.read(), self.run_dir / "curves.png")
        return record

    def _save(self, name: str) -> None:
        if not self.world.main:
            return
        self._open_run_dir()
        checkpoint.save({
            "model": checkpoint.clean_state_dict(self.net.state_dict()),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": checkpoint.rng_state(),
            "epoch": self.epoch, "batch": self.batch, "step": self.step, "partial": self.partial,
            "data": {"name": self.data.name, "seed": self.config.seed, "classes": list(self.data.classes)},
            "best_test_acc": self.best,
            "config": self.config.to_dict(),
            "spec": self.source.record(),
            "input": list(self.shape),
        }, self.run_dir / name)
