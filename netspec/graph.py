"""graph: the network as a diagram (DOT, Mermaid, and SVG/PNG through Graphviz).

The IR becomes one small `Diagram` (boxes, clusters and shape-labelled
edges); DOT and Mermaid are plain-text renderings of it and need nothing
installed. SVG and PNG pass the DOT text through Graphviz's `dot`.

Groups and template instances are drawn as single boxes by default;
`expand` opens them, to a depth or entirely, as nested clusters. Every edge
carries the shape of the tensor flowing along it, batch as N.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import ops
from .ir import Network, Node
from .report import human

FORMATS = (".dot", ".gv", ".mmd", ".svg", ".png")

# fill, border per kind of op; anything else (e.g. a plugin op) is "other"
PALETTE = {
    "input": ("#f1f5f9", "#475569"),
    "conv": ("#dbeafe", "#2563eb"),
    "linear": ("#e0e7ff", "#4f46e5"),
    "norm": ("#fef3c7", "#d97706"),
    "activation": ("#dcfce7", "#16a34a"),
    "pool": ("#fae8ff", "#a21caf"),
    "merge": ("#fee2e2", "#dc2626"),
    "tensor": ("#f3f4f6", "#6b7280"),
    "group": ("#e5e7eb", "#374151"),
    "template": ("#ede9fe", "#6d28d9"),
    "other": ("#ffffff", "#111827"),
}


class GraphvizError(RuntimeError):
    """SVG/PNG asked for, but Graphviz's `dot` is not installed, or failed: the user's setup, not a bug (rc 2)."""


GraphvizMissing = GraphvizError  # its first name, which callers catch


@dataclass
class Box:
    id: str
    lines: list[str]
    kind: str
    path: str = ""


@dataclass
class Cluster:
    id: str
    label: str
    kind: str
    items: list = field(default_factory=list)  # Box or Cluster, in order


@dataclass
class Edge:
    src: str
    dst: str
    label: str


@dataclass
class Diagram:
    title: str
    top: list = field(default_factory=list)  # Box or Cluster
    edges: list[Edge] = field(default_factory=list)

    def boxes(self) -> list[Box]:
        found, stack = [], list(self.top)
        while stack:
            item = stack.pop(0)
            if isinstance(item, Box):
                found.append(item)
            else:
                stack[:0] = item.items
        return found

    def clusters(self) -> list[Cluster]:
        found, stack = [], list(self.top)
        while stack:
            item = stack.pop(0)
            if isinstance(item, Cluster):
                found.append(item)
                stack[:0] = item.items
        return found


def shape_label(shape) -> str:
    return "(N, " + ", ".join(map(str, shape)) + ")" if shape else "(N)"


def kind_of(node: Node) -> str:
    if node.group:
        return "group" if node.op == "group" else "template"
    cls = ops.get(node.op)
    module = getattr(cls, "__module__", "")
    return {
        "netspec.ops.conv": "conv", "netspec.ops.linear": "linear", "netspec.ops.norm": "norm",
        "netspec.ops.activation": "activation", "netspec.ops.pool": "pool",
        "netspec.ops.merge": "merge", "netspec.ops.tensor": "tensor",
    }.get(module, "other")


def param_text(node: Node, width: int = 40) -> str:
    """The settings that differ from the op's defaults: 'out=64, kernel=7, stride=2'."""
    params = node.params
    if node.group:
        if not isinstance(params, dict):
            return ""
        items = [f"{k}={_short(v)}" for k, v in params.items()]
    elif hasattr(params, "model_dump"):
        items = [f"{k}={_short(v)}" for k, v in params.model_dump(exclude_defaults=True).items()]
    else:
        items = []
    text, lines = "", []
    for item in items:  # wrap long parameter lists
        if text and len(text) + len(item) + 2 > width:
            lines.append(text + ",")
            text = item
        else:
            text = f"{text}, {item}" if text else item
    if text:
        lines.append(text)
    return "\n".join(lines)


def _short(value) -> str:
    from .ops.base import plain

    value = plain(value)
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def build_diagram(network: Network, expand: int | None = 0) -> Diagram:
    """Boxes and edges for `network`; groups deeper than `expand` stay closed (None: open all)."""
    diagram = Diagram(f"{network.name}: {network.n_params:,} parameters, {human(network.flops, 'FLOPs')}")
    counter = iter(range(1_000_000))

    def new_id(prefix: str) -> str:
        return f"{prefix}{next(counter)}"

    source = Box(new_id("n"), ["input", shape_label(network.input)], "input", "input")
    diagram.top.append(source)

    def scope(group: Node, input_id: str, level: int, into: list) -> str:
        values = {"input": input_id}
        for child in group.children:
            sources = [values[ref] for ref in child.inputs]
            if child.group and (expand is None or level < expand):
                what = "group" if child.op == "group" else child.op
                label = f"{child.name} · {what}"
                if child.n_params:
                    label += f" · {_count(child.n_params)} params"
                cluster = Cluster(new_id("cluster_"), label, kind_of(child))
                into.append(cluster)
                values[child.name] = scope(child, sources[0], level + 1, cluster.items)
                continue
            lines = [_title(child)]
            detail = param_text(child)
            if detail:
                lines += detail.split("\n")
            if child.group:
                lines.append(f"{_leaves(child)} ops")
            if child.n_params:
                lines.append(f"{_count(child.n_params)} params")
            box = Box(new_id("n"), lines, kind_of(child), child.path)
            into.append(box)
            for src, shape in zip(sources, child.in_shapes):
                diagram.edges.append(Edge(src, box.id, shape_label(shape)))
            values[child.name] = box.id
        return values[group.output]

    last = scope(network.root, source.id, 0, diagram.top)
    sink = Box(new_id("n"), ["output", shape_label(network.output)], "input", "output")
    diagram.top.append(sink)
    diagram.edges.append(Edge(last, sink.id, shape_label(network.output)))
    return diagram


def _title(node: Node) -> str:
    named = not node.name.isdigit()
    if node.group:
        return f"{node.name} · {node.op}" if node.op != "group" else f"{node.name} · group"
    return f"{node.name} · {node.op}" if named else node.op


def _leaves(node: Node) -> int:
    return sum(1 for n, _ in node.walk() if not n.group)


def _count(n: int) -> str:
    return human(n) if n >= 1000 else str(n)


# -- DOT ---------------------------------------------------------------------
def _dot_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(network: Network, expand: int | None = 0, rankdir: str = "TB") -> str:
    return dot_text(build_diagram(network, expand), rankdir)


def dot_text(diagram: Diagram, rankdir: str = "TB") -> str:
    out = [
        "digraph netspec {",
        f"  graph [rankdir={rankdir}, label={_dot_str(diagram.title)}, labelloc=t, fontname=Helvetica,"
        " fontsize=14, nodesep=0.3, ranksep=0.35];",
        "  node [shape=box, style=\"rounded,filled\", fontname=Helvetica, fontsize=11];",
        "  edge [fontname=Helvetica, fontsize=9, color=\"#64748b\", fontcolor=\"#334155\"];",
    ]

    def item(entry, indent: str) -> None:
        if isinstance(entry, Box):
            fill, line = PALETTE[entry.kind]
            shape = ", shape=ellipse" if entry.kind == "merge" else (
                ", shape=oval" if entry.kind == "input" else "")
            bold = ", penwidth=2" if entry.kind in ("group", "template") else ""
            tooltip = f", tooltip={_dot_str(entry.path)}" if entry.path else ""
            out.append(f"{indent}{entry.id} [label={_dot_str(chr(10).join(entry.lines))}, "
                       f"fillcolor=\"{fill}\", color=\"{line}\"{shape}{bold}{tooltip}];")
        else:
            fill, line = PALETTE[entry.kind]
            out.append(f"{indent}subgraph {entry.id} {{")
            out.append(f"{indent}  label={_dot_str(entry.label)}; style=\"rounded,filled\"; "
                       f"fillcolor=\"{fill}55\"; color=\"{line}\"; fontname=Helvetica; fontsize=11;")
            for sub in entry.items:
                item(sub, indent + "  ")
            out.append(f"{indent}}}")

    for entry in diagram.top:
        item(entry, "  ")
    for edge in diagram.edges:
        out.append(f"  {edge.src} -> {edge.dst} [label={_dot_str(' ' + edge.label)}];")
    out.append("}")
    return "\n".join(out) + "\n"


# -- Mermaid -----------------------------------------------------------------
def _mmd_str(text: str) -> str:
    text = text.replace("&", "&amp;").replace('"', "#quot;").replace("<", "&lt;").replace(">", "&gt;")
    return '"' + text.replace("\n", "<br/>") + '"'


def to_mermaid(network: Network, expand: int | None = 0, direction: str = "TD") -> str:
    return mermaid_text(build_diagram(network, expand), direction)


def mermaid_text(diagram: Diagram, direction: str = "TD") -> str:
    out = ["---", f"title: {json.dumps(diagram.title)}", "---", f"flowchart {direction}"]
    classes: dict[str, list[str]] = {}

    def item(entry, indent: str) -> None:
        if isinstance(entry, Box):
            label = _mmd_str("\n".join(entry.lines))
            if entry.kind == "input":
                out.append(f"{indent}{entry.id}([{label}])")
            elif entry.kind == "merge":
                out.append(f"{indent}{entry.id}(({label}))")
            else:
                out.append(f"{indent}{entry.id}[{label}]")
            classes.setdefault(entry.kind, []).append(entry.id)
        else:
            out.append(f"{indent}subgraph {entry.id}[{_mmd_str(entry.label)}]")
            for sub in entry.items:
                item(sub, indent + "  ")
            out.append(f"{indent}end")
            classes.setdefault("cluster_" + entry.kind, []).append(entry.id)

    for entry in diagram.top:
        item(entry, "  ")
    for edge in diagram.edges:
        out.append(f"  {edge.src} -->|{_mmd_str(edge.label)}| {edge.dst}")
    for kind, ids in classes.items():
        base = kind.removeprefix("cluster_")
        fill, line = PALETTE[base]
        out.append(f"  classDef {kind} fill:{fill},stroke:{line}")
        out.append(f"  class {','.join(ids)} {kind}")
    return "\n".join(out) + "\n"


# -- files -------------------------------------------------------------------
def have_dot() -> bool:
    return shutil.which("dot") is not None


def render_dot(dot: str, fmt: str, timeout: float = 120) -> bytes:
    """Run Graphviz `dot -T<fmt>` on DOT text."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing("SVG and PNG need Graphviz's `dot` (Debian: apt-get install graphviz; "
                              "macOS: brew install graphviz); .dot and .mmd need nothing")
    try:
        result = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GraphvizError(f"Graphviz's dot ({exe}) took more than {timeout:g} s to draw the {fmt.upper()}; "
                            "write .dot or .mmd instead") from None
    except OSError as exc:
        raise GraphvizError(f"cannot run Graphviz's dot ({exe}): {exc.strerror or exc}") from None
    if result.returncode != 0:
        said = result.stderr.decode(errors="replace").strip().splitlines()
        raise GraphvizError(f"Graphviz's dot ({exe}) failed to draw the {fmt.upper()} (exit {result.returncode}"
                            + (f": {said[0]}" if said else "") + "); write .dot or .mmd instead")
    return result.stdout


def write(network: Network, path, expand: int | None = 0, direction: str = "TB") -> Diagram:
    """Write the diagram; the format comes from the file's extension."""
    from .files import write_atomic

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the format of '{path}': use one of {', '.join(FORMATS)}")
    diagram = build_diagram(network, expand)
    if suffix == ".mmd":
        data = mermaid_text(diagram, {"TB": "TD"}.get(direction, direction)).encode()
    else:
        dot = dot_text(diagram, direction)
        data = dot.encode() if suffix in (".dot", ".gv") else render_dot(dot, suffix[1:])
    write_atomic(path, data)
    return diagram
