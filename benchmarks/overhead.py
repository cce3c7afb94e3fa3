"""2. Zero-overhead compile: netspec's module versus the hand-written one, same weights.

Per seed model: forward + backward (cross-entropy, gradients zeroed by
set_to_none) at batch 32, float32, CPU, at the book's resolution; the
plain-PyTorch reference of tests/reference_models.py against the module
`netspec.compile` builds from specs/, its weights copied from the reference
(the state_dicts list the same tensors in the same order). Both eager, and
both under `torch.compile` (inductor).

The figure is netspec's throughput over the reference's: the median over
rounds of t_reference / t_netspec, where each round times one step of each
back to back, the order alternating (6 s of rounds per model, at least 5; a sample is
one step, or as many as fill 0.25 s for LeNet). 1.00 means no overhead.

vgg11 runs at ratio=4 (the width the book trains; full width is 12 s a step
here). `torch.compile` covers lenet_bn and resnet18 by default (compiling
costs about a minute per model and side on 2 cores); --full compiles all.
"""

from __future__ import annotations

import sys
from collections import OrderedDict

from . import common
from .common import ROOT, SPECS, interleaved, median, median_ci, quartiles, table

# seed model -> (spec, params, reference name)
SEEDS = {
    "alexnet": ("alexnet.yaml", {}, "alexnet"),
    "vgg11 ratio=4": ("vgg11.yaml", {"ratio": 4}, "vgg11_ratio4"),
    "nin": ("nin.yaml", {}, "nin"),
    "googlenet": ("googlenet.yaml", {}, "googlenet"),
    "lenet_bn": ("lenet_bn.yaml", {}, "lenet_bn"),
    "resnet18": ("resnet18.yaml", {}, "resnet18"),
    "densenet": ("densenet.yaml", {}, "densenet"),
}
COMPILED_DEFAULT = ("lenet_bn", "resnet18")
BATCH = 32
LOW, HIGH = 0.98, 1.02
BUDGET_S = 6  # seconds of timed rounds per model and mode (after warm-up), at least 5 rounds


def pair(name: str):
    """(reference module, netspec module with the reference's weights, input shape)."""
    import torch

    import netspec
    sys.path.insert(0, str(ROOT / "tests"))
    import reference_models as rm

    spec, params, ref_name = SEEDS[name]
    builder, shape = rm.MODELS[ref_name][0], rm.MODELS[ref_name][1]
    torch.manual_seed(0)
    ref = builder()
    net = netspec.compile(str(SPECS / spec), shape, params)
    src, dst = ref.state_dict(), net.state_dict()
    assert len(src) == len(dst) and all(a.shape == b.shape for a, b in zip(src.values(), dst.values())), name
    net.load_state_dict(OrderedDict(zip(dst.keys(), src.values())), strict=True)
    return ref.train(), net.train(), shape


def step_fn(model, x, y):
    import torch.nn.functional as F

    def step():
        for p in model.parameters():
            p.grad = None
        F.cross_entropy(model(x), y).backward()
    return step


def measure(name: str, compiled: bool, repeats: int, budget_s: float) -> dict:
    import torch

    ref, net, shape = pair(name)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, *shape, generator=g)
    y = torch.randint(0, 10, (BATCH,), generator=g)
    if compiled:
        import torch._dynamo
        torch._dynamo.reset()
        ref, net = torch.compile(ref), torch.compile(net)
    with torch.no_grad():  # same function: same output for the same input (eval mode, no dropout)
        ref.eval(), net.eval()
        diff = (ref(x[:4]) - net(x[:4])).abs().max().item()
        ref.train(), net.train()
    fns = {"reference": step_fn(ref, x, y), "netspec": step_fn(net, x, y)}
    for fn in fns.values():  # warm-up (and, under torch.compile, compiling) outside the timing; with the
        fn()                 # warm-up round of `interleaved`, two untimed steps each (three when compiled)
        if compiled:
            fn()
    t = interleaved(fns, repeats=repeats, warmup=1, target_s=0.25, budget_s=budget_s)
    r, n = t["reference"], t["netspec"]
    per_round = [a / b for a, b in zip(r, n)]
    return {"name": name, "compiled": compiled, "input": shape, "max_abs_diff": diff, "rounds": len(r),
            "reference_s": r, "netspec_s": n, "ratio_paired": median(per_round), "iqr": quartiles(per_round), "ci95": median_ci(per_round),
            "ratio_medians": median(r) / median(n),
            "ref_img_s": BATCH / median(r), "netspec_img_s": BATCH / median(n)}


def run(quick: bool = False, full: bool = False) -> dict:
    common.header("2. Zero-overhead compile (forward + backward, batch 32, float32, CPU)")
    names = ["lenet_bn", "resnet18"] if quick else list(SEEDS)
    compiled = list(SEEDS) if full else [n for n in COMPILED_DEFAULT if n in names]
    results = []
    for mode, models in (("eager", names), ("torch.compile", compiled)):
        for name in models:
            res = measure(name, mode != "eager", repeats=3 if quick else 5, budget_s=3 if quick else BUDGET_S)
            results.append(res)
            print(f"  {name} {mode}: ratio {res['ratio_paired']:.3f}", flush=True)
    rows = [[r["name"], "×".join(map(str, r["input"])), "compile" if r["compiled"] else "eager",
             f"{r['ref_img_s']:.1f}", f"{r['netspec_img_s']:.1f}", f"{r['ratio_paired']:.3f}",
             f"{r['ci95'][0]:.3f}–{r['ci95'][1]:.3f}", f"{r['iqr'][0]:.3f}–{r['iqr'][1]:.3f}", r["rounds"], f"{r['ratio_medians']:.3f}",
             f"{r['max_abs_diff']:.1e}",
             "yes" if LOW <= r["ratio_paired"] <= HIGH else "NO",
             "yes" if r["ci95"][0] <= 1 <= r["ci95"][1] else "no"] for r in results]
    print(table(["model", "input", "mode", "reference img/s", "netspec img/s", "netspec/ref (paired)",
                 "95% CI", "quartiles", "rounds", "ratio of medians", "max |Δ| out", f"in {LOW}–{HIGH}", "CI holds 1.00"], rows))
    ratios = [r["ratio_paired"] for r in results]
    ok = all(LOW <= v <= HIGH for v in ratios)
    print("\n95% CI: bootstrap interval of the median per-round ratio; where it holds 1.00, this run "
          "cannot tell netspec's module from the hand-written one.")
    print(f"\n- target ratio within {LOW}–{HIGH}: {common.verdict(ok)} "
          f"(range {min(ratios):.3f}–{max(ratios):.3f}, median {median(ratios):.3f}; "
          f"95% CI holds 1.00 for {sum(r['ci95'][0] <= 1 <= r['ci95'][1] for r in results)} of {len(results)})")
    result = {"results": results, "rows": rows, "target": [ok, [min(ratios), max(ratios)]]}
    common.save("overhead", result)
    return result


if __name__ == "__main__":
    run("--quick" in sys.argv, "--full" in sys.argv)
