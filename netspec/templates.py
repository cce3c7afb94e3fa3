"""Block templates: the built-in YAML files, files a spec names, and its own `blocks:`."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from . import ops
from .errors import Pos, SpecError
from .load import Map, Seq, load_file
from .spec import META, STRUCTURE, ParamDecl, TemplateDef, TemplateFile, located, parse_decl, validate

BUILTIN_DIR = Path(__file__).parent / "templates"
DECLARATION_HINT = "write `name: int`, `name: {default: 1}` or `name: {type: int, default: 1}`"


@dataclass(eq=False)  # compared, and hashed, by identity: the arguments memo keys on it
class Template:
    """A template with its raw YAML kept for locating errors inside it."""

    name: str
    doc: str | None
    decls: dict[str, ParamDecl]
    decl_pos: dict[str, Pos]
    graph: Seq
    pos: Pos
    builtin: bool

    @property
    def file(self) -> str:
        return self.pos.file


def _templates(blocks: Map, builtin: bool) -> dict[str, Template]:
    found = {}
    for name, raw in blocks.items():
        model = validate(TemplateDef, raw, blocks.pos.file, what="template")
        params_raw = raw.get("params") or Map(raw.pos)
        decls, decl_pos = {}, {}
        for pname, praw in params_raw.items():
            try:
                decls[pname] = parse_decl(pname, praw)
            except ValidationError as exc:  # a malformed declaration
                err = located(exc, praw, params_raw.at(pname), ParamDecl)
                raise SpecError(err.pos, f"bad declaration of parameter '{pname}': {err.message}",
                                hint=err.diagnostic.hint or DECLARATION_HINT) from None
            except TypeError as exc:  # keys that are not names
                raise SpecError(params_raw.at(pname), f"bad declaration of parameter '{pname}': {exc}",
                                hint=DECLARATION_HINT) from None
            decl_pos[pname] = params_raw.at(pname) if not isinstance(praw, Map) else praw.at("default")
        if ops.get(name):
            raise SpecError(blocks.key_pos[name], f"template name '{name}' is already the name of an op")
        if name in META or name in STRUCTURE:  # a layer `- group: ...` could not name the template
            raise SpecError(blocks.key_pos[name], f"template name '{name}' is reserved (a keyword of the language)",
                            hint=f"e.g. '{name}_block'")
        found[name] = Template(name, model.doc, decls, decl_pos, raw["graph"], blocks.key_pos[name], builtin)
    return found


def load_template_file(path: Path, builtin: bool = False) -> dict[str, Template]:
    doc, _ = load_file(path)
    return template_file(doc, str(path), builtin)


def template_file(doc, path: str, builtin: bool = False) -> dict[str, Template]:
    """The templates of a template file already read."""
    validate(TemplateFile, doc, path, what="template file")
    return _templates(doc.get("blocks") or Map(doc.pos), builtin)


@functools.lru_cache(maxsize=1)
def builtins() -> dict[str, Template]:
    found: dict[str, Template] = {}
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        found.update(load_template_file(path, builtin=True))
    return found


def for_spec(doc: Map, spec_path: str) -> dict[str, Template]:
    """Templates visible in a spec: its own blocks, then `use:` files, then built-ins."""
    found = dict(builtins())
    uses = doc.get("use") or []
    base = Path(spec_path).parent
    origin: dict[str, str] = {}  # template name -> the use: file that defines it
    for index, name in enumerate(uses):
        path = base / name
        if not path.is_file():
            raise SpecError(uses.at(index), f"template file '{name}' not found (looked in {base or '.'})")
        if name in uses[:index]:
            raise SpecError(uses.at(index), f"template file '{name}' is listed twice in 'use'")
        for tname, template in load_template_file(path).items():
            if tname in origin:  # which one was meant is not for netspec to guess
                raise SpecError(template.pos, f"template '{tname}' is defined both in '{origin[tname]}' and in "
                                f"'{name}'", hint="rename one, or define it once")
            origin[tname] = name
            found[tname] = template
    if doc.get("blocks"):
        found.update(_templates(doc["blocks"], builtin=False))
    return found
