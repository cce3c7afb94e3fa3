"""Fuzzing: every spec in specs/, mutated, through the CLI in-process.

Mutations: delete or duplicate a key, change a type, zero / negative / huge /
float sizes, an unknown op, a misspelt parameter, a dangling or cyclic
`from`, deep nesting, unicode, truncated YAML, tabs, stray YAML punctuation,
broken expressions, swapped or dropped layers. Whatever the mutation,
`netspec check` (and `netspec compile --no-build` on a sample) exits 0 or 2,
never raises or reports an internal error, and every error it prints names
FILE:LINE:COL inside the file (or inside a built-in template whose expansion
chain leads back to the file).

Also: the loader on arbitrary text, and the expression evaluator on
arbitrary expressions, raise nothing but their own errors.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SPECS
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from netspec.cli import main
from netspec.errors import SpecError
from netspec.expr import ExprError, evaluate, substitute
from netspec.load import load_text

SPEC_FILES = sorted(SPECS.rglob("*.yaml"))
TEMPLATES = REPO / "netspec" / "templates"
LINE_BREAKS = re.compile("\r\n|\r|\n|\x85|\u2028|\u2029")  # what YAML counts as a line break
ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): error: (?P<message>.+)$")
CHAIN_LINE = re.compile(r"^  in .+ from (?P<file>.+?):(?P<line>\d+):(?P<col>\d+)$")


def scaled(factor: float) -> settings:
    return settings(max_examples=max(3, int(settings.default.max_examples * factor)),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


# -- running the CLI ----------------------------------------------------------------------
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def lines_of(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return [""]
    return LINE_BREAKS.split(text)


def assert_inside(file: str, line: int, col: int, spec: Path, context: str) -> None:
    path = Path(file)
    assert path == spec or path.parent == TEMPLATES or path.parent == spec.parent, context
    lines = lines_of(path)
    lines = lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines  # no line after the last break
    assert 1 <= line <= len(lines), f"line {line} outside {path.name} ({len(lines)} lines)\n{context}"
    assert 1 <= col <= len(lines[line - 1]) + 1, f"column {col} outside line {line} of {path.name}\n{context}"


def assert_clean_result(rc: int, err: str, spec: Path) -> None:
    """Exit 0 or 2; on 2 every stderr line is a located error, a chain frame or a hint."""
    assert rc in (0, 2), f"exit {rc}:\n{err}"
    assert "internal error" not in err and "Traceback" not in err, err
    if rc == 0:
        assert err == "", err
        return
    lines = err.rstrip("\n").split("\n")
    assert ERROR_LINE.match(lines[0]), err
    for text in lines:
        if text.startswith("  hint: "):
            continue
        match = ERROR_LINE.match(text) or CHAIN_LINE.match(text)
        assert match, f"unexpected stderr line {text!r}\n{err}"
        assert_inside(match["file"], int(match["line"]), int(match["col"]), spec, err)
    first = ERROR_LINE.match(lines[0])
    if Path(first["file"]) != spec:  # inside a template: the chain starts in the spec
        frames = [CHAIN_LINE.match(t) for t in lines if CHAIN_LINE.match(t)]
        assert frames and Path(frames[-1]["file"]) == spec, err


# -- mutations --------------------------------------------------------------------------
def nodes(doc, path=()):
    """Every (container, key) in the document, depth first."""
    found = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.append((doc, key))
            found += nodes(value, path + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found.append((doc, index))
            found += nodes(value, path + (index,))
    return found


def layer_lists(doc) -> list[list]:
    """Lists that hold layers: the network, group layers, parallel branches, template graphs."""
    found = []

    def walk(value, is_layers):
        if isinstance(value, list):
            if is_layers:
                found.append(value)
            for item in value:
                walk(item, is_layers and isinstance(item, list))
                if is_layers and isinstance(item, dict):
                    for key, sub in item.items():
                        walk(sub, key in ("layers", "parallel", "graph"))
        elif isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, key in ("network", "layers", "parallel", "graph"))

    walk(doc, False)
    return found


def as_layer(item) -> dict:
    """A list item as a mapping that can take meta keys."""
    if isinstance(item, dict):
        return item
    if isinstance(item, list):
        return {"layers": item}
    return {item: None} if isinstance(item, (str, int, float, bool)) or item is None else {"layers": [item]}


def typo(word: str, rnd: random.Random) -> str:
    word = str(word)
    if len(word) < 2:
        return word + "x"
    i = rnd.randrange(len(word) - 1)
    kind = rnd.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + rnd.choice("aeiouxz") + word[i:]


SIZES = [0, -1, -7, 10**12, 10**100, 2.5, 1e308, -0.0, float("inf"), "3", True, None, [], {}, "${1/0}"]
TYPES = ["x", 1.5, True, None, [1, 2], {"a": 1}, [[1]], "", "relu", 7]
UNICODE = ["é", "日本", "\u200b", "\u202e", "с", "🙂", "\ufeff", "\x85", "\u2028", "Ω", "ﬁ", "\x00", "\x7f",
           "\x1b", "\x08", "\ud800", "\U0001f600"]
PUNCTUATION = list("{}[]:,-&*!|>'\"#%@`?\t") + ["\n", ": ", "- ", "<<: *x", "&a ", "*a", "---", "..."]
YAML_SCALARS = ["2024-01-01", "2001-12-14t21:59:43.10-05:00", "=", "yes", "off", "~", "0x1F", "0o17", "017",
                "1_000", ".inf", "-.inf", ".nan", "1e3", "0b101", "12:30:00", "!!str 3", "<<", "*x", "&x 3",
                "|\n  text", ">-\n  folded", "'quoted'", "\"\\u00e9\"", "[]", "{}", "null", "-", "? a"]
EXPRESSIONS = ["${in.channels}", "${in.nothing}", "${1 +}", "${x}", "$", "${", "${}", "${2 ** 64}",
               "${in.shape[9]}", "${[1][5]}", "${'a' + 1}", "${0 ** -1}", "${make_divisible(3, 0)}",
               "${-" * 3 + "1}", "${in.height // 0}", "${(-1) ** 0.5}", "${max()}", "$in", "${i}"]


def mutate_doc(doc, kind: str, rnd: random.Random):
    """A structural mutation of the loaded document (plain dicts and lists)."""
    spots = nodes(doc)
    if not spots:  # an earlier mutation left a bare scalar
        return doc
    if kind == "delete_key":
        maps = [(c, k) for c, k in spots if isinstance(c, dict)]
        if maps:
            container, key = rnd.choice(maps)
            del container[key]
    elif kind == "change_type":
        container, key = rnd.choice(spots)
        container[key] = rnd.choice(TYPES)
    elif kind == "size":
        ints = [(c, k) for c, k in spots if isinstance(c[k], int) and not isinstance(c[k], bool)]
        if ints:
            container, key = rnd.choice(ints)
            container[key] = rnd.choice(SIZES)
    elif kind == "unknown_op":
        lists = layer_lists(doc)
        if lists:
            target = rnd.choice(lists)
            target.insert(rnd.randrange(len(target) + 1), rnd.choice(
                ["frobnicate", {"frobnicate": {"out": 3}}, {"conv2d": {"out": 3, "kernel": 1}},
                 {"Conv": 3}, {"relu": None, "tanh": None}]))
    elif kind == "misspelt_param":
        maps = [(c, k) for c, k in spots if isinstance(c, dict)]
        if maps:
            container, key = rnd.choice(maps)
            container[typo(key, rnd)] = container.pop(key)
    elif kind in ("dangling_from", "cyclic_from"):
        lists = [lst for lst in layer_lists(doc) if lst]
        if lists:
            target = rnd.choice(lists)
            i = rnd.randrange(len(target))
            item = as_layer(target[i])
            if kind == "dangling_from" or i == len(target) - 1:
                item["from"] = rnd.choice(["nowhere", ["input", "nowhere"], "input.x", 3, ""])
            else:
                later = as_layer(target[i + 1])
                later.setdefault("id", "later")
                item["from"] = later["id"]
                target[i + 1] = later
            target[i] = item
    elif kind == "deep_nesting":
        lists = [lst for lst in layer_lists(doc) if lst]
        if lists:
            target = rnd.choice(lists)
            i = rnd.randrange(len(target))
            item = target[i]
            for depth in range(rnd.randrange(1, 50)):
                item = rnd.choice([{"group": f"g{depth}", "layers": [item]}, {"layers": [item]},
                                   {"parallel": [[item]]}, [item]])
            target[i] = item
    elif kind == "unicode":
        strings = [(c, k) for c, k in spots if isinstance(c[k], str)]
        keys = [(c, k) for c, k in spots if isinstance(c, dict)]
        if strings and rnd.random() < 0.5:
            container, key = rnd.choice(strings)
            value = container[key]
            at = rnd.randrange(len(value) + 1)
            container[key] = value[:at] + rnd.choice(UNICODE) + value[at:]
        elif keys:
            container, key = rnd.choice(keys)
            container[str(key) + rnd.choice(UNICODE)] = container.pop(key)
    elif kind == "expression":
        leaves = [(c, k) for c, k in spots if not isinstance(c[k], (dict, list))]
        if leaves:
            container, key = rnd.choice(leaves)
            container[key] = rnd.choice(EXPRESSIONS)
    elif kind == "swap_layers":
        lists = [lst for lst in layer_lists(doc) if len(lst) > 1]
        if lists:
            target = rnd.choice(lists)
            i, j = rnd.sample(range(len(target)), 2)
            target[i], target[j] = target[j], target[i]
    elif kind == "repeat":
        lists = [lst for lst in layer_lists(doc) if lst]
        if lists:
            target = rnd.choice(lists)
            i = rnd.randrange(len(target))
            item = as_layer(target[i])
            item["repeat"] = rnd.choice([0, 3, 10000, 10001, -1, "${10 ** 6}", 2.0])
            target[i] = item
    return doc


def mutate_text(text: str, kind: str, rnd: random.Random) -> str:
    lines = text.split("\n")
    if kind == "truncate":
        return text[:rnd.randrange(len(text) + 1)]
    if kind == "duplicate_key":
        keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*[A-Za-z_]\w*\s*:", line)]
        if keyed:
            i = rnd.choice(keyed)
            lines.insert(i + 1, lines[i])
    elif kind == "tabs":
        indented = [i for i, line in enumerate(lines) if line.startswith(" ")]
        for i in rnd.sample(indented, min(len(indented), rnd.randrange(1, 3))) if indented else []:
            spaces = len(lines[i]) - len(lines[i].lstrip(" "))
            cut = rnd.randrange(1, spaces + 1)
            lines[i] = "\t" * rnd.randrange(1, 3) + lines[i][cut:]
        if not indented:
            lines.insert(rnd.randrange(len(lines) + 1), "\tname: x")
    elif kind == "punctuation":
        at = rnd.randrange(len(text) + 1)
        return text[:at] + rnd.choice(PUNCTUATION) + text[at:]
    elif kind == "unicode_text":
        at = rnd.randrange(len(text) + 1)
        return text[:at] + rnd.choice(UNICODE) + text[at:]
    elif kind == "control":
        at = rnd.randrange(len(text) + 1)
        return text[:at] + chr(rnd.choice([*range(0, 9), 11, 12, *range(14, 32), 127, 0x9f])) + text[at:]
    elif kind == "yaml_scalar":  # YAML 1.1 / 1.2 scalar forms in place of a value
        valued = [i for i, line in enumerate(lines) if re.search(r": \S", line)]
        if valued:
            i = rnd.choice(valued)
            head = lines[i][:lines[i].index(": ") + 2]
            lines[i] = head + rnd.choice(YAML_SCALARS)
    elif kind == "drop_line":
        del lines[rnd.randrange(len(lines))]
    elif kind == "crlf":
        return text.replace("\n", rnd.choice(["\r\n", "\r", "\u2028"]))
    return "\n".join(lines)


DOC_MUTATIONS = ["delete_key", "change_type", "size", "unknown_op", "misspelt_param", "dangling_from",
                 "cyclic_from", "deep_nesting", "unicode", "expression", "swap_layers", "repeat"]
TEXT_MUTATIONS = ["truncate", "duplicate_key", "tabs", "punctuation", "unicode_text", "drop_line", "crlf",
                  "yaml_scalar", "control"]
MUTATIONS = DOC_MUTATIONS + TEXT_MUTATIONS


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def mutated(spec: Path, kinds: list[str], rnd: random.Random) -> str:
    text = spec.read_text()
    for kind in kinds:
        if kind in DOC_MUTATIONS:
            try:
                doc = plain(load_text(text, str(spec)))
            except SpecError:
                continue  # an earlier text mutation broke the YAML: keep the text
            doc = mutate_doc(doc, kind, rnd)
            text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=rnd.random() < 0.5,
                                  default_flow_style=rnd.choice([False, None]), width=rnd.choice([80, 40, 10**6]))
        else:
            text = mutate_text(text, kind, rnd)
    return text


@pytest.fixture(scope="module")
def spec_copies(tmp_path_factory):
    """specs/ copied, so a mutated spec sits beside the files it may name under `use:`."""
    root = tmp_path_factory.mktemp("specs")
    shutil.copytree(SPECS, root, dirs_exist_ok=True)
    return root


def check_mutant(spec: Path, spec_copies: Path, text: str, compile_too: bool) -> None:
    target = spec_copies / spec.relative_to(SPECS).parent / f"mutant-{spec.name}"
    target.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    rc, out, err = run_cli(["check", str(target)])
    assert_clean_result(rc, err, target)
    if currently_in_test_context():
        event("accepted" if rc == 0 else "rejected")
    if compile_too:
        rc2, out2, err2 = run_cli(["compile", str(target), "--no-build", "--json"])
        assert_clean_result(rc2, err2, target)
        assert rc2 == rc and err2 == err  # the same verdict, and the same message


def test_every_spec_in_specs_is_fuzzed():
    assert len(SPEC_FILES) >= 7, SPEC_FILES


@pytest.mark.parametrize("spec", SPEC_FILES, ids=[str(p.relative_to(SPECS)) for p in SPEC_FILES])
@pytest.mark.parametrize("kind", MUTATIONS)
def test_each_mutation_of_each_spec(spec, kind, spec_copies):
    """Every mutation kind once on every spec (a fixed seed per pair), through `check` and `compile`."""
    rnd = random.Random(f"{spec.name}:{kind}")
    check_mutant(spec, spec_copies, mutated(spec, [kind], rnd), compile_too=True)


@pytest.mark.parametrize("spec", SPEC_FILES, ids=[str(p.relative_to(SPECS)) for p in SPEC_FILES])
def test_random_mutations_never_crash_the_cli(spec, spec_copies):
    @scaled(0.4)
    @given(kinds=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4), rnd=st.randoms(),
           compile_too=st.integers(0, 4))
    def fuzz(kinds, rnd, compile_too):
        for kind in kinds:
            event(kind)
        check_mutant(spec, spec_copies, mutated(spec, kinds, rnd), compile_too=compile_too == 0)

    fuzz()


# -- the loader and the evaluator on arbitrary input ---------------------------------------
YAMLISH = st.text(alphabet=st.sampled_from(list("abc01 :-{}[],&*!|>'\"#\n\t.$%@`?<=") +
                                          ["\u2028", "é", "\x85", "\x00", "\x7f", "\r", "\ufeff", "\x0b", "\x0c", "\x1c"]),
                  max_size=80)


@scaled(2)
@given(text=st.one_of(YAMLISH, st.text(max_size=60)))
@example(text="\x0b\tname: x")  # \v breaks a line for str.splitlines, not for YAML (found by a fuzz run)
@example(text="{\n")
def test_the_loader_raises_only_located_spec_errors(text):
    """Every error is a SpecError inside the text: on a line that holds text (none after the last
    break, where an editor shows no line) and at most one column past its end."""
    lines = LINE_BREAKS.split(text)
    lines = lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines
    try:
        load_text(text, "fuzz.yaml")
    except SpecError as err:
        assert err.pos.file == "fuzz.yaml"
        assert err.message and "\n" not in err.message, err.format()
        assert 1 <= err.pos.line <= len(lines), (err.format(), len(lines))
        assert 1 <= err.pos.col <= len(lines[err.pos.line - 1]) + 1, (err.format(), lines)


def test_a_flow_collection_left_open_is_reported_where_it_opens():
    """PyYAML puts both marks past the last line; the error names the bracket instead (found by
    the thorough fuzz run: `{# comment` cut short)."""
    for text, where in [("{\n", (1, 1)), ("{# c", (1, 1)), ("x: {a: 1}\ny: [\n  1,\n  2\n", (2, 4)),
                        ("a: {b: [1, 2\n\n\n", (1, 8))]:
        with pytest.raises(SpecError, match="is never closed: the file ends first") as caught:
            load_text(text, "f.yaml")
        assert (caught.value.pos.line, caught.value.pos.col) == where, caught.value.format()


ATOMS = ["0", "1", "-1", "2", "0.0", "1e308", "1e15", "64", "-64", "in.channels", "in.shape", "in.width",
         "in.nope", "x", "[1, 2]", "[]", "'a'", "True", "None", "(-8)", "0.5", "i", "_x", "in", "x.y"]
OPERATORS = ["+", "-", "*", "/", "//", "%", "**", "<", "==", "and", "or", "not", " if 1 else ", ",", "[0]",
             "(", ")"]
CALLS = ["int", "float", "round", "min", "max", "abs", "len", "sum", "ceil", "floor", "make_divisible", "open"]


@st.composite
def expressions(draw):
    parts = [draw(st.sampled_from(ATOMS))]
    for _ in range(draw(st.integers(0, 6))):
        parts += [draw(st.sampled_from(OPERATORS)), draw(st.sampled_from(ATOMS))]
    source = " ".join(parts)
    if draw(st.booleans()):
        source = f"{draw(st.sampled_from(CALLS))}({source})"
    return source


@scaled(5)
@given(source=expressions(), shape=st.sampled_from([(3, 8, 8), (5,), (2, 3), None]))
def test_the_evaluator_raises_only_expression_errors(source, shape):
    try:
        value = evaluate(source, {"x": 3, "i": 0}, shape)
    except ExprError as err:
        assert err.message
        return
    assert not isinstance(value, complex)
    assert not isinstance(value, float) or value == value  # no NaN


@scaled(2)
@given(text=st.text(max_size=40))
def test_substitution_of_any_string_raises_only_expression_errors(text):
    try:
        substitute(text, {"x": 3}, (3, 4, 4))
    except ExprError:
        pass
