"""emit: a network as one standalone, readable PyTorch file (`netspec compile --emit python`).

The file imports only torch (and `collections.OrderedDict` where a
Sequential has named children) and defines ordinary `nn.Module` classes;
the top-level class is `Model`. Its `state_dict` keys are exactly those of
`netspec.compile`, so a checkpoint loads into either (`strict=True`).

It is written the way a person would write it:

- a group that is a plain chain of modules is an `nn.Sequential`, written
  inline (`nn.Sequential(nn.Conv2d(1, 64, 7, stride=2, padding=3), ...)`);
- any other group or template instance is a class whose `forward` names its
  values after the spec's ids; parameterless ops there are functional calls
  (`F.relu(bn1)`), which changes no `state_dict` key;
- instances that differ only in numbers share one class, and the numbers
  that differ become its constructor arguments, named after the template
  parameter they equal (`Residual(out=128)`, `Inception(in_channels=192,
  c1=64, c2=[96, 128], ...)`), else `in_channels`, else `p1`, `p2`, ...;
  variants with a different structure get their own class, named after the
  flag that made the difference where there is one (`ResidualProject`);
- arguments equal to PyTorch's defaults are left out.

Modules are built on the meta device to read their settings back, so
emitting VGG allocates no weights. A module that is not a `torch.nn` class
(e.g. one a plugin defines) cannot be written into a torch-only file: that is
an `EmitError`, never a wrong file.
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import re
from collections import defaultdict
from dataclasses import dataclass, field

from . import __version__, ops
from .ir import Network, Node

WIDTH = 100
TUPLE_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_size"}
# names a generated variable must not take (Python's builtins included: no `sum = a + b`)
RESERVED = {"self", "x", "F", "nn", "torch", "OrderedDict"} | set(dir(builtins))


class EmitError(Exception):
    """The network holds something a standalone torch-only file cannot express."""


# -- expressions ---------------------------------------------------------------
@dataclass(eq=False)
class Lit:
    """A number in the generated code; a class turns the varying ones into arguments."""

    value: int | float


@dataclass
class Raw:
    text: str


@dataclass
class Call:
    func: str
    args: list = field(default_factory=list)
    kwargs: list = field(default_factory=list)  # [(name, expr)]
    comment: str | None = None


@dataclass
class Tup:
    items: list
    brackets: str = "()"


@dataclass
class BinOp:
    op: str
    args: list


@dataclass
class Instance:
    """A class-emitted group: rendered as `ClassName(args)` once classes are resolved."""

    draft: "Draft"


def value_expr(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return Raw(repr(value))
    if isinstance(value, (int, float)):
        return Lit(value)
    if isinstance(value, (tuple, list)):
        return Tup([value_expr(v) for v in value], "()" if isinstance(value, tuple) else "[]")
    raise EmitError(f"cannot write the value {value!r} as Python")


# -- modules --------------------------------------------------------------------
def _collapse(name: str, value):
    if name in TUPLE_ARGS and isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return value[0]
    return value


def module_args(module) -> tuple[list, list]:
    """Positional and keyword arguments that rebuild a torch.nn module (defaults left out)."""
    cls = type(module)
    sig = inspect.signature(cls.__init__)
    args, kwargs = [], []
    for name, param in list(sig.parameters.items())[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in ("device", "dtype"):
            continue
        if name == "bias" and not isinstance(getattr(module, "bias", None), bool):
            value = getattr(module, "bias", None) is not None
        elif hasattr(module, name):
            value = _collapse(name, getattr(module, name))
        elif param.default is not param.empty:
            continue
        else:
            raise EmitError(f"cannot read argument '{name}' of {cls.__name__} back from the module")
        if param.default is param.empty:
            args.append(value_expr(value))
        elif not _same(value, param.default):
            kwargs.append((name, value_expr(value)))
    return args, kwargs


def _same(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return value is default or (type(value) is type(default) and value == default)
    try:
        return value == default
    except Exception:
        return False


def module_expr(module) -> Call:
    from torch import nn

    cls = type(module)
    if cls is nn.Sequential:
        return Call("nn.Sequential", [module_expr(m) for m in module])
    if not cls.__module__.startswith("torch.nn.modules") or getattr(nn, cls.__name__, None) is not cls:
        raise EmitError(f"{cls.__module__}.{cls.__qualname__} is not a torch.nn module, so a torch-only "
                        "file cannot rebuild it")
    args, kwargs = module_args(module)
    return Call(f"nn.{cls.__name__}", args, kwargs)


ACTIVATIONS = {"ReLU": "F.relu", "ReLU6": "F.relu6", "Sigmoid": "torch.sigmoid", "Tanh": "torch.tanh",
               "SiLU": "F.silu", "GELU": "F.gelu", "LeakyReLU": "F.leaky_relu", "Softmax": "torch.softmax",
               "Flatten": "torch.flatten", "Dropout": "F.dropout"}
POOLS = re.compile(r"^(Adaptive)?(Max|Avg)Pool([123])d$")


def functional(module, arg) -> object | None:
    """`F.relu(x)` for a parameterless module, or None to keep it as a submodule."""
    name = type(module).__name__
    if name == "Identity":
        return arg
    match = POOLS.match(name)
    if match:
        adaptive, kind, n = match.groups()
        func = f"F.{'adaptive_' if adaptive else ''}{kind.lower()}_pool{n}d"
        args, kwargs = module_args(module)
        if any(k == "return_indices" for k, _ in kwargs):
            return None
        return Call(func, [arg, *args], kwargs)
    if name not in ACTIVATIONS:
        return None
    args, kwargs = module_args(module)
    kwargs = [(k, v) for k, v in kwargs if k != "inplace"]
    if name == "Dropout":
        p = next((v for k, v in kwargs if k == "p"), Lit(0.5))
        return Call("F.dropout", [arg, p], [("training", Raw("self.training"))])
    if name == "Flatten":
        start = next((v for k, v in kwargs if k == "start_dim"), Lit(1))
        end = [v for k, v in kwargs if k == "end_dim"]
        return Call("torch.flatten", [arg, start, *end])
    if name == "LeakyReLU":
        return Call("F.leaky_relu", [arg, *[v for _, v in kwargs]])
    return Call(ACTIVATIONS[name], [arg, *args], kwargs)



# -- drafts: one per group or template instance written as a class --------------
@dataclass(eq=False)
class Draft:
    node: Node
    base: str
    init: list  # [(attribute, expr)]
    forward: list  # [(variable, expr)]
    result: str
    key: str = ""
    group: "ClassGroup | None" = None
    call_args: list = field(default_factory=list)  # [(param, expr)], set when its class is resolved


@dataclass(eq=False)
class ClassGroup:
    key: str
    base: str
    drafts: list
    name: str = ""
    params: list = field(default_factory=list)
    names: dict = field(default_factory=dict)  # id(Lit) -> the text that replaces it


def camel(name: str) -> str:
    text = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part)
    return text if text and text[0].isalpha() else "Block" + text


def _ident(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


class Emitter:
    def __init__(self, network: Network):
        self.network = network
        self.groups: dict[str, ClassGroup] = {}
        self.order: list[ClassGroup] = []

    # pass 1: expressions, and a draft per class-shaped node (children first)
    def built(self, node: Node):
        import torch

        with torch.device("meta"):
            return ops.get(node.op)().build(node.params, node.in_shapes)

    def expr(self, node: Node):
        """The expression that constructs this node's module."""
        if not node.group:
            module = self.built(node)
            if isinstance(module, ops.Call):
                raise EmitError(f"{node.path} ({node.op}) is a function call, not a module")
            return module_expr(module)
        if is_chain(node):
            comment = None
            if node.op != "group":
                comment = f"{node.op}: " + ", ".join(f"{k}={v!r}" for k, v in (node.params or {}).items())
            return sequential([(child.name, self.expr(child)) for child in node.children], comment)
        return Instance(self.draft(node))

    def draft(self, node: Node, register: bool = True) -> Draft:
        init, forward = [], []
        uses = defaultdict(int)
        for child in node.children:
            for ref in child.inputs:
                uses[ref] += 1
        uses[node.output] += 1
        ids = {child.name for child in node.children}
        var = {"input": "x"}
        holder = "input"  # whose value the variable x holds
        for child in node.children:
            for ref in child.inputs:
                uses[ref] -= 1
            args = [Raw(var[ref]) for ref in child.inputs]
            if child.group:
                init.append((child.name, self.expr(child)))
                value = Call(attr_ref(child.name), args)
            else:
                module = self.built(child)
                if isinstance(module, ops.Call):
                    value = call_expr(module, args, child)
                else:
                    stateless = not any(True for _ in module.state_dict())
                    value = functional(module, args[0]) if stateless and len(args) == 1 else None
                    if value is None:
                        init.append((child.name, module_expr(module)))
                        value = Call(attr_ref(child.name), args)
            if _ident(child.name) and child.name not in RESERVED:
                name = child.name
            elif not child.name.isdigit():
                name = child.name + "_"
            elif uses[holder] == 0:
                name, holder = "x", child.name
            else:
                name = f"x{child.name}" if f"x{child.name}" not in ids else f"x_{child.name}"
            var[child.name] = name
            forward.append((name, value))
        base = camel(node.op if node.op != "group" else node.name)
        draft = Draft(node, base, init, forward, var[node.output])
        draft.key = base + "|" + skeleton(draft)
        if not register:
            draft.group = ClassGroup(draft.key, base, [draft])
            return draft
        group = self.groups.get(draft.key)
        if group is None:
            group = self.groups[draft.key] = ClassGroup(draft.key, base, [])
            self.order.append(group)
        group.drafts.append(draft)
        draft.group = group
        return draft

    # pass 2: which numbers become arguments, and the class names
    def resolve(self) -> None:
        for group in self.order:  # a class's children were registered before it
            resolve_group(group)
        taken = {"Model"}
        by_base = defaultdict(list)
        for group in self.order:
            by_base[group.base].append(group)
        for base, variants in by_base.items():
            for group, name in zip(variants, variant_names(base, variants)):
                candidate, n = name, 2
                while candidate in taken:
                    candidate, n = f"{name}{n}", n + 1
                group.name = candidate
                taken.add(candidate)

    # pass 3: text
    def source(self) -> str:
        network, root = self.network, self.network.root
        if is_chain(root):
            root_expr, root_draft = sequential([(c.name, self.expr(c)) for c in root.children]), None
        else:
            root_expr, root_draft = None, self.draft(root, register=False)
        self.resolve()
        classes = [class_source(group) for group in self.order]
        doc = f"{network.name}: {network.n_params:,} parameters."
        if root_draft is not None:
            resolve_group(root_draft.group)
            root_draft.group.name = "Model"
            classes.append(class_source(root_draft.group, doc))
        else:
            classes.append(sequential_class(root_expr, doc))
        body = "\n\n\n".join(classes)
        imports = []
        if "OrderedDict(" in body:
            imports += ["from collections import OrderedDict", ""]
        imports.append("import torch")
        if "F." in body:
            imports.append("import torch.nn.functional as F")
        imports.append("from torch import nn")
        shape = ", ".join(map(str, network.input)) + ("," if len(network.input) == 1 else "")
        out = ", ".join(map(str, network.output))
        head = [
            f'"""{network.name}: generated by netspec {__version__} from {_docstring_text(network.file)}.',
            "",
            f"Input (N, {shape.rstrip(',')}), output (N, {out}), {network.n_params:,} parameters.",
            "Standalone: needs only PyTorch. The state_dict keys are those of the module",
            "netspec compiles, so a checkpoint loads into either with load_state_dict.",
            '"""',
            "",
        ]
        tail = [
            f"INPUT_SHAPE = ({shape})  # C, H, W; the batch comes first",
            "",
            "",
            'if __name__ == "__main__":',
            "    model = Model().eval()",
            "    print(model(torch.randn(2, *INPUT_SHAPE)).shape)  # torch.Size([2, "
            f"{out}])",
        ]
        return "\n".join(head + imports + ["", ""] + [body, "", ""] + tail) + "\n"


def _docstring_text(text: str) -> str:
    """`text` for a triple-quoted string: a path may hold a backslash, quotes or unprintable characters."""
    return repr(text)[1:-1].replace('"', '\\"')


def resolve_group(group: ClassGroup) -> None:
    """Numbers that differ between instances become constructor arguments."""
    columns = [lits(draft) for draft in group.drafts]
    if len({len(c) for c in columns}) != 1:
        raise EmitError(f"internal: instances of {group.base} differ in structure")
    named: dict[tuple, str] = {}
    for j in range(len(columns[0])):
        values = tuple(column[j].value for column in columns)
        if len(set(values)) == 1:
            continue
        if values not in named:
            named[values] = hole_name(group, values, set(named.values()))
        for column in columns:
            group.names[id(column[j])] = named[values]
    params: list[str] = []
    for text in named.values():
        param = text.split("[")[0]
        if param not in params:
            params.append(param)
    group.params = params
    for index, draft in enumerate(group.drafts):
        args = draft.node.params if isinstance(draft.node.params, dict) else {}
        draft.call_args = []
        for param in params:
            if param in args and any(t == param or t.startswith(param + "[") for t in named.values()) \
                    and not (param in ("in_channels", "in_features") and param not in args):
                value = args[param]
            else:
                value = next(v[index] for v, t in named.items() if t == param)
            draft.call_args.append((param, value_expr(value)))


def hole_name(group: ClassGroup, values: tuple, used: set) -> str:
    args = [d.node.params if isinstance(d.node.params, dict) else {} for d in group.drafts]
    for name in args[0]:
        if not _ident(name) or name in RESERVED:
            continue
        column = [a.get(name) for a in args]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
            if tuple(column) == values:
                return name
        elif all(isinstance(v, list) for v in column):
            for t in range(min(len(v) for v in column)):
                if tuple(v[t] for v in column) == values:
                    return f"{name}[{t}]"
    for candidate, index in (("in_channels", 0), ("in_features", -1)):
        if candidate not in used and candidate not in args[0] and \
                tuple(d.node.in_shapes[0][index] for d in group.drafts) == values:
            return candidate
    n = 1
    while f"p{n}" in used or f"p{n}" in args[0]:
        n += 1
    return f"p{n}"


def variant_names(base: str, variants: list[ClassGroup]) -> list[str]:
    """`Residual` and `ResidualProject`: variants named after the flag that differs."""
    if len(variants) == 1:
        return [base]
    flags = []
    for group in variants:
        consts = {}
        for name in group.drafts[0].node.params or {}:
            column = {d.node.params.get(name) for d in group.drafts if isinstance(d.node.params, dict)}
            value = next(iter(column))
            if len(column) == 1 and isinstance(value, bool):
                consts[name] = value
        flags.append(consts)
    common = set.intersection(*(set(f) for f in flags))
    deciding = [n for n in sorted(common) if len({f[n] for f in flags}) > 1]
    names = [base + "".join(camel(n) for n in deciding if f[n]) for f in flags]
    if len(set(names)) == len(names):
        return names
    return [base if i == 0 else f"{base}{i + 1}" for i in range(len(variants))]


def class_source(group: ClassGroup, doc: str | None = None) -> str:
    draft, names = group.drafts[0], group.names
    if doc is None:
        shown = 3 if sum(len(d.node.path) for d in group.drafts[:3]) < 40 else 1
        where = ", ".join(d.node.path for d in group.drafts[:shown])
        more = f" and {len(group.drafts) - shown} more" if len(group.drafts) > shown else ""
        if draft.node.op == "group":
            doc = f"Group {draft.node.path}." if len(group.drafts) == 1 else f"Group at {where}{more}."
        else:
            doc = f"Template {draft.node.op}, used at {where}{more}."
    lines = [f"class {group.name}(nn.Module):", f'    """{doc}"""', "",
             f"    def __init__({', '.join(['self', *group.params])}):", "        super().__init__()"]
    for name, expr in draft.init:
        detail = len(group.drafts) == 1
        if _ident(name) and name != "training":
            lines.append(f"        self.{name} = {render(expr, names, 11 + len(name), detail)}")
        else:
            lines.append(f"        self.add_module({name!r}, {render(expr, names, 8, detail)})")
    lines += ["", "    def forward(self, x):"]
    for var, expr in draft.forward:
        if isinstance(expr, Raw) and expr.text == var:
            continue
        lines.append(f"        {var} = {render(expr, names, 8 + len(var) + 3)}")
    lines.append(f"        return {draft.result}")
    return "\n".join(lines)


def sequential_class(expr: Call, doc: str) -> str:
    lines = ["class Model(nn.Sequential):", f'    """{doc}"""', "", "    def __init__(self):"]
    args = expr.args
    if len(args) == 1 and isinstance(args[0], Call) and args[0].func == "OrderedDict":
        lines.append(f"        super().__init__({render(args[0], {}, 8)})")
    else:
        lines.append("        super().__init__(")
        lines += [" " * 12 + render(arg, {}, 12) + "," for arg in args]
        lines.append("        )")
    return "\n".join(lines)


def sequential(items: list, comment: str | None = None) -> Call:
    if [name for name, _ in items] == [str(i) for i in range(len(items))]:
        return Call("nn.Sequential", [expr for _, expr in items], comment=comment)
    pairs = [Tup([Raw(repr(name)), expr]) for name, expr in items]
    return Call("nn.Sequential", [Call("OrderedDict", [Tup(pairs, "[]")])], comment=comment)


def attr_ref(name: str) -> str:
    return f"self.{name}" if _ident(name) and name != "training" else f"getattr(self, {name!r})"


def call_expr(built, args: list, node: Node):
    """add, mul, concat (and torch functions a plugin's Call names) as expressions."""
    import operator

    import torch

    function = built.function
    if function in (operator.add, operator.mul):
        return BinOp("+" if function is operator.add else "*", args)
    kwargs = [(k, value_expr(v)) for k, v in built.kwargs.items()]
    name = getattr(function, "__name__", "")
    if getattr(torch, name, None) is function:
        return Call(f"torch.{name}", [Tup(args, "[]")] if built.variadic else args, kwargs)
    raise EmitError(f"{node.path} ({node.op}) calls {getattr(function, '__module__', '?')}.{name}, "
                    "which a torch-only file cannot express")


def is_chain(node: Node) -> bool:
    """Each child takes the previous one's output, and every child is a module."""
    prev = "input"
    for child in node.children:
        if child.inputs != [prev]:
            return False
        cls = ops.get(child.op)
        if not child.group and cls is not None and cls.inputs[1] != 1:  # add, mul, concat: calls
            return False
        prev = child.name
    return node.output == prev


def lits(draft: Draft) -> list[Lit]:
    """A draft's numbers in order, the arguments of nested class instances included."""
    found: list[Lit] = []

    def walk(expr) -> None:
        if isinstance(expr, Lit):
            found.append(expr)
        elif isinstance(expr, Call):
            for arg in expr.args:
                walk(arg)
            for _, value in expr.kwargs:
                walk(value)
        elif isinstance(expr, Tup):
            for item in expr.items:
                walk(item)
        elif isinstance(expr, BinOp):
            for item in expr.args:
                walk(item)
        elif isinstance(expr, Instance):
            for _, value in expr.draft.call_args:
                walk(value)

    for _, expr in draft.init + draft.forward:
        walk(expr)
    return found


def skeleton(draft: Draft) -> str:
    """The draft's code with every number as '#': instances with the same skeleton share a class."""
    parts = [f"{name}={flat(expr, None)}" for name, expr in draft.init]
    parts += [f"{var}={flat(expr, None)}" for var, expr in draft.forward]
    return ";".join(parts) + f";->{draft.result}"


# -- text -----------------------------------------------------------------------
def flat(expr, names: dict | None) -> str:
    """One line; with `names` None, a skeleton (numbers as '#', instances as their class key)."""
    if isinstance(expr, Lit):
        if names is None:
            return "#"
        return names.get(id(expr)) or repr(expr.value)
    if isinstance(expr, Raw):
        return expr.text
    if isinstance(expr, BinOp):
        return f" {expr.op} ".join(flat(a, names) for a in expr.args)
    if isinstance(expr, Instance):
        group = expr.draft.group
        if names is None:
            return f"<{group.key}>"
        args = expr.draft.call_args
        if len(args) == 1:
            return f"{group.name}({flat(args[0][1], names)})"
        return f"{group.name}({', '.join(f'{k}={flat(v, names)}' for k, v in args)})"
    if isinstance(expr, Tup):
        items = [flat(i, names) for i in expr.items]
        if expr.brackets == "()" and len(items) == 1:
            return f"({items[0]},)"
        return expr.brackets[0] + ", ".join(items) + expr.brackets[1]
    if isinstance(expr, Call):
        inner = [flat(a, names) for a in expr.args] + [f"{k}={flat(v, names)}" for k, v in expr.kwargs]
        return f"{expr.func}({', '.join(inner)})"
    raise EmitError(f"internal: cannot write {expr!r}")


def render(expr, names: dict, indent: int, detail: bool = True, force: bool = False) -> str:
    """Python text starting at column `indent`, broken over lines where it would run past WIDTH.

    `detail` False leaves a template's arguments out of its comment (inside a
    class they belong to one instance only).
    """
    one = flat(expr, names)
    commented = isinstance(expr, Call) and expr.comment
    if indent + len(one) < WIDTH and not commented and not force:  # room for a trailing comma or parenthesis
        return one
    pad = " " * (indent + 4)
    if isinstance(expr, Call):
        if expr.func == "OrderedDict" and len(expr.args) == 1 and not expr.kwargs:
            return f"OrderedDict({render(expr.args[0], names, indent, detail)})"
        items = [render(a, names, indent + 4, detail) for a in expr.args]
        items += [f"{k}={flat(v, names)}" for k, v in expr.kwargs]
        comment = ""
        if expr.comment:
            comment = "  # " + (expr.comment if detail else expr.comment.split(":")[0])
        return f"{expr.func}({comment}\n" + "".join(f"{pad}{i},\n" for i in items) + " " * indent + ")"
    if isinstance(expr, Tup) and expr.brackets == "()" and len(expr.items) == 2:
        # ("name", nn.Sequential(...)): the name stays beside its value
        name = flat(expr.items[0], names)
        value = render(expr.items[1], names, indent + len(name) + 3, detail)
        if "\n" in value:
            value = render(expr.items[1], names, indent, detail, force=True)
        return f"({name}, {value})"
    if isinstance(expr, Tup) and expr.items:
        items = [render(i, names, indent + 4, detail) for i in expr.items]
        return expr.brackets[0] + "\n" + "".join(f"{pad}{i},\n" for i in items) + " " * indent + expr.brackets[1]
    return one


def emit(network: Network) -> str:
    """The standalone Python module for `network`; its top-level class is `Model`."""
    return Emitter(network).source()
