"""What a population holds, path by path: the one enumeration analyses and transformations share.

Every plugin looks at the agents through this module, so a path it proposes is a path
``fa_memtool.paths`` reads and writes, and one transformation's idea of "where an object
is" is every other's. Each agent is walked with ``fa_memtool.paths.walk`` (the other
agents are boundaries), which names every object once, at its shortest path. Beside the
walk, every edge is recorded (which holder holds which object under which step), so that

- the items of a large container are grouped as one path (``history[*]``, the sizer's
  tree does the same) and a plugin analyses one group, not a thousand positions;
- an object held at two places inside one agent (a cache and the model it came from) is
  replaced at both, and a plugin can tell when something would keep it alive anyway (a
  frozenset holding it, a view of its buffer) and promise no saving for it;
- a failed transformation can be undone: ``Snapshot`` records every edge and puts back
  whatever a plugin replaced.

Immutable holders are handled where they can be: an object inside a tuple (or a
namedtuple) is replaced by rebuilding the tuple and replacing the tuple wherever it is
held. Sets and frozensets cannot be rebuilt in place (their items have no position):
what they hold stays.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fa_memtool.paths import (
    ALL,
    COLLAPSE_ITEMS,
    PathError,
    Step,
    assign,
    groups_items,
    is_under,
    join,
    labelled_children,
    object_attributes,
    parse_path,
    resolve,
    walk,
)

__all__ = [
    "COLLAPSE_ITEMS",
    "AgentHoldings",
    "Edge",
    "Held",
    "PopulationHoldings",
    "Snapshot",
    "is_under",
    "occurrences",
    "replace_in",
]

MAX_DEPTH = 8  # levels below the agent; paths.walk's default
MAX_OBJECTS = 100_000  # per agent: a bound on the walk's time and memory
# Grouping as the sizer's tree does (fa_memtool.pathtree): a container with more items
# than COLLAPSE_ITEMS shows them as one [*] path (fa_memtool.paths.groups_items).

_SCALARS = (str, bytes, int, float, complex, bool)  # immutable leaves: never transformed, never aliased usefully
_SCALAR_TYPES = frozenset({str, bytes, int, float, complex, bool, type(None)})
_FLAT = frozenset({tuple, list})


@dataclass(frozen=True)
class Edge:
    """``holder`` holds an object under ``step``; ``path`` is the object's path this way."""

    holder: Any
    step: Step
    path: str


@dataclass(frozen=True)
class Held:
    """One object inside one agent: its group path, its own (first) path and the object."""

    group: str  # "history[*]" for the items of a large container, else the same as path
    path: str
    value: Any
    depth: int


def _rebuildable(holder: Any) -> bool:
    """A tuple whose items can be put into a new tuple of the same type."""
    return type(holder) is tuple or (isinstance(holder, tuple) and hasattr(type(holder), "_make"))


def _buffer_owner(obj: Any) -> Any | None:
    """The array owning a numeric array's buffer (itself when it owns it); None for
    anything else. numpy is looked up, never imported: no array without it."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(obj, numpy.ndarray) or obj.dtype == object:
        return None
    while isinstance(obj.base, numpy.ndarray):
        obj = obj.base
    return obj


def _rebuilt(holder: tuple[Any, ...], items: list[Any]) -> tuple[Any, ...]:
    return tuple(items) if type(holder) is tuple else type(holder)._make(items)  # type: ignore[attr-defined]


class AgentHoldings:
    """One agent's objects by path, with every edge that holds each of them."""

    def __init__(
        self,
        agent: Any,
        index: int = 0,
        *,
        stop: frozenset[int] = frozenset(),
        max_depth: int = MAX_DEPTH,
        max_objects: int = MAX_OBJECTS,
    ) -> None:
        self.agent = agent
        self.index = index
        self.held: list[Held] = []
        self._edges: dict[int, list[Edge]] = {}
        self._views: dict[int, list[Held]] = {}  # id of a buffer owner -> arrays viewing it
        self._scan(stop | {id(agent)}, max_depth, max_objects)

    def _record(self, holder: Any, holder_path: str, holder_group: str, group: dict[int, str], stop: frozenset[int]) -> None:
        if type(holder) in _FLAT and all(type(item) in _SCALAR_TYPES for item in holder):
            return  # a row of numbers (a transition tuple, a list of ints): nothing to name
        children = labelled_children(holder)
        collapse = groups_items(holder, [step for step, _ in children])
        for step, child in children:
            if child is None or id(child) in stop or isinstance(child, _SCALARS):
                continue
            self._edges.setdefault(id(child), []).append(Edge(holder, step, join(holder_path, step)))
            # The first holder in breadth-first order names the object, as in paths.walk.
            group.setdefault(id(child), join(holder_group, ALL if collapse else step))

    def _scan(self, stop: frozenset[int], max_depth: int, max_objects: int) -> None:
        group: dict[int, str] = {}
        self._record(self.agent, "", "", group, stop)
        for path, obj, depth in walk(self.agent, max_depth=max_depth, max_objects=max_objects, stop=stop):
            if isinstance(obj, _SCALARS):
                continue  # numbers and strings hold nothing and are never transformed
            held = Held(group.get(id(obj), path), path, obj, depth)
            self.held.append(held)
            owner = _buffer_owner(obj)
            if owner is not None and owner is not obj:
                self._views.setdefault(id(owner), []).append(held)
            if depth < max_depth:
                self._record(obj, path, held.group, group, stop)

    # -- reading -------------------------------------------------------------------------

    def edges(self, value: Any) -> list[Edge]:
        """Every edge inside the agent that holds ``value`` (more than one: aliases)."""
        return list(self._edges.get(id(value), ()))

    def aliases(self, value: Any) -> list[str]:
        return [edge.path for edge in self._edges.get(id(value), ())]

    def keeping_alive(self, value: Any, *, replaced: Iterable[Any] = (), replaced_ids: set[int] | None = None) -> list[str]:
        """Paths through which ``value`` (or its buffer) stays reachable inside the agent
        even when it is replaced everywhere it can be: a set or frozenset holding it, a
        tuple that cannot be rebuilt, a view of its buffer (or the owner of the buffer
        it views) that is not replaced too. Empty when replacing frees it. The objects
        replaced with it are ``replaced``, or their ids ``replaced_ids`` (one set for
        many calls)."""
        replacing = {id(item) for item in replaced} if replaced_ids is None else replaced_ids
        found = self._unreplaceable(value, set())
        owner = _buffer_owner(value)
        if owner is not None:
            if owner is not value and id(owner) not in replacing and id(owner) in self._edges:
                found.extend(self.aliases(owner)[:1])
            found.extend(
                held.path
                for held in self._views.get(id(owner), ())
                if id(held.value) not in replacing and held.value is not value
            )
        return found

    def _unreplaceable(self, value: Any, visiting: set[int]) -> list[str]:
        if id(value) in visiting:
            return []
        visiting.add(id(value))
        found: list[str] = []
        for edge in self._edges.get(id(value), ()):
            if isinstance(edge.holder, (set, frozenset)) or edge.step.kind == "items":
                found.append(edge.path)
            elif isinstance(edge.holder, tuple):
                if not _rebuildable(edge.holder):
                    found.append(edge.path)
                else:
                    found.extend(self._unreplaceable(edge.holder, visiting))
        return found

    # -- writing -------------------------------------------------------------------------

    def replace(self, replacements: dict[int, Any]) -> list[str]:
        """Put ``replacements[id(old)]`` wherever the agent holds ``old``, and return the
        paths written. Tuples on the way are rebuilt (one new tuple per old one, so a
        tuple held twice stays one object) and replaced where they are held."""
        anchors: dict[tuple[int, Step], tuple[Edge, Any]] = {}
        tuples: set[int] = set()
        pending = list(replacements)
        while pending:
            target = pending.pop()
            for edge in self._edges.get(target, ()):
                holder = edge.holder
                if isinstance(holder, tuple):
                    if not _rebuildable(holder):
                        raise PathError(f"cannot replace {edge.path!r}: it is held by a {type(holder).__name__}")
                    if id(holder) not in tuples:
                        tuples.add(id(holder))
                        pending.append(id(holder))
                elif isinstance(holder, (set, frozenset)):
                    raise PathError(f"cannot replace {edge.path!r}: it is an item of a {type(holder).__name__}")
                else:
                    anchors[(id(holder), edge.step)] = (edge, _child(holder, edge.step))
        # A plain function, not a recursive closure: a closure referring to itself is a
        # reference cycle, which would keep the replaced objects alive until the next
        # garbage collection (and the memory out of reach of release_freed_memory).
        memo: dict[int, Any] = {}
        written = []
        for edge, child in anchors.values():
            assign(edge.holder, (edge.step,), _with_replacements(child, replacements, tuples, memo))
            written.append(edge.path)
        return written


def _with_replacements(obj: Any, replacements: dict[int, Any], tuples: set[int], memo: dict[int, Any]) -> Any:
    """``obj`` with the replacements made: the new object, a rebuilt tuple (one per old
    tuple, through ``memo``) or ``obj`` itself."""
    key = id(obj)
    if key in replacements:
        return replacements[key]
    if key not in tuples:
        return obj
    if key not in memo:
        items = [_with_replacements(item, replacements, tuples, memo) for item in obj]
        memo[key] = obj if all(new is old for new, old in zip(items, obj)) else _rebuilt(obj, items)
    return memo[key]


def _child(holder: Any, step: Step) -> Any:
    return resolve(holder, (step,))


class PopulationHoldings:
    """Every agent's holdings, and the objects at each path across the population."""

    def __init__(
        self,
        agents: Sequence[Any],
        *,
        boundaries: Iterable[Any] = (),
        max_depth: int = MAX_DEPTH,
        max_objects: int = MAX_OBJECTS,
    ) -> None:
        self._ids = [id(agent) for agent in agents]
        boundary = frozenset(self._ids) | {id(obj) for obj in boundaries}
        self.agents = [
            AgentHoldings(agent, index, stop=boundary, max_depth=max_depth, max_objects=max_objects)
            for index, agent in enumerate(agents)
        ]

    def describes(self, agents: Sequence[Any]) -> bool:
        return [id(agent) for agent in agents] == self._ids

    def groups(self, paths: Iterable[str] | None = None) -> dict[str, list[tuple[AgentHoldings, Held]]]:
        """Group path -> every (agent, object) at it, in the order the walks met them.
        With ``paths``, only the groups named there (by group or by own path)."""
        wanted = set(paths) if paths is not None else None
        found: dict[str, list[tuple[AgentHoldings, Held]]] = {}
        for holdings in self.agents:
            for held in holdings.held:
                if wanted is None or held.group in wanted or held.path in wanted:
                    found.setdefault(held.group, []).append((holdings, held))
        return found


def occurrences(root: Any, path: str) -> list[tuple[str, Any]]:
    """Every ``(path, object)`` a path names on ``root``: one, or each item where the
    path has ``[*]`` (the items of dicts, sequences, sets and object arrays).

    Raises PathError when the part before the first ``[*]`` does not exist; an item that
    lacks the rest of the path is left out (items of one container may differ)."""
    found: list[tuple[str, Any]] = [("", root)]
    expanded = False
    for step in parse_path(path):
        if step.kind == "items":
            expanded = True
            found = [
                (join(where, child_step), child)
                for where, value in found
                for child_step, child in labelled_children(value)
                if child_step.kind != "attr"
            ]
            continue
        following = []
        for where, value in found:
            try:
                following.append((join(where, step), resolve(value, (step,))))
            except PathError:
                if not expanded:
                    raise
        found = following
    return found


def replace_in(agent: Any, replacements: dict[int, Any], *, stop: frozenset[int] = frozenset()) -> list[str]:
    """Replace objects wherever ``agent`` holds them (see ``AgentHoldings.replace``)."""
    if not replacements:
        return []
    return AgentHoldings(agent, stop=stop).replace(replacements)


_MISSING = object()


class Snapshot:
    """What every agent held, edge by edge, to put back after a failed transformation.

    Restoring re-assigns every recorded edge whose object changed (holders are the
    original objects, so a nested assignment such as ``agent.B[0] = ...`` is undone in
    the original object array, and a rebuilt tuple is undone where it was held), and
    removes top-level attributes that were added. Changes inside objects (an array
    written in place) and below the walk's depth are not undone.
    """

    def __init__(self, agents: Sequence[Any]) -> None:
        boundary = frozenset(id(agent) for agent in agents)
        self._agents = list(agents)
        self._names = [{name for name, _ in object_attributes(agent)} for agent in agents]
        self._edges: list[tuple[Any, Step, Any]] = []
        for agent in agents:
            holdings = AgentHoldings(agent, stop=boundary)
            seen: set[tuple[int, Step]] = set()
            for edges in holdings._edges.values():
                for edge in edges:
                    if isinstance(edge.holder, (tuple, set, frozenset)) or (id(edge.holder), edge.step) in seen:
                        continue
                    seen.add((id(edge.holder), edge.step))
                    self._edges.append((edge.holder, edge.step, _child(edge.holder, edge.step)))
            # Scalars are not walked as holders but are held: the top-level ones are
            # restored too (a plugin may have replaced a label or a counter).
            for name, value in object_attributes(agent):
                key = (id(agent), Step("attr", name))
                if key not in seen:
                    seen.add(key)
                    self._edges.append((agent, Step("attr", name), value))

    def restore(self) -> None:
        for holder, step, child in reversed(self._edges):
            try:
                current = _child(holder, step)
            except PathError:
                current = _MISSING
            if current is not child:
                try:
                    assign(holder, (step,), child)
                except PathError:
                    continue  # a binding assignment cannot restore cannot have been changed by one either
        for agent, names in zip(self._agents, self._names):
            for name, _ in object_attributes(agent):
                if name not in names:
                    delattr(agent, name)


def iter_values(holdings: Iterable[tuple[AgentHoldings, Held]]) -> Iterator[Any]:
    """The distinct objects among ``(agent, held)`` pairs (an object shared by several
    agents once), in order."""
    seen: set[int] = set()
    for _, held in holdings:
        if id(held.value) not in seen:
            seen.add(id(held.value))
            yield held.value
