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


DEFAULT_PRIORITY = 100


@dataclass(frozen=True)
class PluginInfo:
    """What ``fa-mem plugins`` lists for a plugin, and where it stands in the order."""

    name: str  # the name users pass to --plugins; also the ``plugin`` of its candidates
    transforms: str  # one line: what it transforms, into what
    # Within one path, candidates are tried in increasing priority. fa-mem's built-ins
    # declare theirs like any plugin: lower precision (10) before the containers,
    # which keep the dtype they are given, so both can apply to one array.
    priority: int = DEFAULT_PRIORITY
    # A lossy plugin changes values (lower precision): besides the replays, each of its
    # candidates must pass fa-mem optimize's sensitivity test (replays with the values
    # at its path perturbed by more than the change does).
    lossy: bool = False


@dataclass
class AnalysisContext:
    """What a plugin may use besides the live agents when it looks for candidates."""

    # Paths that grew during the profile (the deepest ones, e.g. ``agent.qs_hist``) ->
    # bytes per agent per step. A top-level path is the attribute name.
    growing: dict[str, float] = field(default_factory=dict)
    rtol: float = 1e-5
    atol: float = 1e-8
    exclude: frozenset[str] = frozenset()  # paths the user excluded, with everything under them
    # Paths the caller already knows from the sizer's tree; a plugin may restrict its
    # analysis to them. None: every path (a plugin must work without it).
    paths: list[str] | None = None
    steps: int = 0  # steps the agents ran before this analysis (0: not known)
    # Objects of the program that a walk from an agent never enters, as it never enters
    # another agent: the model that owns the agents (--agents-from).
    boundaries: tuple[Any, ...] = ()

    def holdings(self, agents: list[Any]) -> Any:
        """Every object the agents hold, by path (``fa_memtool.holdings.PopulationHoldings``).

        Walked once per analysis and shared by the plugins that ask for it: fa-mem
        passes each ``analyse`` call its own copy of the context, so the walk never
        outlives the agents' state it describes.
        """
        from fa_memtool.holdings import PopulationHoldings

        cached = self.__dict__.get("_holdings")
        if not isinstance(cached, PopulationHoldings) or not cached.describes(agents):
            cached = PopulationHoldings(agents, boundaries=self.boundaries)
            self.__dict__["_holdings"] = cached
        return cached


@dataclass
class Candidate:
    """One transformation of the objects at one path (on every agent that has it)."""

    plugin: str
    attribute: str  # the path (fa_memtool.paths syntax: "belief", "agent.B[0]", "history[*]")
    estimated_bytes_saved_per_agent: float  # computed from the measured objects, never a fixed ratio
    reason: str
    parameters: dict[str, Any] = field(default_factory=dict)  # JSON values only: they go into plans
    # What the profile shows for it (a Suggestion): the finding's kind, a sentence for
    # people and the measured figures behind the estimate (JSON values).
    kind: str = ""
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    # For a lossy plugin: the largest relative change the transformation makes to one
    # value (float64 -> float32 rounding: 2**-24, about 6e-8). The sensitivity test
    # perturbs by ten times this. None: the float32 rounding is assumed.
    relative_change: float | None = None


@hookspec
def fa_mem_plugin_info() -> PluginInfo:  # type: ignore[empty-body]
    """Describe the plugin: its name and what it transforms."""


@hookspec
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:  # type: ignore[empty-body]
    """Return the paths this plugin could transform on these live agents, each with the
    bytes per agent it would save, computed from the agents' own objects (counting only
    what the transformation really frees). Must not modify the agents."""


@hookspec(firstresult=True)
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    """The expression that adopts ``candidate`` in the user's own code, given a Python
    expression for the value at the path today (the user's own right-hand side, such as
    ``np.zeros((448, 8))``, or the path itself, such as ``self.agent.B[0]``), if
    ``candidate`` is this plugin's; None otherwise. It must be a real expression that
    evaluates to the transformed value (never None), so that transformations of one
    path compose by nesting."""


@hookspec(firstresult=True)
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    """Apply ``candidate`` to every agent that has the path, in place, if it is this
    plugin's (``candidate.plugin`` is its name), and return True; return None otherwise.
    Assign new objects (``fa_memtool.paths.assign``), never change objects in place.
    Raise to refuse: fa-mem restores what the agents held and reports the error."""


@hookspec
def fa_mem_buffer_handlers() -> list[Any]:  # type: ignore[empty-body]
    """Return buffer handlers (``fa_memtool.buffers.BufferHandler``) for types whose
    memory ``sys.getsizeof`` leaves out or misstates: what such an object owns, which
    objects it holds and which external buffers it keeps alive (keyed, so that shared
    memory is counted once), on which device. Called once per process; a handler must
    never import its library (``types()`` looks in ``sys.modules``)."""
