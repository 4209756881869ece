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
    """A fresh manager with every installed ``fa_mem`` plugin (plus ``extra`` objects)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints(hookspecs.PROJECT)
    for plugin in extra:
        manager.register(plugin)
    return manager


def _info(manager: pluggy.PluginManager, plugin: object) -> PluginInfo | None:
    describe = getattr(plugin, "fa_mem_plugin_info", None)
    if describe is None:
        return None
    info = describe()
    return info if isinstance(info, PluginInfo) else None


def installed(manager: pluggy.PluginManager) -> list[InstalledPlugin]:
    """Every plugin that describes itself, with the distribution that installed it."""
    distributions = {id(plugin): dist for plugin, dist in manager.list_plugin_distinfo()}
    found = []
    for plugin in manager.get_plugins():
        info = _info(manager, plugin)
        if info is None:
            continue
        dist = distributions.get(id(plugin))
        found.append(
            InstalledPlugin(
                name=info.name,
                transforms=info.transforms,
                distribution=dist.project_name if dist is not None else "",
                version=dist.version if dist is not None else "",
            )
        )
    return sorted(found, key=lambda item: item.name)


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
    for name in enabled:
        analyse_hook = getattr(available[name], "fa_mem_analyse", None)
        if analyse_hook is None:
            continue
        try:
            found = list(analyse_hook(agents=agents, context=context) or [])
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
    apply_hook = getattr(plugin, "fa_mem_apply", None) if plugin is not None else None
    if apply_hook is None:
        raise TransformationFailed(f"plugin {candidate.plugin!r} is not installed or cannot apply")
    saved = [getattr(agent, candidate.attribute, _MISSING) for agent in agents]
    try:
        applied = apply_hook(agents=agents, candidate=candidate)
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
