"""Ops from other packages, through the `netspec.ops` entry point group.

A package registers an op by declaring, in its own pyproject.toml,

    [project.entry-points."netspec.ops"]
    space_to_depth = "my_package.ops:SpaceToDepth"

where `SpaceToDepth` is a subclass of `netspec.ops.Op` (its `Params` model,
`infer`, `count_params`, `flops` and `build`, exactly like a built-in op). The
shape, parameter and FLOP rules must depend on the parameters and input shapes
alone: netspec remembers their results.
The registry loads these entry points once, when `netspec.ops` is first
imported. Only installed distributions can add ops: a spec never names a
Python module, and netspec never imports one because a spec mentions it.

A plugin module should import torch lazily (inside `build`), as the built-in
ops do, so that `netspec check` stays fast.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import metadata

GROUP = "netspec.ops"


@dataclass
class Plugin:
    """One entry point and what became of it."""

    name: str
    value: str
    dist: str | None
    error: str | None = None


#: every entry point seen in the group, loaded or not (for `netspec list` and error hints)
PLUGINS: dict[str, Plugin] = {}


class PluginWarning(UserWarning):
    pass


def load_plugins(registry: dict | None = None) -> dict[str, Plugin]:
    """Load every `netspec.ops` entry point into the op registry.

    A broken plugin never breaks netspec: it is recorded in PLUGINS with the
    reason and reported as a warning; specs that use its op then fail with
    a located "unknown op" error. A plugin gets exactly the name it declares:
    it cannot replace a built-in op, and other Op classes its module defines
    are not registered as a side effect of importing it.
    """
    from .ops.base import REGISTRY, Op

    registry = REGISTRY if registry is None else registry
    for entry in sorted(metadata.entry_points(group=GROUP), key=lambda e: e.name):
        dist = entry.dist.name if getattr(entry, "dist", None) is not None else None
        plugin = Plugin(entry.name, entry.value, dist)
        PLUGINS[entry.name] = plugin
        if entry.name in registry:
            owner = getattr(registry[entry.name], "plugin", None)
            plugin.error = (f"'{entry.name}' is already defined by plugin {owner}" if owner
                            else f"'{entry.name}' is a built-in op; a plugin cannot replace it")
        else:
            before = dict(registry)
            try:
                loaded = entry.load()
            except Exception as exc:  # the plugin's own bug: report it, keep going
                loaded, plugin.error = None, f"importing {entry.value} failed: {type(exc).__name__}: {exc}"
            finally:
                registry.clear()
                registry.update(before)
            if loaded is not None:
                plugin.error = _register(entry.name, loaded, registry, Op, plugin)
        if plugin.error:
            warnings.warn(f"netspec plugin '{entry.name}' ({dist or entry.value}) not loaded: {plugin.error}",
                          PluginWarning, stacklevel=2)
    return PLUGINS


def _register(name: str, loaded, registry: dict, op_base, plugin: Plugin) -> str | None:
    if not (isinstance(loaded, type) and issubclass(loaded, op_base)):
        return f"{plugin.value} is {type(loaded).__name__} {loaded!r}, not a subclass of netspec.ops.Op"
    op_name = loaded.__dict__.get("name")
    if op_name != name:
        return (f"the entry point is named '{name}' but {loaded.__name__}.name is {op_name!r}; "
                "they must be the same")
    loaded.plugin = plugin.value
    registry[name] = loaded
    return None


def describe(name: str) -> str | None:
    """'from plugin <dist>' for an op that came from a plugin."""
    plugin = PLUGINS.get(name)
    if plugin is None or plugin.error:
        return None
    return f"plugin {plugin.dist or plugin.value}"
