"""`netspec list` and `netspec explain`, generated from the op registry and templates."""

from __future__ import annotations

from . import ops
from .errors import Pos, SpecError, did_you_mean
from .ops.base import plain
from .templates import builtins


def _op_params(op) -> list[tuple[str, str, str, str]]:
    rows = []
    schema = op.Params.model_json_schema()
    props, defs = schema.get("properties", {}), schema.get("$defs", {})
    for name, field in op.Params.model_fields.items():
        kind = _type_name(props.get(name, {}), defs)
        default = "required" if field.is_required() else repr(plain(field.default))
        rows.append((name, kind, default, field.description or ""))
    return rows


def _type_name(prop: dict, defs: dict) -> str:
    """A short type from a JSON Schema property: 'int | list[int]', "'same' | 'valid'"; a `$ref`
    (a plugin's Enum) is looked up in `defs`."""
    if "$ref" in prop:
        prop = defs.get(prop["$ref"].rsplit("/", 1)[-1], {})
    if "anyOf" in prop:
        return " | ".join(_type_name(p, defs) for p in prop["anyOf"] if p.get("type") != "null")
    if "enum" in prop or "const" in prop:
        return " | ".join(repr(v) for v in prop.get("enum", [prop.get("const")]))
    kind = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}.get(prop.get("type"), prop.get("type", "any"))
    if kind == "array":
        return f"list[{_type_name(prop.get('items', {}), defs)}]"
    return kind


def _template_params(template) -> list[tuple[str, str, str, str]]:
    return [(name, decl.type, "required" if decl.required else _default(decl.default), decl.doc or "")
            for name, decl in template.decls.items()]


def _default(value) -> str:
    """A default as the spec writes it: expressions bare (`${in.channels // 2}`), values as Python."""
    return value if isinstance(value, str) and "$" in value else repr(value)


def _signature(rows) -> str:
    """One parameter per line: `name: type` (required) or `name: type = default`."""
    return "\n".join(f"{n}: {kind}" if d == "required" else f"{n}: {kind} = {d}" for n, kind, d, _ in rows)


def _origin(name: str) -> str:
    from .plugins import describe

    return describe(name) or "op"


def list_table():
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="ops and built-in templates (netspec explain NAME for details)", title_justify="left",
                  show_lines=True)
    for column in ("name", "kind", "parameters", "what it does"):
        table.add_column(column)
    for name, cls in sorted(ops.REGISTRY.items()):
        table.add_row(name, _origin(name), escape(_signature(_op_params(cls))),
                      escape((cls.__doc__ or "").strip().splitlines()[0]))
    for name, template in sorted(builtins().items()):
        table.add_row(name, "template", escape(_signature(_template_params(template))), escape(template.doc or ""))
    return table


def _shown_path(path: str) -> str:
    """A built-in template's file relative to the package (`netspec/templates/residual.yaml`)."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        return path


def explain(name: str) -> str:
    """Plain-text reference for one op or template."""
    if name in ops.REGISTRY:
        cls = ops.REGISTRY[name]
        head = [f"{name} ({_origin(name)}): {(cls.__doc__ or '').strip()}"]
        if cls.primary:
            head.append(f"shorthand: `{name}: VALUE` sets {cls.primary}")
        low, high = cls.inputs
        if high != 1:
            head.append(f"inputs: {low} or more, as `{name}: [a, b]` or `from: [a, b]`")
        rows = _op_params(cls)
    elif name in builtins():
        template = builtins()[name]
        head = [f"{name} (template, {_shown_path(template.file)}): {template.doc or ''}"]
        rows = _template_params(template)
    else:
        known = [*ops.REGISTRY, *builtins()]
        raise SpecError(Pos("<command line>", 1, 1), f"no op or template named '{name}'",
                        hint=did_you_mean(name, known) or "`netspec list` shows them all")
    lines = head + ["parameters:" if rows else "parameters: none"]
    lines += [f"  {n}: {kind}, {default}" + (f" -- {doc}" if doc else "") for n, kind, default, doc in rows]
    return "\n".join(lines)
