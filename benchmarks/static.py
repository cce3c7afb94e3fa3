"""1. Static analysis speed: every shape of a spec, versus the ways people get shapes today.

netspec: `netspec.load` (read, validate, elaborate, infer every shape, count
parameters and FLOPs) plus `netspec.infer` (the table of rows), in-process.

Baselines, on the same network already built (their model construction and
`import torch` are *not* timed, which flatters them):
  (a) `torchinfo.summary(model, input_size=(1, C, H, W), verbose=0)`;
  (b) a forward pass on the `meta` device with a forward hook on every module
      collecting output shapes.
Each baseline is timed with PyTorch's default threads and with one thread,
and the faster counts. The book models use the plain-PyTorch references of tests/reference_models.py,
the torchvision specs torchvision.models; where a reference cannot take the
input size (LeNet hard-codes Linear(16*4*4)), the netspec-built module is used.

Also: one fresh process each way (`netspec check` versus `python -c "import
torch...; torchinfo.summary(...)"`), and time versus depth for ResNet
18/34/50/101/152, DenseNet 121/169/201/264 and a generated 1,001-layer ResNet
and DenseNet, with a least-squares line through (nodes, ms) per family.
"""

from __future__ import annotations

import sys

from . import common
from .common import ROOT, SPECS, interleaved, median, ms, table, x

# (row name, spec file, spec params, reference name in tests/reference_models.MODELS)
BOOK = [
    ("alexnet", "alexnet.yaml", {}, "alexnet"),
    ("vgg11", "vgg11.yaml", {}, "vgg11"),
    ("vgg11 ratio=4", "vgg11.yaml", {"ratio": 4}, "vgg11_ratio4"),
    ("nin", "nin.yaml", {}, "nin"),
    ("googlenet", "googlenet.yaml", {}, "googlenet"),
    ("lenet_bn", "lenet_bn.yaml", {}, "lenet_bn"),
    ("resnet18", "resnet18.yaml", {}, "resnet18"),
    ("densenet", "densenet.yaml", {}, "densenet"),
]
TORCHVISION = ["resnet18", "resnet50", "vgg16_bn", "alexnet", "densenet121", "mobilenet_v2"]

RESNET_BLOCKS = {  # name -> (block template, blocks per stage)
    "resnet18": ("basic_block", [2, 2, 2, 2]),
    "resnet34": ("basic_block", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
    # 333 bottleneck blocks x 3 convs + stem conv + fc = 1,001 weight layers (as ResNet-1001 counts)
    "resnet1001": ("bottleneck", [3, 8, 311, 11]),
}
DENSENET_BLOCKS = {
    "densenet121": [6, 12, 24, 16],
    "densenet169": [6, 12, 32, 32],
    "densenet201": [6, 12, 48, 32],
    "densenet264": [6, 12, 64, 48],  # the paper's deepest ImageNet DenseNet (265 weight layers as 121 counts)
    # 498 dense layers x 2 convs + 3 transition convs + stem conv + classifier = 1,001 weight layers
    "densenet1001": [6, 12, 400, 80],
}


def _reference_models():
    sys.path.insert(0, str(ROOT / "tests"))
    import reference_models
    return reference_models


def _torchinfo(model, shape):
    import torchinfo

    def run():
        torchinfo.summary(model, input_size=(1, *shape), verbose=0, device="cpu", mode="eval")
    return run


def _meta_forward(model_fn, shape):
    """Build the model on the meta device once; the timed call is a hooked forward."""
    import torch

    with torch.device("meta"):
        model = model_fn().eval()
    shapes = []

    def hook(module, inputs, output):
        shapes.append(tuple(output.shape) if hasattr(output, "shape") else None)

    for module in model.modules():
        module.register_forward_hook(hook)

    def run():
        shapes.clear()
        with torch.no_grad():
            model(torch.empty(1, *shape, device="meta"))
        return shapes
    return run


def _netspec(path, params, shape, first: bool = False):
    """netspec.load + netspec.infer; with `first`, after `netspec.api.forget()`: what the first load in
    a process costs (built-in templates parsed, nothing remembered from earlier loads)."""
    import netspec
    from netspec.api import forget

    def run():
        if first:
            forget()
        net = netspec.load(path, params, shape)
        return netspec.infer(net)
    return run


def _cases(quick: bool):
    """(row, input shape, spec path, params, model constructor, seed?, note)."""
    import torch

    rm = _reference_models()
    cases = []
    for name, spec, params, ref in BOOK:
        builder, book_shape = rm.MODELS[ref][0], rm.MODELS[ref][1]
        for shape in dict.fromkeys([book_shape, (1, 224, 224)]):
            model_fn, note = builder, ""
            try:  # can the hand-written reference take this input at all?
                with torch.device("meta"):
                    builder().eval()(torch.empty(2, *shape, device="meta"))
            except RuntimeError:
                import netspec
                model_fn, note = (lambda s=spec, p=params, sh=shape: netspec.compile(str(SPECS / s), sh, p)), \
                    "netspec-built module (the reference hard-codes its input size)"
            cases.append((name, shape, str(SPECS / spec), params, model_fn, True, note))
    import torchvision.models as tvm
    for name in TORCHVISION:
        cases.append((f"torchvision/{name}", (3, 224, 224), str(SPECS / "torchvision" / f"{name}.yaml"), {},
                      getattr(tvm, name), False, "torchvision.models"))
    if quick:
        cases = [c for c in cases if c[0] in ("resnet18", "lenet_bn", "torchvision/resnet18")]
    return cases


def _threads(fn, n: int):
    """`fn` run with PyTorch at `n` intra-op threads."""
    import torch

    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)
    return run


def zoo(quick: bool = False) -> dict:
    """Each baseline at its best: the faster (by median) of PyTorch's default threads and one thread.

    On a shared 2-core machine a 2-thread forward collapses when another process
    holds a core (RESULTS.md); taking the faster setting keeps that collapse
    from flattering netspec.

    Every spec's functions take part in one round-robin: a round times each
    function of each spec once, so a spec's samples are spread over the whole
    section instead of a second or two of it, and a slow spell of the machine
    falls on a round of every row rather than on every round of one row.
    Within a round, a spec's functions run back to back, as before. The first
    loads (after `forget`) are timed afterwards, spec by spec.
    """
    import torch

    rows, raw = [], []
    default_threads = torch.get_num_threads()
    cases, models, fns = _cases(quick), [], {}
    for index, (name, shape, path, params, model_fn, seed, note) in enumerate(cases):
        models.append(model_fn().eval())
        info, meta = _torchinfo(models[-1], shape), _meta_forward(model_fn, shape)
        own = {"netspec": _netspec(path, params, shape), "torchinfo": info, "meta": meta}
        if default_threads > 1:
            own.update({"torchinfo 1 thread": _threads(info, 1), "meta 1 thread": _threads(meta, 1)})
        fns.update({(index, label): fn for label, fn in own.items()})
    print(f"  {len(cases)} specs, {len(fns)} functions, timed round-robin", flush=True)
    times = interleaved(fns, repeats=3 if quick else 5, warmup=2)
    for index, (name, shape, path, params, model_fn, seed, note) in enumerate(cases):
        t = {label: samples for (case, label), samples in times.items() if case == index}
        # apart, spec by spec: `forget` would otherwise leave the next spec's warm calls cold
        t.update(interleaved({"netspec first load": _netspec(path, params, shape, True)},
                             repeats=3 if quick else 5, warmup=2))
        n = median(t["netspec"])
        ti = min(median(v) for k, v in t.items() if k.startswith("torchinfo"))
        me = min(median(v) for k, v in t.items() if k.startswith("meta"))
        first = median(t["netspec first load"])
        rows.append([name, "×".join(map(str, shape)), ms(n), ms(ti), ms(me), x(ti / n), x(me / n),
                     ("yes" if n < 0.020 else "NO") if seed else "", ms(first), x(ti / first)])
        raw.append({"name": name, "input": shape, "seconds": t, "netspec_s": t["netspec"], "torchinfo_best_s": ti,
                    "meta_best_s": me, "seed": seed, "baseline_model": note or "tests/reference_models.py"})
        print(f"  {name} {shape}: netspec {ms(n)} ms, torchinfo {ms(ti)} ms, meta {ms(me)} ms", flush=True)
    del models
    return {"rows": rows, "raw": raw, "default_threads": default_threads}


def parsers(zoo_raw: list, quick: bool) -> dict:
    """netspec.load as shipped (libyaml's parser for plain text) versus PyYAML's pure-Python parser.

    The second is what a user whose PyYAML lacks libyaml gets; results are equal (tests/test_load.py).
    """
    import yaml

    module = sys.modules["netspec.load"]
    if not getattr(yaml, "__with_libyaml__", False) or module._C_LOADER is None:
        return {"rows": [], "note": "PyYAML here has no libyaml"}
    rows, raw = [], []
    for entry in zoo_raw:
        if entry["name"] not in ("resnet18", "torchvision/resnet18") or tuple(entry["input"])[1:] != (224, 224):
            continue
        path = str(SPECS / ("torchvision/resnet18.yaml" if "/" in entry["name"] else "resnet18.yaml"))
        shape = tuple(entry["input"])
        shipped = _netspec(path, {}, shape)

        def pure_python():
            saved, module._C_LOADER = module._C_LOADER, None
            try:
                return shipped()
            finally:
                module._C_LOADER = saved
        assert pure_python() == shipped(), "the parsers disagree"
        t = interleaved({"libyaml": shipped, "pure Python": pure_python}, repeats=5 if quick else 15, warmup=3)
        ti = entry["torchinfo_best_s"]
        rows.append([entry["name"], "×".join(map(str, shape)), ms(median(t["libyaml"])), ms(median(t["pure Python"])),
                     x(median(t["pure Python"]) / median(t["libyaml"])), x(ti / median(t["pure Python"]))])
        raw.append({"name": entry["name"], "seconds": t, "torchinfo_best_s": ti})
    return {"rows": rows, "raw": raw}


def fresh_process(repeats: int = 3) -> dict:
    """One cold process each way, for torchvision resnet18 at 224 (imports included)."""
    spec = str(SPECS / "torchvision" / "resnet18.yaml")
    py = sys.executable
    cmds = {
        "netspec check": [py, "-m", "netspec", "check", spec],
        "torch + torchinfo": [py, "-c", "import torch, torchvision, torchinfo; torchinfo.summary("
                              "torchvision.models.resnet18(), input_size=(1, 3, 224, 224), verbose=0)"],
        "torch + meta forward": [py, "-c", "import torch, torchvision\n"
                                 "with torch.device('meta'): m = torchvision.models.resnet18().eval()\n"
                                 "s = []\n"
                                 "for mod in m.modules(): mod.register_forward_hook(lambda *a: s.append(a[2].shape))\n"
                                 "m(torch.empty(1, 3, 224, 224, device='meta'))"],
    }
    fns = {k: (lambda c=c: common.run_cmd(c)) for k, c in cmds.items()}
    t = interleaved(fns, repeats=repeats, warmup=1, inner=1)
    base = median(t["netspec check"])
    rows = [[k, f"{median(v):.2f}", x(median(v) / base)] for k, v in t.items()]
    return {"rows": rows, "raw": t, "commands": {k: " ".join(c[1:]) for k, c in cmds.items()}}


# --- depth scaling --------------------------------------------------------------

def resnet_text(name: str, block: str, counts: list[int]) -> str:
    """A torchvision-layout ResNet (as specs/torchvision/resnet*.yaml) with any blocks per stage."""
    key = "out" if block == "basic_block" else "width"
    lines = [
        "netspec: 1", f"name: {name}", "input: [3, 224, 224]", "params: {classes: 1000}", "network:",
        "  - {id: conv1, conv: {out: 64, kernel: 7, stride: 2, padding: 3, bias: false}}",
        "  - {id: bn1, batchnorm}", "  - {id: relu, relu}",
        "  - {id: maxpool, maxpool: {kernel: 3, stride: 2, padding: 1}}",
    ]
    for i, (width, n) in enumerate(zip([64, 128, 256, 512], counts)):
        stride = ", stride: 2" if i else ""
        layers = [f"{{{block}: {{{key}: {width}{stride}}}}}"]
        if n > 1:
            layers.append(f"{{{block}: {{{key}: {width}}}, repeat: {n - 1}}}")
        lines += [f"  - group: layer{i + 1}", f"    layers: [{', '.join(layers)}]"]
    lines += ["  - {id: avgpool, adaptive_avgpool: 1}", "  - {id: flatten, flatten}", "  - {id: fc, linear: $classes}"]
    return "\n".join(lines) + "\n"


def densenet_text(name: str, blocks: list[int]) -> str:
    """specs/torchvision/densenet121.yaml with another name and block_config."""
    import re

    text = (SPECS / "torchvision" / "densenet121.yaml").read_text()
    text = re.sub(r"^name: .*$", f"name: {name}", text, flags=re.M)
    text, n = re.subn(r"block_config: \[[0-9, ]+\]", f"block_config: {blocks}", text)
    assert n == 1, "densenet121.yaml no longer declares block_config"
    return text


def depth_texts() -> dict[str, str]:
    texts = {name: resnet_text(name, block, counts) for name, (block, counts) in RESNET_BLOCKS.items()}
    texts.update({name: densenet_text(name, blocks) for name, blocks in DENSENET_BLOCKS.items()})
    return texts


def _weight_layers(net) -> int:
    return sum(1 for node, _ in net.nodes() if not node.group and node.op in ("conv", "linear"))


def scaling(quick: bool = False) -> dict:
    import netspec

    texts = depth_texts()
    nets = {name: netspec.load_text(text, f"<{name}>") for name, text in texts.items()}
    fns = {name: (lambda t=text, n=name: netspec.infer(netspec.load_text(t, f"<{n}>"))) for name, text in texts.items()}
    # each sample averages calls filling ~50 ms, so that one interruption cannot bend the line
    t = interleaved(fns, repeats=3 if quick else 9, warmup=1, target_s=0.05)
    points = []
    for name, net in nets.items():
        nodes = sum(1 for node, _ in net.nodes() if not node.group)
        groups = sum(1 for node, _ in net.nodes() if node.group)
        points.append((name, nodes, groups, _weight_layers(net), net.n_params, median(t[name])))
    families = {"all": points,
                "ResNet (basic + bottleneck)": [p for p in points if p[0].startswith("resnet")],
                "DenseNet": [p for p in points if p[0].startswith("densenet")]}
    fits = {}
    for family, pts in families.items():
        slope, intercept, r2 = fit([p[1] for p in pts], [p[5] * 1e3 for p in pts])
        fits[family] = {"slope_ms_per_node": slope, "intercept_ms": intercept, "r2": r2, "n": len(pts)}
    rows = []
    for name, nodes, groups, layers, params, sec in sorted(points, key=lambda p: p[1]):
        f = fits["DenseNet" if name.startswith("densenet") else "ResNet (basic + bottleneck)"]
        rows.append([name, f"{layers:,}", f"{nodes:,}", f"{groups:,}", f"{params / 1e6:.1f} M", f"{sec * 1e3:.1f}",
                     f"{sec * 1e6 / nodes:.1f}", f"{f['intercept_ms'] + f['slope_ms_per_node'] * nodes:.1f}"])
    fit_rows = [[family, f["n"], f"{f['slope_ms_per_node'] * 1e3:.1f}", f"{f['intercept_ms']:.2f}", f"{f['r2']:.4f}"]
                for family, f in fits.items()]
    return {"rows": rows, "fits": fits, "fit_rows": fit_rows, "raw": dict(t), "points": points}


def fit(xs, ys):
    """Least squares y = a + b x; (b, a, R²)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((v - mx) ** 2 for v in xs)
    sxy = sum((u - mx) * (v - my) for u, v in zip(xs, ys))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((v - (a + b * u)) ** 2 for u, v in zip(xs, ys))
    ss_tot = sum((v - my) ** 2 for v in ys)
    return b, a, 1 - ss_res / ss_tot


def run(quick: bool = False) -> dict:
    common.header("1. Static analysis speed")
    z = zoo(quick)
    print(table(["spec", "input", "netspec ms", "torchinfo ms", "meta fwd ms", "vs torchinfo", "vs meta",
                 "< 20 ms", "first load ms", "first load vs torchinfo"], z["rows"]))
    print("\nnetspec = netspec.load + netspec.infer in-process (YAML text to every shape, params and FLOPs); "
          "baselines on the model already built, `import torch` not counted, each the faster of PyTorch's "
          f"default ({z['default_threads']}) threads and one thread. Medians of interleaved repeats. "
          "The spec is read, parsed, substituted and inferred on every load; what netspec keeps between "
          "loads (built-in templates parsed once, with their layers' plans; memos of scalars, expressions, "
          "validated parameters, shape rules, ids and template arguments) is dropped before each 'first load' call "
          "(netspec.api.forget), which then costs what the first load in a fresh process does.")
    key = {r[0] + r[1]: r for r in z["rows"]}
    targets = {}
    for label, row in (("book resnet18 @224", "resnet181×224×224"), ("torchvision resnet18 @224",
                                                                       "torchvision/resnet183×224×224")):
        if row in key:
            ratio = float(key[row][5].rstrip("×"))
            targets[f"≥50× vs torchinfo, {label}"] = (ratio >= 50, key[row][5])
    seeds = [r for r in z["rows"] if r[7]]
    worst = max(seeds, key=lambda r: float(r[2]))
    targets["every seed spec < 20 ms"] = (all(r[7] == "yes" for r in seeds),
                                          f"slowest {worst[0]} @{worst[1]}: {worst[2]} ms")

    w = parsers(z["raw"], quick)
    if w["rows"]:
        print("\nnetspec as shipped parses plain YAML with libyaml's C parser; where PyYAML lacks libyaml it falls "
              "back to the pure-Python parser (same result):\n")
        print(table(["spec", "input", "netspec ms", "pure-Python parser ms", "libyaml speed-up",
                     "pure Python vs torchinfo"], w["rows"]))

    f = fresh_process(1)  # a 14× gap of whole seconds: one interleaved round shows it
    print("\nA fresh process each way (torchvision resnet18, 3×224×224), seconds, imports included:\n")
    print(table(["command", "seconds", "× netspec check"], f["rows"]))

    s = scaling(quick)
    print("\nTime versus depth (netspec.load_text + infer, 3×224×224):\n")
    print(table(["network", "conv+linear layers", "op nodes", "groups", "params", "ms", "µs per node",
                 "fit ms"], s["rows"]))
    print("\nLeast-squares lines ms = a + b × op nodes (fit ms above uses the row's family):\n")
    print(table(["family", "networks", "b: µs per node", "a: ms", "R²"], s["fit_rows"]))
    worst = min(f["r2"] for k, f in s["fits"].items() if k != "all")
    targets["linear in depth (R² ≥ 0.99 within each family)"] = (
        worst >= 0.99, "; ".join(f"{k}: {f['slope_ms_per_node'] * 1e3:.1f} µs/node, R² {f['r2']:.4f}"
                                 for k, f in s["fits"].items()))
    print()
    for k, (ok, v) in targets.items():
        print(f"- target {k}: {common.verdict(ok)} ({v})")
    result = {"zoo": z, "parsers": w, "fresh": f, "scaling": s, "targets": {k: [ok, v] for k, (ok, v) in targets.items()}}
    common.save("static", result)
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv)
