"""`netspec eval CHECKPOINT`: test accuracy and a per-class table."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import checkpoint
from .checkpoint import ResumeError
from .config import apply_overrides
from .data import load_data
from .distributed import World
from .loop import check_outputs, evaluate, pick_device
from .model import ModelSource


@dataclass
class Evaluation:
    data: str
    classes: list[str]
    correct: list[int]
    counts: list[int]
    epoch: int
    weights: str           # "model" or "ema"
    note: str | None = None  # more scores than classes: said before the table

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / max(1, sum(self.counts))

    def line(self) -> str:
        return (f"test acc {self.accuracy:.3f} on {sum(self.counts)} images of {self.data} "
                f"({self.weights} weights after epoch {self.epoch})")


def evaluate_checkpoint(path, overrides: dict | None = None, use_ema: bool = False,
                        model: ModelSource | None = None) -> Evaluation:
    """Rebuild the network from the checkpoint (or `model`), load its weights, test it.

    `overrides` are TrainConfig fields (data, data_dir, download, limit_test,
    batch_size, device) laid over the checkpoint's own config.
    """
    ckpt = checkpoint.load(path)
    config = apply_overrides(checkpoint.config_of(ckpt, path), overrides or {})
    config = config.model_copy(update={"limit_train": 1})  # the train split is not needed
    if model is None:
        checkpoint.spec_text(ckpt, path)
        model = ModelSource.from_record(ckpt["spec"])
    device = pick_device(config.device)
    shape = _input(ckpt, path)
    data = load_data(config, shape, device)
    net = model.build(shape)
    weights = "ema" if use_ema else "model"
    if ckpt.get(weights) is None:
        raise ResumeError(f"{path} holds no {weights} weights (train with --ema to keep an average)")
    checkpoint.load_weights(net, ckpt[weights], f"{path}'s EMA" if use_ema else str(path))
    net.to(device)
    note = check_outputs(net, data)
    amp = config.amp if config.amp is not None else device.type == "cuda"
    dtype = torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16
    counts = evaluate(net, data.test, config.batch_size, device,
                      lambda: torch.autocast(device.type, dtype=dtype, enabled=amp),
                      World(), False, len(data.classes)).cpu()
    return Evaluation(data.description, list(data.classes), counts[0].long().tolist(), counts[1].long().tolist(),
                      int(ckpt["epoch"]), weights, note)


def _input(ckpt: dict, path) -> tuple:
    """The (C, H, W) the network was trained at."""
    shape = ckpt["input"]
    if not (isinstance(shape, (list, tuple)) and shape and all(isinstance(d, int) and d > 0 for d in shape)):
        raise ResumeError(f"{path} holds no valid input shape (got {shape!r})")
    return tuple(shape)


def print_evaluation(result: Evaluation) -> None:
    """A rich table of per-class accuracy, then the one-line summary (after a note, if any)."""
    from rich.console import Console
    from rich.table import Table

    if result.note:
        print(result.note)
    table = Table(title="per-class accuracy")
    for name, justify in (("class", "left"), ("images", "right"), ("correct", "right"), ("accuracy", "right")):
        table.add_column(name, justify=justify)
    for name, correct, count in zip(result.classes, result.correct, result.counts):
        table.add_row(name, str(count), str(correct), f"{correct / count:.3f}" if count else "-")
    console = Console()
    console.print(table)
    print(result.line())
