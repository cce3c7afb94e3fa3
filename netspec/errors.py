"""Located diagnostics: every problem in a spec points at FILE:LINE:COL."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import NamedTuple


class Pos(NamedTuple):
    """A position in a source file; line and column count from 1 (a tuple: made for every YAML node)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


UNKNOWN = Pos("<unknown>", 1, 1)


@dataclass
class Frame:
    """One step of template expansion that led to an error."""

    template: str
    path: str
    pos: Pos

    def __str__(self) -> str:
        return f"in {self.template} ({self.path}) from {self.pos}"


@dataclass
class Diagnostic:
    pos: Pos
    message: str
    hint: str | None = None
    chain: list[Frame] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"{self.pos}: error: {self.message}"]
        lines += [f"  {frame}" for frame in reversed(self.chain)]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class SpecError(Exception):
    """A problem in a spec that the user must fix; never a bug in netspec."""

    def __init__(self, pos: Pos | None, message: str, hint: str | None = None,
                 chain: list[Frame] | None = None):
        self.diagnostic = Diagnostic(pos or UNKNOWN, message, hint, list(chain or []))
        super().__init__(self.diagnostic.format())

    @property
    def pos(self) -> Pos:
        return self.diagnostic.pos

    @property
    def message(self) -> str:
        return self.diagnostic.message

    def format(self) -> str:
        return self.diagnostic.format()


def did_you_mean(word: str, choices) -> str | None:
    """A hint naming the closest known word, when one is close enough."""
    choices = sorted(str(c) for c in choices)
    same_case = [c for c in choices if c.lower() == str(word).lower()]
    close = same_case or difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def own_message(exc: BaseException) -> str:
    """An error's own message; a DataLoader worker's arrives as "Caught X in DataLoader worker process N."
    and the worker's traceback, whose last line ("module.X: message") holds it."""
    text = str(exc).strip()
    if text.startswith("Caught ") and "DataLoader worker" in text.splitlines()[0]:
        return text.splitlines()[-1].partition(": ")[2]
    return text
