"""Loading transformation plugins and calling them safely.

fa-mem's built-in transformations are registered through the same entry-point group
(``fa_mem``) as any third-party plugin, so what ``fa-mem plugins`` lists is exactly what
is installed. A plugin that raises while analysing is skipped and reported; one that
raises while applying has every agent's attribute restored before the error is
reported, so a failed transformation leaves the agents exactly as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from fa_memtool import hookspecs
from fa_memtool.errors import UsageError
from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo


@dataclass(frozen=True)
class InstalledPlugin:
    name: str
    transforms: str
    distribution: str  # the package that installed it ("" when registered by hand)
    version: str


@dataclass
class PluginFailure:
    plugin: str
    stage: str  # analyse or apply
    message: str


class TransformationFailed(Exception):
    """A plugin raised while applying a candidate; the agents were restored."""


def plugin_manager(*, extra: Iterable[object] = ()) -> pluggy.PluginManager:
    """A fresh manager with every installed ``fa_mem`` plugin (plus ``extra`` objects).

    Entry points are loaded one by one: a plugin that fails to import is left out and
    recorded in ``load_failures(manager)``, never allowed to break the others."""
    from importlib.metadata import entry_points

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    distributions: dict[int, tuple[str, str]] = {}
    failures: list[PluginFailure] = []
    for entry_point in entry_points(group=hookspecs.PROJECT):
        if manager.get_plugin(entry_point.name) is not None:
            continue  # the same entry point seen twice on sys.path
        try:
            plugin = entry_point.load()
            manager.register(plugin, name=entry_point.name)
        except Exception as error:
            failures.append(PluginFailure(entry_point.name, "load", f"{type(error).__name__}: {error}"))
            continue
        dist = entry_point.dist
        distributions[id(plugin)] = (dist.name, dist.version) if dist is not None else ("", "")
    for plugin in extra:
        manager.register(plugin)
    setattr(manager, "fa_mem_distributions", distributions)
    setattr(manager, "fa_mem_load_failures", failures)
    return manager


def load_failures(manager: pluggy.PluginManager) -> list[PluginFailure]:
    return list(getattr(manager, "fa_mem_load_failures", []))


def _info(manager: pluggy.PluginManager, plugin: object) -> PluginInfo | None:
    describe = getattr(plugin, "fa_mem_plugin_info", None)
    if describe is None:
        return None
    try:
        info = describe()
    except Exception:  # a plugin that cannot describe itself is not offered
        return None
    return info if isinstance(info, PluginInfo) else None


def installed(manager: pluggy.PluginManager) -> list[InstalledPlugin]:
    """Every plugin that describes itself, with the distribution that installed it."""
    distributions: dict[int, tuple[str, str]] = getattr(manager, "fa_mem_distributions", {})
    found = []
    for plugin in manager.get_plugins():
        info = _info(manager, plugin)
        if info is None:
            continue
        distribution, version = distributions.get(id(plugin), ("", ""))
        found.append(InstalledPlugin(name=info.name, transforms=info.transforms, distribution=distribution, version=version))
    return sorted(found, key=lambda item: item.name)


def _call(manager: pluggy.PluginManager, hook_name: str, plugin: object, **arguments: Any) -> Any:
    """Call one plugin's hook implementation with the arguments it declares (pluggy
    lets an implementation take fewer arguments than the specification)."""
    for implementation in getattr(manager.hook, hook_name).get_hookimpls():
        if implementation.plugin is plugin:
            return implementation.function(*(arguments[name] for name in implementation.argnames))
    return None


def _plugins_by_name(manager: pluggy.PluginManager) -> dict[str, object]:
    named = {}
    for plugin in manager.get_plugins():
        info = _info(manager, plugin)
        if info is not None:
            named[info.name] = plugin
    return named


def select(manager: pluggy.PluginManager, names: Iterable[str] | None) -> list[str]:
    """The enabled plugin names: all installed ones, or the ones asked for (checked)."""
    available = _plugins_by_name(manager)
    if names is None:
        return sorted(available)
    chosen = [name.strip() for name in names if name.strip()]
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise UsageError(
            f"unknown plugin {', '.join(map(repr, unknown))}; installed: {', '.join(sorted(available)) or 'none'}"
        )
    return chosen


def analyse(
    manager: pluggy.PluginManager, agents: list[Any], context: AnalysisContext, enabled: Iterable[str]
) -> tuple[list[Candidate], list[PluginFailure]]:
    """Candidates from every enabled plugin, largest saving first; failures apart."""
    available = _plugins_by_name(manager)
    candidates: list[Candidate] = []
    failures: list[PluginFailure] = []
    failures.extend(load_failures(manager))
    for name in enabled:
        try:
            found = list(_call(manager, "fa_mem_analyse", available[name], agents=agents, context=context) or [])
        except Exception as error:  # a broken plugin must not stop the others
            failures.append(PluginFailure(name, "analyse", f"{type(error).__name__}: {error}"))
            continue
        candidates.extend(
            candidate for candidate in found if isinstance(candidate, Candidate) and candidate.attribute not in context.exclude
        )
    candidates.sort(key=lambda candidate: candidate.estimated_bytes_saved_per_agent, reverse=True)
    return candidates, failures


_MISSING = object()


def apply_candidate(manager: pluggy.PluginManager, agents: list[Any], candidate: Candidate) -> None:
    """Apply one candidate through its plugin; on any error restore every agent's attribute."""
    plugin = _plugins_by_name(manager).get(candidate.plugin)
    if plugin is None or getattr(plugin, "fa_mem_apply", None) is None:
        raise TransformationFailed(f"plugin {candidate.plugin!r} is not installed or cannot apply")
    saved = [getattr(agent, candidate.attribute, _MISSING) for agent in agents]
    try:
        applied = _call(manager, "fa_mem_apply", plugin, agents=agents, candidate=candidate)
        if not applied:
            raise TransformationFailed(f"plugin {candidate.plugin!r} did not apply to {candidate.attribute!r}")
    except Exception as error:
        for agent, value in zip(agents, saved):
            if value is _MISSING:
                if hasattr(agent, candidate.attribute):
                    delattr(agent, candidate.attribute)
            else:
                setattr(agent, candidate.attribute, value)
        if isinstance(error, TransformationFailed):
            raise
        raise TransformationFailed(
            f"plugin {candidate.plugin!r} failed on {candidate.attribute!r}: {type(error).__name__}: {error}"
        ) from error
