"""metrics.jsonl, curves.png and the book's last line."""

from __future__ import annotations

import json
import math
from pathlib import Path

FIELDS = ("epoch", "step", "loss", "train_acc", "test_acc", "lr", "examples_per_sec", "seconds")


def final_line(loss: float, train_acc: float, test_acc: float, examples_per_sec: float, device) -> str:
    """Exactly the book's form, so runs compare with its reported numbers."""
    return (f"loss {loss:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}, "
            f"{examples_per_sec:.1f} examples/sec on {device}")


class MetricsLog:
    """One JSON object per epoch in RUN/metrics.jsonl."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.jsonl"

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, epoch: int, source: "MetricsLog | None" = None) -> None:
        """Drop records past `epoch`: a resumed run rewrites them. `source`: the log to start from where
        this one is new (a resumed run in another folder keeps its earlier epochs, and its curves)."""
        records = self.read() if self.path.exists() or source is None else source.read()
        keep = [r for r in records if r["epoch"] <= epoch]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in keep))

    def append(self, record: dict) -> None:
        """One line of strict JSON: a non-finite number (which json.dumps writes as Infinity) becomes null."""
        clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean, allow_nan=False) + "\n")


def plot_curves(records: list[dict], path: Path) -> None:
    """Train loss, train acc and test acc against epoch, as in the book's figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [r["epoch"] for r in records]
    for key, style in (("loss", "-"), ("train_acc", "m--"), ("test_acc", "g-."), ("test_acc_ema", "c:")):
        values = [r.get(key) for r in records]
        if any(v is not None for v in values):
            ax.plot(epochs, values, style, label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    try:
        fig.savefig(tmp, dpi=100)
        tmp.replace(path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
