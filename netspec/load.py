"""YAML text -> plain dicts/lists/scalars that remember where they came from.

Built on PyYAML's safe event stream (libyaml's where PyYAML has it) rather
than its constructor so that every mapping, sequence and scalar keeps file,
line and column, duplicate keys are
caught, tags beyond YAML's core schema are refused, and aliases or nesting
cannot blow up (a "billion laughs" document fails after a bounded amount of
work).
"""

from __future__ import annotations

import copy
import re

import yaml

from .errors import Pos, SpecError

MAX_NODES = 200_000
MAX_ALIAS_NODES = 20_000  # nodes that aliases may copy, in all
MAX_DEPTH = 64
CORE_TAGS = {
    "tag:yaml.org,2002:" + t
    for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge")
}


class Map(dict):
    """A YAML mapping; `.pos` is where it starts, `.key_pos`/`.val_pos` per key."""

    def __init__(self, pos: Pos):  # made for every mapping read: dict's own __init__ has nothing to do
        self.pos = pos
        self.key_pos: dict = {}
        self.val_pos: dict = {}

    def at(self, key) -> Pos:
        """Position of the value under `key` (or of the mapping when absent)."""
        return self.val_pos.get(key, self.pos)


class Seq(list):
    """A YAML sequence; `.pos` is where it starts, `.item_pos[i]` per item."""

    def __init__(self, pos: Pos):
        super().__init__()
        self.pos = pos
        self.item_pos: list[Pos] = []

    def at(self, index: int) -> Pos:
        return self.item_pos[index] if 0 <= index < len(self.item_pos) else self.pos


def position(container, key, default: Pos | None = None) -> Pos:
    """Best-known position of `container[key]` for any loaded container."""
    if isinstance(container, (Map, Seq)):
        return container.at(key)
    return default or Pos("<unknown>", 1, 1)


def locate(doc, loc, default: Pos) -> Pos:
    """Follow a pydantic-style `loc` path into the document, as far as it goes."""
    pos, node = getattr(doc, "pos", default), doc
    for part in loc:
        if isinstance(node, Map) and part in node:
            pos, node = node.at(part), node[part]
        elif isinstance(node, Seq) and isinstance(part, int) and 0 <= part < len(node):
            pos, node = node.at(part), node[part]
        else:
            break
    return pos


def _mark(mark, file: str) -> Pos:
    return Pos(file, mark.line + 1, mark.column + 1)


STR_TAG = "tag:yaml.org,2002:str"
_MAP_START, _SEQ_START = yaml.MappingStartEvent, yaml.SequenceStartEvent
_SCALAR, _ALIAS = yaml.ScalarEvent, yaml.AliasEvent
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
# YAML 1.1 (PyYAML) reads 1e-5 as text: its floats need a dot and a signed exponent. YAML 1.2, JSON,
# Python and every editor read it as a number, and the schema says number: so netspec does too.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Resolver(yaml.resolver.Resolver):
    """PyYAML's implicit tags, with YAML 1.2's exponent floats (1e-5, 2.5E3)."""


class SafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader reading numbers as `load_text` does (for -p NAME=VALUE)."""


for _cls in (_Resolver, SafeLoader):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))

_RESOLVER = _Resolver()  # construction keeps state, so each build has its own
_TAGS: dict[tuple, str] = {}  # (plain text, implicit flags) -> resolved tag
_VALUES: dict[tuple, object] = {}  # (tag, text) -> the int, float, bool or None it reads as


def _whole_characters(value: str, pos: Pos) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # "\ud800": half of a UTF-16 pair, not a character
        raise SpecError(pos, f"{value!r} contains a lone surrogate escape, which is not a character",
                        hint="write the character itself, or its \\U00XXXXXX escape") from None


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.nodes = 0
        self.alias_nodes = 0
        self.anchors: dict[str, tuple[object, int]] = {}
        self.scalars: yaml.constructor.SafeConstructor | None = None  # made only for scalars not plain text

    def count(self, n: int, pos: Pos) -> None:
        self.nodes += n
        if self.nodes > MAX_NODES:
            raise SpecError(pos, f"document too large: more than {MAX_NODES} nodes after expanding aliases",
                            hint="aliases that refer to aliases grow exponentially; write the structure out")

    def scalar(self, event, pos: Pos) -> object:
        tag = event.tag
        if not tag or tag == "!":
            tag = _TAGS.get((event.value, event.implicit))  # names and sizes recur, across files too
            if tag is None:
                tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)
                if tag not in CORE_TAGS:  # a plain 2024-01-01 or '=': YAML 1.1 types, text in the core schema
                    tag = STR_TAG
                if len(_TAGS) < 10_000:
                    _TAGS[event.value, event.implicit] = tag
        if tag == STR_TAG:  # the common case; what the constructor would return
            value = event.value
            if event.style == '"':  # only a double-quoted escape can make a lone surrogate
                _whole_characters(value, pos)
            return value
        if tag not in CORE_TAGS:
            raise SpecError(pos, f"YAML tag '{event.tag}' is not allowed",
                            hint="netspec reads plain YAML only: no Python or custom tags")
        if tag.endswith(":merge"):
            return _MERGE
        value = _VALUES.get((tag, event.value), _NOKEY)  # a number, boolean or null read before
        if value is not _NOKEY:
            return value
        if self.scalars is None:
            self.scalars = yaml.constructor.SafeConstructor()
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            value = self.scalars.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise SpecError(pos, f"bad scalar {event.value!r}: {getattr(exc, 'problem', exc)}") from None
        except (ValueError, IndexError, KeyError, OverflowError):  # e.g. an empty `!!int`
            raise SpecError(pos, f"bad scalar {event.value!r}: not a valid {tag.rsplit(':', 1)[-1]}") from None
        if isinstance(value, str):
            _whole_characters(value, pos)
        elif (value is None or type(value) in (int, float, bool)) and len(_VALUES) < 10_000:  # immutable
            _VALUES[tag, event.value] = value
        return value

    def put(self, stack: list, value, pos: Pos) -> None:
        """Place a finished value as the key or the value of the mapping being built (the caller has
        counted it). `compose` fills lists, and places plain keys and values, itself."""
        frame = stack[-1]
        container = frame[0]
        key = frame[1]
        if key is _NOKEY:
            if isinstance(value, (Map, Seq)):
                raise SpecError(pos, "a mapping key must be a plain scalar")
            if value in container and not (frame[3] and value in frame[3]):
                first = container.key_pos[value]
                raise SpecError(pos, f"duplicate key '{value}' (first defined at line {first.line})",
                                hint="YAML would silently keep only the last one; remove or rename one")
            frame[1], frame[2] = value, pos
            return
        if key is _MERGE:
            if frame[3] is None:
                frame[3] = set()
            self.merge(container, value, pos, frame[3])
        else:
            if frame[3]:
                frame[3].discard(key)
            container[key] = value
            container.key_pos[key] = frame[2]
            container.val_pos[key] = pos
        frame[1] = _NOKEY

    def build(self, loader) -> object:
        """The document of a PyYAML loader, its events taken with `get_event` (without the generator
        `yaml.parse` wraps around it, which cost about 7 % of the reading)."""
        try:
            return self.compose(loader.get_event)
        finally:
            loader.dispose()

    def compose(self, next_event) -> object:
        # frames: [container, pending key, its position, keys merged in (or None), anchor, start, count at start]
        stack: list[list] = []
        root = _NOKEY
        file = self.file
        key_end = None
        while True:
            event = next_event()
            if event is None:
                break
            kind = event.__class__
            if kind is _SCALAR:
                mark = event.start_mark
                pos = _new(Pos, (file, mark.line + 1, mark.column + 1))
                text = event.value
                if event.tag or event.anchor:
                    value = self.scalar(event, pos)
                    if event.anchor:
                        self.anchors[event.anchor] = (value, 1)
                elif not (text or event.style) and stack and stack[-1][1] is not _NOKEY \
                        and isinstance(stack[-1][0], Map):  # `key:` with no value: at the key's end, where
                    pos = Pos(file, key_end.line + 1, key_end.column + 1)  # both parsers agree
                    value = self.scalar(event, pos)
                elif event.style != '"' and _TAGS.get((text, event.implicit)) == STR_TAG:  # plain text
                    value = text
                else:
                    value = self.scalar(event, pos)
                self.nodes += 1
                if self.nodes > MAX_NODES:
                    self.count(0, pos)
                key_end = event.end_mark
            elif kind in _ENDS:
                container, _, _, _, anchor, pos, start_count = stack.pop()
                if anchor:
                    self.anchors[anchor] = (container, self.nodes - start_count + 1)
                value = container
                self.nodes += 1
                if self.nodes > MAX_NODES:
                    self.count(0, pos)
            elif kind is _MAP_START or kind is _SEQ_START:
                mark = event.start_mark
                pos = _new(Pos, (file, mark.line + 1, mark.column + 1))
                if event.tag and event.tag not in CORE_TAGS and event.tag != "!":
                    raise SpecError(pos, f"YAML tag '{event.tag}' is not allowed",
                                    hint="netspec reads plain YAML only: no Python or custom tags")
                if len(stack) >= MAX_DEPTH:
                    raise SpecError(pos, f"nesting deeper than {MAX_DEPTH} levels")
                container = Map(pos) if kind is _MAP_START else Seq(pos)
                stack.append([container, _NOKEY, None, None, event.anchor, pos, self.nodes])
                continue
            elif kind is _ALIAS:
                mark = event.start_mark
                pos = _new(Pos, (file, mark.line + 1, mark.column + 1))
                if event.anchor not in self.anchors:
                    raise SpecError(pos, f"unknown alias '*{event.anchor}'")
                value, size = self.anchors[event.anchor]
                self.alias_nodes += size  # bound the work before copying
                if self.alias_nodes > MAX_ALIAS_NODES:
                    raise SpecError(pos, f"document too large: aliases expand to more than "
                                    f"{MAX_ALIAS_NODES} nodes",
                                    hint="aliases that refer to aliases grow exponentially; write the structure out")
                self.count(size, pos)
                value = _relocated(value)
                key_end = event.end_mark
            elif kind is yaml.DocumentStartEvent:
                if root is not _NOKEY:
                    mark = event.start_mark
                    raise SpecError(Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file, 1, 1),
                                    "a spec file holds exactly one YAML document")
                continue
            else:  # stream start and end, document end
                continue
            if not stack:
                root = "<<" if value is _MERGE else value
                continue
            frame = stack[-1]  # lists, and the common places in a mapping, inline; `put` decides the rest
            container = frame[0]
            if container.__class__ is Seq:
                container.append("<<" if value is _MERGE else value)  # a merge only as a mapping key
                container.item_pos.append(pos)
                continue
            key = frame[1]
            if not frame[3] and value is not _MERGE:
                if key is _NOKEY:
                    if value.__class__ is not Map and value.__class__ is not Seq and value not in container:
                        frame[1], frame[2] = value, pos
                        continue
                elif key is not _MERGE:
                    container[key] = value
                    container.key_pos[key] = frame[2]
                    container.val_pos[key] = pos
                    frame[1] = _NOKEY
                    continue
            if value is _MERGE and key is not _NOKEY:
                value = "<<"  # a merge only as a mapping key; elsewhere the text '<<'
            self.put(stack, value, pos)
        return None if root is _NOKEY else root

    def merge(self, target: Map, value, pos: Pos, merged: set) -> None:
        sources = value if isinstance(value, Seq) else [value]
        for source in sources:
            if not isinstance(source, Map):
                raise SpecError(pos, "a '<<' merge key takes a mapping or a list of mappings")
            for key, item in source.items():
                if key not in target:
                    target[key] = item
                    target.key_pos[key] = source.key_pos[key]
                    target.val_pos[key] = source.val_pos[key]
                    merged.add(key)


_NOKEY = object()
_new = tuple.__new__  # `_new(Pos, (file, line, column))`: half the cost of `Pos(...)`, made for every node read
# libyaml parses about 20x faster than PyYAML's Python parser and gives the same events and marks,
# except that it accepts tabs as separators, other line breaks and `|#` block scalars, which the Python
# parser refuses, ends a tag at a comma, and places the empty value of a `? key` elsewhere. So that a
# spec means the same with or without libyaml, text with any of these goes to the Python parser
# (tests/test_load.py checks that both agree on everything else).
_C_LOADER = getattr(yaml, "CSafeLoader", None)
_NOT_PLAIN = re.compile(r"[^\n\x20-\x7e]|\?|[|>][-+0-9]*#|!(?!=)")
_SUSPECT = re.compile(r"[^\n\x20\x22-\x3d\x40-\x7b\x7d\x7e]")  # a character _NOT_PLAIN starts with; a
# one-class search is about 4x faster than _NOT_PLAIN's, and most specs hold none of them
_LINE_BREAK = re.compile("\r\n|\r|\n|\x85|\u2028|\u2029")  # what YAML counts as a line break
_MERGE = object()


def _relocated(value):
    """An alias is a copy: later stages may annotate it independently."""
    return copy.deepcopy(value) if isinstance(value, (Map, Seq)) else value


def _lines(text: str) -> list[str]:
    """The lines as YAML counts them (str.splitlines also breaks at \\v, \\f and others), none after
    the last break."""
    lines = _LINE_BREAK.split(text)
    return lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines


def _unclosed_flow(text: str):
    """The mark of the innermost `{` or `[` still open where the text stops scanning, or None."""
    opened = []
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, (yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)):
                opened.append(token.start_mark)
            elif isinstance(token, (yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)) and opened:
                opened.pop()
    except yaml.YAMLError:
        pass
    return opened[-1] if opened else None


def load_text(text: str, file: str = "<string>"):
    """Parse YAML text into Map/Seq/scalars, raising SpecError with a location."""
    if "\t" in text:
        for number, line in enumerate(_lines(text), 1):
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            if "\t" in indent:
                raise SpecError(Pos(file, number, indent.index("\t") + 1),
                                "tab character in indentation", hint="YAML indents with spaces only")
    if _C_LOADER is not None and not (_SUSPECT.search(text) and _NOT_PLAIN.search(text)):
        try:
            return _Builder(file).build(_C_LOADER(text))
        except (yaml.YAMLError, RecursionError):
            pass  # not YAML: the pure-Python parser's report is the one worded below
    try:
        return _Builder(file).build(yaml.SafeLoader(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        lines = _lines(text)
        if mark and exc.context_mark and mark.line >= len(lines):
            mark = exc.context_mark  # at the end of the file: point at what was left open
        problem = exc.problem or exc.context or "invalid YAML"
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        if exc.problem_mark and exc.problem_mark.index >= len(text):  # the file ended: say what it cut short
            opener = _unclosed_flow(text)
            if opener is not None:
                mark, context = opener, ""
                problem = f"this '{text[opener.index]}' is never closed: the file ends first"
        pos = _mark(mark, file) if mark else Pos(file, 1, 1)
        if pos.line > max(len(lines), 1):  # still past the end: the end of the last line
            pos = Pos(file, max(len(lines), 1), len(lines[-1]) + 1 if lines else 1)
        line = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
        hint = ('quote an expression inside {...} or [...]: out: "${a + b}"'
                if "${" in line and "flow" in (exc.context or "") else None)
        raise SpecError(pos, f"YAML syntax: {problem}{context}", hint=hint) from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, a position in the text
        lines = _LINE_BREAK.split(text[:exc.position])
        pos = Pos(file, len(lines), len(lines[-1]) + 1)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise SpecError(pos, f"YAML syntax: character U+{code:04X} is not allowed in YAML text",
                        hint=f"remove it, or write it as an escape inside double quotes: \"\\u{code:04x}\"") from None
    except yaml.YAMLError as exc:
        raise SpecError(Pos(file, 1, 1), f"YAML syntax: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise SpecError(Pos(file, 1, 1), "document nested too deeply") from None


def load_file(path) -> tuple[object, str]:
    """Read and parse a file; returns (document, text)."""
    try:  # unbuffered bytes, decoded: a third of the cost of a text-mode read, which matters at this size
        with open(path, "rb", buffering=0) as handle:
            text = handle.readall().decode("utf-8")
        if "\r" in text:  # the newlines a text-mode read would have given
            text = text.replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise SpecError(Pos(str(path), 1, 1), "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(Pos(str(path), 1, 1), f"cannot read file: {exc}") from None
    return load_text(text, str(path)), text
