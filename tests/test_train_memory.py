"""Kept memory (netspec.train.memory): freed big blocks are reused without page faults while kept, and given
back to the system when the block ends; the runner keeps memory for CPU training unless told not to."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.train import loop, memory
from netspec.train.memory import glibc

from test_train_cli import SPEC

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(glibc() is None, reason="kept memory needs glibc's mallopt (Linux)")

# In a fresh process (glibc's state untouched by earlier tests): page faults of filling a 64 MiB tensor after
# three that were filled and freed, with glibc's defaults, then inside kept(); and the resident memory inside
# kept() after the last free and after kept() ended.
PROBE = textwrap.dedent("""
    import json, resource, torch
    from netspec.train.memory import kept

    PAGES = 64 * 2**20 // resource.getpagesize()

    def faults():
        for _ in range(3):
            torch.ones(PAGES * resource.getpagesize() // 4)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(PAGES * resource.getpagesize() // 4)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def rss_pages():
        return int(open("/proc/self/statm").read().split()[1])

    plain = faults()
    with kept() as on:
        inside = faults()
        rss_inside = rss_pages()
    print(json.dumps({"pages": PAGES, "plain": plain, "on": on, "inside": inside,
                      "given_back": rss_inside - rss_pages()}))
""")


def probe() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_freed_block_is_reused_without_faults_while_kept_and_given_back_after():
    """The best of up to three fresh processes: once in a CI run every page faulted again inside kept()
    (25 of 25 probes reused them all when tried again); the machine, a VM that reclaims memory, may take
    pages back now and then. Kept memory that never worked would fail all three."""
    r = probe()
    for _ in range(2):
        if r["plain"] < r["pages"] // 2 or r["inside"] < r["pages"] // 20:
            break
        r = min(r, probe(), key=lambda result: result["inside"])
    if r["plain"] < r["pages"] // 2:
        pytest.skip("this system does not fault a big block's pages afresh (huge pages?): nothing to save")
    assert r["on"]
    assert r["inside"] < r["pages"] // 20  # reused: the pages stayed in the process
    assert r["given_back"] > r["pages"] * 0.8  # the block's pages left the process when kept() ended


@pytest.mark.parametrize("flag, keeps", [([], True), (["--no-keep-memory"], False), (["--keep-memory"], True)])
def test_cpu_training_keeps_memory_by_default_and_the_flag_turns_it_off(tmp_path, monkeypatch, flag, keeps):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text(SPEC)
    entered, real = [], memory.kept

    def spy(enabled=True):
        cm = real(enabled)
        entered.append(enabled)
        return cm

    monkeypatch.setattr(loop, "kept", spy)
    assert main(["train", "small.yaml", "--quiet", "--device", "cpu", "--out", "run", *flag]) == 0
    assert entered == [keeps]
    assert json.loads(Path("run/config.json").read_text())["config"]["keep_memory"] == (
        {"--no-keep-memory": False, "--keep-memory": True}[flag[0]] if flag else None)
