"""What a run prints: a rich progress bar on a terminal, plain lines otherwise, the last line always."""

from __future__ import annotations

import sys
import time


class Reporter:
    """`mode` is "rich" (a live bar), "plain" (a line per epoch, and one every `plain_every` seconds
    within it, for logs of long epochs), "quiet" (the last line) or "silent"."""

    plain_every = 30.0

    def __init__(self, mode: str | None = None, quiet: bool = False, enabled: bool = True):
        if not enabled:
            mode = "silent"
        elif quiet:
            mode = "quiet"
        elif mode is None:
            mode = "rich" if sys.stdout.isatty() else "plain"
        self.mode = mode
        self._progress = None
        self._last = 0.0
        self._epoch = ""

    def info(self, text: str) -> None:
        if self.mode in ("rich", "plain"):
            print(text, flush=True)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self._epoch, self._steps, self._last = f"epoch {epoch}/{epochs}", steps, time.perf_counter()
        if self.mode != "rich":
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        self._progress = Progress(TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), transient=True)
        self._progress.start()
        self._task = self._progress.add_task("", total=steps, completed=done, stats="")

    def wants_update(self) -> bool:
        """True about 4 times a second for a live bar, every `plain_every` seconds for plain lines."""
        every = {"rich": 0.25, "plain": self.plain_every}.get(self.mode)
        if every is None or time.perf_counter() - self._last < every:
            return False
        self._last = time.perf_counter()
        return True

    def update(self, done: int, loss: float, acc: float, examples_per_sec: float) -> None:
        stats = f"loss {loss:.3f} acc {acc:.3f} {examples_per_sec:,.0f} ex/s"
        if self._progress is not None:
            self._progress.update(self._task, completed=done, stats=stats)
        elif self.mode == "plain":
            print(f"{self._epoch}: step {done}/{self._steps}, {stats}", flush=True)

    def end_epoch(self, record: dict, epochs: int) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self.mode in ("rich", "plain"):
            ema = f", test acc (ema) {record['test_acc_ema']:.3f}" if record.get("test_acc_ema") is not None else ""
            print(f"epoch {record['epoch']}/{epochs}: loss {record['loss']:.3f}, train acc {record['train_acc']:.3f}, "
                  f"test acc {record['test_acc']:.3f}{ema}, lr {record['lr']:.3g}, "
                  f"{record['examples_per_sec']:.1f} examples/sec, {record['seconds']:.1f}s", flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def final(self, line: str) -> None:
        if self.mode != "silent":
            print(line, flush=True)
