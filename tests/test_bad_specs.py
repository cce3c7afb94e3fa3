"""The bad-spec corpus: every file in tests/bad_specs/ is refused by `netspec
check` (exit 2, no traceback) with exactly the error its `# expect:` lines
give (see tests/bad_specs/README.md for the format)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from netspec.cli import main

CORPUS = Path(__file__).parent / "bad_specs"
TEMPLATES = REPO / "netspec" / "templates"
FILES = sorted(CORPUS.glob("*.yaml"))


def expected(path: Path) -> list[str]:
    """The `# expect: ` lines at the top of the file (read as bytes: some files are not UTF-8)."""
    lines = []
    for raw in path.read_bytes().splitlines():
        line = raw.decode("utf-8", errors="replace")
        if not line.startswith("# expect: "):
            break
        lines.append(line[len("# expect: "):])
    return lines


def normalise(stderr: str, path: Path) -> list[str]:
    """The spec's own path is dropped, built-in templates become `templates/...`."""
    text = stderr.replace(f"{path}:", "").replace(f"{TEMPLATES}/", "templates/").replace(str(path.parent), "<here>")
    return text.rstrip("\n").split("\n")


def test_the_corpus_is_large_and_every_file_has_an_expectation():
    assert len(FILES) >= 40
    for path in FILES:
        assert expected(path), f"{path.name} has no '# expect:' line"
        assert "TODO" not in expected(path)[0], path.name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_bad_spec_gives_exactly_its_error(path, capsys):
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert normalise(captured.err, path) == expected(path)


@pytest.mark.parametrize("path", FILES[::7], ids=[p.stem for p in FILES[::7]])
def test_compile_reports_the_same_error(path, capsys):
    assert main(["compile", str(path)]) == 2
    assert normalise(capsys.readouterr().err, path) == expected(path)


def test_the_corpus_covers_every_kind_of_error():
    kinds = {p.stem.split("_")[0] for p in FILES}
    assert {"yaml", "doc", "layer", "param", "meta", "id", "group", "parallel", "shape", "ref",
            "template", "expr", "limit"} <= kinds
