"""The Python API: load, infer and compile a spec."""

from __future__ import annotations

import functools
import gc
import hashlib
import json
from pathlib import Path

from . import templates as template_sets
from .elaborate import DEFAULT_MAX_PARAMS, Elaborator, Scope
from .errors import Pos, SpecError, did_you_mean
from .ir import Network
from .load import Map, load_file, load_text as parse_text
from .ops.base import MAX_INT
from .spec import SpecDocument, validate


def _gc_paused(read):
    """`read` with Python's cyclic garbage collector paused, and restored as it was after.

    Reading and elaborating allocate many small objects and make no garbage
    cycles worth collecting, while each full collection walks every object
    the process holds: paused, a 1,000-layer network loads about 2x faster
    (benchmarks/RESULTS.md, section 1, "On the AVX-512 machine")."""
    @functools.wraps(read)
    def paused(*args, **kwargs):
        if not gc.isenabled():
            return read(*args, **kwargs)
        gc.disable()
        try:
            return read(*args, **kwargs)
        finally:
            gc.enable()
    return paused


@_gc_paused
def load(path, params: dict | None = None, input=None, max_params: int = DEFAULT_MAX_PARAMS) -> Network:
    """Read, validate and elaborate a spec file; every shape is known afterwards."""
    doc, text = load_file(path)
    return _elaborate(doc, text, str(path), params, input, max_params)


@_gc_paused
def load_text(text: str, path: str = "<string>", params: dict | None = None, input=None,
              max_params: int = DEFAULT_MAX_PARAMS) -> Network:
    """Like `load`, for spec text held in memory (`path` is used for messages and `use:`)."""
    return _elaborate(parse_text(text, path), text, path, params, input, max_params)


def _elaborate(doc, text: str, path: str, params, input, max_params) -> Network:
    spec = validate(SpecDocument, doc, path)
    values = resolve_params(doc, spec.params, params or {}, path)
    shape = tuple(input) if input is not None else tuple(spec.input)
    if not shape or any(not isinstance(d, int) or isinstance(d, bool) or not 1 <= d <= MAX_INT for d in shape):
        raise SpecError(doc.at("input"), f"input {list(shape)} must be positive integers [C, H, W], "
                        f"each at most {MAX_INT:,}")
    elaborator = Elaborator(template_sets.for_spec(doc, path), max_params=max_params)
    root = Scope("", values, shape)
    elaborator.sequence(doc["network"], root, values, doc.at("network"))
    node = elaborator.group_node(spec.name, "network", doc.at("network"), root, root.values["input"], values)
    return Network(spec.name, shape, values, node, path, text, spec.train)


def resolve_params(doc: Map, defaults: dict, overrides: dict, path: str) -> dict:
    """Spec params with overrides applied; an override must name a param and keep its type."""
    values = dict(defaults)
    for name, value in overrides.items():
        if name not in defaults:
            raise SpecError(doc.at("params") if "params" in doc else Pos(path, 1, 1),
                            f"unknown param '{name}' given on the command line",
                            hint=did_you_mean(name, defaults) or
                            f"the spec's params are: {', '.join(defaults) or 'none'}")
        default, given = defaults[name], value
        if isinstance(value, str) and not isinstance(default, str):
            if not value.strip():
                raise SpecError(doc["params"].at(name), f"param '{name}' is {_kind(default)} here, but the "
                                f"override -p {name}= gives no value", hint=f"e.g. -p {name}={default}")
            value = _scalar(value)
        if type(default) is float and type(value) is int:
            value = float(value)
        if type(value) is not type(default):
            raise SpecError(doc["params"].at(name),
                            f"param '{name}' is {_kind(default)} here, but the override {given!r} is "
                            f"{_kind(value)}")
        values[name] = value
    return values


def _kind(value) -> str:
    """A value's type in the spec's words."""
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _scalar(text: str):
    import yaml

    from .load import SafeLoader

    try:
        return yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return text


def parse_assignments(items) -> dict:
    """`["classes=100", "ratio=4"]` -> {"classes": "100", "ratio": "4"} (typed later)."""
    result = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SpecError(Pos("<command line>", 1, 1), f"-p expects NAME=VALUE, got '{item}'")
        result[name.strip()] = value.strip()
    return result


def _network(spec, input=None, params=None) -> Network:
    if isinstance(spec, Network):
        if (input is None or tuple(input) == spec.input) and not params:
            return spec
        merged = {**spec.params, **(params or {})}
        return load_text(spec.text, spec.file, merged, input if input is not None else spec.input)
    return load(spec, params, input)


def infer(spec, input=None, params=None) -> list[dict]:
    """The shape table: one row per node (path, op, shape with None batch, params, flops)."""
    from .report import rows

    return rows(_network(spec, input, params))


def compile(spec, input=None, params=None):
    """Build the `nn.Module` tree (torch.fx GraphModules) for a spec path or loaded Network."""
    from .build import build

    return build(_network(spec, input, params))


def spec_hash(network: Network) -> str:
    """Identifies the compiled architecture: spec text, resolved params and input."""
    payload = json.dumps({"text": network.text, "params": network.params, "input": list(network.input)},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def forget() -> None:
    """Drop what netspec keeps between loads in this process: the parsed built-in templates and their
    layers' plans, and the memos of scalars, expressions, parameters, shape rules, ids and template arguments. The next
    load then costs what the first one in a fresh process does (imports aside); benchmarks time it."""
    from . import elaborate, expr
    from .load import _TAGS, _VALUES

    template_sets.builtins.cache_clear()
    expr._parsed.cache_clear()
    for memo in (elaborate._VALIDATED, elaborate._RULES, elaborate._ARGS, elaborate._BARE_PLANS, elaborate._GOOD_NAMES,
                 _TAGS, _VALUES):
        memo.clear()


def source_dir(network: Network) -> Path:
    return Path(network.file).parent
