"""The JSON Schema of the language, generated from the pydantic models.

The document model gives the top level; each op's parameter model gives that
op's layer entry; built-in templates give theirs from their declarations.
Every parameter also accepts a `$name` / `${...}` expression. Nothing here
is written by hand, so the schema cannot drift from the validators.
"""

from __future__ import annotations

import json

from . import ops
from .spec import SpecDocument, TemplateDef
from .templates import builtins

EXPR = {"type": "string", "pattern": r"^\s*\$", "description": "an expression: $name or ${...}"}
META = {
    "id": {"type": "string", "description": "name of this node (its module name); others refer to it in 'from'"},
    "from": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
             "description": "input(s): earlier ids in this group, or 'input' (default: the previous layer)"},
    "if": {"anyOf": [{"type": "boolean"}, EXPR], "description": "skip the layer when false (it passes its input through)"},
    "repeat": {"anyOf": [{"type": "integer", "minimum": 0}, EXPR], "description": "repeat the layer; `i` counts from 0"},
    "doc": {"type": "string"},
}
TYPE_SCHEMAS = {"int": {"type": "integer"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
                "str": {"type": "string"}, "list": {"type": "array"}, "any": {}}


def _with_expressions(schema: dict) -> dict:
    """Let every property of an object schema, and every item of a list in one, also be an expression."""
    props = {}
    for name, prop in schema.get("properties", {}).items():
        prop = _expression_items({k: v for k, v in prop.items() if k != "title"})
        props[name] = {"anyOf": [prop, EXPR], **({"description": prop["description"]} if "description" in prop else {})}
        if "default" in prop:
            props[name]["default"] = prop["default"]
    return {"type": "object", "properties": props, "additionalProperties": False,
            **({"required": schema["required"]} if schema.get("required") else {})}


def _expression_items(schema):
    """`kernel: [3, $k]`: the elaborator evaluates expressions inside lists too."""
    if isinstance(schema, list):
        return [_expression_items(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: _expression_items(v) for k, v in schema.items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = {"anyOf": [schema["items"], EXPR]}
    return schema


def _layer(key: str, value_schema: dict, description: str | None) -> dict:
    return {"type": "object", "title": key, "description": description or key,
            "properties": {key: value_schema, **META}, "required": [key], "additionalProperties": False}


def _op_layer(name: str, op, defs: dict) -> dict:
    """An op's layer schema; the models its parameters refer to (a plugin's Enum, say) go to the top
    `$defs`, named after the op, since a `$ref` resolves from the document's root."""
    params = op.Params.model_json_schema(ref_template=f"#/$defs/{name}__{{model}}")
    defs.update({f"{name}__{model}": sub for model, sub in params.pop("$defs", {}).items()})
    params = _with_expressions(params)
    choices = [params, {"type": "null"}]
    if op.primary:
        choices.append(params["properties"][op.primary])
    if op.inputs[1] != 1:
        choices.append({"type": "array", "items": {"type": "string"}, "description": "the inputs"})
    return _layer(name, {"anyOf": choices}, (op.__doc__ or "").strip())


def _template_layer(template) -> dict:
    props = {}
    for name, decl in template.decls.items():
        props[name] = {"anyOf": [TYPE_SCHEMAS[decl.type], EXPR], "description": decl.doc or name}
        if not decl.required and not (isinstance(decl.default, str) and "$" in decl.default):
            props[name]["default"] = decl.default
    required = [n for n, d in template.decls.items() if d.required]
    params = {"type": "object", "properties": props, "additionalProperties": False,
              **({"required": required} if required else {})}
    choices = [params] if required else [params, {"type": "null"}]
    return _layer(template.name, {"anyOf": choices}, template.doc)


def schema() -> dict:
    top = SpecDocument.model_json_schema()
    defs = top.setdefault("$defs", {})
    registry = sorted(ops.REGISTRY.items())
    templates = sorted(builtins().items())
    known = [name for name, _ in registry] + [name for name, _ in templates]
    layers = [_op_layer(name, cls, defs) for name, cls in registry]
    layers += [_template_layer(t) for _, t in templates]
    layer_list = {"type": "array", "items": {"$ref": "#/$defs/Layer"}}
    layers += [
        {"type": "object", "title": "group", "description": "a named submodule holding layers",
         "properties": {"group": {"type": ["string", "null"]}, "layers": layer_list, **META},
         "required": ["group", "layers"], "additionalProperties": False},
        {"type": "object", "title": "parallel", "description": "branches from one input, merged",
         "properties": {"parallel": {"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/Layer"}, layer_list]}},
                        "merge": {"anyOf": [{"enum": ["concat", "add", "mul"]}, {"type": "object"}]}, **META},
         "required": ["parallel"], "additionalProperties": False},
        {"type": "object", "title": "layers", "description": "layers inlined into the current group",
         "properties": {"layers": layer_list, **META}, "required": ["layers"], "additionalProperties": False},
        {"type": "object", "title": "user template", "description": "a template defined in blocks: or a use: file",
         "minProperties": 1,
         "not": {"anyOf": [{"required": [k]} for k in [*known, "group", "parallel", "layers"]]}},
    ]
    defs["Layer"] = {"anyOf": [{"enum": known, "description": "an op or template with default parameters"},
                               {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_]*$"}, *layers]}
    top["properties"]["network"]["items"] = {"$ref": "#/$defs/Layer"}
    template_def = TemplateDef.model_json_schema()
    template_def["properties"]["graph"]["items"] = {"$ref": "#/$defs/Layer"}
    defs["TemplateDef"] = template_def
    top["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    top["title"] = "netspec network spec"
    return top


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"
