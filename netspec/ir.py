"""The elaborated network: a plain tree of named nodes with every shape known.

Elaboration produces it; build, report, diff and export only read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import Pos

Shape = tuple[int, ...]


@dataclass
class Node:
    """One op, or a group / template instance holding child nodes.

    `inputs` are names of sibling nodes in the same group, or "input" for the
    group's own input. `params` is the op's validated parameter model, or
    for a template instance the dict of its resolved arguments.
    """

    name: str
    path: str
    op: str
    pos: Pos
    inputs: list[str]
    in_shapes: list[Shape]
    shape: Shape
    params: Any = None
    n_params: int = 0
    flops: int = 0
    children: list["Node"] = field(default_factory=list)
    output: str = "input"
    group: bool = False

    def walk(self, depth: int = 0) -> Iterator[tuple["Node", int]]:
        """Every node below this one, depth first, in order (a stack, not nested generators: deep
        networks are walked often)."""
        stack = [(iter(self.children), depth)]
        while stack:
            children, level = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                continue
            yield child, level
            if child.children:
                stack.append((iter(child.children), level + 1))


@dataclass
class Network:
    """An elaborated spec: the root group plus what it was made from."""

    name: str
    input: Shape
    params: dict
    root: Node
    file: str
    text: str
    train: dict | None = None

    @property
    def output(self) -> Shape:
        return self.root.shape

    @property
    def n_params(self) -> int:
        return self.root.n_params

    @property
    def flops(self) -> int:
        return self.root.flops

    def nodes(self) -> Iterator[tuple[Node, int]]:
        return self.root.walk()

    def activation_elements(self) -> int:
        """Elements of every op output per sample (a rough activation-memory figure)."""
        total = 0
        for node, _ in self.nodes():
            if not node.group:
                size = 1
                for dim in node.shape:
                    size *= dim
                total += size
        return total
