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
@pytest.mark.parametrize("spec,expand", [(spec, 0) for spec in SPECS] + [
    ("specs/resnet18.yaml", None), ("specs/googlenet.yaml", 2), ("specs/torchvision/resnet18.yaml", 1)])
def test_svg_counts_nodes(spec, expand, tmp_path):
    network = netspec.load(spec)
    path = tmp_path / "g.svg"
    diagram = graph.write(network, path, expand)
    nodes = svg_nodes(path)
    assert len(nodes) == len(diagram.boxes())
    edges = [g for g in ET.parse(path).getroot().iter(f"{SVG}g") if g.get("class") == "edge"]
    assert len(edges) == len(diagram.edges)
    # every edge is labelled with its shape
    labels = [t.text for g in edges for t in g.iter(f"{SVG}text")]
    assert all(label and label.strip().startswith("(N") for label in labels), labels
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


def test_written_files_get_the_usual_permissions(tmp_path):
    """Not mkstemp's private 0600: a diagram (or schema, or emitted file) is for sharing."""
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = tmp_path / "g.dot"
        graph.write(netspec.load("specs/lenet_bn.yaml"), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(umask)


MERMAID_LINE = [
    r"^---$", r"^title: \".*\"$", r"^flowchart (TD|LR)$",
    r"^ *(?P<node>n\d+)(\(\[|\(\(|\[)\"[^\"]*\"(\]\)|\)\)|\])$",
    r"^ *subgraph (?P<sub>cluster_\d+)\[\"[^\"]*\"\]$", r"^ *end$",
    r"^  (?P<src>n\d+) -->\|\"\(N[^\"]*\)\"\| (?P<dst>n\d+)$",
    r"^  classDef \w+ fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6}$", r"^  class [\w,]+ \w+$",
]


def check_mermaid(text: str) -> int:
    """A structural check of what we emit: known line forms, quoted labels, nodes declared
    before edges use them, balanced subgraphs. Returns the number of nodes."""
    import re

    declared, depth = set(), 0
    for line in text.splitlines():
        match = next((m for m in (re.match(p, line) for p in MERMAID_LINE) if m), None)
        assert match, f"unexpected Mermaid line: {line!r}"
        groups = match.groupdict()
        if groups.get("node"):
            assert groups["node"] not in declared
            declared.add(groups["node"])
        if groups.get("sub"):
            depth += 1
        if line.strip() == "end":
            depth -= 1
            assert depth >= 0
        if groups.get("src"):
            assert groups["src"] in declared and groups["dst"] in declared
    assert depth == 0
    return len(declared)


@pytest.mark.parametrize("spec", SPECS)
def test_mermaid_is_well_formed(spec):
    network = netspec.load(spec)
    for expand in (0, 1, None):
        diagram = graph.build_diagram(network, expand)
        assert check_mermaid(graph.mermaid_text(diagram)) == len(diagram.boxes())


def test_expand_opens_groups_as_clusters():
    network = netspec.load("specs/resnet18.yaml")
    closed, one, full = (graph.build_diagram(network, e) for e in (0, 1, None))
    assert not closed.clusters() and len(closed.boxes()) == 2 + len(network.root.children)
    assert [c.label.split(" · ")[0] for c in one.clusters()] == ["b1", "stage1", "stage2", "stage3", "stage4"]
    assert len(full.boxes()) == 2 + sum(1 for n, _ in network.nodes() if not n.group)
    # a residual's shortcut reads the block's input: an edge from the previous block's last op
    dot = graph.dot_text(full)
    assert "label=\" (N, 64, 24, 24)\"" in dot


@pytest.mark.parametrize("script", ["echo 'Format: \"svg\" not recognized' >&2; exit 1", "kill -9 $$"])
def test_failing_dot_is_a_clear_error(tmp_path, monkeypatch, capsys, script):
    """A dot that fails (a build without the format, a crash) is the user's setup: one line, rc 2."""
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    out = tmp_path / "r.svg"
    assert main(["graph", "specs/lenet_bn.yaml", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: Graphviz's dot ({fake}) failed to draw the SVG (exit "), err
    assert "internal error" not in err and "Traceback" not in err
    assert not out.exists()
