"""build: the IR becomes an nn.Module tree, one torch.fx GraphModule per group.

Forward code is generated (fx emits plain Python), so a compiled network
costs nothing per call over a hand-written one, prints as readable code and
works with torch.compile, torch.export and ONNX export. Module names mirror
the spec: `stage2.0.conv1.weight`.
"""

from __future__ import annotations

from torch import fx, nn

from . import ops
from .ir import Network, Node


def build(network: Network) -> fx.GraphModule:
    return build_group(network.root)


def build_group(group: Node) -> fx.GraphModule:
    graph = fx.Graph()
    values = {"input": graph.placeholder("x")}
    holder = nn.Module()
    for node in group.children:
        args = [values[ref] for ref in node.inputs]
        if node.group:
            holder.add_module(node.name, build_group(node))
            values[node.name] = graph.call_module(node.name, tuple(args))
            continue
        built = ops.get(node.op)().build(node.params, node.in_shapes)
        if isinstance(built, ops.Call):
            call_args = (args,) if built.variadic else tuple(args)
            if not built.variadic and len(args) > 2:
                result = args[0]
                for arg in args[1:]:
                    result = graph.call_function(built.function, (result, arg))
                values[node.name] = result
            else:
                values[node.name] = graph.call_function(built.function, call_args, dict(built.kwargs))
        else:
            holder.add_module(node.name, built)
            values[node.name] = graph.call_module(node.name, tuple(args))
    graph.output(values[group.output])
    module = fx.GraphModule(holder, graph, class_name=_class_name(group))
    return module


def _class_name(group: Node) -> str:
    name = "".join(part.capitalize() for part in group.op.replace("-", "_").split("_"))
    return name if name.isidentifier() else "Group"
