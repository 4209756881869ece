"""What the built-in plugins share: the objects at each path, what replacing them really
frees, and applying a conversion at a path (aliases included).

The paths come from one place, ``AnalysisContext.holdings`` (fa_memtool.holdings), so
every built-in analyses the same groups: each object once per agent at its shortest
path, the items of a large container as one ``[*]`` path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fa_memtool.hookspecs import AnalysisContext
from fa_memtool.holdings import AgentHoldings, Held, iter_values, occurrences
from fa_memtool.paths import PathError, assign
from fa_memtool.units import format_bytes

Members = list[tuple[AgentHoldings, Held]]

__all__ = ["Members", "format_bytes", "freed_values", "kept_alive_note", "operand", "path_groups", "plain_arrays", "transform"]


def path_groups(agents: list[Any], context: AnalysisContext) -> dict[str, Members]:
    """Each path (``[*]`` for the items of large containers) with the objects every
    agent holds there, limited to ``context.paths`` when the caller gave them."""
    holdings = context.holdings(agents)
    groups: dict[str, Members] = holdings.groups(context.paths)
    # A path through a key that is not a literal (an optimizer's state, keyed by its
    # parameters) cannot be written in a plan nor resolved on another agent.
    return {path: members for path, members in groups.items() if _writable(path)}


def _writable(path: str) -> bool:
    from fa_memtool.paths import parse_path

    try:
        parse_path(path)
    except PathError:
        return False
    return True


def plain_arrays(members: Members, *, kinds: str = "biufc") -> list[Any] | None:
    """The distinct objects at a path when every one is a plain numeric ndarray (kinds:
    numpy dtype kinds), else None."""
    import numpy

    values = list(iter_values(members))
    if not values or not all(type(value) is numpy.ndarray and value.dtype.kind in kinds for value in values):
        return None
    return values


def freed_values(members: Members, values: list[Any]) -> tuple[list[Any], list[str]]:
    """Which of ``values`` replacing at this path (and at every alias) really frees, and
    the paths that keep the others alive (a frozenset holding one, a view of its buffer)."""
    replaced_by_agent: dict[int, set[int]] = {}
    holders: dict[int, list[Any]] = {}  # id(value) -> the holdings of every agent that holds it here
    for holdings, held in members:
        replaced_by_agent.setdefault(holdings.index, set()).add(id(held.value))
        holders.setdefault(id(held.value), []).append(holdings)
    free, alive = [], []
    for value in values:
        keeping = []
        for holdings in holders.get(id(value), ()):
            keeping.extend(holdings.keeping_alive(value, replaced_ids=replaced_by_agent[holdings.index]))
        if keeping:
            alive.extend(keeping)
        else:
            free.append(value)
    return free, alive


def kept_alive_note(alive: list[str]) -> str:
    """The part of a reason that says what is not counted, and why."""
    if not alive:
        return ""
    shown = ", ".join(f".{path}" for path in alive[:3]) + (" ..." if len(alive) > 3 else "")
    return f"; not counted: {len(alive)} reference(s) that the transformation cannot replace keep objects alive ({shown})"


def _targets(agent: Any, path: str) -> Iterator[tuple[str, Any]]:
    try:
        yield from occurrences(agent, path)
    except PathError:
        return  # an agent without the path is left as it is


def transform(agents: list[Any], path: str, convert: Callable[[Any], Any]) -> int:
    """Replace every object at ``path`` on every agent by ``convert(object)``, wherever
    the agent holds it (aliases too), and return how many objects were converted.

    One converted object per original object: an object several agents share stays
    shared. ``convert`` returning its argument leaves that object as it is; raising
    refuses the whole candidate (the caller restores the agents)."""
    boundary = frozenset(id(agent) for agent in agents)
    converted: dict[int, tuple[Any, Any]] = {}  # keeps each original alive while its id is a key
    produced: set[int] = set()
    for agent in agents:
        replacements: dict[int, tuple[str, Any, Any]] = {}
        for where, value in _targets(agent, path):
            if id(value) in produced:
                continue  # reached again through a holder an earlier agent shares
            if id(value) not in converted:
                new = convert(value)
                converted[id(value)] = (value, new)
                produced.add(id(new))
            new = converted[id(value)][1]
            if new is not value:
                replacements[id(value)] = (where, value, new)
        if not replacements:
            continue
        holdings = AgentHoldings(agent, stop=boundary - {id(agent)})
        holdings.replace({key: new for key, (_, _, new) in replacements.items()})
        for where, value, new in replacements.values():
            if not holdings.edges(value):  # deeper than the walk goes: the path itself only
                assign(agent, where, new)
    return len(converted)


def operand(expression: str) -> str:
    """``expression`` ready for ``.method()``: parenthesised unless it is a name, an
    attribute, a call or a subscript, which bind tighter than an attribute access."""
    import ast

    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        return f"({expression})"
    return expression if isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)) else f"({expression})"


Growing = list[tuple[AgentHoldings, str, Any]]


def growing_values(agents: list[Any], context: AnalysisContext, kinds: tuple[type, ...]) -> dict[str, Growing]:
    """Each path that grew during the profile (``context.growing``, within
    ``context.paths`` when given) with the distinct objects of the given types every
    agent holds there."""
    holdings = context.holdings(agents)
    found: dict[str, Growing] = {}
    for path in context.growing:
        if context.paths is not None and path not in context.paths:
            continue
        seen: set[int] = set()
        members: Growing = []
        for agent in holdings.agents:
            for where, value in _targets(agent.agent, path):
                if type(value) in kinds and id(value) not in seen:
                    seen.add(id(value))
                    members.append((agent, where, value))
        if members:
            found[path] = members
    return found


def only_held_by(holdings: AgentHoldings, value: Any, holder: Any) -> bool:
    """``value`` is held inside the agent by ``holder`` alone (dropping it there frees it);
    numbers and strings, which hold nothing, count as held by their container."""
    return all(edge.holder is holder for edge in holdings.edges(value))


def mean_deep_bytes(values: list[Any]) -> float:
    """The mean deep size of a sample (every object and buffer once per value)."""
    from fa_memtool.sizing import deep_size

    return sum(deep_size(value) for value in values) / len(values) if values else 0.0


def bounds(held: float, steps: int, *, most: int = 8) -> list[int]:
    """Bounds worth proposing for a container that holds ``held`` entries after ``steps``
    steps: the entries one step adds, then twice as many, and so on, while the bound
    keeps at most half of what is held (a smaller bound frees more). Which one is safe
    only a replay can tell; the plugins propose them all, smallest first."""
    per_step = max(1, round(held / steps)) if steps > 0 else 1
    found: list[int] = []
    bound = per_step
    while bound <= held / 2 and len(found) < most:
        found.append(bound)
        bound *= 2
    return found
