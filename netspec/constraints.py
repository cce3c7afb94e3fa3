"""Which input sizes a network accepts, derived statically (no torch).

`netspec check --input-range` prints one line per spec, e.g.

    H, W >= 29; any size
    H, W must be 224 because flatten → linear(6400) at fc1.0 (224..227 give the same weights)
    H >= 10, W >= 10; H, W even

Method. The front end infers every shape in milliseconds, so the question
"does this spatial size work?" is answered by elaborating the spec at that
size (the document is parsed once; only elaboration is repeated). Every
shape rule (convolution, pooling, padding, flatten, adaptive pooling) is
monotone non-decreasing in the input size, so the spatial dimensions are
searched one at a time, the others held at the spec's values:

1. Smallest size: a binary search over [1, the spec's size] for the smallest
   `h` such that one of `h .. h+WINDOW-1` elaborates. The window keeps the
   predicate monotone even where only some residues are valid (see 3); the
   answer is the first valid size in that window.
2. Fixed size: a layer whose weights depend on the input size (a `linear`
   after `flatten`; adaptive pooling breaks the dependency) shows up as a
   parameter count that changes with `h`. Then the trained weights fit only
   the sizes that give the spec's parameter count, an interval found by two
   more binary searches (parameter counts are monotone in `h` too); the
   first node whose parameter count differs is named as the reason.
3. Divisibility: branches with different strides merged by `add`/`concat`
   (e.g. a ceil-mode and a floor-mode downsampling) only agree for some
   residues. The sizes `min .. min+SCAN-1` are tried; if some fail, the
   smallest period `p` (up to SCAN/2) that explains the pattern is reported
   with the valid residues (`H % 4 == 0`).

The result is exact for the sizes it tries and relies on monotonicity only
for the ones it skips; periods above SCAN/2 are not detected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import SpecError

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

    def as_dict(self) -> dict:
        return {"name": self.name, "spec": self.spec, "min": self.min, "period": self.period,
                "residues": self.residues, "fixed": list(self.fixed) if self.fixed else None,
                "reason": self.reason, "too_small": self.too_small, "extra": self.extra}


class _Probe:
    """Elaborates one parsed spec at many input sizes, with a cache."""

    def __init__(self, path, params=None, input=None, text: str | None = None):
        from .api import _elaborate
        from .elaborate import DEFAULT_MAX_PARAMS
        from .load import load_file, load_text

        if text is None:
            self.doc, self.text = load_file(path)
        else:
            self.doc, self.text = load_text(text, str(path)), text
        self.path, self.params = str(path), params
        self._elaborate = _elaborate
        self.max_params = DEFAULT_MAX_PARAMS
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
        key = tuple(shape)
        if key not in self.cache:
            self.cache[key] = self.run(key)
        return self.cache[key]

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


def input_range(path, params=None, input=None, text: str | None = None) -> list[DimRange]:
    """One DimRange per spatial dimension of the input (none for a vector input)."""
    probe = _Probe(path, params, input, text)
    spatial = len(probe.shape) - 1
    names = DIM_NAMES.get(spatial, tuple(f"dim{i + 1}" for i in range(spatial)))
    return [_dimension(probe, axis + 1, names[axis]) for axis in range(spatial)]


def _join(names: list[str]) -> str:
    return ", ".join(names)


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
        if len(mins) == 1:
            parts.append(f"{_join([r.name for r in free])} >= {free[0].min}")
        else:
            parts.append(", ".join(f"{r.name} >= {r.min}" for r in free))
        periodic = [r for r in free if r.period > 1]
        if not periodic:
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
                text += f" (or {', '.join(map(str, r.extra))})"
            parts.append(text)
    return "; ".join(parts)
