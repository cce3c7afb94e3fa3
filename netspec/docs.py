"""`netspec list` and `netspec explain`, generated from the op registry and templates."""

from __future__ import annotations

from . import ops
from .errors import Pos, SpecError, did_you_mean
from .templates import builtins


def _op_params(op) -> list[tuple[str, str, str, str]]:
    rows = []
    props = op.Params.model_json_schema().get("properties", {})
    for name, field in op.Params.model_fields.items():
        kind = _type_name(props.get(name, {}))
        default = "required" if field.is_required() else repr(field.default)
        rows.append((name, kind, default, field.description or ""))
    return rows


def _type_name(prop: dict) -> str:
    """A short type from a JSON Schema property: 'int | list[int]', "'same' | 'valid'"."""
    if "anyOf" in prop:
        return " | ".join(_type_name(p) for p in prop["anyOf"] if p.get("type") != "null")
    if "enum" in prop or "const" in prop:
        return " | ".join(repr(v) for v in prop.get("enum", [prop.get("const")]))
    kind = {"integer": "int", "number": "float", "boolean": "bool", "string": "str"}.get(prop.get("type"), prop.get("type", "any"))
    if kind == "array":
        return f"list[{_type_name(prop.get('items', {}))}]"
    return kind


def _template_params(template) -> list[tuple[str, str, str, str]]:
    return [(name, decl.type, "required" if decl.required else repr(decl.default), decl.doc or "")
            for name, decl in template.decls.items()]


def list_table():
    from rich.table import Table

    table = Table(title="ops and built-in templates", title_justify="left")
    for column in ("name", "kind", "parameters", "what it does"):
        table.add_column(column)
    for name, cls in sorted(ops.REGISTRY.items()):
        params = ", ".join(f"{n}={d}" if d != "required" else n for n, _, d, _ in _op_params(cls))
        table.add_row(name, "op", params, (cls.__doc__ or "").strip().splitlines()[0])
    for name, template in sorted(builtins().items()):
        params = ", ".join(f"{n}={d}" if d != "required" else n for n, _, d, _ in _template_params(template))
        table.add_row(name, "template", params, template.doc or "")
    return table


def explain(name: str) -> str:
    """Plain-text reference for one op or template."""
    if name in ops.REGISTRY:
        cls = ops.REGISTRY[name]
        head = [f"{name} (op): {(cls.__doc__ or '').strip()}"]
        if cls.primary:
            head.append(f"shorthand: `{name}: VALUE` sets {cls.primary}")
        low, high = cls.inputs
        if high != 1:
            head.append(f"inputs: {low} or more, as `{name}: [a, b]` or `from: [a, b]`")
        rows = _op_params(cls)
    elif name in builtins():
        template = builtins()[name]
        head = [f"{name} (template, {template.file}): {template.doc or ''}"]
        rows = _template_params(template)
    else:
        known = [*ops.REGISTRY, *builtins()]
        raise SpecError(Pos("<command line>", 1, 1), f"no op or template named '{name}'",
                        hint=did_you_mean(name, known) or "`netspec list` shows them all")
    lines = head + ["parameters:" if rows else "parameters: none"]
    lines += [f"  {n}: {kind}, {default}" + (f" -- {doc}" if doc else "") for n, kind, default, doc in rows]
    return "\n".join(lines)
