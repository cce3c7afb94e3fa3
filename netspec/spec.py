"""validate: the document's pydantic models, and pydantic errors -> located errors.

The models here check the shape of the document (version, name, input,
params, template definitions, the network list). Each layer's op parameters
are checked by that op's own model during elaboration, once `$expressions`
have values.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import Pos, SpecError, did_you_mean
from .load import Map, locate
from .ops.base import PositiveInt, whole

IDENT = r"^[A-Za-z][A-Za-z0-9_]*$"
Scalar = int | float | bool | str
Value = Scalar | list[Scalar]
PARAM_TYPES = ("int", "float", "bool", "str", "list", "any")
META = ("id", "from", "if", "repeat", "doc")  # keys any layer may carry
STRUCTURE = ("group", "layers", "parallel", "merge")  # keys of the layers that hold layers


class Strict(BaseModel):
    """Unknown keys are errors, and types are strict as in the JSON Schema (`input: [true, 8, 8]` and
    `netspec: true` are errors), save that a whole float is an integer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _whole(cls, value):
        return whole(value)

    @field_validator("netspec", mode="before", check_fields=False)
    @classmethod
    def _version(cls, value):
        if isinstance(value, bool):  # Literal[1] takes True, which equals 1
            raise ValueError("Input should be 1")
        return value


class ParamDecl(Strict):
    """A template parameter: `out: int`, `stride: {default: 1}` or `{type: int, doc: ...}`."""

    type: Literal["int", "float", "bool", "str", "list", "any"] = "any"
    default: Any = None
    required: bool = True
    doc: str | None = None


class TemplateDef(Strict):
    """A block template: named parameters and a graph written in the spec language."""

    doc: str | None = Field(None, description="one line saying what the block is")
    params: dict[str, Any] = Field(default_factory=dict, description="name: type, or {type, default, doc}")
    graph: list[Any] = Field(min_length=1, description="the block's layers; `input` is its input")

    @field_validator("params")
    @classmethod
    def _names(cls, value: dict) -> dict:
        for name in value:
            if not re.match(IDENT, str(name)) or name in ("in", "input", "i"):
                raise ValueError(f"'{name}' cannot be a parameter name")
        return value


class TemplateFile(Strict):
    """A file of templates a spec names under `use:`."""

    netspec: Literal[1] = 1
    blocks: dict[str, TemplateDef] = Field(default_factory=dict)


class SpecDocument(Strict):
    """A network spec, version 1."""

    netspec: Literal[1] = Field(description="language version; always 1 for now")
    name: str = Field(pattern=IDENT, description="the network's name (and its module's class name)")
    doc: str | None = Field(None, description="what this network is, in a sentence")
    input: list[PositiveInt] = Field(min_length=1, max_length=4, description="[C, H, W]; the batch is symbolic")
    params: dict[str, Value] = Field(default_factory=dict, description="named values with defaults; -p NAME=VALUE overrides")
    use: list[str] = Field(default_factory=list, description="template files, relative to this spec")
    blocks: dict[str, TemplateDef] = Field(default_factory=dict, description="templates defined in this spec")
    network: list[Any] = Field(min_length=1, description="the layers, in order; each takes the previous one's output")
    train: dict[str, Any] | None = Field(None, description="training recipe for `netspec train`")

    @field_validator("params", "blocks")
    @classmethod
    def _identifiers(cls, value: dict) -> dict:
        for name in value:
            if not re.match(IDENT, str(name)):
                raise ValueError(f"'{name}' is not a valid name (letters, digits, _; starting with a letter)")
        return value


def parse_decl(name: str, raw) -> ParamDecl:
    """Normalise the three ways of declaring a template parameter."""
    if isinstance(raw, str) and raw in PARAM_TYPES:
        return ParamDecl(type=raw)
    if isinstance(raw, dict):
        data = dict(raw)
        data.setdefault("required", "default" not in raw)
        return ParamDecl(**data)
    return ParamDecl(type="any", default=raw, required=False)


def validate(model: type[BaseModel], doc, file: str, what: str = "spec"):
    """Validate a loaded document, turning the first pydantic error into a SpecError."""
    if not isinstance(doc, Map):
        raise SpecError(getattr(doc, "pos", Pos(file, 1, 1)), f"a {what} must be a YAML mapping",
                        hint="start with 'netspec: 1'" if what == "spec" else None)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise located(exc, doc, Pos(file, 1, 1), model) from None


def located(exc: ValidationError, doc, default: Pos, model: type[BaseModel] | None = None,
            prefix: str = "") -> SpecError:
    """The first pydantic error, as a message at its YAML position."""
    errors = exc.errors(include_url=False)
    # an unknown key usually explains a missing one (a misspelling): report it first
    errors = sorted(errors, key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = tuple(err["loc"])
    kind = err["type"]
    where = prefix + ".".join(str(p) for p in loc if p not in ("function-after",))
    if kind == "extra_forbidden":
        key = loc[-1]
        parent = locate(doc, loc[:-1], default)
        pos = doc.key_pos.get(key, parent) if isinstance(doc, Map) and len(loc) == 1 else _key_pos(doc, loc, parent)
        known = _known_fields(model, loc[:-1]) if model else []
        return SpecError(pos, f"unknown key '{key}'" + (f" in {prefix.rstrip('.')}" if prefix else ""),
                         hint=did_you_mean(key, known) or (f"known keys: {', '.join(known)}" if known else None))
    if kind == "missing":
        pos = locate(doc, loc[:-1], default)
        return SpecError(pos, f"missing required key '{where}'")
    err, message = _union_choice(errors, err)
    loc = _untagged(err["loc"])
    pos = locate(doc, loc, default)
    where = prefix + ".".join(str(p) for p in loc)
    value = err.get("input")
    hint = None
    if err["type"] in ("model_type", "dict_type"):  # pydantic's words name its own classes
        message = "Input should be a mapping"
        known = _MODELS.get(err.get("ctx", {}).get("class_name"))
        hint = f"its keys: {', '.join(known.model_fields)}" if known else None
        if isinstance(value, list):
            message += ", got a list"
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    message = message[0].lower() + message[1:]
    if not isinstance(value, (dict, list)) and " got " not in message:
        message += f", got {value!r}"
    return SpecError(pos, f"'{where}': {message}", hint=hint)


# pydantic names the members of a union in `loc`: 'constrained-int', 'list[constrained-int]', ...
_TAG = re.compile(r"[-\[\]'(),]|^(int|float|bool|str)$")
_MISMATCH = ("_type", "_parsing")  # the input is not of that member's type at all


def _untagged(loc) -> tuple:
    return tuple(part for part in loc if not (isinstance(part, str) and _TAG.search(part)))


def _union_choice(errors: list, first: dict) -> tuple[dict, str]:
    """For a value that matched no member of a union: the member's error that explains it
    (`kernel: [3, 0]` -> the 0), or else what the members accept, together."""
    field = _untagged(first["loc"])
    members = [e for e in errors if _untagged(e["loc"])[:len(field)] == field]
    telling = [e for e in members if not e["type"].endswith(_MISMATCH)] or \
        [e for e in members if len(_untagged(e["loc"])) > len(field)]  # about an item: `kernel: [3, true]`
    if telling or len(members) == 1:
        chosen = (telling or members)[0]
        return chosen, chosen["msg"]
    wants = []
    for e in members:
        want = e["msg"].removeprefix("Input should be ").split(",")[0]
        if want not in wants:
            wants.append(want)
    return first, "Input should be " + " or ".join(wants)


def _key_pos(doc, loc, default: Pos) -> Pos:
    node = doc
    for part in loc[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return default
    return node.key_pos.get(loc[-1], default) if isinstance(node, Map) else default


def _known_fields(model: type[BaseModel], loc) -> list[str]:
    for part in loc:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        models = [a for a in _members(getattr(info, "annotation", None))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if len(models) != 1:
            return []
        model = models[0]
    return list(model.model_fields)


def _members(annotation) -> tuple:
    """The types in `X | None` / `Optional[X]`, or the annotation itself."""
    args = typing.get_args(annotation)
    return args if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)


_MODELS = {model.__name__: model for model in (ParamDecl, TemplateDef, TemplateFile, SpecDocument)}
