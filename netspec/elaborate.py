"""elaborate: one ordered walk that expands templates and repeats, evaluates
expressions, resolves references and infers every shape.

It is one pass because a template's parameters may depend on its input shape
(a residual block projects its shortcut only when channels or stride change).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from pydantic import ValidationError

from . import ops
from .errors import Frame, Pos, SpecError, did_you_mean
from .expr import REF, ExprError, substitute
from .ir import Node, Shape
from .load import Map, Seq
from .spec import META, STRUCTURE, located
from .templates import Template

MAX_REPEAT = 10_000
MAX_NODES = 50_000
MAX_TEMPLATE_DEPTH = 32
DEFAULT_MAX_PARAMS = 10_000_000_000


class OverBudget(SpecError):
    """The network has more parameters than the budget (`--max-params`): a size that is too large."""
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = {
    "input", "add_module", "add_submodule", "apply", "bfloat16", "buffers", "children", "code",
    "compile", "cpu", "cuda", "double", "eval", "float", "forward", "graph", "half", "meta",
    "modules", "parameters", "recompile", "state_dict", "to", "train", "training", "type",
    "zero_grad", "load_state_dict", "named_modules", "named_parameters", "named_buffers",
    "named_children", "register_buffer", "register_module", "register_parameter",
    "requires_grad_", "share_memory", "extra_repr", "get_submodule", "get_parameter",
    "get_buffer", "xpu", "ipu", "mtia", "to_empty", "print_readable", "shape_env", "to_folder",
    "T_destination", "call_super_init", "delete_all_unused_submodules", "delete_submodule",
    "dump_patches", "get_extra_state", "set_extra_state", "set_submodule", "register_backward_hook",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_state_dict_post_hook", "register_state_dict_pre_hook",
}


@dataclass
class Value:
    """A tensor flowing between nodes: which sibling made it, and its shape."""

    ref: str
    shape: Shape


class Scope:
    """The nodes of one group or template instance being elaborated."""

    def __init__(self, path: str, names: dict, input_shape: Shape):
        self.path, self.names = path, names
        self.prefix = path + "." if path else ""  # of its children's paths
        self.values = {"input": Value("input", input_shape)}
        self.prev = self.values["input"]
        self.nodes: list[Node] = []
        self.n_params = self.flops = 0  # of its nodes, summed as they are added

    def child_path(self, name: str) -> str:
        return self.prefix + name


class Elaborator:
    def __init__(self, templates: dict[str, Template], max_params: int = DEFAULT_MAX_PARAMS):
        self.templates = templates
        self.max_params = max_params
        self.chain: list[Frame] = []
        self.expanding: list[str] = []
        self.total_params = 0
        self.count = 0
        self.steps = 0  # layers visited (repeats included), so work is bounded even without nodes
        self.copies = 1  # the product of the repeat counts enclosing the current layer

    # -- errors ---------------------------------------------------------
    def error(self, pos: Pos, message: str, hint: str | None = None) -> SpecError:
        return SpecError(pos, message, hint, chain=self.chain)

    def value(self, raw, pos: Pos, names: dict, in_shape: Shape | None):
        """Substitute expressions in a value (recursively through lists and mappings)."""
        if _settled(raw):
            return raw
        if isinstance(raw, list):
            return [v if _settled(v) else self.value(v, raw.at(i) if isinstance(raw, Seq) else pos, names, in_shape)
                    for i, v in enumerate(raw)]
        if isinstance(raw, dict):
            return {k: v if _settled(v) else self.value(v, raw.at(k) if isinstance(raw, Map) else pos, names,
                                                        in_shape)
                    for k, v in raw.items()}
        try:
            return substitute(raw, names, in_shape)
        except ExprError as exc:
            raise self.error(pos, exc.message, exc.hint) from None

    def substituted(self, raw, ref: str | None, pos: Pos, names: dict, in_shape: Shape | None):
        """`value`, with a plain `$name` (`ref`, found when the layer was planned) looked up directly."""
        if ref is not None and ref in names:
            return names[ref]
        return self.value(raw, pos, names, in_shape)

    # -- walking --------------------------------------------------------
    def sequence(self, items, scope: Scope, names: dict, pos: Pos) -> None:
        if not isinstance(items, Seq):
            raise self.error(getattr(items, "pos", pos), "expected a list of layers")
        positions = items.item_pos if len(items.item_pos) == len(items) else [items.at(i) for i in range(len(items))]
        for item, at in zip(items, positions):
            # an op layer seen before, its inputs and id written out: straight to the op
            plan = item.__dict__.get("plan") if item.__class__ is Map else _BARE_PLANS.get(item) \
                if item.__class__ is str else None
            if plan is None or not plan.fast or \
                    not self.planned(plan, item if item.__class__ is Map else _NO_META, at, scope, names):
                self.layer(item, at, scope, names)

    def planned(self, plan: "_OpPlan", meta: Map, pos: Pos, scope: Scope, names: dict) -> bool:
        """An op layer by its plan, without the general walk's dispatch. False, having changed nothing,
        where the general walk must decide (a name not yet defined, a duplicate id, an `if` that is not
        a boolean): it then reports the problem as it always does."""
        values = scope.values
        if plan.refs is None:
            inputs = [scope.prev]
        else:
            inputs = []
            for ref in plan.refs:
                value = values.get(ref)
                if value is None:
                    return False
                inputs.append(value)
        name = plan.name
        if name is not None and name in values:
            return False
        if plan.cond is not _ABSENT:
            first = inputs[0] if plan.refs_from else scope.prev
            condition = self.substituted(plan.cond, plan.cond_ref, meta.at("if"), names, first.shape)
            if condition is False:  # skipped: its input passes through, under its id
                if name is not None:
                    values[name] = first
                scope.prev = first
                return True
            if condition is not True:
                return False
        self.step(pos)
        self.node(plan, meta, pos, None if plan.listed else plan.raw, inputs, scope, names,
                  name if name is not None else str(len(scope.nodes)))
        return True

    def layer(self, item, pos: Pos, scope: Scope, names: dict) -> None:
        if isinstance(item, str):
            item_map, key = None, self.kind_of_name(item, pos)
        elif isinstance(item, Map):
            plan = item.__dict__.get("plan")  # an op layer seen before: its kind is known
            item_map, key = item, plan.key if plan is not None else item.__dict__.get("structure") or \
                self.kind_of_map(item)
        else:
            raise self.error(pos, f"a layer must be an op name or a mapping, got {type(item).__name__}"
                             f" {item!r}", hint="e.g. `- relu` or `- conv: {out: 64, kernel: 3}`")
        meta = item_map if item_map is not None else _NO_META
        first_input = self.inputs(meta, scope, names)[0] if "from" in meta else scope.prev
        if "if" in meta:
            condition = self.value(meta["if"], meta.at("if"), names, first_input.shape)
            if not isinstance(condition, bool):
                raise self.error(meta.at("if"), f"'if' must be true or false, got {condition!r}")
            if not condition:
                self.skip(meta, scope, names, first_input)
                return
        times = 1
        if "repeat" in meta:
            times = self.value(meta["repeat"], meta.at("repeat"), names, first_input.shape)
            if isinstance(times, bool) or not isinstance(times, int) or times < 0:
                raise self.error(meta.at("repeat"), f"'repeat' must be a whole number >= 0, got {times!r}")
            if times > MAX_REPEAT:
                raise self.error(meta.at("repeat"), f"'repeat: {times}' is more than the limit of {MAX_REPEAT}")
            if self.copies * times > MAX_NODES:
                raise self.error(meta.at("repeat"), f"nested repeats make {self.copies * times:,} copies of this "
                                 f"layer, more than the limit of {MAX_NODES:,}")
        outer = self.copies
        self.copies = outer * max(times, 1)
        try:
            for index in range(times):
                local = {**names, "i": index} if "repeat" in meta else names
                if index == 1 and "from" in meta:  # `from` feeds the first copy; the rest chain
                    item_map = _without(item_map, "from")
                self.step(meta.at("repeat") if "repeat" in meta else pos)
                self.one(key, item_map, pos, scope, local)
        finally:
            self.copies = outer

    def step(self, pos: Pos) -> None:
        """Count one layer visited, so that work is bounded even where no node is made."""
        self.steps += 1
        if self.steps > MAX_NODES:
            raise self.error(pos, f"the network expands to more than {MAX_NODES:,} layers")

    def kind_of_name(self, name: str, pos: Pos) -> str:
        if ops.get(name) or name in self.templates:
            return name
        if name in _BARE_KEYWORDS:  # a keyword alone (`- group`): say what it needs, not "did you mean 'group'"
            raise self.error(pos, *_BARE_KEYWORDS[name])
        raise self.unknown(name, pos)

    def unknown(self, name, pos: Pos) -> SpecError:
        known = [*ops.REGISTRY, *self.templates, *META, *STRUCTURE]
        return self.error(pos, f"unknown op or template '{name}'",
                          hint=did_you_mean(name, known) or "`netspec list` shows every op and template")

    def kind_of_map(self, item: Map) -> str:
        if len(item) == 1:  # the common `- conv: {...}`
            (key,) = item
            if (key in ops.REGISTRY or key in self.templates) and key not in STRUCTURE:
                return key
        keys = [k for k in item if k not in META]
        if "group" in keys:
            self.only(item, keys, {"group", "layers"}, "group")
            if "layers" not in item:
                raise self.error(item.at("group"), "a group needs 'layers'")
            item.__dict__["structure"] = "group"  # these kinds depend on the keys alone: kept on the layer
            return "group"
        if "parallel" in keys:
            self.only(item, keys, {"parallel", "merge"}, "parallel")
            item.__dict__["structure"] = "parallel"
            return "parallel"
        if keys == ["layers"]:
            item.__dict__["structure"] = "layers"
            return "layers"
        kinds = [k for k in keys if ops.get(k) or k in self.templates]
        for key in keys:
            if key not in kinds:
                if key in STRUCTURE:
                    raise self.error(item.key_pos[key], f"'{key}' cannot be used here",
                                     hint="'layers' belongs to a group, 'merge' to a parallel")
                raise self.unknown(key, item.key_pos[key])
        if not kinds:
            raise self.error(item.pos, "this layer names no op or template",
                             hint="a layer is e.g. `- conv: {out: 64, kernel: 3}` or `- relu`")
        if len(kinds) > 1:
            raise self.error(item.key_pos[kinds[1]], f"a layer holds one op, found '{kinds[0]}' and "
                             f"'{kinds[1]}'", hint="put each op in its own list item (`- ...`)")
        return kinds[0]

    def only(self, item: Map, keys, allowed: set, what: str) -> None:
        for key in keys:
            if key not in allowed:
                raise self.error(item.key_pos[key], f"'{key}' cannot appear in a {what}",
                                 hint=did_you_mean(key, [*allowed, *META]))

    def inputs(self, meta: Map, scope: Scope, names: dict) -> list[Value]:
        raw = meta["from"]
        refs = raw if isinstance(raw, list) else [raw]
        if not refs:
            raise self.error(meta.at("from"), "'from' needs at least one node name")
        values = []
        for index, ref in enumerate(refs):
            pos = refs.at(index) if isinstance(refs, Seq) else meta.at("from")
            values.append(self.resolve(self.value(ref, pos, names, None), pos, scope))
        return values

    def resolve(self, ref, pos: Pos, scope: Scope) -> Value:
        if not isinstance(ref, str):
            raise self.error(pos, f"a reference must be a node id, got {ref!r}")
        if ref not in scope.values:
            hint = did_you_mean(ref, scope.values) or (
                "references point backwards to an earlier id in the same group "
                "(or 'input'); so a cycle cannot be written")
            raise self.error(pos, f"no node '{ref}' before this point", hint=hint)
        return scope.values[ref]

    def name_for(self, meta: Map, scope: Scope, names: dict) -> tuple[str, bool]:
        if "id" not in meta:
            return str(len(scope.nodes)), False
        name = self.value(meta["id"], meta.at("id"), names, None)
        problem = _bad_name(name)
        if problem:
            raise self.error(meta.at("id"), *problem)
        if name in scope.values:
            hint = "ids in a repeat need ${i}, e.g. id: block${i}" if "i" in names else None
            raise self.error(meta.at("id"), f"duplicate id '{name}' in this group", hint=hint)
        return name, True

    def skip(self, meta: Map, scope: Scope, names: dict, passed: Value) -> None:
        """A skipped node passes its input through, under its id (or group name) if it has one."""
        if "group" in meta and "id" not in meta:
            meta = _group_id(meta)
        if "id" in meta:
            name, _ = self.name_for(meta, scope, names)
            scope.values[name] = passed
        scope.prev = passed

    def add(self, node: Node, scope: Scope) -> None:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.error(node.pos, f"the network has more than {MAX_NODES} nodes")
        scope.nodes.append(node)
        scope.n_params += node.n_params
        scope.flops += node.flops
        value = Value(node.name, node.shape)
        scope.values[node.name] = value
        scope.prev = value

    def one(self, key: str, item: Map | None, pos: Pos, scope: Scope, names: dict) -> None:
        if item is None and key not in self.templates:  # a bare op name
            return self.op(key, _NO_META, pos, scope, names)
        meta = item if item is not None else Map(pos)
        if key == "layers":
            if "from" in meta:
                scope.prev = self.inputs(meta, scope, names)[0]
            self.no_id(meta, "an inline 'layers' list")
            self.sequence(meta["layers"], scope, names, meta.at("layers"))
        elif key == "parallel":
            self.parallel(meta, scope, names)
        elif key == "group":
            self.group(meta, scope, names)
        elif key in self.templates:
            self.template(key, meta, pos, scope, names)
        else:
            self.op(key, meta, pos, scope, names)

    def no_id(self, meta: Map, what: str) -> None:
        if "id" in meta:
            raise self.error(meta.at("id"), f"{what} cannot have an id", hint="use a group to name it")

    # -- the kinds of layers ---------------------------------------------
    def op(self, key: str, meta: Map, pos: Pos, scope: Scope, names: dict) -> None:
        plan = _plan_of(key, meta)
        op, raw, key_pos = plan.op, plan.raw, plan.key_pos or pos
        if plan.listed:  # `add: [a, b]`: the inputs are the op's own list
            if "from" in meta:
                raise self.error(meta.at(key), f"give {key}'s inputs either as its list or in 'from', not both")
            inputs = [self.resolve(self.value(r, raw.at(i), names, None), raw.at(i), scope)
                      for i, r in enumerate(raw)]
            raw = None
        elif "from" in meta:
            inputs = self.inputs(meta, scope, names)
        else:
            inputs = [scope.prev]
        low, high = op.inputs
        if len(inputs) < low or (high is not None and len(inputs) > high):
            want = f"{low}" if low == high else f"at least {low}"
            raise self.error(key_pos, f"{key} takes {want} input{'s' if low != 1 else ''}, got {len(inputs)}",
                             hint=f"list them: `{key}: [a, b]` or `from: [a, b]`" if low > 1 else None)
        self.node(plan, meta, pos, raw, inputs, scope, names,
                  plan.name if plan.name is not None and plan.name not in scope.values else None)

    def node(self, plan: "_OpPlan", meta: Map, pos: Pos, raw, inputs: list[Value], scope: Scope, names: dict,
             name: str | None) -> None:
        """An op layer's node once its inputs are known: parameters, shape rule, budget, name (None:
        by `name_for`)."""
        key, op, key_pos = plan.key, plan.op, plan.key_pos or pos
        in_shapes = [inputs[0].shape] if len(inputs) == 1 else [v.shape for v in inputs]
        params = plan.params or (self.mapping_params(plan, names, in_shapes[0]) if raw.__class__ is Map
                                 else self.op_params(op, key, raw, meta, pos, names, in_shapes[0]))
        rule = (op, id(params), in_shapes[0]) if len(in_shapes) == 1 else (op, id(params), *in_shapes)
        known = _RULES.get(rule)
        if known is not None and known[0] is params:  # the same parameters object on the same shapes
            _, shape, n_params, flops = known
        else:
            try:
                shape, n_params, flops = op.rules(params, in_shapes)
            except ops.ShapeError as exc:
                if isinstance(raw, Map) and exc.field:
                    where = raw.val_pos.get(exc.field, key_pos)
                elif raw is not None and exc.field and exc.field == op.primary:  # `maxpool: 9`: at the 9
                    where = meta.at(key)
                else:
                    where = key_pos
                raise self.error(where, f"{key}: {exc.message}", exc.hint) from None
            _remember(_RULES, rule, (params, shape, n_params, flops))
        self.total_params += n_params
        if self.total_params > self.max_params:
            raise OverBudget(key_pos, f"the network has more than {self.max_params:,} parameters "
                             f"(this {key} alone has {n_params:,})",
                             hint="raise the budget with --max-params if this is intended", chain=self.chain)
        if name is None:
            name, _ = self.name_for(meta, scope, names)
        self.add(Node(name, scope.prefix + name, key, key_pos,
                      [inputs[0].ref] if len(inputs) == 1 else [v.ref for v in inputs], in_shapes,
                      shape, params, n_params, flops), scope)

    def op_params(self, op, key: str, raw, meta: Map, pos: Pos, names: dict, in_shape: Shape):
        """Parameters given as nothing or as a shorthand value (`linear: 10`)."""
        if raw is None:
            values, where = {}, meta.key_pos.get(key, pos)
            raw = Map(where)  # errors point at the op's name
        elif op.primary:
            values, where = {op.primary: self.value(raw, meta.at(key), names, in_shape)}, meta.at(key)
            raw = _single(op.primary, raw, meta.at(key))
        else:
            raise self.error(meta.at(key), f"{key} takes no shorthand value; give a mapping of parameters",
                             hint=f"parameters: {', '.join(op.Params.model_fields) or 'none'}")
        memo = (op.Params, _frozen(values))
        params = _VALIDATED.get(memo)
        if params is not None:
            return params
        try:
            return _validated(memo, op.Params, values)
        except ValidationError as exc:
            err = located(exc, raw, where, op.Params, prefix=f"{key}.")
            raise self.error(err.pos, err.message, err.diagnostic.hint) from None

    def mapping_params(self, plan: "_OpPlan", names: dict, in_shape: Shape):
        """Parameters given as a mapping: only its expressions are substituted, and each distinct
        result is validated once (`_validated`)."""
        subs, memo = [], [plan]  # a loop, not comprehensions: this runs for most ops of every block
        for _, raw, at, ref in plan.exprs:
            value = names[ref] if ref is not None and ref in names else self.value(raw, at, names, in_shape)
            subs.append(value)
            memo.append(_frozen(value))
        memo = tuple(memo)
        params = _VALIDATED.get(memo)
        if params is None:
            values = dict(plan.raw)
            for (key, _, _, _), value in zip(plan.exprs, subs):
                values[key] = value
            try:
                params = _validated(memo, plan.op.Params, values)
            except ValidationError as exc:
                err = located(exc, plan.raw, plan.raw.pos, plan.op.Params, prefix=f"{plan.key}.")
                raise self.error(err.pos, err.message, err.diagnostic.hint) from None
        return params

    def group(self, meta: Map, scope: Scope, names: dict) -> None:
        if "id" in meta:
            raise self.error(meta.at("id"), "a group is named by 'group:', not 'id'")
        name, _ = self.name_for(_group_id(meta), scope, names)
        start = self.inputs(meta, scope, names)[0] if "from" in meta else scope.prev
        child = Scope(scope.child_path(name), names, start.shape)
        self.sequence(meta["layers"], child, names, meta.at("layers"))
        self.add(self.group_node(name, "group", meta.key_pos["group"], child, start, None), scope)

    def group_node(self, name: str, op: str, pos: Pos, child: Scope, start: Value, params) -> Node:
        return Node(name, child.path, op, pos, [start.ref], [start.shape], child.prev.shape, params,
                    child.n_params, child.flops, child.nodes, child.prev.ref, group=True)

    def parallel(self, meta: Map, scope: Scope, names: dict) -> None:
        branches = meta["parallel"]
        if not isinstance(branches, Seq) or not branches:
            raise self.error(meta.at("parallel"), "'parallel' needs a list of branches")
        start = self.inputs(meta, scope, names)[0] if "from" in meta else scope.prev
        outputs = []
        for index, branch in enumerate(branches):
            scope.prev = start
            if isinstance(branch, Seq):
                self.sequence(branch, scope, names, branches.at(index))
            else:
                self.layer(branch, branches.at(index), scope, names)
            outputs.append(scope.prev)
        merge_item = meta.__dict__.get("merge_item") or self.merge_item(meta, len(outputs))
        for index, value in enumerate(outputs):
            scope.values[f"__branch{index}"] = value
        try:
            self.op(next(iter(merge_item)), merge_item, merge_item.pos, scope, names)
        finally:
            for index in range(len(outputs)):
                scope.values.pop(f"__branch{index}", None)

    def merge_item(self, meta: Map, branches: int) -> Map:
        """A parallel's merge as the op layer it stands for, taking the branches' outputs; made once per
        parsed parallel (it is kept on it), so that its op is planned once."""
        merge = meta.get("merge", "concat")
        merge_pos = meta.at("merge") if "merge" in meta else meta.key_pos["parallel"]
        if isinstance(merge, Map) and len(merge) == 1:
            merge_key = next(iter(merge))
        elif isinstance(merge, str):
            merge_key, merge = merge, Map(merge_pos)
        else:
            raise self.error(merge_pos, "'merge' is an op name (concat, add, mul) or `{concat: {dim: 1}}`")
        op = ops.get(merge_key)
        if op is None or op.inputs[1] == 1:
            raise self.error(merge_pos, f"cannot merge branches with '{merge_key}'",
                             hint="use concat, add or mul")
        merge_item = Map(merge_pos)
        merge_item[merge_key] = merge.get(merge_key) if isinstance(merge, Map) else None
        merge_item.key_pos[merge_key] = merge_pos
        merge_item.val_pos[merge_key] = merge_pos
        if "id" in meta:
            merge_item["id"], merge_item.val_pos["id"] = meta["id"], meta.at("id")
        merge_item["from"] = Seq(merge_pos)
        merge_item["from"].extend(f"__branch{i}" for i in range(branches))
        merge_item["from"].item_pos.extend([merge_pos] * branches)
        merge_item.val_pos["from"] = merge_pos
        meta.__dict__["merge_item"] = merge_item
        return merge_item

    def template(self, key: str, meta: Map, pos: Pos, scope: Scope, names: dict) -> None:
        template = self.templates[key]
        key_pos = meta.key_pos.get(key, pos)
        if key in self.expanding:
            cycle = " -> ".join([*self.expanding, key])
            raise self.error(key_pos, f"template '{key}' is recursive ({cycle})",
                             hint="a template cannot contain itself, directly or through another")
        if len(self.expanding) >= MAX_TEMPLATE_DEPTH:
            raise self.error(key_pos, f"templates nest more than {MAX_TEMPLATE_DEPTH} deep "
                             f"({' -> '.join([*self.expanding, key])})")
        start = self.inputs(meta, scope, names)[0] if "from" in meta else scope.prev
        args = self.template_args(template, meta.get(key), meta.at(key), names, start.shape)
        name, _ = self.name_for(meta, scope, names)
        child = Scope(scope.child_path(name), args, start.shape)
        self.chain.append(Frame(key, child.path, key_pos))
        self.expanding.append(key)
        try:
            self.sequence(template.graph, child, args, template.pos)
        finally:
            self.chain.pop()
            self.expanding.pop()
        self.add(self.group_node(name, key, key_pos, child, start, args), scope)

    def template_args(self, template: Template, raw, pos: Pos, names: dict, in_shape: Shape) -> dict:
        """An instance's arguments: those given, then the defaults (which may read `in` and the
        arguments before them), each checked against its declared type. The result depends only on
        the template, the given values and the input shape, so it is remembered by them."""
        memo = self.args_memo(template, raw, names, in_shape)
        args = _ARGS.get(memo) if memo is not None else None
        if args is None:
            args = self.instance_args(template, raw, pos, names, in_shape)
            if memo is not None:
                _remember(_ARGS, memo, dict(args))
            return args
        return dict(args)  # each instance its own dict

    def args_memo(self, template: Template, raw, names: dict, in_shape: Shape):
        """(template, input shape, the given values), or None where `instance_args` must say what is wrong."""
        if raw is None:
            return template, in_shape
        if raw.__class__ is not Map:
            return None
        try:
            return (template, in_shape, *[(key, _frozen(value if _settled(value) else
                                                        self.value(value, raw.at(key), names, in_shape)))
                                          for key, value in raw.items()])
        except SpecError:  # reported by instance_args, in its order
            return None

    def instance_args(self, template: Template, raw, pos: Pos, names: dict, in_shape: Shape) -> dict:
        if raw is None:
            raw = Map(pos)
        if not isinstance(raw, Map):
            raise self.error(pos, f"template '{template.name}' takes a mapping of parameters",
                             hint=f"parameters: {', '.join(template.decls) or 'none'}")
        for key in raw:
            if key not in template.decls:
                raise self.error(raw.key_pos[key], f"template '{template.name}' has no parameter '{key}'",
                                 hint=did_you_mean(key, template.decls) or
                                 f"parameters: {', '.join(template.decls) or 'none'}")
        args = {}
        for pname, decl in template.decls.items():
            if pname in raw:
                value, where = self.value(raw[pname], raw.at(pname), names, in_shape), raw.at(pname)
            elif decl.required:
                raise self.error(pos, f"template '{template.name}' needs parameter '{pname}'"
                                 + (f" ({decl.doc})" if decl.doc else ""))
            else:
                where, value = template.decl_pos[pname], decl.default
                if not _settled(value):  # an expression: evaluated among the instance's arguments so far
                    self.chain.append(Frame(template.name, "defaults", pos))
                    try:
                        value = self.value(value, where, args, in_shape)
                    finally:
                        self.chain.pop()
            args[pname] = self.typed(decl.type, value, pname, where)
        return args

    def typed(self, kind: str, value, name: str, pos: Pos):
        if value.__class__ is _KINDS.get(kind):  # already of the declared type
            return value
        if kind == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(pos, f"parameter '{name}' must be an integer, got {value!r}")
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.error(pos, f"parameter '{name}' must be a number, got {value!r}")
        elif kind == "bool" and not isinstance(value, bool):
            raise self.error(pos, f"parameter '{name}' must be true or false, got {value!r}")
        elif kind == "str" and not isinstance(value, str):
            raise self.error(pos, f"parameter '{name}' must be a string, got {value!r}")
        elif kind == "list" and not isinstance(value, list):
            raise self.error(pos, f"parameter '{name}' must be a list, got {value!r}")
        return value


def _bad_name(name) -> tuple[str, str | None] | None:
    """Why `name` cannot be a node id (message, hint), or None when it can."""
    if type(name) is str and name in _GOOD_NAMES:  # ids recur in every instance and every load
        return None
    if not isinstance(name, str) or not NAME.match(name):
        return f"id {name!r} is not a valid name", "letters, digits and _, not starting with a digit"
    if name in RESERVED or name.startswith("_"):
        return f"id '{name}' is reserved (it clashes with a PyTorch module attribute)", None
    if name == "self":  # fx names a node after its id, and the generated forward's module is `self`
        return "id 'self' is reserved (the generated forward code names the module 'self')", "e.g. 'self_'"
    if keyword.iskeyword(name):
        return f"id '{name}' is a Python keyword, which the generated code cannot use", f"e.g. '{name}_'"
    if len(_GOOD_NAMES) < 10_000:
        _GOOD_NAMES.add(name)
    return None


_GOOD_NAMES: set = set()  # ids found good; bounded


class _OpPlan:
    """What an op layer's own text settles, worked out once per parsed layer.

    Templates are parsed once per process and expanded many times, so their
    layers' op, literal parameters (validated) and literal id are not redone
    for every instance; only what depends on arguments and shapes is.
    """

    __slots__ = ("key", "op", "raw", "params", "name", "exprs", "key_pos", "listed", "refs", "refs_from",
                 "cond", "cond_ref", "fast")

    def __init__(self, key: str, meta: Map):
        self.key, self.op = key, _instance(ops.get(key))
        self.raw = meta.get(key)
        self.key_pos = meta.key_pos.get(key)  # None for a bare name: the layer's own position then
        self.listed = isinstance(self.raw, Seq) and self.op.inputs[1] != 1  # `add: [a, b]` names its inputs
        self.params = self.name = None
        # a mapping's (key, expression, where, the name of a plain `$name`) to substitute
        self.exprs = [(k, v, self.raw.at(k), _ref(v)) for k, v in self.raw.items() if not _literal(v)] \
            if isinstance(self.raw, Map) else []
        literal = not self.exprs if isinstance(self.raw, Map) else _literal(self.raw)
        if self.listed or literal:  # a listed op's list is its inputs: it takes no parameters
            values = {} if self.listed or self.raw is None else self.raw if isinstance(self.raw, Map) else \
                {self.op.primary: self.raw} if self.op.primary else None
            if values is not None:  # validated once per distinct value: a spec's own layers are planned anew
                memo = (self.op.Params, _frozen(values))  # on every load, as its text is parsed anew
                self.params = _VALIDATED.get(memo)
                try:
                    if self.params is None:
                        self.params = _validated(memo, self.op.Params, values)
                except ValidationError:
                    pass  # reported, with its place, where the layer is elaborated
        if "id" in meta and _literal(meta["id"]) and _bad_name(meta["id"]) is None:
            self.name = meta["id"]
        self.cond = meta.get("if", _ABSENT)
        self.cond_ref = _ref(self.cond)
        # the inputs by name, when written out: `from: a`, `from: [a, b]` or `add: [a, b]`
        self.refs_from = "from" in meta
        written = meta["from"] if self.refs_from else self.raw if self.listed else None
        self.refs = (written,) if type(written) is str else tuple(written) if isinstance(written, Seq) else None
        count = len(self.refs) if self.refs is not None else 1
        low, high = self.op.inputs
        # what `planned` can do alone: no repeat, inputs and id written out, as many inputs as the op takes
        self.fast = ("repeat" not in meta and not (self.listed and self.refs_from)
                     and (written is None or (self.refs is not None and all(type(r) is str and "$" not in r
                                                                             for r in self.refs)))
                     and ("id" not in meta or self.name is not None)
                     and low <= count and (high is None or count <= high))


_VALIDATED: dict = {}  # (Params class or plan, frozen values) -> the Params model (immutable); bounded


def _validated(memo, params_class, values):
    """Validate op parameters, remembering the model: the same values recur in every instance of a
    block and in every load of a spec. Only successes are kept, so an error is raised on every load."""
    return _remember(_VALIDATED, memo, params_class.__pydantic_validator__.validate_python(values))


def _remember(table: dict, key, value):
    """Keep `value` under `key` in a memo of at most 10,000 entries; a full one starts again, so that
    a long session of edited specs keeps what recurs now."""
    if len(table) >= 10_000:
        table.clear()
    table[key] = value
    return value


_RULES: dict = {}  # (op, id of its Params model, input shapes) -> (the model, shape, parameters, FLOPs); bounded.
# Shape rules are pure, and a block's ops meet the same parameters on the same shapes again and again; the
# model is kept in the entry so that its id cannot be reused while the entry lives.
_ARGS: dict = {}  # (template, input shape, given values) -> a template instance's arguments; bounded
_INSTANCES: dict = {}
_BARE_PLANS: dict = {}  # plans of layers written as a bare op name, e.g. `- relu`


def _instance(cls):
    """Ops keep no state, so one instance per class serves every layer."""
    if cls not in _INSTANCES:
        _INSTANCES[cls] = cls()
    return _INSTANCES[cls]


def _plan_of(key: str, meta: Map) -> _OpPlan:
    if not meta:  # a bare `- relu`
        plan = _BARE_PLANS.get(key)
        if plan is None:
            plan = _BARE_PLANS[key] = _OpPlan(key, meta)
        return plan
    plan = meta.__dict__.get("plan")
    if plan is None or plan.key != key:
        plan = meta.__dict__["plan"] = _OpPlan(key, meta)
    return plan


def _literal(value) -> bool:
    """Nothing to substitute anywhere inside `value`."""
    if _settled(value):
        return True
    if isinstance(value, list):
        return all(_literal(v) for v in value)
    if isinstance(value, dict):
        return all(_literal(v) for v in value.values())
    return False


def _ref(value) -> str | None:
    """The name in a plain `$name`, else None."""
    match = REF.match(value) if type(value) is str else None
    return match.group(1) if match else None


_BARE_KEYWORDS = {  # what a keyword of the language written alone as a layer needs: (message, hint)
    "group": ("'group' needs a mapping: its name and its layers",
              "write `- group: stem` with `layers: [...]` under it, indented"),
    "layers": ("'layers' needs a list of layers", "e.g. `- layers: [relu, {linear: 10}]`"),
    "parallel": ("'parallel' needs a list of branches", "e.g. `- {parallel: [relu, gelu], merge: add}`"),
    "merge": ("'merge' is not a layer: it says how a parallel joins its branches",
              "e.g. `- {parallel: [relu, gelu], merge: add}`"),
    **{key: (f"'{key}' is not a layer: it is a key of one", f"e.g. `- {{{key}: ..., relu}}`") for key in META},
}
_ABSENT = object()  # no `if`
_KINDS = {"int": int, "float": float, "bool": bool, "str": str, "list": list}  # a declared type's exact class
_PLAIN = {int, float, bool, type(None)}  # values with nothing to substitute
_SCALARS = {int, float, bool, type(None), str}  # hashable as they are; `_frozen` of one is (type, value)
_NO_META = Map(Pos("<none>", 1, 1))  # the meta keys of a layer written as a bare name: none (never mutated)


def _frozen(value):
    """A hashable image of a parameter value that keeps types apart (1, 1.0 and True differ)."""
    if value.__class__ in _SCALARS:  # the usual case, first
        return (value.__class__, value)
    if isinstance(value, dict):
        return (dict, tuple([(k, _frozen(v)) for k, v in value.items()]))
    if isinstance(value, list):
        return (list, tuple(_frozen(v) for v in value))
    return (type(value), value)


def _settled(value) -> bool:
    """A value with nothing to substitute (checked before finding its position)."""
    return type(value) in _PLAIN or (type(value) is str and "$" not in value)


def _group_id(meta: Map) -> Map:
    """A group's name as an `id`; `group: null` has none, so it is numbered like an unnamed layer."""
    id_meta = meta.__dict__.get("group_id")  # made once per parsed group: a template's, for every instance
    if id_meta is None:
        id_meta = meta.__dict__["group_id"] = Map(meta.pos)
        if meta["group"] is not None:
            id_meta["id"], id_meta.val_pos["id"] = meta["group"], meta.at("group")
    return id_meta


def _without(item: Map, key: str) -> Map:
    copy = Map(item.pos)
    for name, value in item.items():
        if name != key:
            copy[name] = value
            copy.key_pos[name], copy.val_pos[name] = item.key_pos[name], item.val_pos[name]
    return copy


def _single(key: str, value, pos: Pos) -> Map:
    """A shorthand `linear: 10` seen as `{out: 10}`, so errors point at the 10."""
    single = Map(pos)
    single[key] = value
    single.key_pos[key] = pos
    single.val_pos[key] = pos
    return single
