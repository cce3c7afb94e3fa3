"""`netspec eval CHECKPOINT`: test accuracy and a per-class table."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import checkpoint
from .checkpoint import ResumeError
from .config import TrainConfig, apply_overrides
from .data import load_data
from .distributed import World
from .loop import pick_device, evaluate
from .model import ModelSource


@dataclass
class Evaluation:
    data: str
    classes: list[str]
    correct: list[int]
    counts: list[int]
    epoch: int
    weights: str           # "model" or "ema"

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
    config = apply_overrides(TrainConfig.model_validate(ckpt["config"]), overrides or {})
    config = config.model_copy(update={"limit_train": 1})  # the train split is not needed
    source = model or ModelSource.from_record(ckpt["spec"])
    device = pick_device(config.device)
    data = load_data(config, tuple(ckpt["input"]), device)
    net = source.build(tuple(ckpt["input"]))
    weights = "ema" if use_ema else "model"
    if ckpt.get(weights) is None:
        raise ResumeError(f"{path} holds no {weights} weights (train with --ema to keep an average)")
    try:
        net.load_state_dict(checkpoint.clean_state_dict(ckpt[weights]))
    except RuntimeError as e:
        raise ResumeError(f"{path}: weights do not fit the network ({str(e).splitlines()[0]})") from None
    net.to(device)
    amp = config.amp if config.amp is not None else device.type == "cuda"
    dtype = torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16
    counts = evaluate(net, data.test, config.batch_size, device,
                      lambda: torch.autocast(device.type, dtype=dtype, enabled=amp),
                      World(), False, len(data.classes)).cpu()
    return Evaluation(data.description, list(data.classes), counts[0].long().tolist(), counts[1].long().tolist(),
                      int(ckpt["epoch"]), weights)


def print_evaluation(result: Evaluation) -> None:
    """A rich table of per-class accuracy, then the one-line summary."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="per-class accuracy")
    for name, justify in (("class", "left"), ("images", "right"), ("correct", "right"), ("accuracy", "right")):
        table.add_column(name, justify=justify)
    for name, correct, count in zip(result.classes, result.correct, result.counts):
        table.add_row(name, str(count), str(correct), f"{correct / count:.3f}" if count else "-")
    console = Console()
    console.print(table)
    print(result.line())
