"""report: the shape table as rows, a rich table, or JSON; and check lines."""

from __future__ import annotations

from .ir import Network
from .ops import fmt


def rows(network: Network, groups: bool = True) -> list[dict]:
    """One dict per node; `shape` has None for the symbolic batch."""
    return [{"path": node.path, "op": node.op, "shape": [None, *node.shape], "params": node.n_params,
             "flops": node.flops, "depth": depth, "group": node.group}
            for node, depth in network.nodes() if groups or not node.group]


def summary(network: Network) -> dict:
    """The `--json` object of `netspec compile`."""
    return {
        "name": network.name,
        "input": list(network.input),
        "output": [None, *network.output],
        "params": network.n_params,
        "flops": network.flops,
        "activation_bytes": network.activation_elements() * 4,
        "nodes": [{k: row[k] for k in ("path", "op", "shape", "params", "flops")}
                  for row in rows(network)],
    }


def human(count: float, unit: str = "") -> str:
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f} {suffix}{unit}"
    return f"{count:g} {unit}".rstrip()


def table(network: Network, depth: int | None = None):
    """A rich Table of the network: nested groups are indented."""
    from rich.table import Table

    title = f"{network.name}  input (N, {', '.join(map(str, network.input))})"
    out = Table(title=title, title_justify="left", show_footer=True)
    out.add_column("node", footer="total")
    out.add_column("op")
    out.add_column("output shape", footer=fmt(network.output))
    out.add_column("params", justify="right", footer=f"{network.n_params:,}")
    out.add_column("FLOPs", justify="right", footer=human(network.flops))
    for node, level in network.nodes():
        if depth is not None and level > depth:
            continue
        style = "bold" if node.group else None
        out.add_row("  " * level + node.name, node.op, fmt(node.shape),
                    f"{node.n_params:,}" if node.n_params else "", human(node.flops) if node.flops else "",
                    style=style)
    return out


def totals_line(network: Network) -> str:
    return (f"{network.name}: {network.n_params:,} parameters, {human(network.flops, 'FLOPs')} per sample "
            f"(a multiply-add counts as 2 FLOPs), activations {human(network.activation_elements() * 4, 'B')} "
            f"per sample (float32), output {fmt(network.output)}")
