"""Loading transformation plugins and calling them safely.

fa-mem's built-in transformations are registered through the same entry-point group
(``fa_mem``) as any third-party plugin, and are ordered by the priority each declares in
its ``PluginInfo``, so what ``fa-mem plugins`` lists is exactly what is installed and a
third-party plugin competes on equal terms. A plugin that raises while analysing is
skipped and reported; one that raises while applying has everything the agents held put
back before the error is reported, so a failed transformation leaves the agents as they
were.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from fa_memtool import hookspecs
from fa_memtool.errors import UsageError
from fa_memtool.hookspecs import DEFAULT_PRIORITY, AnalysisContext, Candidate, PluginInfo


@dataclass(frozen=True)
class InstalledPlugin:
    name: str
    transforms: str
    distribution: str  # the package that installed it ("" when registered by hand)
    version: str


@dataclass
class PluginFailure:
    plugin: str
    stage: str  # load, analyse or apply
    message: str


class TransformationFailed(Exception):
    """A plugin raised while applying a candidate; the agents were restored."""


class FaMemPluginManager(pluggy.PluginManager):
    """A pluggy manager that also knows which distribution installed each plugin and
    which entry points failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.distributions: dict[int, tuple[str, str]] = {}  # id(plugin) -> (distribution, version)
        self.load_failures: list[PluginFailure] = []

    def load_entry_points(self) -> None:
        """Register every ``fa_mem`` entry point, one by one: a plugin that fails to
        import is left out and recorded, never allowed to break the others."""
        from importlib.metadata import entry_points

        for entry_point in entry_points(group=hookspecs.PROJECT):
            if self.get_plugin(entry_point.name) is not None:
                continue  # the same entry point seen twice on sys.path
            try:
                plugin = entry_point.load()
                self.register(plugin, name=entry_point.name)
            except Exception as error:
                self.load_failures.append(PluginFailure(entry_point.name, "load", f"{type(error).__name__}: {error}"))
                continue
            dist = entry_point.dist
            self.distributions[id(plugin)] = (dist.name, dist.version) if dist is not None else ("", "")


_installed_manager: FaMemPluginManager | None = None
_installed_lock = threading.Lock()


def plugin_manager(*, extra: Iterable[object] = ()) -> pluggy.PluginManager:
    """The manager with every installed ``fa_mem`` plugin, plus the objects in ``extra``.

    Without ``extra`` it is one manager per process: entry points are loaded once, and
    every caller (the profile's suggestions, optimize, apply_plan) sees the same plugins.
    With ``extra`` (plugins registered by hand, as tests do) it is a fresh manager, so the
    shared one never gains plugins nobody installed."""
    global _installed_manager
    extras = list(extra)
    if not extras:
        with _installed_lock:
            if _installed_manager is None:
                manager = FaMemPluginManager()
                manager.load_entry_points()
                _installed_manager = manager
            return _installed_manager
    manager = FaMemPluginManager()
    manager.load_entry_points()
    for plugin in extras:
        manager.register(plugin)
    return manager


def load_failures(manager: pluggy.PluginManager) -> list[PluginFailure]:
    return list(manager.load_failures) if isinstance(manager, FaMemPluginManager) else []


def _info(plugin: object) -> PluginInfo | None:
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
    distributions = manager.distributions if isinstance(manager, FaMemPluginManager) else {}
    found = []
    for plugin in manager.get_plugins():
        info = _info(plugin)
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


def _described(manager: pluggy.PluginManager) -> dict[str, tuple[object, PluginInfo]]:
    named = {}
    for plugin in manager.get_plugins():
        info = _info(plugin)
        if info is not None:
            named[info.name] = (plugin, info)
    return named


def _plugins_by_name(manager: pluggy.PluginManager) -> dict[str, object]:
    return {name: plugin for name, (plugin, _) in _described(manager).items()}


def priorities(manager: pluggy.PluginManager) -> dict[str, int]:
    """Each plugin's declared priority (lower is tried first within one path)."""
    found = {}
    for name, (_, info) in _described(manager).items():
        priority = info.priority
        found[name] = priority if isinstance(priority, int) and not isinstance(priority, bool) else DEFAULT_PRIORITY
    return found


def lossy_plugins(manager: pluggy.PluginManager) -> set[str]:
    """The plugins that declare they change values (their candidates face the sensitivity test)."""
    return {name for name, (_, info) in _described(manager).items() if getattr(info, "lossy", False) is True}


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


def excluded(path: str, exclude: Iterable[str]) -> bool:
    """``path`` is excluded: it is, or lies inside, a path the user excluded."""
    from fa_memtool.holdings import is_under

    return any(is_under(path, prefix.lstrip(".")) for prefix in exclude)


def analyse(
    manager: pluggy.PluginManager, agents: list[Any], context: AnalysisContext, enabled: Iterable[str]
) -> tuple[list[Candidate], list[PluginFailure]]:
    """Candidates from every enabled plugin, largest saving first; failures apart.

    Every plugin gets the same copy of ``context``, so the walk of the agents one plugin
    asks for (``context.holdings(agents)``) serves the others, and none outlives this call."""
    available = _plugins_by_name(manager)
    shared_context = dataclasses.replace(context)
    candidates: list[Candidate] = []
    failures: list[PluginFailure] = []
    failures.extend(load_failures(manager))
    for name in enabled:
        try:
            found = list(_call(manager, "fa_mem_analyse", available[name], agents=agents, context=shared_context) or [])
        except Exception as error:  # a broken plugin must not stop the others
            failures.append(PluginFailure(name, "analyse", f"{type(error).__name__}: {error}"))
            continue
        candidates.extend(
            candidate
            for candidate in found
            if isinstance(candidate, Candidate) and not excluded(candidate.attribute, context.exclude)
        )
    candidates.sort(key=lambda candidate: candidate.estimated_bytes_saved_per_agent, reverse=True)
    return candidates, failures


def apply_unguarded(manager: pluggy.PluginManager, agents: list[Any], candidate: Candidate) -> None:
    """Apply one candidate through its plugin; the caller restores the agents on failure."""
    plugin = _plugins_by_name(manager).get(candidate.plugin)
    if plugin is None or getattr(plugin, "fa_mem_apply", None) is None:
        raise TransformationFailed(f"plugin {candidate.plugin!r} is not installed or cannot apply")
    try:
        applied = _call(manager, "fa_mem_apply", plugin, agents=agents, candidate=candidate)
    except Exception as error:
        raise TransformationFailed(
            f"plugin {candidate.plugin!r} failed on {candidate.attribute!r}: {type(error).__name__}: {error}"
        ) from error
    if not applied:
        raise TransformationFailed(f"plugin {candidate.plugin!r} did not apply to {candidate.attribute!r}")


def apply_candidate(manager: pluggy.PluginManager, agents: list[Any], candidate: Candidate) -> None:
    """Apply one candidate through its plugin; on any error put back everything the
    agents held (every path, aliases included) and raise TransformationFailed."""
    from fa_memtool.holdings import Snapshot

    if _plugins_by_name(manager).get(candidate.plugin) is None:
        raise TransformationFailed(f"plugin {candidate.plugin!r} is not installed or cannot apply")
    snapshot = Snapshot(agents)
    try:
        apply_unguarded(manager, agents, candidate)
    except TransformationFailed:
        snapshot.restore()
        raise
