"""The hooks an fa-mem plugin implements (pluggy project ``fa_mem``).

A plugin is a module (or object) registered through the entry-point group
``fa_mem``, exactly as fa-mem's own transformations are::

    [project.entry-points.fa_mem]
    my-transform = "my_package.fa_mem_plugin"

and implements some of these hooks, each marked with ``@hookimpl``::

    from fa_memtool.hookspecs import hookimpl, Candidate, PluginInfo

    @hookimpl
    def fa_mem_plugin_info() -> PluginInfo: ...

    @hookimpl
    def fa_mem_analyse(agents, context) -> list[Candidate]: ...

    @hookimpl
    def fa_mem_apply(agents, candidate) -> bool | None: ...

Every hook is documented below and in docs/plugins.md; a test checks that each hook
here is documented there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pluggy

PROJECT = "fa_mem"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class PluginInfo:
    """What ``fa-mem plugins`` lists for a plugin."""

    name: str  # the name users pass to --plugins; also the ``plugin`` of its candidates
    transforms: str  # one line: what it transforms, into what


@dataclass
class AnalysisContext:
    """What a plugin may use besides the live agents when it looks for candidates."""

    growing: dict[str, float] = field(default_factory=dict)  # attribute -> bytes per agent per step
    rtol: float = 1e-5
    atol: float = 1e-8
    exclude: frozenset[str] = frozenset()  # attribute names the user excluded


@dataclass
class Candidate:
    """One transformation of one attribute (by name, on every agent that has it)."""

    plugin: str
    attribute: str
    estimated_bytes_saved_per_agent: float  # computed from the measured arrays, never a fixed ratio
    reason: str
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON values only: they go into plans


@hookspec
def fa_mem_plugin_info() -> PluginInfo:  # type: ignore[empty-body]
    """Describe the plugin: its name and what it transforms."""


@hookspec
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:  # type: ignore[empty-body]
    """Return the attributes this plugin could transform on these live agents, each with
    the bytes per agent it would save, computed from the agents' own arrays. Must not
    modify the agents."""


@hookspec(firstresult=True)
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    """The expression that adopts ``candidate`` in the user's own code, given the
    expression their code assigns to the attribute today (for example
    ``np.zeros((448, 8))`` -> ``LazyBeliefArray.from_dense(np.zeros((448, 8)))``), if
    ``candidate`` is this plugin's; None otherwise."""


@hookspec(firstresult=True)
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    """Apply ``candidate`` to every agent that has the attribute, in place, if it is this
    plugin's (``candidate.plugin`` is its name), and return True; return None otherwise.
    Raise to refuse: fa-mem restores the attribute on every agent and reports the error."""
