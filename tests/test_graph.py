"""`netspec graph`: DOT and Mermaid for the whole zoo, SVG through Graphviz checked node by node."""

import glob
import xml.etree.ElementTree as ET

import pytest

import netspec
from netspec import graph
from netspec.cli import main

SPECS = sorted(glob.glob("specs/*.yaml") + glob.glob("specs/torchvision/*.yaml"))
SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("expand", [0, None])
def test_dot_and_mermaid(spec, expand, tmp_path):
    network = netspec.load(spec)
    diagram = graph.build_diagram(network, expand)
    for suffix in (".dot", ".mmd"):
        path = tmp_path / f"g{suffix}"
        graph.write(network, path, expand)
        text = path.read_text()
        for box in diagram.boxes():
            assert box.id in text
    dot = (tmp_path / "g.dot").read_text()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("->") == len(diagram.edges)
    assert (tmp_path / "g.mmd").read_text().count("-->|") == len(diagram.edges)


def svg_nodes(path):
    root = ET.parse(path).getroot()
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "node"]


@pytest.mark.skipif(not graph.have_dot(), reason="Graphviz not installed")
@pytest.mark.parametrize("spec,expand", [("specs/resnet18.yaml", None), ("specs/googlenet.yaml", 0),
                                         ("specs/torchvision/resnet18.yaml", 1)])
def test_svg_counts_nodes(spec, expand, tmp_path):
    network = netspec.load(spec)
    path = tmp_path / "g.svg"
    diagram = graph.write(network, path, expand)
    assert len(svg_nodes(path)) == len(diagram.boxes())
    clusters = [g for g in ET.parse(path).getroot().iter(f"{SVG}g") if g.get("class") == "cluster"]
    assert len(clusters) == len(diagram.clusters())


def test_cli_graph(tmp_path, capsys):
    out = tmp_path / "r.mmd"
    assert main(["graph", "specs/resnet18.yaml", "-o", str(out), "--expand"]) == 0
    assert out.read_text().count("subgraph") > 0
    assert main(["graph", "specs/resnet18.yaml", "-o", str(tmp_path / "r.txt")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(graph.shutil, "which", lambda name: None)
    out = tmp_path / "r.svg"
    assert main(["graph", "specs/lenet_bn.yaml", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Graphviz" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["graph", "specs/lenet_bn.yaml", "-o", str(tmp_path / "r.dot")]) == 0
