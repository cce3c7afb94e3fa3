"""The benchmarks' own arithmetic and inputs: what they report must mean what it says.

Timings are never asserted (RESULTS.md holds them); these check that the
depth curve's generated networks are the architectures they are named after,
that the line fit is a least-squares fit, and that the runner's CPU layout
default picks, for the zoo, the layout `benchmarks/layout.py` measured faster.
"""

from __future__ import annotations

import sys

import pytest
import torch

from conftest import REPO, SPECS

sys.path.insert(0, str(REPO))

import netspec  # noqa: E402
from benchmarks import static  # noqa: E402
from netspec.train.loop import default_channels_last  # noqa: E402


def test_the_fit_recovers_a_line_and_scores_scatter_below_one():
    xs = [69, 125, 175, 345, 3345]
    slope, intercept, r2 = static.fit(xs, [0.5 + 0.02 * x for x in xs])
    assert slope == pytest.approx(0.02) and intercept == pytest.approx(0.5) and r2 == pytest.approx(1.0)
    assert static.fit(xs, [1, 3, 2, 5, 4])[2] < 0.9


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet152", "densenet169", "densenet201"])
def test_a_generated_depth_network_is_the_torchvision_architecture_of_its_name(name):
    torchvision = pytest.importorskip("torchvision")
    net = netspec.load_text(static.depth_texts()[name], f"<{name}>")
    reference = getattr(torchvision.models, name)()
    assert net.n_params == sum(p.numel() for p in reference.parameters())
    convs = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in reference.modules())
    assert static._weight_layers(net) == convs


@pytest.mark.parametrize("name, extra", [("resnet1001", 4), ("densenet1001", 0), ("densenet264", 1)])
def test_the_deep_generated_networks_have_the_weight_layers_their_names_count(name, extra):
    """As ResNet-1001 counts: convs and the classifier, not the shortcut projections (4 here). DenseNet-264's
    block sizes (6, 12, 64, 48, from the paper's table) give 265 as DenseNet-121's count: the name is one short."""
    net = netspec.load_text(static.depth_texts()[name], f"<{name}>")
    assert static._weight_layers(net) == int(name.removeprefix("resnet").removeprefix("densenet")) + extra


def test_the_cpu_layout_default_is_nchw_for_lenet_alone_in_the_book_zoo():
    """benchmarks/layout.py: LeNet trained 0.77-0.90x as fast in channels-last, the wide networks were not
    consistently slower in it."""
    cpu = torch.device("cpu")
    picks = {spec.stem: default_channels_last(cpu, netspec.compile(str(spec)))
             for spec in sorted(SPECS.glob("*.yaml"))}
    assert picks.pop("lenet_bn") is False and "resnet18" in picks
    assert all(picks.values()), picks


def test_a_quick_run_keeps_its_numbers_apart_from_the_quoted_ones(tmp_path, monkeypatch):
    import json

    from benchmarks import common, run

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    assert run.main(["--quick", "no-such-benchmark"]) == 2  # refused, after choosing where to write
    assert common.RESULTS_DIR == tmp_path / "results" / "quick"
    path = common.save("static", {"rows": []})
    assert path == tmp_path / "results" / "quick" / "static.json"
    assert json.loads(path.read_text())["command"] == "python -m benchmarks.run static --quick"
    assert not (tmp_path / "results" / "static.json").exists()
    assert [p.name for p in path.parent.iterdir()] == ["static.json"]  # no temporary file left beside it


def test_the_gpu_section_runs_its_whole_path_on_the_cpu(monkeypatch, capsys):
    """A GPU is lent rarely and for minutes (benchmarks/gpu_run.sh): the section it runs must have run
    before. Here it runs as written, on the CPU with a tiny subset: the book's loop and two netspec
    variants as real processes, two epochs each, then the table and the verdict."""
    from conftest import data_dir

    from benchmarks import e2e

    if data_dir() is None:
        pytest.skip("real Fashion-MNIST not found ($NETSPEC_DATA or ../shared/data)")
    monkeypatch.setenv("NETSPEC_DATA", str(data_dir()))
    variants = {"netspec (defaults)": [], "netspec --compile aot_eager": ["--compile", "aot_eager"]}
    result = e2e.gpu_section(device="cpu", cases={"lenet_bn": (None, 64, 0.9, 256, 128)}, variants=variants)
    (run,) = result["gpu"]
    assert set(run["rate"]) == {"book", *variants} and all(rate > 0 for rate in run["rate"].values())
    assert all(0 <= acc <= 1 for acc in run["test_acc"].values())
    assert all("--device cpu" in command and "--epochs 2" in command for command in run["commands"].values())
    assert "--compile aot_eager" in run["commands"]["netspec --compile aot_eager"]
    assert [row[3] for row in result["gpu_rows"]] == ["book", *variants]
    best = max(run["rate"][k] for k in variants) / run["rate"]["book"]
    assert result["target_gpu"] == [best >= 3, [best]]
    printed = capsys.readouterr().out
    assert "GPU: cpu, second epoch of two" in printed and "target ≥3× on GPU" in printed


def test_the_gpu_benchmark_says_so_and_writes_nothing_without_cuda(tmp_path, monkeypatch, capsys):
    from benchmarks import common, gpu

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: this checks the machines without one")
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert gpu.run() == {"gpu": None}
    assert "No CUDA device" in capsys.readouterr().out and not list(tmp_path.iterdir())


def test_the_aten_call_record_tells_a_copy_from_a_network_that_differs_in_one_layer():
    """benchmarks/overhead.py explains its timed ratios by equal ATen calls: the record must see one changed op."""
    from benchmarks import overhead

    ref, net, shape = overhead.pair("lenet_bn")
    calls = overhead.aten_calls(ref, shape)
    assert calls == overhead.aten_calls(net, shape)
    assert any("convolution_backward" in op for op, _ in calls)  # the backward is in the record
    setattr(net.b2, "2", torch.nn.Tanh())  # its sigmoid
    assert overhead.aten_calls(net, shape) != calls


def test_the_host_side_timing_sees_python_time_that_one_side_adds():
    """A forward hook that sleeps 2 ms makes netspec's side at least that much slower: the batch-0 timing
    measures the Python side of a step and nothing cancels it out."""
    import time

    from benchmarks import overhead

    ref, net, shape = overhead.pair("lenet_bn")
    net.fc3.register_forward_hook(lambda *_: time.sleep(0.002))
    t = overhead.host_seconds(ref, net, shape, repeats=3)
    assert min(n - r for r, n in zip(t["reference"], t["netspec"])) > 0.0015
