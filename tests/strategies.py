"""Hypothesis strategies for whole netspec spec *documents*.

A generated `Case` is what a user would write: a dict that `yaml.safe_dump`
turns into a spec file, over every op and every built-in template, with
groups, inline `layers`, `parallel` + `merge`, `id`/`from` joins, `repeat`,
`if`, `doc`, and `$name` / `${...}` expressions (top-level params and
`in.channels`, `in.height`, ... of the layer's input).

Each case has two views of one document:

* `written`: the document with expressions, which goes into the YAML file;
* `plain`: the same document with every expression replaced by its value.
  The tests' own PyTorch interpreter (test_properties.py) reads this one, so
  it never needs an expression evaluator of its own.

The generator keeps its own estimate of every shape (PyTorch's formulas) only
to choose parameters: with `risk=0` every choice is valid and the whole
network must compile; with `risk>0` some choices may be invalid (a kernel
larger than the padded input, groups that do not divide the channels,
mismatched add/concat branches, a pool padding over half the kernel,
'same' padding with a stride, a projection turned off where shapes change,
...), and whether the network is valid is for PyTorch to say. After a choice
that may be invalid the shape estimate is unreliable, so the network ends
there.

Everything is bounded so one example is cheap: channels <= 16 except the odd
"large" 32-128, spatial sizes <= 32 (<= 6 for 3-d), a handful of layers,
nesting depth <= 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import strategies as st

OPS = (
    "adaptive_avgpool", "adaptive_maxpool", "add", "avgpool", "batchnorm", "concat", "conv",
    "dropout", "flatten", "gelu", "global_avgpool", "identity", "layernorm", "leaky_relu",
    "linear", "maxpool", "mul", "relu", "relu6", "sigmoid", "silu", "softmax", "tanh",
)
TEMPLATES = (
    "basic_block", "bottleneck", "conv_bn_relu6", "dense", "dense_layer", "densenet_block",
    "densenet_layer", "densenet_transition", "inception", "inverted_residual", "residual",
    "transition",
)
ACTIVATIONS = ("relu", "relu6", "sigmoid", "tanh", "silu", "identity", "gelu", "leaky_relu")
STRUCTURES = ("group", "layers", "parallel", "join", "from", "repeat", "if")


# -- expressions -------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    """A leaf written as an expression (`text`) whose value is `value`."""

    text: str
    value: object


def render(doc, written: bool):
    """The document with each Expr as its text (written) or its value (plain)."""
    if isinstance(doc, Expr):
        return doc.text if written else render(doc.value, written)
    if isinstance(doc, dict):
        return {k: render(v, written) for k, v in doc.items()}
    if isinstance(doc, list):
        return [render(v, written) for v in doc]
    return doc


# -- PyTorch's shape formulas (for choosing parameters only) -------------------
def conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    out = -(-(size + 2 * p - d * (k - 1) - 1) // s) + 1 if ceil else (size + 2 * p - d * (k - 1) - 1) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def per_dim(value, n: int) -> list:
    return list(value) if isinstance(value, list) else [value] * n


@dataclass
class Case:
    """One generated spec document."""

    written: dict            # the document as it goes into YAML (with expressions)
    plain: dict              # the same with every expression evaluated
    input: tuple             # the input shape, batch excluded
    expected: tuple | None   # the generator's estimate of the output shape (valid cases)
    risky: bool              # a choice that may be invalid was made
    used: set = field(default_factory=set)  # ops, templates and structures that occur

    def yaml(self, **style) -> str:
        import yaml

        return yaml.safe_dump(self.written, sort_keys=False, **style)


# -- the generator ------------------------------------------------------------
class Scope:
    """What a layer may refer to: the current shape and the ids named so far."""

    def __init__(self, shape, depth: int, ids: dict | None = None):
        self.shape = tuple(shape)
        self.depth = depth
        self.ids = ids if ids is not None else {"input": tuple(shape)}


class Gen:
    """Draws layers one by one, tracking the shape; stops for good after a risky choice."""

    def __init__(self, draw, risk: int, budget: int, focus: str | None):
        self.draw = draw
        self.risk = risk            # percent chance that a choice may be invalid
        self.budget = budget        # layers left to generate
        self.focus = focus          # an op/template/structure that should occur
        self.params: dict = {}
        self.counter = 0
        self.ended = False          # a risky choice was made: generate nothing more
        self.used: set = set()

    # -- drawing ----------------------------------------------------------------
    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def pick(self, options):
        return self.draw(st.sampled_from(list(options)))

    def bool(self) -> bool:
        return self.draw(st.booleans())

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(0, 99)) < percent

    def take_risk(self) -> bool:
        if self.risk and not self.ended and self.chance(self.risk):
            self.ended = True
            return True
        return False

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def channels(self) -> int:
        return self.pick([32, 64, 128]) if self.chance(4) else self.int(1, 12)

    def divisors(self, *numbers) -> list[int]:
        common = math.gcd(*numbers)
        return [g for g in range(1, common + 1) if common % g == 0]

    # -- expressions ------------------------------------------------------------
    def num(self, value, shape=None):
        """`value`, or sometimes an expression for it: a param, arithmetic, a field of `in` (the input `shape`)."""
        if isinstance(value, bool) or not isinstance(value, int) or not self.chance(20):
            return value
        form = self.int(0, 5)
        reads = [name for name, size in in_fields(shape).items() if size == value] if shape else []
        if form == 5 and reads:
            return Expr(f"${{in.{self.pick(reads)}}}", value)
        if form == 5 and shape and value == 2 * shape[0]:
            return Expr("${in.channels * 2}", value)
        if form >= 4:
            return Expr(f"${{{value}}}", value)
        name = f"p{len(self.params)}"
        self.params[name] = value
        return Expr([f"${name}", f"${{{name}}}", f"${{{name} * 2 - {name}}}", f"${{max({name}, {name} - 1)}}"][form],
                    value)

    def flag(self, value: bool):
        if not self.chance(30):
            return value
        name = f"p{len(self.params)}"
        number = self.int(0, 5)
        self.params[name] = number
        return Expr(f"${{{name} >= {number if value else number + 1}}}", value)

    # -- sequences --------------------------------------------------------------
    def sequence(self, scope: Scope, count: int) -> list:
        layers = []
        for _ in range(count):
            if self.budget <= 0 or self.ended:
                break
            layers.append(self.layer(scope))
        return layers

    def layer(self, scope: Scope):
        """One list item; updates scope.shape (and scope.ids)."""
        self.budget -= 1
        focus = self.focus
        if focus and focus not in self.used and self.fits(focus, scope) and self.chance(60):
            kind = focus
        else:
            kind = self.choose(scope, structures=True)
        if kind in ("add", "mul", "concat"):
            return self.s_join(scope, kind)
        if kind in STRUCTURES:
            self.used.add(kind)
            return getattr(self, "s_" + kind)(scope)
        item, shape = self.make(kind, scope.shape)
        return self.finish(item, shape, scope)

    def fits(self, kind: str, scope: Scope) -> bool:
        shape = scope.shape
        if kind in STRUCTURES:
            return kind not in ("group", "layers", "parallel") or scope.depth < 2
        if kind in ("transition", "densenet_transition"):
            return len(shape) >= 2 and min(shape[1:]) >= 2
        if kind in TEMPLATES or kind in SPATIAL_OPS or kind == "conv":
            return len(shape) >= 2
        return True

    def choose(self, scope: Scope, structures: bool = False, preserving: bool = False) -> str:
        if structures and self.chance(30):
            return self.pick([s for s in STRUCTURES if self.fits(s, scope)])
        return self.pick(self.choose_all(scope, preserving))

    def choose_all(self, scope: Scope, preserving: bool = False) -> list[str]:
        shape = scope.shape
        if preserving:
            kinds = ["batchnorm", "dropout", *ACTIVATIONS]
            kinds += (["conv", "conv", "maxpool", "avgpool", "residual", "basic_block", "inception",
                       "dense_layer", "densenet_layer", "conv_bn_relu6", "inverted_residual", "dense",
                       "densenet_block", "bottleneck"] if len(shape) >= 2 else ["linear", "layernorm"])
        else:
            kinds = ["linear", "batchnorm", "layernorm", "dropout", "softmax", *ACTIVATIONS]
            if len(shape) >= 2:
                kinds += ["conv"] * 5 + list(SPATIAL_OPS) + list(TEMPLATES)
        return [k for k in kinds if self.fits(k, scope)]

    def finish(self, item, shape, scope: Scope):
        """Maybe name the layer (`id`) or add a `doc`; record its output."""
        if self.chance(20):
            name = self.name("l")
            item = with_meta(item, id=name)
            scope.ids[name] = shape
        if self.chance(4):
            item = with_meta(item, doc="a note")
        scope.shape = shape
        return item

    def start(self, scope: Scope):
        """Maybe feed a group / inline list / parallel from an earlier value: (meta, shape)."""
        if len(scope.ids) > 1 and self.chance(25):
            ref = self.pick(list(scope.ids))
            return {"from": ref}, scope.ids[ref]
        return {}, scope.shape

    # -- structures ------------------------------------------------------------
    def s_group(self, scope: Scope):
        meta, start = self.start(scope)
        child = Scope(start, scope.depth + 1)
        layers = self.sequence(child, self.int(0, 3))
        name = None if self.chance(15) else self.name("g")
        if name:
            scope.ids[name] = child.shape
        scope.shape = child.shape
        return {"group": name, "layers": layers, **meta}

    def s_layers(self, scope: Scope):
        meta, start = self.start(scope)
        child = Scope(start, scope.depth + 1, scope.ids)  # an inline list shares the scope
        layers = self.sequence(child, self.int(0, 3))
        scope.shape = child.shape
        return {"layers": layers, **meta}

    def s_parallel(self, scope: Scope):
        meta, start = self.start(scope)
        rank = len(start)
        merge = self.pick(["concat", "add", "mul"])
        self.used.add(merge)
        careless = self.take_risk()
        branches, outputs = [], []
        for _ in range(self.int(1 if merge == "concat" else 2, 3)):
            child = Scope(start, scope.depth + 1, scope.ids)
            layers = []
            for _ in range(self.int(0, 2)):
                if careless:  # anything that keeps the rank (a rank change is refused by design)
                    kind = self.pick([k for k in self.choose_all(child) if k not in ("flatten", "global_avgpool")])
                    item, child.shape = self.make(kind, child.shape)
                else:
                    kind = self.choose(child, preserving=True)
                    item, child.shape = self.make(kind, child.shape, preserve=True)
                layers.append(item)
            branches.append(layers)
            outputs.append(child.shape)
        if not careless and merge != "concat":
            # add/mul: the same channels (or features) on every branch, by a final 1x1 conv or linear
            axis = 0 if rank > 1 else -1
            target = self.pick(sorted({s[axis] for s in outputs}))
            for layers, shape in zip(branches, outputs):
                if shape[axis] != target:
                    layers.append({"conv": {"out": target, "kernel": 1}} if rank > 1 else {"linear": target})
            outputs = [(target, *start[1:]) if rank > 1 else (target,) for _ in outputs]
        if merge == "concat":
            shape = (sum(s[0] for s in outputs), *outputs[0][1:])
        else:
            shape = outputs[0]
        written = [b[0] if len(b) == 1 and self.bool() else b for b in branches]
        item = {"parallel": written}
        if merge != "concat" or self.bool():
            item["merge"] = {"concat": {"dim": 1}} if merge == "concat" and self.chance(25) else merge
        return self.finish({**item, **meta}, shape, scope)

    def s_join(self, scope: Scope, op: str | None = None):
        """add / mul / concat of two earlier values named by id."""
        op = op or self.pick(["add", "mul", "concat"])
        self.used.update(("join", op))
        names = list(scope.ids)
        first = self.pick(names)
        shape = scope.ids[first]
        if self.take_risk():
            partners = [n for n in names if len(scope.ids[n]) == len(shape)]
        elif op == "concat":
            partners = [n for n in names if len(scope.ids[n]) == len(shape) and scope.ids[n][1:] == shape[1:]]
        else:
            partners = [n for n in names if scope.ids[n] == shape]
        refs = [first, self.pick(partners)]
        shapes = [scope.ids[r] for r in refs]
        if op == "concat":
            out = (shapes[0][0] + shapes[1][0], *shapes[0][1:])
        else:
            out = tuple(max(a, b) for a, b in zip(*shapes))
        item = {op: refs} if self.bool() else {op: None, "from": refs}
        return self.finish(item, out, scope)

    def s_from(self, scope: Scope):
        ref = self.pick(list(scope.ids))
        kind = self.choose(Scope(scope.ids[ref], scope.depth))
        item, shape = self.make(kind, scope.ids[ref])
        return self.finish(with_meta(item, **{"from": ref}), shape, scope)

    def s_repeat(self, scope: Scope):
        times = self.int(0, 3)
        kind = self.choose(scope, preserving=True)
        item, shape = self.make(kind, scope.shape, preserve=True, keep_channels=True)
        if shape != scope.shape and times > 1:
            times = 1  # only a shape-preserving layer chains with itself
        if times == 0:
            shape = scope.shape
        item = with_meta(item, repeat=self.num(times))
        if self.chance(30):
            item["id"] = self.name("r") + "_${i}"
        same = [n for n in scope.ids if scope.ids[n] == scope.shape]
        if same and self.chance(20):  # the first copy takes `from`, the rest chain
            item["from"] = self.pick(same)
        scope.shape = shape
        return item

    def s_if(self, scope: Scope):
        keep = self.bool()
        kind = self.choose(scope)
        item, shape = self.make(kind, scope.shape)
        if not keep:
            shape = scope.shape  # a skipped layer passes its input through
        item = with_meta(item, **{"if": self.flag(keep)})
        if self.chance(30):
            name = self.name("c")
            item["id"] = name
            scope.ids[name] = shape
        scope.shape = shape
        return item

    # -- ops ----------------------------------------------------------------------
    def make(self, kind: str, shape, preserve: bool = False, keep_channels: bool = False):
        """(item, output shape) of one op or template applied to `shape`."""
        self.used.add(kind)
        if kind in TEMPLATES:
            return self.template(kind, tuple(shape), preserve, keep_channels)
        method = getattr(self, "op_" + kind, self.op_simple)
        return method(kind, tuple(shape), preserve, keep_channels)

    def op_simple(self, kind, shape, preserve, keep):
        if kind == "leaky_relu" and self.bool():
            return {kind: self.pick([0.01, 0.2, 0, -0.5])}, shape
        if kind == "gelu" and self.bool():
            return {kind: {"approximate": self.pick(["none", "tanh"])}}, shape
        return (kind if self.bool() else {kind: None}), shape

    def op_dropout(self, kind, shape, preserve, keep):
        p = self.pick([0.0, 0.1, 0.5, 1.0])
        return self.pick([{kind: p}, {kind: {"p": p}}, kind]), shape

    def op_softmax(self, kind, shape, preserve, keep):
        rank = len(shape) + 1
        dim = self.pick([d for d in range(-rank + 1, rank) if d != 0])  # dim 0 / -rank, the batch, is refused
        if self.take_risk():  # by design (PyTorch runs it), so never drawn
            dim = self.pick([rank, rank + 1, -rank - 1])
        return self.pick([{kind: dim}, {kind: {"dim": self.num(dim, shape)}}]), shape

    def op_batchnorm(self, kind, shape, preserve, keep):
        if self.chance(30):
            params = {"eps": self.pick([1e-5, 1e-3]), "momentum": self.pick([0.1, 0.0, 1.0]),
                      "affine": self.bool()}
            return {kind: params}, shape
        return self.pick([kind, {kind: None}, {kind: {}}]), shape

    def op_layernorm(self, kind, shape, preserve, keep):
        return {kind: {"dims": self.num(self.int(1, len(shape)), shape), "affine": self.bool()}}, shape

    def op_linear(self, kind, shape, preserve, keep):
        out = shape[-1] if keep else self.channels()
        if self.bool():
            return {kind: self.num(out, shape)}, (*shape[:-1], out)
        return {kind: {"out": self.num(out, shape), "bias": self.bool()}}, (*shape[:-1], out)

    def op_flatten(self, kind, shape, preserve, keep):
        rank = len(shape) + 1
        if self.bool():
            return kind, (math.prod(shape),)
        start = self.int(1, rank - 1)
        end = self.int(start, rank - 1)
        out = (*shape[:start - 1], math.prod(shape[start - 1:end]), *shape[end:])
        params = {"start": start - rank if self.chance(30) else start,
                  "end": end - rank if self.chance(30) else end}
        return {kind: params}, out

    def op_global_avgpool(self, kind, shape, preserve, keep):
        return kind, (shape[0],)

    def op_adaptive_avgpool(self, kind, shape, preserve, keep):
        n = len(shape) - 1
        if self.bool():
            size = self.int(1, 4)
            return self.pick([{kind: self.num(size, shape)}, {kind: {"size": size}}]), (shape[0], *[size] * n)
        sizes = [self.int(1, 4) if self.chance(75) else size for size in shape[1:]]  # or the input's own size
        return {kind: {"size": [self.num(s, shape) for s in sizes]}}, (shape[0], *sizes)

    op_adaptive_maxpool = op_adaptive_avgpool

    def op_conv(self, kind, shape, preserve, keep):
        n = len(shape) - 1
        channels, sizes = shape[0], shape[1:]
        if keep:
            out = channels
        else:
            out = channels * self.pick([1, 2]) if self.chance(20) else self.channels()
        groups = self.pick(self.divisors(channels, out)) if self.chance(30) else 1
        risky = self.take_risk()
        if risky and self.bool():
            groups = self.int(2, 4)
        p: dict = {"out": self.num(out, shape)}
        if preserve:  # stride 1 and "half" padding keep the size
            d, k = self.int(1, 2), self.pick([1, 3, 5])
            p["kernel"] = self.num(k)
            p["padding"] = "same" if self.bool() else d * (k - 1) // 2
            if d > 1:
                p["dilation"] = d
            out_sizes = list(sizes)
        else:
            stride = [self.int(1, 3) for _ in range(n)]
            dilation = [self.int(1, 3) if self.chance(25) else 1 for _ in range(n)]
            mode = self.int(0, 9)
            if mode == 0:
                padding = "same"
                stride = [2] * n if risky and self.bool() else [1] * n
            elif mode == 1:
                padding = "valid"
            elif mode <= 3:
                padding = [self.int(0, 2) for _ in range(n)]
            else:
                padding = [self.int(0, 2)] * n
            pads = [0] * n if isinstance(padding, str) else padding
            kernel = []
            for size, d, pad in zip(sizes, dilation, pads):
                largest = 5 if padding == "same" else min(5, (size + 2 * pad - 1) // d + 1)
                kernel.append(self.int(1, 7) if risky else self.int(1, max(1, largest)))
            if risky and self.chance(20):
                kernel.append(kernel[0])  # one value too many
            p["kernel"] = (self.num(kernel[0], shape) if len(set(kernel)) == 1 and len(kernel) == n and self.bool()
                           else [self.num(k, shape) for k in kernel])
            if any(s != 1 for s in stride):
                p["stride"] = stride[0] if len(set(stride)) == 1 else stride
            if any(d != 1 for d in dilation):
                p["dilation"] = dilation[0] if len(set(dilation)) == 1 else dilation
            if padding not in ([0] * n, "valid") or self.chance(20):
                p["padding"] = padding[0] if isinstance(padding, list) and len(set(padding)) == 1 else padding
            if padding == "same":
                out_sizes = list(sizes)
            else:
                out_sizes = [conv_out(*args) for args in zip(sizes, kernel, stride, pads, dilation)]
        if groups != 1:
            p["groups"] = self.num(groups, shape)
        if self.chance(30):
            p["bias"] = self.bool()
        return {kind: p}, (out, *out_sizes)

    def op_maxpool(self, kind, shape, preserve, keep):
        n = len(shape) - 1
        sizes = shape[1:]
        if preserve:
            k = self.pick([1, 3, 5])
            if kind == "avgpool" and n == 3 and min(sizes) < k:  # AvgPool3d: the input must hold the kernel
                k = 1
            return {kind: {"kernel": k, "stride": 1, "padding": k // 2}}, shape
        risky = self.take_risk() and self.pick(["padding", "kernel"])
        if risky == "kernel":  # windows around the input's own size
            ks = [max(1, self.int(size - 1, size + 2)) for size in sizes]
        else:
            ks = [self.int(1, 4) for _ in range(n)]
        kernel = ks[0] if len(set(ks)) == 1 and self.bool() else ks
        stride = self.pick([None, 1, 2, 3])
        strides = [stride] * n if stride is not None else ks
        if stride is not None and n > 1 and self.chance(20):  # one per dimension
            stride = strides = [self.int(1, 3) for _ in range(n)]
        pad = self.int(0, 3) if risky == "padding" else self.int(0, min(k // 2 for k in ks))
        pads = [pad] * n
        if n > 1 and self.chance(20):  # one per dimension
            pad = pads = [self.int(0, 3) if risky == "padding" else self.int(0, k // 2) for k in ks]
        d = self.int(1, 2) if kind == "maxpool" and self.chance(25) else 1
        ceil = self.bool()
        out = [pool_out(*args, d, ceil) for args in zip(sizes, ks, strides, pads)]
        too_small = any(o < 1 for o in out) or (  # AvgPool3d also wants the unpadded input >= kernel
            kind == "avgpool" and n == 3 and any(size < k for size, k in zip(sizes, ks)))
        if not risky and too_small:  # a 1-wide window always fits
            return {kind: 1}, shape
        p: dict = {"kernel": self.num(kernel, shape) if isinstance(kernel, int) else
                   [self.num(k, shape) for k in kernel]}
        if stride is not None:
            p["stride"] = stride
        if pad:
            p["padding"] = pad
        if d != 1:
            p["dilation"] = d
        if ceil:
            p["ceil_mode"] = True
        if kind == "avgpool" and self.chance(25):
            p["count_include_pad"] = self.bool()
        if set(p) == {"kernel"} and self.bool():
            return {kind: p["kernel"]}, (shape[0], *out)
        return {kind: p}, (shape[0], *out)

    op_avgpool = op_maxpool

    # -- templates --------------------------------------------------------------
    def template(self, kind, shape, preserve, keep):
        channels, sizes = shape[0], shape[1:]
        risky = self.take_risk()
        stride = 1 if preserve else self.pick([1, 1, 2])
        strided = [conv_out(s, 3, stride, 1, 1) for s in sizes]
        out = channels if keep else self.channels()
        if kind in ("residual", "basic_block"):
            args = {"out": out}
            if stride != 1 or self.bool():
                args["stride"] = stride
            if risky or self.chance(15):
                args["project"] = self.bool() if risky else True
            result = (out, *strided)
        elif kind == "bottleneck":
            width = self.int(1, 8)
            if not keep and self.bool():
                out = 4 * width
            groups = self.pick(self.divisors(width)) if self.chance(30) else 1
            if risky and self.bool():
                groups = self.int(2, 4)
            args = {"width": width}
            if out != 4 * width or self.bool():
                args["out"] = out
            if stride != 1:
                args["stride"] = stride
            if groups != 1:
                args["groups"] = groups
            if risky and self.bool():
                args["project"] = self.bool()
            result = (out, *strided)
        elif kind == "conv_bn_relu6":
            kernel = self.pick([1, 3]) if preserve else self.pick([1, 3, 5])
            groups = self.pick(self.divisors(channels, out)) if self.chance(40) else 1
            if risky:
                groups = self.int(2, 4)
            args = {"out": out}
            if kernel != 3 or self.bool():
                args["kernel"] = kernel
            if stride != 1:
                args["stride"] = stride
            if groups != 1:
                args["groups"] = groups
            result = (out, *[conv_out(s, kernel, stride, (kernel - 1) // 2, 1) for s in sizes])
        elif kind == "inverted_residual":
            args = {"out": out, "expand": self.int(1, 3)}
            if stride != 1:
                args["stride"] = stride
            if risky:
                args["residual"] = True
            result = (out, *strided)
        elif kind == "inception":
            c1, c4 = self.int(1, 6), self.int(1, 6)
            c2, c3 = [self.int(1, 6), self.int(1, 6)], [self.int(1, 6), self.int(1, 6)]
            args = {"c1": c1, "c2": c2, "c3": c3, "c4": c4}
            result = (c1 + c2[1] + c3[1] + c4, *sizes)
        elif kind in ("dense_layer", "densenet_layer"):
            args = {"growth": self.int(1, 6)}
            if kind == "densenet_layer" and self.bool():
                args["bn_size"] = self.int(1, 4)
            result = (channels + args["growth"], *sizes)
        elif kind in ("dense", "densenet_block"):
            args = {"layers": self.int(0, 3), "growth": self.int(1, 6)}
            if kind == "densenet_block" and self.bool():
                args["bn_size"] = self.int(1, 4)
            result = (channels + args["layers"] * args["growth"], *sizes)
        else:  # transition, densenet_transition: 1x1 conv, then a 2x2 average pool
            args = {"out": out}
            if channels >= 2 and self.bool():  # (out 0 would be refused by design, not by PyTorch)
                args, out = {}, channels // 2
            result = (out, *[s // 2 for s in sizes])
        args = {k: [self.num(x, shape) for x in v] if isinstance(v, list) else self.num(v, shape)
                for k, v in args.items()}
        item = {kind: args} if args else self.pick([kind, {kind: None}, {kind: {}}])
        return item, result


def in_fields(shape) -> dict:
    """The whole-number fields of `in` for an input `shape` (no batch), where the language defines them:
    `in.length` of a sequence (C, L), `in.height` and `in.width` of an image (C, H, W) or a volume
    (C, D, H, W)."""
    fields = {"channels": shape[0], "features": shape[-1], "rank": len(shape)}
    if len(shape) == 2:
        fields["length"] = shape[1]
    if len(shape) >= 3:
        fields["height"], fields["width"] = shape[-2], shape[-1]
    return fields


def with_meta(item, **meta):
    if isinstance(item, str):
        item = {item: None}
    return {**item, **meta}


SPATIAL_OPS = ("maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "global_avgpool", "flatten")


def input_shapes():
    """(F,), (C, L), (C, H, W) or (C, D, H, W): odd, non-square, 1x1 and large channels included."""
    channels = st.one_of(st.integers(1, 8), st.sampled_from([3, 16, 64, 128]))
    size = st.one_of(st.integers(1, 12), st.sampled_from([1, 2, 3, 5, 7, 16, 17, 31, 32]))
    return st.one_of(
        st.tuples(st.integers(1, 64)),
        st.tuples(channels, size),
        st.tuples(channels, size, size),
        st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    )


@st.composite
def cases(draw, risk: int = 0, max_layers: int = 6, focus: str | None = None):
    """A spec document. `risk`: percent of choices that may be invalid; `focus`: a kind that should occur."""
    shape = draw(input_shapes())
    if focus and (focus in TEMPLATES or focus in SPATIAL_OPS or focus == "conv") and len(shape) == 1:
        shape = (shape[0] % 8 + 1, 7, 6)
    gen = Gen(draw, risk, draw(st.integers(1, max_layers)), focus)
    scope = Scope(shape, 0)
    layers = gen.sequence(scope, 1000)
    while not layers or (focus and focus not in gen.used and not gen.ended and len(layers) < 12):
        gen.budget = 1
        layers += gen.sequence(scope, 1)
    doc = {"netspec": 1, "name": "gen", "input": list(shape)}
    if gen.params:
        doc["params"] = dict(gen.params)
    doc["network"] = layers
    expected = None if gen.ended else scope.shape
    return Case(render(doc, True), render(doc, False), tuple(shape), expected, gen.ended, gen.used)
