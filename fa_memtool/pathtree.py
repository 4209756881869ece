"""Where an agent's memory sits: a bounded tree of paths, built from the sizer's graph.

The sizer knows every object an agent reaches and who else reaches it (its mask).
This module gives every object one place in a tree: a breadth-first spanning forest
over the object graph, agent by agent, so each object hangs under the shortest path
that reaches it (``agent.B[0]``, ``history[*]``; see fa_memtool.paths). A node's bytes
are its spanning subtree's: deep (every byte once), exclusive (bytes no other agent
reaches) and amortized (each object's bytes divided by the agents that reach it), so
children never add up to more than their parent, and what a parent holds beyond its
children is its own.

Objects without a name of their own (an object's instance dict, a dict's keys, a
view's base, a closure's cells) are folded into the node that holds them. Many items
of one container are one ``[*]`` row whose figures are the items' sums. The display
tree is bounded in depth and in rows per parent (the rest is one ``(other)`` row), so
a report on an agent of two million objects stays small.

An object reached by a second path inside the same agent is an alias: the tree
shows it once, at its first path, and notes the other paths in ``aliases``.
"""

from __future__ import annotations

import sys
from collections import deque
from itertools import chain
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fa_memtool.paths import ALL, COLLAPSE_ITEMS, Step, groups_items, labelled_children

__all__ = ["PathNode", "Forest", "flatten"]

Members = dict[int, list[int]]  # node -> the agents that reach it through the row's path

MAX_DEPTH = 6  # display levels below a top-level attribute
MAX_CHILDREN = 8  # rows per parent; the rest is one "(other)" row
MIN_ROW_BYTES = 256  # a child smaller than this (deep) goes into "(other)"
MAX_ALIASES = 4
OTHER = "(other)"
_VECTOR_MIN = 256  # rows with this many members are summed with numpy
_FOLD_DEPTH = 3  # unnamed objects looked through when naming a node's children

_PLAIN_SEQUENCES = frozenset((list, tuple, deque, set, frozenset))  # exact types: a subclass may hold more than its items


@dataclass
class PathNode:
    """One row of the tree: a path inside an agent, or the items of a container.

    Byte figures are sums over the objects the row stands for (one object, or the
    ``items`` of a ``[*]`` row); across a population they are per-agent means.
    """

    name: str  # the step from the parent: ".B", "[0]", "[*]", '["A"]', or "(other)"
    path: str  # the full path (fa_memtool.paths syntax, no leading dot)
    type_name: str
    deep_bytes: float
    exclusive_bytes: float
    amortized_bytes: float
    file_backed_bytes: float = 0.0
    device_bytes: float = 0.0  # on an accelerator (never in the host figures)
    device: str | None = None  # where a tensor's or array's memory lives ("cpu", "cuda:0")
    items: float = 1  # objects this row stands for (per agent)
    sharers: int = 1  # agents reaching the object (the most, for a group)
    module_global: bool = False
    shape: list[int] | None = None
    dtype: str | None = None
    length: int | None = None
    zero_fraction: float | None = None
    agents: int = 1  # agents that have this path (population tree)
    min_amortized_bytes: float | None = None  # across agents (population tree)
    max_amortized_bytes: float | None = None
    shared: bool = False  # reached by two or more agents or by the program's globals
    allocation_site: str | None = None  # file:line that allocated it (agent 0, while building)
    allocation_code: str | None = None
    aliases: list[str] = field(default_factory=list)  # other paths to the same object in the agent
    children: list[PathNode] = field(default_factory=list)


class Forest:
    """The spanning forest over the sizer's graph and each node's subtree figures."""

    def __init__(
        self,
        *,
        objects: list[object],
        sizes: list[int],
        file_sizes: dict[int, int],
        device_sizes: dict[int, tuple[str, int]] | None = None,
        children: list[list[int]],
        sharers: list[int],
        module_global: list[bool],
        label: Callable[[object], list[tuple[Step, Any]]] = labelled_children,
    ) -> None:
        self.objects = objects
        self.sizes = sizes
        self.graph_children = children
        self.sharers = sharers
        self.module_global = module_global
        count = len(objects)
        self.parent = [-1] * count  # -1: not claimed; -2: a root
        self.owner = [-1] * count  # the agent whose walk claimed the node
        self.order: list[int] = []
        self.aliases: dict[int, list[int]] = {}  # node -> other parents inside the owner agent
        self.foreign: dict[int, list[int]] = {}  # node -> shared objects it holds, claimed by an earlier agent
        self.segments: list[tuple[int, int]] = []  # each agent's run of ``order``
        self.deep = [0.0] * count
        self.exclusive = [0.0] * count
        self.amortized = [0.0] * count
        self.file = [0.0] * count
        self.file_sizes = file_sizes
        self.label = label  # the steps that name an object's children (fa_memtool.paths)
        self.device = [0.0] * count
        self.device_sizes = device_sizes or {}
        self._vectors: Any = None  # the four figures as one numpy array, for large rows
        self.tree: dict[int, list[int]] = {}  # node -> the nodes it claimed (its tree children)
        self._labels: dict[int, dict[int, Step]] = {}
        self.root_names: dict[int, str] = {}  # a root node -> the attribute that first reached it
        self.root_aliases: dict[int, list[str]] = {}  # a root node -> every attribute naming it
        self.repeated_roots: set[tuple[int, str]] = set()  # (agent, attribute) naming an object shown earlier

    # -- the forest ---------------------------------------------------------------------

    def claim(self, agent: int, roots: list[tuple[str, int]]) -> None:
        """Breadth-first from one agent's attribute values, claiming unclaimed nodes."""
        parent, owner, order, edges, sizes = self.parent, self.owner, self.order, self.graph_children, self.sizes
        queue: deque[int] = deque()
        start = len(order)
        for name, root in roots:
            self.root_names.setdefault(root, name)
            if parent[root] == -1 or (owner[root] == agent and parent[root] == -2):
                self.root_aliases.setdefault(root, []).append(name)
            if owner[root] == agent and parent[root] != -1:
                self.repeated_roots.add((agent, name))
            if parent[root] == -1:
                parent[root] = -2
                owner[root] = agent
                order.append(root)
                queue.append(root)
        aliases, foreign = self.aliases, self.foreign
        extra_deep, extra_amortized, sharers = self.deep, self.amortized, self.sharers
        off_host = self.device_sizes  # accelerator buffers: no host bytes, still a row's memory
        tree = self.tree
        while queue:
            node = queue.popleft()
            claimed: list[int] | None = None
            for child in edges[node]:
                up = parent[child]
                if up == -1:
                    parent[child] = node
                    owner[child] = agent
                    order.append(child)
                    queue.append(child)
                    if claimed is None:
                        claimed = tree[node] = []
                    claimed.append(child)
                elif up == node:
                    continue
                elif edges[child] or sizes[child] >= MIN_ROW_BYTES or child in off_host:
                    if owner[child] == agent:  # a second holder inside the same agent
                        known = aliases.setdefault(child, [])
                        if len(known) < MAX_ALIASES and node not in known:
                            known.append(node)
                    else:  # shared with an agent walked earlier: it has a path here too
                        foreign.setdefault(node, []).append(child)
                elif owner[child] != agent:
                    # A small shared leaf (an interned key, a code constant): no row of
                    # its own, but its bytes are this holder's too.
                    extra_deep[node] += sizes[child]
                    extra_amortized[node] += sizes[child] / sharers[child] if sharers[child] else 0.0
        self.segments.append((start, len(order)))

    def claim_all(self, roots_by_agent: list[list[tuple[str, int]]]) -> None:
        """The forest, agent by agent in population order, then its subtree figures."""
        for agent, roots in enumerate(roots_by_agent):
            self.claim(agent, roots)
        self.total()

    def total(self) -> None:
        """Subtree figures: agents in the order they were walked, each agent's nodes
        children first. An object shared with an agent walked earlier is final by then,
        so it is added to every holder here as well (a path's deep bytes include what
        it shares, as the per-attribute figures do)."""
        sizes, sharers, module_global, parent = self.sizes, self.sharers, self.module_global, self.parent
        deep, exclusive, amortized, file, device = self.deep, self.exclusive, self.amortized, self.file, self.device
        order, foreign = self.order, self.foreign
        for node, file_bytes in self.file_sizes.items():
            file[node] = float(file_bytes)
        for node, (_, device_bytes) in self.device_sizes.items():
            device[node] = float(device_bytes)
        for start, end in self.segments:
            for position in range(end - 1, start - 1, -1):
                node = order[position]
                size = sizes[node]
                count = sharers[node]
                deep[node] += size
                amortized[node] += size / count if count else 0.0
                if count == 1 and not module_global[node]:
                    exclusive[node] += size
                for held in foreign.get(node, ()):
                    deep[node] += deep[held]
                    amortized[node] += amortized[held]
                    file[node] += file[held]
                    device[node] += device[held]
                up = parent[node]
                if up >= 0:
                    deep[up] += deep[node]
                    amortized[up] += amortized[node]
                    exclusive[up] += exclusive[node]
                    file[up] += file[node]
                    device[up] += device[node]

    # -- naming -------------------------------------------------------------------------

    def _label_map(self, node: int) -> dict[int, Step]:
        found = self._labels.get(node)
        if found is None:
            found = {}
            for step, child in self.label(self.objects[node]):
                found.setdefault(id(child), step)
            self._labels[node] = found
        return found

    def named_children(self, node: int) -> list[tuple[Step, int]]:
        """The node's tree children with their steps; unnamed ones are looked through."""
        tree = self.tree
        held = self.foreign.get(node)
        if node not in tree and not held:
            return []  # a leaf (most nodes: arrays, strings, numbers) names nothing
        labels = self._label_map(node)
        found: list[tuple[Step, int]] = []
        frontier = [(child, 0) for child in tree.get(node, ())] + [(child, 0) for child in held or ()]
        while frontier:
            child, depth = frontier.pop()
            step = labels.get(id(self.objects[child]))
            if step is not None:
                found.append((step, child))
            elif depth < _FOLD_DEPTH:
                frontier.extend((grandchild, depth + 1) for grandchild in tree.get(child, ()))
        found.reverse()
        return found

    def _namer(self, holder: int) -> int:
        """The node whose labels name ``holder``'s children: its owner when ``holder``
        is an object's instance dict (whose keys are the owner's attribute names)."""
        up = self.parent[holder]
        if up >= 0 and type(self.objects[holder]) is dict:
            if getattr(self.objects[up], "__dict__", None) is self.objects[holder]:
                return up
        return holder

    def _step_to(self, holder: int, target: object) -> tuple[int, Step] | None:
        """The named node that holds ``target`` and the step, looking up through
        unnamed holders (instance dicts, a view's base) from ``holder``."""
        for _ in range(_FOLD_DEPTH + 1):
            holder = self._namer(holder)
            step = self._label_map(holder).get(id(target))
            if step is not None:
                return holder, step
            if self.parent[holder] < 0:
                return None
            holder = self.parent[holder]
        return None

    def path_of(self, node: int, root_names: dict[int, str]) -> str | None:
        """The tree path of a node inside its owner agent (None where a step has no name)."""
        steps: list[str] = []
        current = node
        while self.parent[current] >= 0:
            found = self._step_to(self.parent[current], self.objects[current])
            if found is None:
                return None
            current, step = found
            steps.append(step.text())
        root = root_names.get(current)
        if root is None:
            return None
        return root + "".join(reversed(steps))

    def alias_paths(self, node: int, *, exclude: str) -> list[str]:
        """The other paths by which the owner agent holds the node's object."""
        found = [name for name in self.root_aliases.get(node, ()) if name != exclude]
        for holder in self.aliases.get(node, ()):
            located = self._step_to(holder, self.objects[node])
            if located is None:
                continue
            named, step = located
            base = self.path_of(named, self.root_names)
            if base is not None:
                alias = base + step.text()
                if alias != exclude and alias not in found:
                    found.append(alias)
        return found[:MAX_ALIASES]

    # -- the display tree ---------------------------------------------------------------

    def population_tree(
        self,
        roots: list[list[tuple[str, int]]],
        *,
        detail: bool,
        describe: Callable[[object, bool], dict[str, Any]],
    ) -> list[PathNode]:
        """The bounded tree of the whole population: each path's figures as means over
        the agents that have it. Rows are built once per path, not once per agent: the
        members of a row are the objects at that path in every agent (a shared object
        once, with the agents that reach it through that path)."""
        groups: dict[str, Members] = {}
        repeated: dict[str, Members] = {}
        for agent, attributes in enumerate(roots):
            for name, node in attributes:
                into = repeated if (agent, name) in self.repeated_roots else groups
                into.setdefault(name, {}).setdefault(node, []).append(agent)
        rows = [self._row(name, name, members, depth=0, detail=detail, describe=describe) for name, members in groups.items()]
        # An attribute naming what an earlier attribute of the agent names: one row, its
        # contents shown once, under the first name (its aliases say which).
        rows += [
            self._row(name, name, members, depth=MAX_DEPTH, detail=detail, describe=describe)
            for name, members in repeated.items()
            if name not in groups
        ]
        rows.sort(key=lambda row: row.amortized_bytes, reverse=True)
        return rows

    def _row(
        self,
        name: str,
        path: str,
        members: Members,
        *,
        depth: int,
        detail: bool,
        describe: Callable[[object, bool], dict[str, Any]],
    ) -> PathNode:
        deep_of, exclusive_of, amortized_of, file_of = self.deep, self.exclusive, self.amortized, self.file
        deep, exclusive, amortized, file, device, memberships = self._sums(members)
        per_agent: dict[int, float] = {}
        if depth == 0:  # the spread across agents, for the top-level rows
            for node, agents in members.items():
                share = amortized_of[node]
                for agent in agents:
                    per_agent[agent] = per_agent.get(agent, 0.0) + share
            agent_count = len(per_agent)
        else:
            agent_count = len(set(chain.from_iterable(members.values())))
        nodes = list(members)
        sample = [describe(self.objects[node], False) for node in nodes[:8]]  # shape and dtype of a few
        kinds = {type(self.objects[node]).__name__ for node in nodes[:64]}
        shapes = {str(item.get("shape")) for item in sample}
        dtypes = {item.get("dtype") for item in sample}
        lengths = {item.get("length") for item in sample}
        row = PathNode(
            name=name,
            path=path,
            type_name=kinds.pop() if len(kinds) == 1 else "mixed",
            deep_bytes=deep / agent_count,
            exclusive_bytes=exclusive / agent_count,
            amortized_bytes=amortized / agent_count,
            file_backed_bytes=file / agent_count,
            device_bytes=device / agent_count,
            device=sample[0].get("device") if len({item.get("device") for item in sample}) == 1 else None,
            items=memberships / agent_count,
            sharers=max(map(self.sharers.__getitem__, nodes)),
            module_global=any(map(self.module_global.__getitem__, nodes)),
            shape=sample[0].get("shape") if len(shapes) == 1 else None,
            dtype=sample[0].get("dtype") if len(dtypes) == 1 else None,
            length=sample[0].get("length") if len(lengths) == 1 else None,
            agents=agent_count,
            min_amortized_bytes=min(per_agent.values()) if per_agent else None,
            max_amortized_bytes=max(per_agent.values()) if per_agent else None,
        )
        row.shared = row.sharers > 1 or row.module_global
        if detail:
            row.zero_fraction = self._zero_fraction(nodes, describe)
        for node in nodes[:MAX_ALIASES]:
            for alias in self.alias_paths(node, exclude=path):
                if alias not in row.aliases and len(row.aliases) < MAX_ALIASES:
                    row.aliases.append(alias)
        if depth >= MAX_DEPTH or all(map(self.module_global.__getitem__, nodes)):
            # What the program's globals reach (a model the agents point back to, a
            # module-level table) is the program's: a row of its own, not opened here.
            return row
        groups: dict[str, Members] = {}
        tree, foreign = self.tree, self.foreign
        objects = self.objects
        numpy = sys.modules.get("numpy")
        ndarray = numpy.ndarray if numpy is not None else None
        for node, agents in members.items():
            held = tree.get(node, ())
            if not held and node not in foreign:
                continue  # a leaf: most members of a [*] row
            obj: Any = objects[node]
            kind = type(obj)
            if kind is ndarray and not obj.dtype.hasobject:
                continue  # a numeric array names nothing (its tree child is a view's base)
            if kind in _PLAIN_SEQUENCES and len(held) + len(foreign.get(node, ())) > COLLAPSE_ITEMS:
                # A plain container's referents are its items: all of them are [*], no names needed.
                items = groups.setdefault(ALL.text(), {})
                for child in (*held, *foreign.get(node, ())):
                    items.setdefault(child, []).extend(agents)
                continue
            named = self.named_children(node)
            if not named:
                continue
            collapse = groups_items(self.objects[node], [step for step, _ in named])
            for step, child in named:
                text = ALL.text() if collapse else step.text()
                holders = groups.setdefault(text, {}).setdefault(child, [])
                holders.extend(agents)
        rows: list[PathNode] = []
        small: list[PathNode] = []
        threshold = MIN_ROW_BYTES * agent_count
        for text, child_members in groups.items():
            child_deep = sum(self.deep[child] * len(agents) for child, agents in child_members.items())
            if child_deep < threshold:
                small.append(self._other_of(child_members, path, agent_count))
                continue
            rows.append(self._row(text, path + text, child_members, depth=depth + 1, detail=detail, describe=describe))
        row.children = _bounded(rows + small, path, agent_count)
        return row

    def _sums(self, members: Members) -> tuple[float, float, float, float, float, int]:
        """Deep, exclusive, amortized, file and device bytes of a row's members, each member
        counted once per agent that holds it there, and the number of memberships.
        Large groups (the items of every agent's history) are summed with numpy."""
        if len(members) < _VECTOR_MIN:
            deep = exclusive = amortized = file = device = 0.0
            memberships = 0
            deep_of, exclusive_of, amortized_of, file_of, device_of = self.deep, self.exclusive, self.amortized, self.file, self.device
            for node, agents in members.items():
                weight = len(agents)
                memberships += weight
                deep += deep_of[node] * weight
                exclusive += exclusive_of[node] * weight
                amortized += amortized_of[node] * weight
                file += file_of[node] * weight
                device += device_of[node] * weight
            return deep, exclusive, amortized, file, device, memberships
        import numpy

        if self._vectors is None:
            self._vectors = numpy.array([self.deep, self.exclusive, self.amortized, self.file, self.device])
        nodes = numpy.fromiter(members.keys(), dtype=numpy.intp, count=len(members))
        weights = numpy.fromiter(map(len, members.values()), dtype=numpy.float64, count=len(members))
        totals = self._vectors[:, nodes] @ weights
        return float(totals[0]), float(totals[1]), float(totals[2]), float(totals[3]), float(totals[4]), int(weights.sum())

    def _zero_fraction(self, nodes: list[int], describe: Callable[[object, bool], dict[str, Any]]) -> float | None:
        zeros = elements = 0.0
        for node in nodes:
            found = describe(self.objects[node], True).get("zero_fraction")
            if found is None:
                continue
            size = float(getattr(self.objects[node], "size", 0))
            zeros += found * size
            elements += size
        return zeros / elements if elements else None

    def _other_of(self, members: Members, path: str, agent_count: int) -> PathNode:
        weights = [(node, len(agents)) for node, agents in members.items()]
        return PathNode(
            name=OTHER,
            path=f"{path} {OTHER}",
            type_name="",
            deep_bytes=sum(self.deep[node] * weight for node, weight in weights) / agent_count,
            exclusive_bytes=sum(self.exclusive[node] * weight for node, weight in weights) / agent_count,
            amortized_bytes=sum(self.amortized[node] * weight for node, weight in weights) / agent_count,
            file_backed_bytes=sum(self.file[node] * weight for node, weight in weights) / agent_count,
            device_bytes=sum(self.device[node] * weight for node, weight in weights) / agent_count,
            items=sum(weight for _, weight in weights) / agent_count,
            agents=agent_count,
        )


def _bounded(rows: list[PathNode], parent_path: str, agent_count: int) -> list[PathNode]:
    """The largest rows, at most MAX_CHILDREN, the rest (and small rows) as one (other)."""
    named = [row for row in rows if row.name != OTHER]
    small = [row for row in rows if row.name == OTHER]
    named.sort(key=lambda row: row.deep_bytes, reverse=True)
    kept, rest = named[:MAX_CHILDREN], named[MAX_CHILDREN:] + small
    if rest:
        kept.append(_sum_rows(rest, parent_path, agent_count))
    return kept


def _sum_rows(rows: list[PathNode], parent_path: str, agent_count: int) -> PathNode:
    """One row for several, as means over the parent's agents (a row's own figures are
    means over the agents that have it)."""

    def total(figure: str) -> float:
        return float(sum(getattr(row, figure) * row.agents for row in rows)) / agent_count

    return PathNode(
        name=OTHER,
        path=f"{parent_path} {OTHER}",
        type_name="",
        deep_bytes=total("deep_bytes"),
        exclusive_bytes=total("exclusive_bytes"),
        amortized_bytes=total("amortized_bytes"),
        file_backed_bytes=total("file_backed_bytes"),
        device_bytes=total("device_bytes"),
        items=total("items"),
        agents=agent_count,
    )


def flatten(rows: list[PathNode]) -> list[PathNode]:
    """Every row of a tree, parents before children."""
    found: list[PathNode] = []
    stack = list(reversed(rows))
    while stack:
        row = stack.pop()
        found.append(row)
        stack.extend(reversed(row.children))
    return found
