"""`netspec diff A B`: what changed between two elaborated architectures.

Nodes are matched by path (`stage2.0.conv1`), the same name their module gets
in the `state_dict`, so the diff says which weights a checkpoint would lose,
gain or see reshaped. A node is

- added / removed: its path exists on one side only (only the top of an
  added or removed subtree is listed, with how many nodes it holds);
- changed: its op, its parameters (the op's validated model or a template's
  arguments), its inputs (`from`), its output shape or its parameter count
  differ.

The report also has one row per top-level node (a reviewer's first look:
which stage grew, by how much), the totals before and after, and what
happens to existing checkpoints: whether a state_dict of A loads into B,
which weights are reshaped, new, gone or moved to a new key (a layer
renumbered by an insertion), and how many of B's parameters A can supply. Pure
Python: diff never imports torch.
"""

from __future__ import annotations

from typing import Any

from .ir import Network, Node
from .ops import fmt
from .ops.base import plain


def _params(node: Node) -> dict:
    value = node.params
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if isinstance(value, dict):
        return dict(value)
    return {"value": value}


def _index(network: Network) -> dict[str, tuple[Node, int]]:
    return {node.path: (node, depth) for node, depth in network.nodes()}


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _subtree(index: dict, path: str) -> list[Node]:
    prefix = path + "."
    return [node for p, (node, _) in index.items() if p == path or p.startswith(prefix)]


def _delta(before: int, after: int) -> int:
    return after - before


def to_json(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def _pct(before: int, after: int) -> float | None:
    return None if before == 0 else round(100.0 * (after - before) / before, 2)


def diff(a: Network, b: Network) -> dict:
    """The diff as plain data (what `--json` prints, less the display order `_order`)."""
    left, right = _index(a), _index(b)
    added, removed, changed = [], [], []

    for path, (node, depth) in right.items():
        if path in left or _parent(path) in right and _parent(path) not in left and _parent(path):
            continue
        sub = _subtree(right, path)
        added.append({"path": path, "op": node.op, "depth": depth, "shape": [None, *node.shape],
                      "params": node.n_params, "flops": node.flops, "nodes": len(sub),
                      "ops": sum(not n.group for n in sub)})
    for path, (node, depth) in left.items():
        if path in right or _parent(path) in left and _parent(path) not in right and _parent(path):
            continue
        sub = _subtree(left, path)
        removed.append({"path": path, "op": node.op, "depth": depth, "shape": [None, *node.shape],
                        "params": node.n_params, "flops": node.flops, "nodes": len(sub),
                      "ops": sum(not n.group for n in sub)})

    for path, (old, depth) in left.items():
        if path not in right:
            continue
        new = right[path][0]
        what = []
        entry: dict[str, Any] = {"path": path, "op": new.op, "depth": depth, "group": new.group}
        if old.op != new.op:
            what.append("op")
            entry["op_before"] = old.op
        p_old, p_new = _params(old), _params(new)
        if p_old != p_new:
            what.append("params")
            keys = list(dict.fromkeys([*p_old, *p_new]))
            entry["param_changes"] = {k: [plain(p_old.get(k)), plain(p_new.get(k))]
                                      for k in keys if p_old.get(k) != p_new.get(k)}
        if old.inputs != new.inputs:
            what.append("inputs")
            entry["inputs"] = [old.inputs, new.inputs]
        if old.in_shapes != new.in_shapes:
            entry["in_shapes"] = [[[None, *x] for x in old.in_shapes], [[None, *x] for x in new.in_shapes]]
        if old.shape != new.shape:
            what.append("shape")
        if old.n_params != new.n_params:
            what.append("n_params")
        if not what:
            continue
        entry.update({
            "changes": what,
            "shape": [[None, *old.shape], [None, *new.shape]],
            "params": [old.n_params, new.n_params], "params_delta": _delta(old.n_params, new.n_params),
            "flops": [old.flops, new.flops], "flops_delta": _delta(old.flops, new.flops),
        })
        changed.append(entry)

    groups = []
    tops = list(dict.fromkeys([n.path for n in a.root.children] + [n.path for n in b.root.children]))
    for path in tops:
        old = left.get(path, (None, 0))[0]
        new = right.get(path, (None, 0))[0]
        status = "added" if old is None else "removed" if new is None else (
            "changed" if any(c["path"] == path or c["path"].startswith(path + ".") for c in changed)
            else "same")
        p0, p1 = (old.n_params if old else 0), (new.n_params if new else 0)
        f0, f1 = (old.flops if old else 0), (new.flops if new else 0)
        groups.append({
            "path": path, "op": (new or old).op, "status": status,
            "shape": [[None, *old.shape] if old else None, [None, *new.shape] if new else None],
            "params": [p0, p1], "params_delta": p1 - p0, "flops": [f0, f1], "flops_delta": f1 - f0,
        })

    order = [node.path for node, _ in a.nodes()]
    previous = None
    for node, _ in b.nodes():
        if node.path not in left:
            order.insert(order.index(previous) + 1 if previous in order else len(order), node.path)
        previous = node.path

    return {
        "_order": order,
        "checkpoint": checkpoint(a, b),
        "before": {"name": a.name, "file": a.file, "input": list(a.input), "params_values": a.params},
        "after": {"name": b.name, "file": b.file, "input": list(b.input), "params_values": b.params},
        "totals": {
            "params": [a.n_params, b.n_params], "params_delta": b.n_params - a.n_params,
            "params_pct": _pct(a.n_params, b.n_params),
            "flops": [a.flops, b.flops], "flops_delta": b.flops - a.flops, "flops_pct": _pct(a.flops, b.flops),
            "output": [[None, *a.output], [None, *b.output]],
            "nodes": [len(left), len(right)],
        },
        "identical": not (added or removed or changed) and a.output == b.output,
        "added": added, "removed": removed, "changed": changed, "groups": groups,
    }


def _weighted(network: Network) -> dict[str, Node]:
    """Leaf nodes that put tensors in the state_dict (parameters, or batch norm's running statistics)."""
    return {node.path: node for node, _ in network.nodes()
            if not node.group and (node.n_params or node.op == "batchnorm")}


def _fits(old: Node, new: Node) -> bool:
    """Same op, parameter count and channel widths: the tensors have the same shapes.

    (A new height or width changes no conv or batch norm tensor; a linear's
    tensors depend on its last dimension, its features.)
    """
    def widths(node: Node) -> tuple:
        dims = (node.in_shapes[0][0], node.shape[0]) if node.in_shapes and node.shape else ()
        if node.op == "linear" or len(node.shape) == 1:
            dims += (node.in_shapes[0][-1], node.shape[-1])
        return dims

    return old.op == new.op and old.n_params == new.n_params and widths(old) == widths(new)


def checkpoint(a: Network, b: Network) -> dict:
    """Would a state_dict saved from A load into B (`strict=True`), and how much of it carries over?

    Per node with weights (its path is its state_dict prefix): kept (same
    tensors), settings changed (same tensors, but e.g. a new stride, so the
    learned values meant something else), reshaped, added, removed, or moved
    (the same layer under a new path, e.g. renumbered by an insertion).
    """
    left, right = _weighted(a), _weighted(b)
    kept, retuned, reshaped = [], [], []
    for path, old in left.items():
        new = right.get(path)
        if new is None:
            continue
        if not _fits(old, new):
            reshaped.append(path)
        elif _params(old) != _params(new):
            retuned.append(path)
        else:
            kept.append(path)
    removed = [p for p in left if p not in right]
    added = [p for p in right if p not in left]
    moved = []
    for path in list(removed):
        old = left[path]
        match = next((q for q in added if _fits(old, right[q]) and _params(old) == _params(right[q])), None)
        if match is not None:
            moved.append([path, match])
            removed.remove(path)
            added.remove(match)
    carried = sum(right[p].n_params for p in kept + retuned) + sum(right[q].n_params for _, q in moved)
    return {
        "loads": not (reshaped or added or removed or moved),
        "kept": kept, "settings_changed": retuned, "reshaped": reshaped,
        "added": added, "removed": removed, "moved": moved,
        "params_carried": carried, "params_after": b.n_params,
    }


def _listing(paths: list[str], limit: int = 6) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" (+{len(paths) - limit} more)" if len(paths) > limit else "")


def checkpoint_lines(c: dict) -> list[str]:
    """What a reviewer needs to know about existing checkpoints, in a few lines."""
    if c["loads"]:
        head = "checkpoints: a state_dict of A loads into B (strict)"
    else:
        counts = [f"{len(c[k])} {label}" for k, label in (("reshaped", "reshaped"), ("added", "new"),
                                                           ("removed", "gone"), ("moved", "moved"))
                  if c[k]]
        head = "checkpoints: a state_dict of A does not load into B (strict): " + ", ".join(counts)
    pct = f" ({100 * c['params_carried'] / c['params_after']:.1f}%)" if c["params_after"] else ""
    lines = [f"{head}; {c['params_carried']:,} of B's {c['params_after']:,} parameters can come from A{pct}"]
    if c["reshaped"]:
        lines.append(f"  reshaped: {_listing(c['reshaped'])}")
    if c["added"]:
        lines.append(f"  new: {_listing(c['added'])}")
    if c["removed"]:
        lines.append(f"  gone: {_listing(c['removed'])}")
    if c["moved"]:
        lines.append("  moved (same layer, new state_dict key): "
                     + _listing([f"{old} → {new}" for old, new in c["moved"]], 4))
    if c["settings_changed"]:
        lines.append("  same shapes, other settings (the weights load but were learned for the old ones): "
                     + _listing(c["settings_changed"]))
    return lines


def _signed(value: int, human=None) -> str:
    if value == 0:
        return "0"
    text = human(abs(value)) if human else f"{abs(value):,}"
    return ("+" if value > 0 else "-") + text


def _shape(value) -> str:
    return "-" if value is None else fmt(tuple(value[1:]))


def _arrow(before: str, after: str) -> str:
    return before if before == after else f"{before} → {after}"


def _what(entry: dict) -> str:
    parts = []
    if "op_before" in entry:
        parts.append(f"op {entry['op_before']} → {entry['op']}")
    for key, (old, new) in entry.get("param_changes", {}).items():
        parts.append(f"{key} {old} → {new}")
    if "inputs" in entry:
        parts.append(f"from {','.join(entry['inputs'][0])} → {','.join(entry['inputs'][1])}")
    if not parts and "n_params" in entry["changes"] and "in_shapes" in entry:
        old, new = entry["in_shapes"]
        parts.append("input " + _arrow(", ".join(map(_shape, old)), ", ".join(map(_shape, new))))
    return "; ".join(parts)


def _ops(entry: dict) -> str:
    return "" if entry["nodes"] == 1 else f" ({entry['ops']} op{'s' * (entry['ops'] != 1)})"


def _through_children(entry: dict) -> bool:
    """A group or template instance that changed only because its contents did."""
    return entry["group"] and set(entry["changes"]) <= {"shape", "n_params"}


def _reshaped_only(entry: dict) -> bool:
    """A weightless node that changed only because its input did (a relu after a wider conv)."""
    return entry["changes"] == ["shape"] and entry["params"] == [0, 0] and not entry["group"]


def render(result: dict, depth: int | None = None, everything: bool = False):
    """Rich renderables: the per-group summary, the node changes, the totals line.

    Weightless nodes that only pass a new shape along are counted, not listed,
    unless `everything`; so are groups that changed only through their children.
    """
    from rich.table import Table

    from .report import human

    out = []
    before, after = result["before"], result["after"]
    groups = Table(title=f"{before['file']} → {after['file']}", title_justify="left")
    for column, justify in (("node", "left"), ("status", "left"), ("output shape", "left"),
                            ("params", "right"), ("Δ params", "right"), ("Δ FLOPs", "right")):
        groups.add_column(column, justify=justify)
    style = {"added": "green", "removed": "red", "changed": "yellow", "same": "dim"}
    for g in result["groups"]:
        groups.add_row(g["path"], g["status"], _arrow(_shape(g["shape"][0]), _shape(g["shape"][1])),
                       _arrow(f"{g['params'][0]:,}", f"{g['params'][1]:,}"),
                       _signed(g["params_delta"]), _signed(g["flops_delta"], human), style=style[g["status"]])
    t = result["totals"]
    groups.add_section()
    groups.add_row("total", "", _arrow(_shape(t["output"][0]), _shape(t["output"][1])),
                   _arrow(f"{t['params'][0]:,}", f"{t['params'][1]:,}"),
                   _signed(t["params_delta"]), _signed(t["flops_delta"], human), style="bold")
    out.append(groups)

    rows = []
    hidden = 0
    for e in result["removed"]:
        rows.append((e["path"], "-", e["op"], "removed" + _ops(e),
                     _shape(e["shape"]), _signed(-e["params"]), e["depth"]))
    for e in result["added"]:
        rows.append((e["path"], "+", e["op"], "added" + _ops(e),
                     _shape(e["shape"]), _signed(e["params"]), e["depth"]))
    for e in result["changed"]:
        if _through_children(e):
            continue  # a group that changed only through its children: the summary covers it
        if _reshaped_only(e) and not everything:
            hidden += 1
            continue
        rows.append((e["path"], "~", e["op"], _what(e) or ", ".join(e["changes"]),
                     _arrow(_shape(e["shape"][0]), _shape(e["shape"][1])), _signed(e["params_delta"]),
                     e["depth"]))
    if rows:
        nodes = Table(title="nodes", title_justify="left")
        for column, justify in (("", "left"), ("node", "left"), ("op", "left"), ("change", "left"),
                                ("output shape", "left"), ("Δ params", "right")):
            nodes.add_column(column, justify=justify)
        order = {p: i for i, p in enumerate(result.get("_order", []))}
        rows.sort(key=lambda r: order.get(r[0], 0))
        colour = {"+": "green", "-": "red", "~": "yellow"}
        for path, mark, op, what, shape, delta, level in rows:
            if depth is not None and level > depth:
                continue
            nodes.add_row(mark, path, op, what, shape, delta, style=colour[mark])
        out.append(nodes)
    if hidden:
        out.append(f"({hidden} weightless node{'s' * (hidden != 1)} only passed a new shape along; "
                   "--all lists them)")
    if not result["identical"] and "checkpoint" in result:
        out.extend(checkpoint_lines(result["checkpoint"]))
    out.append(summary_line(result))
    return out


def summary_line(result: dict) -> str:
    from .report import human

    t = result["totals"]
    if result["identical"]:
        return "no architectural change"
    pct = lambda p: "" if p is None else f" ({p:+.2f}%)"  # noqa: E731
    changed = sum(not _through_children(e) for e in result["changed"])
    return (f"{len(result['added'])} added, {len(result['removed'])} removed, {changed} changed; "
            f"parameters {t['params'][0]:,} → {t['params'][1]:,} ({_signed(t['params_delta'])}){pct(t['params_pct'])}; "
            f"FLOPs {human(t['flops'][0])} → {human(t['flops'][1])}{pct(t['flops_pct'])}; "
            f"output {_shape(t['output'][0])} → {_shape(t['output'][1])}")
