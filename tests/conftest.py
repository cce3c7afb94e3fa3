"""Shared test setup: hypothesis profiles, paths, and writing specs to disk."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
sys.path.insert(0, str(Path(__file__).parent))

# `ci`: a fixed, modest number of examples so the suite fits in CI on 2 cores.
# `thorough`: thousands, for local runs: HYPOTHESIS_PROFILE=thorough make test
settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def overcommits_always() -> bool:
    """vm.overcommit_memory=1: an allocation of terabytes may succeed, and the kernel kill the process when
    it touches the pages; tests that ask for one to fail skip there."""
    try:
        return Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1"
    except OSError:
        return False


def data_dir() -> Path | None:
    """Real Fashion-MNIST: $NETSPEC_DATA, else ../shared/data beside the repository."""
    for candidate in (os.environ.get("NETSPEC_DATA"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "FashionMNIST" / "raw").is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec (dedented) to a file and return its path."""

    def write(text: str, name: str = "net.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


def spec_text(layers: str, input=(1, 8, 8), extra: str = "") -> str:
    """A minimal spec around a YAML block of layers (indented by two)."""
    body = textwrap.indent(textwrap.dedent(layers).strip("\n"), "  ")
    return f"netspec: 1\nname: t\ninput: {list(input)}\n{extra}network:\n{body}\n"
