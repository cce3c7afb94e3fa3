"""Which input sizes a network accepts, derived statically (no torch, no tensors).

`netspec check --input-range` prints one line per spec, e.g.

    H, W >= 29; any size
    H, W must be 224 because flatten → linear(6400) at fc1.0 (193..224 give the same weights)
    H, W >= 2; H, W divisible by 2 (or 3)

Method: a derivation, not a search. Every conv and pool maps a size s to
floor((s + a) / b), and such maps compose into the same form, so the
elaborated network is walked once with each spatial dimension carried as
floor((s + A) / B) of the input size (or a constant, after adaptive
pooling). Each requirement then has a closed-form answer (see
`Derivation`): kernels that must fit give a smallest size; branches merged
by add/concat that must agree give residues mod B (divisibility), a finite
set or an interval; weights sized for a dimension (linear after flatten)
give the interval of input sizes that reproduce it.

The answer is confirmed by elaborating the spec at its edges (the smallest
size and the one below it, a period's worth of sizes, the ends of a fixed
range): a handful of front-end runs. Where the derivation does not apply
(an op whose size rule netspec does not model, such as a plugin op that
changes sizes), or a spot check disagrees, the sizes are found by probing
instead: binary searches over elaborations, which rely on sizes growing with
the input.

Both take each layer's settings as the same at every input size. A spec
whose expressions read the input (`in.height`, `in.width`, `in.length`,
`in.shape`, `in.features`, and `in.channels`, which after a flatten is the
flattened size) may break that: a maxpool of kernel `${in.height // 4}` or
a conv of `${in.width}` channels changes with the size, so neither a
derivation from the spec's own size nor a handful of probes can tell which
sizes work. Reading the input is not enough to break it, though: after a
global pooling `in.features` is the channel count, the same at every size.
So such a spec's layers (each node's op and parameters, not its shapes)
are compared with those at its own size at a few dozen other sizes
(`_chosen_sizes`), and once more at every size the derivation's checks or
the probing elaborated; where any differs, the spec is refused, at the
expression that reads the input nearest the layer that changed. (A layer
that changes only at sizes none of these reach goes unseen.) A vector input
has no size to choose and is not looked at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from . import ops
from .errors import SpecError
from .load import Map, Seq

SIZE_FIELDS = ("height", "width", "length", "shape", "features")  # fields of `in` that follow the input size
READS_INPUT = (*SIZE_FIELDS, "channels")  # with the one that does after a flatten: specs reading these are compared
_IN_FIELD = re.compile(r"(?<![A-Za-z0-9_.])in\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
WINDOW = 8
SCAN = 32
DIM_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


@dataclass
class DimRange:
    """What one spatial dimension accepts."""

    name: str
    spec: int                         # the spec's own size
    min: int | None                   # smallest valid size (None: nothing up to the spec's size works)
    period: int = 1                   # valid sizes satisfy size % period in residues
    residues: list[int] = field(default_factory=lambda: [0])
    fixed: tuple[int, int] | None = None   # sizes whose weights match the spec's
    reason: str | None = None         # the node that fixes the size
    too_small: str | None = None      # the error at min - 1
    extra: list[int] = field(default_factory=list)  # small valid sizes outside the residues
    max: int | None = None            # largest valid size, where there is one
    only: list[int] | None = None     # the valid sizes, where they are finitely many
    method: str = "derived"           # "derived", or "probed" where the derivation did not apply
    within_budget: tuple[int, int] | None = None  # with other weights: (largest size, parameter budget)

    def accepts(self, size: int) -> bool:
        """Whether the network takes this size (the other dimensions at the spec's values)."""
        if size in self.extra:
            return True
        if self.min is None or size < self.min or (self.max is not None and size > self.max):
            return False
        if self.only is not None:
            return size in self.only
        return size % self.period in self.residues

    def keeps_weights(self, size: int) -> bool:
        """Whether the spec's weights fit this size (its parameter count is the spec's)."""
        return self.accepts(size) and (self.fixed is None or self.fixed[0] <= size <= self.fixed[1])

    def as_dict(self) -> dict:
        return {"name": self.name, "spec": self.spec, "min": self.min, "period": self.period,
                "residues": self.residues, "fixed": list(self.fixed) if self.fixed else None,
                "reason": self.reason, "too_small": self.too_small, "extra": self.extra,
                "max": self.max, "only": self.only, "method": self.method}


class _Probe:
    """Elaborates one parsed spec at many input sizes, with a cache."""

    def __init__(self, path, params=None, input=None, text: str | None = None, max_params: int | None = None):
        from .api import _elaborate
        from .elaborate import DEFAULT_MAX_PARAMS
        from .load import load_file, load_text

        if text is None:
            self.doc, self.text = load_file(path)
        else:
            self.doc, self.text = load_text(text, str(path)), text
        self.path, self.params = str(path), params
        self._elaborate = _elaborate
        self.max_params = max_params or DEFAULT_MAX_PARAMS
        self.base = self.run(input)
        if isinstance(self.base, SpecError):
            raise self.base
        self.shape = self.base.input
        self.cache: dict[tuple, object] = {}

    def run(self, shape):
        try:
            return self._elaborate(self.doc, self.text, self.path, self.params, shape, self.max_params)
        except SpecError as err:
            return err

    def at(self, axis: int, size: int):
        shape = list(self.shape)
        shape[axis] = size
        return self.of(tuple(shape))

    def of(self, shape: tuple[int, ...]):
        if shape not in self.cache:
            self.cache[shape] = self.run(shape)
        return self.cache[shape]

    def ok(self, axis: int, size: int) -> bool:
        return not isinstance(self.at(axis, size), SpecError)


def _first(lo: int, hi: int, pred) -> int:
    """Smallest x in [lo, hi] with pred(x), pred monotone and pred(hi) true."""
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _dimension(probe: _Probe, axis: int, name: str) -> DimRange:
    spec = probe.shape[axis]
    window = lambda h: any(probe.ok(axis, x) for x in range(h, h + WINDOW))  # noqa: E731
    start = _first(1, spec, window)
    low = next((x for x in range(start, start + WINDOW) if probe.ok(axis, x)), None)
    result = DimRange(name, spec, low)
    if low is None:
        return result
    if low > 1:
        err = probe.at(axis, low - 1)
        result.too_small = err.diagnostic.message if isinstance(err, SpecError) else None

    # the period is read from sizes a little above the minimum (tiny sizes can pass by
    # broadcasting a 1); valid sizes below that which break the pattern are listed as extras
    tail = low + WINDOW
    valid = [probe.ok(axis, x) for x in range(tail, tail + SCAN)]
    if not all(valid):
        for period in range(2, SCAN // 2 + 1):
            if all(valid[i] == valid[i % period] for i in range(SCAN)):
                result.period = period
                result.residues = sorted((tail + i) % period for i in range(period) if valid[i])
                result.extra = [x for x in range(low, tail)
                                if probe.ok(axis, x) and x % period not in result.residues]
                result.min = next(x for x in range(low, tail + SCAN)
                                  if probe.ok(axis, x) and x % period in result.residues)
                break

    base = probe.base.n_params
    other = probe.at(axis, spec * 2)
    if not isinstance(other, SpecError) and other.n_params != base:
        count = lambda h: _count(probe, axis, h)  # noqa: E731
        first = _first(low, spec, lambda h: count(h) >= base)
        hi_bound = spec * 2
        last = _first(spec, hi_bound, lambda h: count(h) > base) - 1
        while first < last and not probe.ok(axis, first):  # the ends must themselves be valid sizes
            first += 1
        while last > first and not probe.ok(axis, last):
            last -= 1
        result.fixed = (first, last)
        result.reason = _culprit(probe.base, other)
    return result


def _count(probe: _Probe, axis: int, size: int) -> int:
    """Parameter count at a size; invalid sizes count as smaller than any valid one."""
    net = probe.at(axis, size)
    if isinstance(net, SpecError):
        # below the minimum, or a residue that does not fit: look at the next valid size up
        for x in range(size + 1, size + SCAN):
            net = probe.at(axis, x)
            if not isinstance(net, SpecError):
                return net.n_params
        return -1
    return net.n_params


def _culprit(a, b) -> str:
    """The first weighted node whose parameter count depends on the input size."""
    others = {node.path: node for node, _ in b.nodes()}
    previous = None
    for node, _ in a.nodes():
        if node.group:
            continue
        twin = others.get(node.path)
        if twin is not None and twin.n_params != node.n_params:
            features = node.in_shapes[0][-1] if node.in_shapes and node.in_shapes[0] else "?"
            head = f"{previous.op} → " if previous is not None else ""
            return f"{head}{node.op}({features}) at {node.path}"
        previous = node
    return "a layer whose weights depend on the input size"


def input_range(path, params=None, input=None, text: str | None = None,
                max_params: int | None = None) -> list[DimRange]:
    """One DimRange per spatial dimension of the input (none for a vector input).

    `max_params` is the budget `load` enforces (default 10 billion); where the weights grow
    with the size, it bounds the sizes "with other weights" from above.
    """
    probe = _Probe(path, params, input, text, max_params)
    spatial = len(probe.shape) - 1
    if not spatial:
        return []  # a vector input: no size to choose
    names = DIM_NAMES.get(spatial, tuple(f"dim{i + 1}" for i in range(spatial)))
    readers = _Readers(probe, names)
    readers.compare(_chosen_sizes(probe))
    try:
        derived = derive(probe.base, probe)
    except Unsupported:
        derived = [None] * spatial
    ranges = []
    for axis in range(spatial):
        found = derived[axis]
        if found is None or not _confirmed(probe, axis + 1, found):
            found = _dimension(probe, axis + 1, names[axis])
            found.method = "probed"
        if found.fixed and found.min is not None:
            largest = _largest_within_budget(probe, axis + 1, found.min)
            found.within_budget = None if largest is None else (largest, probe.max_params)
        ranges.append(found)
    readers.compare(list(probe.cache))  # every size the derivation's checks or the probing elaborated
    return ranges


def _largest_within_budget(probe, axis: int, low: int, ceiling: int = 1 << 24) -> int | None:
    """The largest size whose network stays under the parameter budget (None: no bound below `ceiling`).

    Weights grow with the size here (the range is fixed by a flatten into a linear), so the
    sizes over budget are all those above one size: a bisection finds it.
    """
    from .elaborate import OverBudget

    def over(size: int) -> bool:
        return isinstance(probe.at(axis, size), OverBudget)

    if not over(ceiling) or over(low):
        return None
    return _first(low, ceiling, over) - 1


def _chosen_sizes(probe: _Probe) -> list[tuple[int, ...]]:
    """Input shapes to compare layers at, one spatial dimension changed at a time: small sizes, powers of
    two (and 1.5 times them) up to 4096 or four times the spec's, and the spec's neighbours. Elaboration
    costs the same at any size, and a size over the parameter budget is no network: skipped."""
    shapes = []
    for axis in range(1, len(probe.shape)):
        spec = probe.shape[axis]
        sizes = {1, 2, 3, spec - 1, spec + 1, spec // 2, spec * 3 // 2, spec * 2, spec * 3, spec * 4}
        size = 4
        while size <= max(spec * 4, 4096):
            sizes.update((size, size * 3 // 2))
            size *= 2
        for size in sorted(x for x in sizes if x >= 1 and x != spec):
            shape = list(probe.shape)
            shape[axis] = size
            shapes.append(tuple(shape))
    return shapes


class _Readers:
    """The expressions that read the input, in the network and the templates it uses, and the check that
    the layers they set are the same at other sizes (see the top)."""

    def __init__(self, probe: _Probe, names: tuple[str, ...]):
        from .templates import for_spec

        self.probe, self.names = probe, names
        self.places: list[tuple[str, str, object, tuple]] = []  # (field, text, position, enclosing containers)
        self.owners: dict = {}  # a layer's position (its op's key, or a bare item) -> its containers
        templates = for_spec(probe.doc, probe.path)
        self.templates = {}
        for node, _ in probe.base.nodes():  # each used template once, in order of use
            if node.group and node.op in templates:
                self.templates.setdefault(node.op, templates[node.op])
        for key, value in probe.doc.items():  # the templates in blocks: only where used, below
            if key != "blocks":
                self._walk(value, probe.doc.at(key), ("spec",))
        self.decls: dict[str, list] = {}
        for name, template in self.templates.items():
            self._walk(template.graph, template.pos, ("template", name))
            self.decls[name] = [(field, decl.default, template.decl_pos[pname], ("decl", name))
                                for pname, decl in template.decls.items() if isinstance(decl.default, str)
                                for field in self._reads(decl.default)[:1]]
        self.active = bool(self.places) or any(self.decls.values())
        self.layers = _layers(probe.base) if self.active else None

    @staticmethod
    def _reads(text: str) -> list[str]:
        return [f for f in _IN_FIELD.findall(text) if f in READS_INPUT] if "$" in text else []

    def _walk(self, value, at, chain: tuple) -> None:
        if isinstance(value, str):
            fields = self._reads(value)
            if fields:
                self.places.append((fields[0], value, at, chain))
        elif isinstance(value, Map):
            chain = (*chain, id(value))
            for key, item in value.items():
                self.owners.setdefault(value.key_pos.get(key), chain)
                self._walk(item, value.at(key), chain)
        elif isinstance(value, Seq):
            chain = (*chain, id(value))
            for index, item in enumerate(value):
                if isinstance(item, str):
                    self.owners.setdefault(value.at(index), (*chain, index))
                self._walk(item, value.at(index), chain)

    def compare(self, shapes) -> None:
        """A SpecError where the layers at one of these input shapes are not those at the spec's."""
        if not self.active:
            return
        for shape in shapes:
            if tuple(shape) == tuple(self.probe.shape):
                continue
            other = self.probe.of(tuple(shape))
            if isinstance(other, SpecError):
                continue
            change = _first_change(self.layers, _layers(other))
            if change is not None:
                self.refuse(shape, *change)

    def refuse(self, shape, mine, theirs) -> None:
        node = mine or theirs
        axis = next(a for a in range(1, len(shape)) if shape[a] != self.probe.shape[a])
        dim = self.names[axis - 1]
        here, there = f"{dim} = {self.probe.shape[axis]}", f"{dim} = {shape[axis]}"
        if mine is None or theirs is None:
            detail = f"{node.op} at {node.path} is there at {here if mine else there}, " \
                     f"not at {there if mine else here}"
        elif mine.op != theirs.op:
            detail = f"the layer at {node.path} is {mine.op} at {here}, {theirs.op} at {there}"
        else:
            detail = f"{node.op} at {node.path} has {_difference(mine.params, theirs.params, here, there)}"
        field, _, at, _ = self.blame(mine, theirs)
        raise SpecError(at, f"--input-range cannot work out the sizes this network takes, because its layers "
                        f"change with the input size (this expression reads in.{field}; {detail})",
                        hint="it assumes each layer's settings are the same at every size; check one size "
                        f"with --input C,{','.join(self.names)} instead")

    def blame(self, *nodes):
        """The expression reading the input nearest the layer that changed (at either size): inside it, in
        the template it is an instance of, or in the layers around it; the first of the nearest."""
        best, score = None, -1
        for node in nodes:
            if node is None:
                continue
            chain = self.owners.get(node.pos, ())
            candidates = self.places
            if node.group and node.op in self.decls:  # after the use site's own, before any other
                inside = [p for p in self.places if chain and p[3][:len(chain)] == chain]
                candidates = inside + [(*p[:3], chain) for p in self.decls[node.op]] + self.places
            for place in candidates:
                shared = next((i for i, (a, b) in enumerate(zip(place[3], chain)) if a != b),
                              min(len(place[3]), len(chain)))
                if shared > score:
                    best, score = place, shared
        if best is None:  # only template defaults read the input, in a template not at these layers
            best = next(p for places in self.decls.values() for p in places)
        return best


def _layers(network) -> list:
    return [(node.path, node) for node, _ in network.nodes()]


def _first_change(mine: list, theirs: list):
    """The first node (in the spec's network, then the other's) whose op or parameters differ, as a pair
    (either None where the node is not there); None where the layers are the same."""
    other = dict(theirs)
    for path, node in mine:
        twin = other.get(path)
        if twin is None or twin.op != node.op or twin.params != node.params:
            return node, twin
    paths = {path for path, _ in mine}
    for path, node in theirs:
        if path not in paths:
            return None, node
    return None


def _difference(a, b, here: str, there: str) -> str:
    """'kernel 8 at H = 32, 4 at H = 16': the first parameter that differs."""
    theirs = dict(b or {})  # a group's arguments (a dict) or an op's parameters (a model: its fields)
    for key, value in dict(a or {}).items():
        if theirs.get(key) != value:
            return f"{key} {value} at {here}, {theirs.get(key)} at {there}"
    return f"other settings at {there} than at {here}"


# -- the derivation: shape rules as functions of the input size ------------------------
class Unsupported(Exception):
    """Something the derivation does not model; the sizes are then found by probing."""


@dataclass(frozen=True)
class Aff:
    """floor((s + A) / B) of the input size s along `axis`: what every conv and pool makes of it."""

    axis: int
    A: int
    B: int

    def at(self, s: int) -> int:
        return (s + self.A) // self.B

    def then(self, a: int, b: int) -> "Aff":
        """floor((self + a) / b), again of the same form: floor((floor(x/B) + a)/b) = floor((x + aB)/(Bb))."""
        return Aff(self.axis, self.A + self.B * a, self.B * b)

    def least(self, m: int) -> int:
        """The smallest s with at(s) >= m."""
        return self.B * m - self.A

    def equals(self, value: int) -> tuple[int, int]:
        """The sizes s with at(s) == value, as an interval."""
        return self.B * value - self.A, self.B * value - self.A + self.B - 1


@dataclass(frozen=True)
class Const:
    value: int


@dataclass(frozen=True)
class Opaque:
    """A size that depends on the input in a way not of the Aff form (a flattened product)."""

    factors: tuple


def _deps(dim) -> list[Aff]:
    if isinstance(dim, Aff):
        return [dim]
    if isinstance(dim, Opaque):
        return [a for f in dim.factors for a in _deps(f)]
    return []


@dataclass
class Bound:
    """One requirement on one spatial axis, and the node it comes from."""

    axis: int
    kind: str          # "min", "residues", "interval", "finite", "weights"
    value: object
    reason: str


class Derivation:
    """Walks the elaborated network once, carrying each dimension as a function of the input size.

    Every conv and pool maps a size s to floor((s + a) / b); composed, a chain
    is again floor((s + A) / B), so each node's spatial size is known for
    every input size at once. Requirements follow in closed form:

    - a kernel must fit: floor((s + A) / B) >= m  <=>  s >= B*m - A;
    - merged branches must agree: with equal B this holds for a set of
      residues mod B (divisibility); with different B, for finitely many s;
      against a constant (after adaptive pooling), for an interval;
    - weights that depend on a size (linear after flatten, layernorm over a
      spatial dimension) fix that size to its value at the spec's input: an
      interval of input sizes.
    """

    def __init__(self, network):
        self.network = network
        self.bounds: list[Bound] = []
        self.broadcast: dict[int, set[int]] = {}  # sizes where a branch of size 1 broadcasts
        self.assumed: list[str] = []

    def run(self) -> list[Bound]:
        shape = self.network.input
        dims = (Const(shape[0]), *(Aff(axis, 0, 1) for axis in range(1, len(shape))))
        self.group(self.network.root, dims)
        return self.bounds

    def group(self, group, dims):
        values = {"input": dims}
        for node in group.children:
            ins = [values[ref] for ref in node.inputs]
            out = self.group(node, ins[0]) if node.group else self.op(node, ins)
            spec = tuple(self.value(d) for d in out)
            if spec != tuple(node.shape):
                raise Unsupported(f"{node.path} ({node.op}): derived {spec}, inferred {tuple(node.shape)}")
            values[node.name] = out
        return values[group.output]

    def value(self, dim) -> int:
        """A dimension's size at the spec's own input."""
        if isinstance(dim, Const):
            return dim.value
        if isinstance(dim, Aff):
            return dim.at(self.network.input[dim.axis])
        result = 1
        for factor in dim.factors:
            result *= self.value(factor)
        return result

    def need(self, dim, least: int, reason: str) -> None:
        if isinstance(dim, Aff):
            where, _, detail = reason.partition(" (")
            text = f"{where} needs an input of {least} or more" + (f" ({detail}" if detail else "")
            self.bounds.append(Bound(dim.axis, "min", dim.least(least), text))
        elif isinstance(dim, Opaque):
            raise Unsupported(f"{reason}: a size requirement on a flattened dimension")

    def op(self, node, ins):
        from .ops import conv, linear, merge, norm, pool, tensor

        cls = ops.get(node.op)
        p = node.params
        where = f"{node.op} at {node.path}"
        x = ins[0]
        if issubclass(cls, conv.Conv):
            n, kernel, stride, padding, dilation = cls().geometry(p, node.in_shapes[0])
            out = [Const(p.out)]
            for i, dim in enumerate(x[1:]):
                if padding is None:  # 'same'
                    out.append(dim)
                    continue
                effective = dilation[i] * (kernel[i] - 1) + 1
                self.need(dim, effective - 2 * padding[i], f"{where} (kernel {effective} after dilation, "
                                                            f"padding {padding[i]})")
                out.append(self.floor(dim, 2 * padding[i] - effective + stride[i], stride[i]))
            return tuple(out)
        if issubclass(cls, pool._Pool):
            n, kernel, stride, padding, dilation = cls().geometry(p, node.in_shapes[0])
            out = [x[0]]
            for i, dim in enumerate(x[1:]):
                k, s, pad, d = kernel[i], stride[i], padding[i], dilation[i]
                effective = d * (k - 1) + 1
                if not p.ceil_mode:
                    self.need(dim, effective - 2 * pad, f"{where} (window {effective}, padding {pad})")
                    out.append(self.floor(dim, 2 * pad - effective + s, s))
                elif pad + s - 1 < effective:  # the last window always starts inside: plain ceil
                    self.need(dim, effective + 1 - 2 * pad - s, f"{where} (window {effective}, padding {pad}, "
                                                                 "ceil_mode)")
                    out.append(self.floor(dim, 2 * pad - effective + 2 * s - 1, s))
                else:
                    raise Unsupported(f"{where}: ceil_mode with a window that may start in the padding")
            return tuple(out)
        if issubclass(cls, pool._Adaptive):
            return (x[0], *(Const(v) for v in node.shape[1:]))
        if issubclass(cls, pool.GlobalAvgPool):
            return (x[0],)
        if issubclass(cls, tensor.Flatten):
            rank = len(x) + 1
            start, end = (d + rank if d < 0 else d for d in (p.start, p.end))
            if start == end:
                return x
            merged = x[start - 1:end]
            if all(isinstance(d, Const) for d in merged):
                joined = Const(self.value(Opaque(tuple(merged))))
            else:
                joined = Opaque(tuple(merged))
            return (*x[:start - 1], joined, *x[end:])
        if issubclass(cls, linear.Linear):
            self.weights(x[-1], node, f"{x_name(x[-1])} → {node.op}({self.value(x[-1])}) at {node.path}")
            return (*x[:-1], Const(p.out))
        if issubclass(cls, norm.LayerNorm):
            for dim in x[len(x) - p.dims:]:
                self.weights(dim, node, f"layernorm over {p.dims} dimensions at {node.path}")
            return x
        if issubclass(cls, merge._Elementwise):
            return tuple(self.broadcast_dims(dims, where) for dims in zip(*ins))
        if issubclass(cls, merge.Concat):
            rank = len(x) + 1
            axis = p.dim % rank - 1
            out = []
            for i, dims in enumerate(zip(*ins)):
                if i == axis:
                    if not all(isinstance(d, Const) for d in dims):
                        raise Unsupported(f"{where}: concatenation along a spatial dimension")
                    out.append(Const(sum(d.value for d in dims)))
                else:
                    out.append(self.agree(dims, where))
            return tuple(out)
        if cls.__module__ in ("netspec.ops.activation", "netspec.ops.norm") or node.op in ("dropout", "identity"):
            return x
        if len(ins) == 1 and tuple(node.shape) == tuple(node.in_shapes[0]):
            self.assumed.append(node.op)  # e.g. a plugin op: taken to keep the shape, and checked below
            return x
        raise Unsupported(f"{where}: netspec does not know how this op's output size follows its input's")

    def floor(self, dim, a: int, b: int):
        """floor((dim + a) / b) for any dimension."""
        if isinstance(dim, Aff):
            return dim.then(a, b)
        if isinstance(dim, Const):
            return Const((dim.value + a) // b)
        raise Unsupported("a convolution or pooling over a flattened dimension")

    def weights(self, dim, node, reason: str) -> None:
        """The layer's weights were sized for this dimension's value at the spec's input."""
        for aff in _deps(dim):
            self.bounds.append(Bound(aff.axis, "weights", aff.equals(self.value(aff)), reason))

    def agree(self, dims, where: str):
        """Dimensions that must be equal (concat's other dimensions)."""
        first = dims[0]
        for other in dims[1:]:
            self.equal(first, other, where)
        return next((d for d in dims if isinstance(d, Aff)), first)

    def broadcast_dims(self, dims, where: str):
        """add / mul: equal sizes, or 1 (which broadcasts)."""
        varying = [d for d in dims if not (isinstance(d, Const) and d.value == 1)]
        if not varying:
            return dims[0]
        first = varying[0]
        for other in varying[1:]:
            if other != first:
                self.equal(first, other, where)
                for dim in (first, other):  # sizes at which one side is 1 and broadcasts instead
                    if isinstance(dim, Aff):
                        lo, hi = dim.equals(1)
                        self.broadcast.setdefault(dim.axis, set()).update(range(max(lo, 1), hi + 1))
        return next((d for d in varying if isinstance(d, Aff)), first)

    def equal(self, a, b, where: str) -> None:
        if a == b:
            return
        if isinstance(a, Opaque) or isinstance(b, Opaque):
            raise Unsupported(f"{where}: merged flattened dimensions")
        if isinstance(a, Const) and isinstance(b, Const):
            if a.value != b.value:
                raise Unsupported(f"{where}: {a.value} != {b.value}")
            return
        if isinstance(a, Const) or isinstance(b, Const):
            aff, const = (a, b) if isinstance(a, Aff) else (b, a)
            self.bounds.append(Bound(aff.axis, "interval", aff.equals(const.value), where))
            return
        if a.axis != b.axis:
            raise Unsupported(f"{where}: merges sizes from different input dimensions")
        if a.B == b.B:
            residues = [r for r in range(a.B) if a.at(r + a.B * 8) == b.at(r + a.B * 8)]
            self.bounds.append(Bound(a.axis, "residues", (a.B, residues), where))
            return
        # different strides: floor((s+A1)/B1) - floor((s+A2)/B2) grows without bound, so the
        # sizes where they agree are finitely many, all below this bound
        limit = (abs(a.A) + abs(b.A) + 2) * a.B * b.B + 1
        sizes = [s for s in range(1, limit) if a.at(s) == b.at(s)]
        self.bounds.append(Bound(a.axis, "finite", sizes, where))


def x_name(dim) -> str:
    return "flatten" if isinstance(dim, Opaque) else "a spatial dimension"


def derive(network, probe) -> list["DimRange"]:
    """Each spatial dimension's range, from the derivation's bounds (raises Unsupported)."""
    derivation = Derivation(network)
    bounds = derivation.run()
    spatial = len(network.input) - 1
    names = DIM_NAMES.get(spatial, tuple(f"dim{i + 1}" for i in range(spatial)))
    return [_combine(probe, derivation, bounds, axis, names[axis - 1]) for axis in range(1, spatial + 1)]


def _combine(probe, derivation, bounds, axis: int, name: str) -> "DimRange":
    mine = [b for b in bounds if b.axis == axis]
    spec = probe.shape[axis]
    low, low_reason = 1, None
    period, residues = 1, {0}
    lo, hi = 1, None
    finite = None
    for b in mine:
        if b.kind == "min" and b.value > low:
            low, low_reason = b.value, b.reason
        elif b.kind == "residues":
            m, rs = b.value
            new = period * m // math.gcd(period, m)
            residues = {r for r in range(new) if r % period in residues and r % m in rs}
            period = new
        elif b.kind == "interval":
            lo, hi = max(lo, b.value[0]), b.value[1] if hi is None else min(hi, b.value[1])
        elif b.kind == "finite":
            finite = set(b.value) if finite is None else finite & set(b.value)

    def valid(s: int) -> bool:
        return (s >= max(low, lo) and (hi is None or s <= hi) and s % period in residues
                and (finite is None or s in finite))

    if finite is not None:
        candidates = sorted(s for s in finite if valid(s))
    else:
        end = hi if hi is not None else max(low, lo) + period
        candidates = [s for s in range(max(low, lo), end + 1) if valid(s)]
    result = DimRange(name, spec, candidates[0] if candidates else None, method="derived")
    result.too_small = low_reason
    if period > 1:
        result.period, result.residues = period, sorted(residues)
    if finite is not None:
        result.only, result.max = candidates, max(candidates, default=None)
    elif hi is not None:
        result.max = hi
    extra = sorted(s for s in derivation.broadcast.get(axis, ()) if not valid(s) and probe.ok(axis, s))
    result.extra = extra
    if result.min is None and extra:
        result.min = extra[0]
    weights = [b for b in mine if b.kind == "weights"]
    if weights and result.min is not None:
        wlo = max(b.value[0] for b in weights)
        whi = min(b.value[1] for b in weights)
        fitting = [s for s in range(max(wlo, 1), whi + 1) if valid(s) or s in extra]
        if fitting:
            result.fixed = (fitting[0], fitting[-1])
            result.reason = weights[0].reason
    return result


def _confirmed(probe, axis: int, r: "DimRange") -> bool:
    """Spot checks with the real front end at the edges of what was derived."""
    if r.min is None:
        return False
    checks = {r.min: True}
    if r.min > 1 and r.min - 1 not in r.extra:
        checks[r.min - 1] = False
    if r.period > 1:
        above = [s for s in range(r.min + 1, r.min + 2 * r.period + 1)
                 if (r.max is None or s <= r.max) and s not in r.extra]
        for s in above:
            checks.setdefault(s, s % r.period in r.residues and (r.only is None or s in r.only))
    if r.max is not None:
        checks[r.max] = True
        checks[r.max + 1] = False
    for s, expected in checks.items():
        if probe.ok(axis, s) != expected:
            return False
    if r.fixed:
        base = probe.base.n_params
        first, last = r.fixed
        for s in (first, last):
            if _count(probe, axis, s) != base:
                return False
        for s in (first - 1, last + 1):
            net = probe.at(axis, s) if s >= 1 else None
            if net is not None and not isinstance(net, SpecError) and net.n_params == base:
                return False
    return True


def _runs(sizes: list[int]) -> str:
    """'3, 5, 33..63': consecutive sizes as ranges."""
    parts, start = [], None
    for i, size in enumerate(sizes):
        if start is None:
            start = size
        if i + 1 == len(sizes) or sizes[i + 1] != size + 1:
            parts.append(str(start) if size == start else f"{start}..{size}" if size > start + 1
                         else f"{start}, {size}")
            start = None
    return ", ".join(parts)


def _join(names: list[str]) -> str:
    return ", ".join(names)


def reasons(ranges: list[DimRange]) -> list[str]:
    """Why: the layer behind each bound, e.g. 'H, W >= 29: avgpool at transition3.3 needs ...'."""
    lines, seen = [], {}
    for r in ranges:
        if r.min is not None and r.min > 1 and r.too_small:
            seen.setdefault(("min", r.min, r.too_small), []).append(r.name)
    for (_, size, why), names in seen.items():
        if all(r.fixed for r in ranges if r.name in names):
            lines.append(f"with other weights, {_join(names)} >= {size}: below that, {why}")
        else:
            lines.append(f"{_join(names)} >= {size}: below that, {why}")
    capped: dict[int, list[str]] = {}
    for r in ranges:
        if r.within_budget is not None:
            capped.setdefault(r.within_budget, []).append(r.name)
    for (size, budget), names in capped.items():
        lines.append(f"with other weights, {_join(names)} <= {size:,} (one at a time, the rest as the spec has "
                     f"them): above that, the network has more than {budget:,} parameters (--max-params)")
    if any(r.method == "probed" for r in ranges):
        lines.append("(found by probing sizes: netspec could not derive them for "
                     + _join([r.name for r in ranges if r.method == "probed"]) + ")")
    return lines


def describe(ranges: list[DimRange]) -> str:
    """The one-line summary, e.g. 'H, W >= 29; any size'."""
    if not ranges:
        return "a vector input: no spatial size to choose"
    if any(r.min is None for r in ranges):
        bad = [r.name for r in ranges if r.min is None]
        return f"no size up to the spec's own works for {_join(bad)}"
    fixed = [r for r in ranges if r.fixed]
    parts = []
    if fixed:
        sizes = {r.spec for r in fixed}
        names = _join([r.name for r in fixed])
        size = " x ".join(str(r.spec) for r in fixed) if len(sizes) > 1 else str(fixed[0].spec)
        spans = {r.fixed for r in fixed}
        extra = ""
        if any(lo != hi for lo, hi in spans):
            extra = " (" + "; ".join(f"{r.name} in {r.fixed[0]}..{r.fixed[1]}" for r in fixed) + \
                    " give the same weights)" if len(spans) > 1 else \
                    f" ({fixed[0].fixed[0]}..{fixed[0].fixed[1]} give the same weights)"
        parts.append(f"{names} must be {size} because {fixed[0].reason}{extra}")
    free = [r for r in ranges if not r.fixed]
    if free:
        mins = {r.min for r in free}
        if mins == {1} and not any(r.period > 1 for r in free):
            parts.append(f"any {_join([r.name for r in free])}")
            return "; ".join(parts)
        span = lambda r: (f"in {{{', '.join(map(str, r.only))}}}" if r.only is not None  # noqa: E731
                          else f"in {r.min}..{r.max}" if r.max is not None else f">= {r.min}")
        if len({span(r) for r in free}) == 1:
            parts.append(f"{_join([r.name for r in free])} {span(free[0])}")
        else:
            parts.append(", ".join(f"{r.name} {span(r)}" for r in free))
        periodic = [r for r in free if r.period > 1 and r.only is None]
        if not periodic and all(r.max is None for r in free):
            parts[-1] += "; any size"
        if len(periodic) > 1 and len({(r.period, tuple(r.residues), tuple(r.extra)) for r in periodic}) == 1:
            periodic = [DimRange(_join([r.name for r in periodic]), 0, 0, periodic[0].period,
                                 periodic[0].residues, extra=periodic[0].extra)]
        for r in periodic:
            if r.residues == [0]:
                text = f"{r.name} divisible by {r.period}"
            else:
                text = f"{r.name} % {r.period} in {{{', '.join(map(str, r.residues))}}}"
            if r.extra:
                text += f" (or {_runs(r.extra)})"
            parts.append(text)
    return "; ".join(parts)
