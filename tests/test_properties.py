"""Generated networks, end to end from YAML text: what netspec says without
running anything is what PyTorch does.

* every node's static shape equals the shape a real forward pass gives
  (forward hooks on the compiled module, matched by node path; `meta` device,
  and CPU for a sample);
* the static parameter count equals `sum(p.numel())`; static FLOPs equal
  `torch.utils.flop_counter` (conv and linear);
* netspec rejects a generated network, with an error located in the file,
  exactly when the same network built by hand in PyTorch raises (the hand
  build is `Torch` below: an interpreter of the plain document over torch.nn,
  written from PyTorch's and the papers' definitions, sharing no code with
  netspec);
* load -> dump -> load is stable, and the JSON Schema accepts every generated
  valid document.

Examples per property scale with the hypothesis profile (conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import torch
import yaml
from conftest import REPO
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st
from strategies import OPS, STRUCTURES, TEMPLATES, Case, cases
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torch_reference import torch_layer

import netspec
from netspec.errors import SpecError
from netspec.load import Map, Seq, load_text as parse_yaml

BATCH = 2
PATH = "gen.yaml"
CALLS = {"add", "mul", "concat"}  # ops built as a function call, not a module
TEMPLATE_DIR = REPO / "netspec" / "templates"


def scaled(factor: float, **kwargs) -> settings:
    """The loaded profile's example count times `factor` (so `thorough` scales every property)."""
    return settings(max_examples=max(5, int(settings.default.max_examples * factor)),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], **kwargs)


# -- PyTorch by hand -------------------------------------------------------------
PRIMARY = {"conv": "out", "linear": "out", "dropout": "p", "leaky_relu": "slope", "softmax": "dim",
           "maxpool": "kernel", "avgpool": "kernel", "adaptive_avgpool": "size", "adaptive_maxpool": "size"}
META = ("id", "from", "if", "repeat", "doc")


def make_layer(op: str, p: dict, shapes):
    """The torch.nn module (or function) a person writes for one op."""
    rank = len(shapes[0])
    if op == "batchnorm":
        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[rank]
        return cls(shapes[0][0], eps=p.get("eps", 1e-5), momentum=p.get("momentum", 0.1),
                   affine=p.get("affine", True))
    if op == "layernorm":
        return nn.LayerNorm(list(shapes[0][rank - p.get("dims", 1):]), eps=p.get("eps", 1e-5),
                            elementwise_affine=p.get("affine", True))
    if op == "leaky_relu":
        return nn.LeakyReLU(p.get("slope", 0.01))
    if op == "gelu":
        return nn.GELU(approximate=p.get("approximate", "none"))
    return torch_layer(op, p, shapes)


class Torch:
    """Runs a plain (expression-free) spec document with torch.nn, recording each node's shape.

    Node paths follow the language's naming (an `id` or group name, else the
    node's index in its group); inside a template instance only the instance's
    own output is recorded.
    """

    def __init__(self, device: str):
        self.device = device
        self.shapes: dict[str, tuple] = {}
        self.n_params = 0

    def run(self, doc: dict) -> torch.Tensor:
        x = torch.randn(BATCH, *doc["input"], device=self.device)
        scope = {"values": {"input": x}, "prev": x, "count": 0, "path": ""}
        self.sequence(doc["network"], scope)
        return scope["prev"]

    # building blocks
    def op(self, op: str, p: dict, *xs):
        with torch.device(self.device):
            layer = make_layer(op, p, [tuple(x.shape[1:]) for x in xs])
        if isinstance(layer, nn.Module):
            self.n_params += sum(t.numel() for t in layer.parameters())
            layer.eval()
        return layer(*xs)

    def record(self, scope, name: str, value) -> None:
        path = f"{scope['path']}.{name}" if scope["path"] else name
        self.shapes[path] = tuple(value.shape[1:])
        scope["values"][name] = value
        scope["prev"] = value
        scope["count"] += 1

    def sequence(self, items, scope) -> None:
        for item in items:
            self.layer(item, scope)

    def layer(self, item, scope) -> None:
        meta = {k: v for k, v in item.items() if k in META} if isinstance(item, dict) else {}
        kind = item if isinstance(item, str) else self.kind(item)
        refs = meta.get("from")
        refs = [refs] if isinstance(refs, str) else refs
        first = scope["values"][refs[0]] if refs else scope["prev"]
        if meta.get("if", True) is False:  # skipped: passes its input through, under its name
            name = meta.get("id") or (item.get("group") if kind == "group" else None)
            if name:
                scope["values"][name] = first
            scope["prev"] = first
            return
        for index in range(meta.get("repeat", 1)):
            copy = dict(item) if isinstance(item, dict) else {item: None}
            if "id" in copy:
                copy["id"] = copy["id"].replace("${i}", str(index))
            if index >= 1:  # `from` feeds the first copy; the rest chain
                copy.pop("from", None)
            self.one(kind, copy, scope)

    @staticmethod
    def kind(item: dict) -> str:
        for key in ("group", "parallel"):
            if key in item:
                return key
        keys = [k for k in item if k not in META]
        return "layers" if keys == ["layers"] else keys[0]

    def one(self, kind: str, item: dict, scope) -> None:
        refs = item.get("from")
        refs = [refs] if isinstance(refs, str) else refs
        start = scope["values"][refs[0]] if refs else scope["prev"]
        if kind == "layers":
            scope["prev"] = start
            self.sequence(item["layers"], scope)
        elif kind == "group":
            name = item["group"] if item["group"] is not None else str(scope["count"])
            path = f"{scope['path']}.{name}" if scope["path"] else name
            child = {"values": {"input": start}, "prev": start, "count": 0, "path": path}
            self.sequence(item["layers"], child)
            self.record(scope, name, child["prev"])
        elif kind == "parallel":
            outputs = []
            for branch in item["parallel"]:
                scope["prev"] = start
                if isinstance(branch, list):
                    self.sequence(branch, scope)
                else:
                    self.layer(branch, scope)
                outputs.append(scope["prev"])
            merge = item.get("merge", "concat")
            op, p = (merge, {}) if isinstance(merge, str) else next(iter(merge.items()))
            self.record(scope, item.get("id") or str(scope["count"]), self.op(op, p or {}, *outputs))
        elif kind in TEMPLATE_RUNNERS:
            args = item.get(kind) or {}
            out = TEMPLATE_RUNNERS[kind](self, start, **args)
            self.record(scope, item.get("id") or str(scope["count"]), out)
        else:
            value = item.get(kind)
            if isinstance(value, list) and kind in CALLS:  # `add: [a, b]`: the inputs
                inputs, p = [scope["values"][r] for r in value], {}
            else:
                inputs = [scope["values"][r] for r in refs] if refs else [scope["prev"]]
                p = value if isinstance(value, dict) else ({} if value is None else {PRIMARY[kind]: value})
            self.record(scope, item.get("id") or str(scope["count"]), self.op(kind, p, *inputs))


# The built-in templates, from their sources (D2L 8.4/8.6/8.7; torchvision's
# BasicBlock, Bottleneck, Conv2dNormActivation, InvertedResidual, _DenseLayer,
# _DenseBlock, _Transition), written directly against torch.nn.
def _conv(t, x, out, kernel, stride=1, padding=0, groups=1, bias=True):
    return t.op("conv", dict(out=out, kernel=kernel, stride=stride, padding=padding, groups=groups, bias=bias), x)


def _bn(t, x):
    return t.op("batchnorm", {}, x)


def residual(t, x, out, stride=1, project=None):
    project = stride != 1 or x.shape[1] != out if project is None else project
    y = torch.relu(_bn(t, _conv(t, x, out, 3, stride, 1)))
    y = _bn(t, _conv(t, y, out, 3, 1, 1))
    return torch.relu(y + (_conv(t, x, out, 1, stride) if project else x))


def basic_block(t, x, out, stride=1, project=None):
    project = stride != 1 or x.shape[1] != out if project is None else project
    y = torch.relu(_bn(t, _conv(t, x, out, 3, stride, 1, bias=False)))
    y = _bn(t, _conv(t, y, out, 3, 1, 1, bias=False))
    return torch.relu(y + (_bn(t, _conv(t, x, out, 1, stride, bias=False)) if project else x))


def bottleneck(t, x, width, out=None, stride=1, groups=1, project=None):
    out = 4 * width if out is None else out
    project = stride != 1 or x.shape[1] != out if project is None else project
    y = torch.relu(_bn(t, _conv(t, x, width, 1, bias=False)))
    y = torch.relu(_bn(t, _conv(t, y, width, 3, stride, 1, groups, bias=False)))
    y = _bn(t, _conv(t, y, out, 1, bias=False))
    return torch.relu(y + (_bn(t, _conv(t, x, out, 1, stride, bias=False)) if project else x))


def conv_bn_relu6(t, x, out, kernel=3, stride=1, groups=1):
    return nn.functional.relu6(_bn(t, _conv(t, x, out, kernel, stride, (kernel - 1) // 2, groups, bias=False)))


def inverted_residual(t, x, out, expand, stride=1, residual=None):
    residual = stride == 1 and x.shape[1] == out if residual is None else residual
    y = conv_bn_relu6(t, x, x.shape[1] * expand, kernel=1) if expand != 1 else x
    y = conv_bn_relu6(t, y, y.shape[1], stride=stride, groups=y.shape[1])
    y = _bn(t, _conv(t, y, out, 1, bias=False))
    return x + y if residual else y


def inception(t, x, c1, c2, c3, c4):
    p1 = torch.relu(_conv(t, x, c1, 1))
    p2 = torch.relu(_conv(t, torch.relu(_conv(t, x, c2[0], 1)), c2[1], 3, padding=1))
    p3 = torch.relu(_conv(t, torch.relu(_conv(t, x, c3[0], 1)), c3[1], 5, padding=2))
    p4 = torch.relu(_conv(t, t.op("maxpool", dict(kernel=3, stride=1, padding=1), x), c4, 1))
    return torch.cat([p1, p2, p3, p4], dim=1)


def dense_layer(t, x, growth):
    return torch.cat([x, _conv(t, torch.relu(_bn(t, x)), growth, 3, padding=1)], dim=1)


def dense(t, x, layers, growth):
    for _ in range(layers):
        x = dense_layer(t, x, growth)
    return x


def transition(t, x, out=None):
    out = x.shape[1] // 2 if out is None else out
    return t.op("avgpool", dict(kernel=2, stride=2), _conv(t, torch.relu(_bn(t, x)), out, 1))


def densenet_layer(t, x, growth, bn_size=4):
    y = _conv(t, torch.relu(_bn(t, x)), bn_size * growth, 1, bias=False)
    return torch.cat([x, _conv(t, torch.relu(_bn(t, y)), growth, 3, padding=1, bias=False)], dim=1)


def densenet_block(t, x, layers, growth, bn_size=4):
    for _ in range(layers):
        x = densenet_layer(t, x, growth, bn_size)
    return x


def densenet_transition(t, x, out=None):
    out = x.shape[1] // 2 if out is None else out
    return t.op("avgpool", dict(kernel=2), _conv(t, torch.relu(_bn(t, x)), out, 1, bias=False))


TEMPLATE_RUNNERS = {f.__name__: f for f in (
    residual, basic_block, bottleneck, conv_bn_relu6, inverted_residual, inception, dense_layer,
    dense, transition, densenet_layer, densenet_block, densenet_transition)}
TORCH_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


def by_hand(case: Case, device: str = "cpu"):
    """(Torch interpreter after the run, output) or the exception PyTorch raised."""
    runner = Torch(device)
    try:
        with torch.no_grad():
            out = runner.run(case.plain)
    except TORCH_ERRORS as exc:
        return exc, None
    return runner, out


# -- netspec ---------------------------------------------------------------------
def elaborate(case: Case):
    """netspec's answer for the case's YAML text: a Network or the SpecError."""
    text = case.yaml()
    try:
        note(text)
    except InvalidArgument:  # not inside a hypothesis test
        pass
    try:
        return netspec.load_text(text, PATH)
    except SpecError as err:
        return err


def assert_located(err: SpecError, text: str) -> None:
    """The error names a real line and column: in the spec, or in a template file the chain leads to."""
    pos = err.pos
    if pos.file == PATH:
        lines = text.splitlines()
    else:
        assert Path(pos.file).parent == TEMPLATE_DIR, err.format()
        lines = Path(pos.file).read_text().splitlines()
        assert err.diagnostic.chain and err.diagnostic.chain[0].pos.file == PATH, err.format()
    assert 1 <= pos.line <= len(lines), err.format()
    assert 1 <= pos.col <= len(lines[pos.line - 1]) + 1, err.format()
    assert "\n" not in err.message and err.message, err.format()


def forward_with_hooks(model: nn.Module, x: torch.Tensor):
    """Output, and {module path: (input shapes, output shape)} without the batch."""
    seen = {}

    def hook(name):
        def record(module, inputs, output):
            seen[name] = ([tuple(i.shape[1:]) for i in inputs], tuple(output.shape[1:]))
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if name]
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, seen


def check_nodes_against_hooks(network, seen) -> int:
    checked = 0
    for node, _ in network.nodes():
        if node.group or node.op not in CALLS:
            assert node.path in seen, f"no module ran for node {node.path} ({node.op})"
        if node.path in seen:
            ins, out = seen[node.path]
            assert out == node.shape, f"{node.path} ({node.op}): static {node.shape}, forward {out}"
            assert ins == [tuple(s) for s in node.in_shapes], f"{node.path} inputs: static {node.in_shapes}, forward {ins}"
            checked += 1
    return checked


def template_paths(network) -> set[str]:
    """Paths of nodes inside template instances (the hand build records only the instance)."""
    inside = set()
    for node, _ in network.nodes():
        if node.group and node.op in TEMPLATES:
            inside |= {child.path for child, _ in node.walk()}
    return inside


def compiled(network, device: str):
    with torch.device(device):
        return netspec.compile(network)


def count_events(case: Case) -> None:
    for kind in sorted(case.used):
        event(kind)


# -- the properties -------------------------------------------------------------------
@scaled(3.0)
@given(case=cases(), cpu=st.integers(0, 4))
def test_static_shapes_equal_the_forward_pass_at_every_node(case, cpu):
    network = elaborate(case)
    assert not isinstance(network, SpecError), network.format()
    assert network.output == case.expected
    count_events(case)
    devices = ["meta"]
    if cpu == 0 and network.flops < 20_000_000:  # a sample on real memory too
        devices.append("cpu")
        event("also on CPU")
    for device in devices:
        model = compiled(network, device)
        x = torch.randn(BATCH, *network.input, device=device)
        out, seen = forward_with_hooks(model, x)
        assert tuple(out.shape) == (BATCH, *network.output)
        check_nodes_against_hooks(network, seen)


@scaled(2.0)
@given(case=cases())
def test_static_params_and_flops_equal_pytorch(case):
    network = elaborate(case)
    assert not isinstance(network, SpecError), network.format()
    model = compiled(network, "meta")
    assert network.n_params == sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(BATCH, *network.input, device="meta"))
    assert network.flops * BATCH == counter.get_total_flops()
    assert sum(n.flops for n in network.root.children) == network.flops


def agree_with_pytorch(case: Case) -> None:
    """On CPU: the meta device is no oracle for rejection (it skips some checks, e.g. softmax's dim)."""
    ours = elaborate(case)
    theirs, out = by_hand(case, "cpu")
    if isinstance(theirs, Exception):
        assert isinstance(ours, SpecError), f"PyTorch raised {theirs!r}, netspec accepted the spec"
        assert_located(ours, case.yaml())
        event("rejected by both")
        return
    assert not isinstance(ours, SpecError), f"netspec rejected what PyTorch runs:\n{ours.format()}"
    event("accepted by both")
    assert ours.output == tuple(out.shape[1:])
    assert ours.n_params == theirs.n_params
    inside = template_paths(ours)
    static = {node.path: node.shape for node, _ in ours.nodes() if node.path not in inside}
    assert static == theirs.shapes


@scaled(10.0)
@given(case=cases(risk=35))
def test_rejected_statically_iff_pytorch_raises(case):
    event("risky choice" if case.risky else "no risky choice")
    agree_with_pytorch(case)


@pytest.mark.parametrize("focus", [*OPS, *TEMPLATES, *STRUCTURES])
def test_every_op_template_and_structure_agrees_with_pytorch(focus):
    """Each op, template and structure, in a generated network, valid or not."""

    @scaled(0.5)
    @given(case=cases(risk=30, focus=focus))
    def check(case):
        assume(focus in case.used)  # (a risky choice may end the network before it)
        agree_with_pytorch(case)

    check()


def plain(value):
    """Map/Seq -> dict/list, recursively."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def positions_in_bounds(value, lines: list[str]) -> int:
    count = 0
    if isinstance(value, (Map, Seq)):
        positions = [value.pos, *(value.item_pos if isinstance(value, Seq) else
                                  [*value.key_pos.values(), *value.val_pos.values()])]
        for pos in positions:
            assert 1 <= pos.line <= len(lines) and 1 <= pos.col <= len(lines[pos.line - 1]) + 1, pos
            count += 1
        for child in (value.values() if isinstance(value, Map) else value):
            count += positions_in_bounds(child, lines)
    return count


def summary(network) -> list:
    return [(n.path, n.op, n.shape, n.n_params, n.flops) for n, _ in network.nodes()]


@scaled(1.0)
@given(case=cases(), flow=st.sampled_from([False, True, None]), width=st.sampled_from([80, 30, 1000]))
def test_load_dump_load_is_stable(case, flow, width):
    text = case.yaml()
    loaded = parse_yaml(text, PATH)
    assert plain(loaded) == case.written                    # load . dump = identity on the document
    assert positions_in_bounds(loaded, text.splitlines()) > 0
    again = yaml.safe_dump(plain(loaded), sort_keys=False)
    assert again == text                                    # dump . load = identity on the text
    restyled = yaml.safe_dump(plain(loaded), sort_keys=False, default_flow_style=flow, width=width)
    assert plain(parse_yaml(restyled, PATH)) == case.written
    first, second = netspec.load_text(text, PATH), netspec.load_text(restyled, PATH)
    assert summary(first) == summary(second)


@pytest.fixture(scope="module")
def validator():
    schema = json.loads((REPO / "schema" / "netspec.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@scaled(5.0)
@given(case=cases())
def test_json_schema_accepts_every_generated_valid_document(validator, case):
    errors = sorted(validator.iter_errors(case.written), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:300]}" for e in errors[:3])


def test_the_generators_cover_every_op_and_built_in_template():
    """A new op or template must be added to tests/strategies.py (and to the hand build)."""
    from netspec import ops
    from netspec.templates import builtins

    assert set(ops.REGISTRY) <= set(OPS), f"not generated: {sorted(set(ops.REGISTRY) - set(OPS))}"
    assert set(builtins()) == set(TEMPLATES) == set(TEMPLATE_RUNNERS)


def test_the_hand_build_catches_what_it_should():
    """The PyTorch side of the comparison is not vacuous: it raises, and it counts parameters."""
    bad = {"netspec": 1, "name": "t", "input": [3, 4, 4],
           "network": [{"id": "a", "conv": {"out": 5, "kernel": 1}}, {"add": ["a", "input"]}]}
    case = Case(bad, bad, (3, 4, 4), None, True)
    assert isinstance(by_hand(case)[0], RuntimeError)
    assert isinstance(elaborate(case), SpecError)
    good = {**bad, "network": [{"residual": {"out": 4, "stride": 2}}, "flatten", {"linear": 3}]}
    runner, out = by_hand(Case(good, good, (3, 4, 4), None, False))
    network = netspec.load_text(yaml.safe_dump(good), PATH)
    assert tuple(out.shape) == (BATCH, 3) and runner.n_params == network.n_params > 0
    assert runner.shapes == {"0": (4, 2, 2), "1": (16,), "2": (3,)}
