"""Numpy-aware deep sizing that charges memory to agents, not to source lines.

One walk over the whole population discovers every object reachable from the
agents (never crossing into another agent, a module, a class or code), records
each object's own size once, and then propagates "who reaches this" as a bit mask
over a topological order of the object graph. From the masks come, for every
agent, its exclusive bytes (reachable from this agent alone), its shared bytes
(reachable from two or more agents, or a module global) and its amortized bytes
(exclusive + every shared object divided by the number of agents that reach it),
and the same split for every top-level attribute.

Rules that keep the numbers exact:
- Each object is counted once, by ``id``; every object stays referenced during the
  walk so an id can never be reused for another object.
- A numpy array's data buffer is counted once, on the array that owns it
  (``sys.getsizeof`` adds ``nbytes`` only for arrays that own their data); a view
  counts its own header and points at its base, so the base chain leads to the
  owner. Object arrays are walked element by element.
- Memory-mapped buffers (``mmap.mmap``, the base of every ``np.memmap``) are
  counted as file-backed bytes, apart from heap bytes.
- Another agent is a boundary: reaching it stops there, so a world object that
  lists every agent is shared by all of them instead of pulling the population
  into one agent.
- The walk is read-only with one documented exception: on CPython 3.11+, naming
  an agent's attributes reads ``vars(agent)``, which creates the instance dict if
  it had never been read (its size is then counted with the agent's own header).
"""

from __future__ import annotations

import gc
import mmap
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fa_memtool.buffers import ExternalBuffer, HandlerTable, default_table
from fa_memtool.paths import labelled_children, object_attributes
from fa_memtool.pathtree import Forest, PathNode

__all__ = [
    "AgentSize",
    "AttributeSize",
    "PopulationSize",
    "SharedGroup",
    "agent_attributes",
    "deep_size",
    "measure_population",
]

# Objects that belong to the program, not to any agent: never walked, never counted.
_PROGRAM_TYPES: tuple[type, ...] = (
    type,
    types.ModuleType,
    types.CodeType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)
# Types that own no references (their size is all there is) and containers whose
# gc referents are exactly their items: the fast paths of the walk.
_ATOMIC_TYPES = frozenset({str, bytes, int, float, complex, bool, range, type(None)})
_CONTAINER_TYPES = frozenset({list, tuple, set, frozenset})
_UNRESOLVED = object()  # a type the handler table has not been asked about yet
_SINGLETONS = frozenset(map(id, (None, True, False, Ellipsis, NotImplemented, (), "")))
SELF_ATTRIBUTE = "(object)"  # the agent's own header, instance dict and attribute names


@dataclass
class AttributeSize:
    """One top-level attribute of one agent."""

    name: str
    type_name: str
    deep_bytes: int  # everything reachable from the attribute, within this agent's boundary
    exclusive_bytes: int  # reachable from this attribute of this agent and nothing else
    amortized_bytes: float  # this attribute's share of the agent's amortized bytes
    sharers: int  # agents whose walk reaches the attribute's value object (1: not shared)
    module_global: bool  # the value is a module-level global or class attribute
    file_backed_bytes: int = 0


@dataclass
class AgentSize:
    index: int
    type_name: str
    exclusive_bytes: int
    shared_bytes: int
    amortized_bytes: float
    file_backed_bytes: int
    attributes: list[AttributeSize] = field(default_factory=list)
    # Memory on accelerators, by device ("cuda:0"): amortized like the host bytes, never in them.
    device_bytes: dict[str, float] = field(default_factory=dict)


@dataclass
class SharedGroup:
    """Objects reached by the same set of agents (and perhaps the module)."""

    sharers: int
    bytes: int
    objects: int
    module_global: bool
    attributes: list[str]  # attribute names through which the agents reach the group
    largest: str  # a description of the largest object in the group
    largest_bytes: int


@dataclass
class PopulationSize:
    agents: list[AgentSize]
    distinct_bytes: int  # every reachable object counted once (heap)
    exclusive_bytes: int  # sum of the agents' exclusive bytes
    shared_bytes: int  # distinct bytes of objects shared by two or more agents or the module
    file_backed_bytes: int
    objects: int
    shared_groups: list[SharedGroup]
    unsized_objects: int  # objects whose __sizeof__ raised; counted at object.__sizeof__
    # Everything the boundaries (a model) reach, agents excluded: the program's, charged to no agent.
    boundary_bytes: int | None = None
    paths: list[PathNode] = field(default_factory=list)  # the population's tree: per-agent means by path
    device_bytes: dict[str, int] = field(default_factory=dict)  # distinct bytes on each accelerator


def agent_attributes(agent: object) -> list[tuple[str, Any]]:
    """The agent's top-level attributes: instance dict entries, then slots.

    Reading ``vars`` may create the instance dict on CPython 3.11+ (see module doc).
    """
    return object_attributes(agent)


class _Graph:
    """The reachable object graph: node per object, own size, edges, seed masks."""

    def __init__(
        self,
        boundary_ids: set[int],
        global_ids: set[int],
        global_seed: int,
        *,
        handlers: HandlerTable | None = None,
        buffers: dict[Any, ExternalBuffer] | None = None,
    ) -> None:
        self.index: dict[int, int] = {}
        self.objects: list[object] = []  # keeps every walked object alive during the walk
        self.sizes: list[int] = []
        self.file_sizes: dict[int, int] = {}
        self.device_sizes: dict[int, tuple[str, int]] = {}  # node -> (device, bytes) off the host
        self.children: list[list[int]] = []
        self.seeds: list[int] = []
        self.pending: list[int] = []
        self.boundary_ids = boundary_ids
        self.global_ids = global_ids
        self.global_seed = global_seed  # the compact mask (see _compact) of a module global
        self.unsized = 0
        self.module_dict_ids = {id(vars(m)) for m in list(sys.modules.values()) if hasattr(m, "__dict__")}
        self.numpy: Any = sys.modules.get("numpy")
        self.handlers = default_table() if handlers is None else handlers
        # One ExternalBuffer per key, shared by the graphs of one measurement (the
        # program's globals and the agents'), so that a buffer has one identity.
        self.buffers: dict[Any, ExternalBuffer] = {} if buffers is None else buffers

    def node(self, obj: object, *, expand: bool = True) -> int | None:
        """The node of ``obj``, created on first sight (and queued unless ``expand`` is off)."""
        key = id(obj)
        if key in self.boundary_ids:
            return None  # another agent (agents are created by hand, outside the boundary)
        found = self.index.get(key)
        if found is not None:
            return found
        if key in _SINGLETONS or key in self.module_dict_ids:
            return None
        if isinstance(obj, _PROGRAM_TYPES):
            return None
        if type(obj) is int and -5 <= obj <= 256:
            return None  # cached small ints are interpreter singletons
        position = len(self.objects)
        self.index[key] = position
        self.objects.append(obj)
        self.sizes.append(0)
        self.children.append([])
        self.seeds.append(self.global_seed if key in self.global_ids else 0)
        if expand:
            self.pending.append(position)
        else:
            self.sizes[position] = self._own_size(obj)
        return position

    def _own_size(self, obj: object, handler: Any = _UNRESOLVED) -> int:
        """The object's own bytes: its handler's figure, else ``sys.getsizeof``
        (``handler``: the one the caller already resolved, None for none)."""
        try:
            kind = type(obj)
            if kind is ExternalBuffer:
                return obj.nbytes if obj.host else 0  # type: ignore[attr-defined]
            if handler is _UNRESOLVED:
                fast = kind in _ATOMIC_TYPES or kind in _CONTAINER_TYPES or kind is dict
                handler = None if fast else self.handlers.handler_for(obj)
            if handler is not None:
                return int(handler.own_size(obj))
            return sys.getsizeof(obj)
        except Exception:  # a broken __sizeof__ in user code: count the header, say so
            self.unsized += 1
            return object.__sizeof__(obj)

    def expand_all(self) -> None:
        # The hot loop of every measurement: known objects are found with one dict
        # lookup; only first sightings go through node()'s checks. Each object's type
        # is looked up once: plain containers directly, then the buffer handlers
        # (resolved once per type), then the generic rules.
        pending, objects, sizes, children = self.pending, self.objects, self.sizes, self.children
        index, boundary, node = self.index, self.boundary_ids, self.node
        own_size, plain_referents, handled_referents = self._own_size, self._plain_referents, self._handled_referents
        handler_of, resolve = self.handlers.by_type, self.handlers.handler_for
        getsizeof, get_referents = sys.getsizeof, gc.get_referents
        while pending:
            position = pending.pop()
            obj = objects[position]
            kind = type(obj)
            if kind in _ATOMIC_TYPES:
                sizes[position] = getsizeof(obj)
                continue
            if kind in _CONTAINER_TYPES:
                sizes[position] = getsizeof(obj)
                referents: Iterable[object] = get_referents(obj)
            elif kind is dict:
                sizes[position] = getsizeof(obj)
                referents = [*obj.keys(), *get_referents(obj)]  # type: ignore[attr-defined]
            else:
                handler = handler_of.get(kind, _UNRESOLVED)
                if handler is _UNRESOLVED:
                    handler = resolve(obj)
                if handler is None or kind is ExternalBuffer:
                    sizes[position] = own_size(obj, None)
                    referents = plain_referents(obj, kind)
                else:
                    sizes[position] = own_size(obj, handler)
                    referents = handled_referents(handler, obj)
            edges = children[position]
            for referent in referents:
                key = id(referent)
                if key in boundary:
                    continue
                child = index.get(key)
                if child is None:
                    child = node(referent)
                    if child is None:
                        continue
                if child != position:
                    edges.append(child)

    def describe(self, obj: object) -> tuple[int, Iterable[object]]:
        """Own size of ``obj`` and the objects it owns references to."""
        return self._own_size(obj), self.referents(obj)

    def referents(self, obj: object) -> Iterable[object]:
        """The objects ``obj`` owns references to (files it maps are noted on the side)."""
        kind = type(obj)
        if kind in _CONTAINER_TYPES:
            return gc.get_referents(obj)
        if kind is dict:
            # A dict whose keys are all strings does not report its keys to the
            # collector (strings cannot form cycles); they are still its memory.
            return [*obj.keys(), *gc.get_referents(obj)]  # type: ignore[attr-defined]
        handler = self.handlers.handler_for(obj) if kind is not ExternalBuffer else None
        if handler is not None:
            return self._handled_referents(handler, obj)
        return self._plain_referents(obj, kind)

    def _plain_referents(self, obj: object, kind: type) -> Iterable[object]:
        """Referents by the generic rules (no buffer handler sizes ``obj``)."""
        if kind is ExternalBuffer:
            if not obj.host:  # type: ignore[attr-defined]
                self.device_sizes[self.index[id(obj)]] = (obj.device, obj.nbytes)  # type: ignore[attr-defined]
            return ()
        if isinstance(obj, mmap.mmap):
            try:
                self.file_sizes[self.index[id(obj)]] = len(obj)
            except ValueError:  # a closed map holds no pages
                pass
            return ()
        if isinstance(obj, dict):
            # A dict whose keys are all strings does not report its keys to the
            # collector (strings cannot form cycles); they are still its memory.
            referents = gc.get_referents(obj)
            return [*obj.keys(), *referents] if type(obj) is dict else [*obj.keys(), *obj.values(), *referents]
        if isinstance(obj, types.FunctionType):
            # A closure's cells, defaults tuple, kwdefaults and attribute dict are data;
            # its code, globals (a module dict), name and docstring are the program's.
            return [item for item in gc.get_referents(obj) if not isinstance(item, (str, types.CodeType))]
        if isinstance(obj, types.MethodType):
            return (obj.__self__,)
        if isinstance(obj, memoryview):
            try:
                return (obj.obj,)
            except ValueError:  # released view
                return ()
        return gc.get_referents(obj)

    def _handled_referents(self, handler: Any, obj: object) -> list[object]:
        """What a buffer handler says ``obj`` holds: objects, then its buffers (one
        ExternalBuffer per key, so memory held by many objects is one node)."""
        try:
            held = list(handler.referents(obj))
            found = list(handler.buffers(obj))
        except Exception:  # a handler that fails on one object: its plain referents
            self.unsized += 1
            return list(gc.get_referents(obj))
        for buffer in found:
            # Host memory is known by its address, whichever library keeps it.
            key = ("host", buffer.address) if buffer.address is not None else buffer.key
            node = self.buffers.get(key)
            if node is None:
                node = self.buffers[key] = ExternalBuffer(buffer, getattr(handler, "name", "buffers"))
            elif buffer.nbytes > node.nbytes:
                node.nbytes = int(buffer.nbytes)
                if (position := self.index.get(id(node))) is not None and node.host:
                    self.sizes[position] = node.nbytes
            held.append(node)
        return held

    def resolve_borrowed(self) -> None:
        """Host buffers inside memory the graph already counts (a numpy array's own
        data, a larger buffer) are that memory: they count nothing themselves and lead
        to it, so whoever holds them reaches its bytes."""
        hosted = [(position, obj) for position, obj in enumerate(self.objects) if type(obj) is ExternalBuffer and obj.host and obj.address is not None]
        if not hosted:
            return
        numpy = self.numpy
        intervals: list[tuple[int, int, int, int]] = []  # start, -end, rank (numpy first), node
        if numpy is not None:
            for position, obj in enumerate(self.objects):
                if isinstance(obj, numpy.ndarray) and obj.flags.owndata and obj.nbytes:
                    start = int(obj.ctypes.data)
                    intervals.append((start, -(start + int(obj.nbytes)), 0, position))
        for position, buffer in hosted:
            start = int(buffer.address)  # type: ignore[arg-type]
            intervals.append((start, -(start + buffer.nbytes), 1, position))
        intervals.sort()
        enclosing_end, enclosing = -1, -1
        for start, negative_end, rank, position in intervals:
            end = -negative_end
            if rank == 1 and enclosing >= 0 and end <= enclosing_end:
                self.sizes[position] = 0
                self.children[position].append(enclosing)
                continue
            if end > enclosing_end:
                enclosing_end, enclosing = end, position


def _reachable_ids(roots: Iterable[object], boundary_ids: set[int], **shared: Any) -> set[int]:
    """Ids of every object the program's globals reach, agents excluded."""
    return set(_program_graph(roots, boundary_ids, **shared).index)


def _program_graph(roots: Iterable[object], boundary_ids: set[int], **shared: Any) -> _Graph:
    """``shared``: the measurement's handler table and buffers (see _Graph)."""
    graph = _Graph(boundary_ids, set(), 0, **shared)
    for root in roots:
        graph.node(root)
    graph.expand_all()
    graph.resolve_borrowed()
    return graph


def _topological_components(children: list[list[int]]) -> list[list[int]]:
    """Strongly connected components of the nodes that have children, sources first
    (iterative Tarjan). Leaves (arrays, strings, numbers: most nodes) cannot be part
    of a cycle and receive their masks from their parents, so they are left out."""
    count = len(children)
    index_of = [-1] * count
    lowlink = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in range(count):
        if index_of[root] != -1 or not children[root]:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        index_of[root] = lowlink[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, edge = work[-1]
            edges = children[node]
            if edge < len(edges):
                work[-1] = (node, edge + 1)
                child = edges[edge]
                if not children[child]:
                    continue
                if index_of[child] == -1:
                    index_of[child] = lowlink[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack[child] = True
                    work.append((child, 0))
                elif on_stack[child] and index_of[child] < lowlink[node]:
                    lowlink[node] = index_of[child]
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                if lowlink[node] < lowlink[parent]:
                    lowlink[parent] = lowlink[node]
            if lowlink[node] == index_of[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    components.reverse()  # Tarjan emits sinks first
    return components


def _compact(mask: int) -> int:
    """Masks with one bit (most nodes) are kept as ``~position``: a small int, cheap
    to hash and compare, where the wide integer would cost time in every lookup."""
    if mask and not mask & (mask - 1):
        return ~(mask.bit_length() - 1)
    return mask


def _wide(mask: int) -> int:
    return 1 << ~mask if mask < 0 else mask


def _merge(current: int, incoming: int) -> int:
    if current == incoming or not incoming:
        return current
    if not current:
        return incoming
    return _wide(current) | _wide(incoming)


def _propagate(graph: _Graph) -> list[int]:
    """Compact masks (see _compact) of who reaches every node."""
    masks = list(graph.seeds)
    children = graph.children
    component_of = [-1] * len(masks)
    components = _topological_components(children)
    for number, component in enumerate(components):
        if len(component) > 1:
            for member in component:
                component_of[member] = number
    for number, component in enumerate(components):
        if len(component) == 1:  # the common case: no cycle through this node
            member = component[0]
            mask = masks[member]
            if mask:
                for child in children[member]:
                    current = masks[child]
                    if not current:
                        masks[child] = mask
                    elif current != mask:
                        masks[child] = _merge(current, mask)
            continue
        mask = 0
        for member in component:
            mask = _merge(mask, masks[member])
        for member in component:
            masks[member] = mask
        if not mask:
            continue
        for member in component:
            for child in children[member]:
                if component_of[child] != number:
                    masks[child] = _merge(masks[child], mask)
    return masks


def _bits(mask: int) -> Iterator[int]:
    """Positions of the set bits, lowest first (string search: linear, not quadratic, in the width)."""
    if not mask & (mask - 1):  # zero or one bit: most masks, worth no string
        if mask:
            yield mask.bit_length() - 1
        return
    if mask.bit_count() <= 16:  # a few bits far apart: cheaper than a string as wide as the mask
        found = []
        while mask:
            top = mask.bit_length() - 1
            found.append(top)
            mask ^= 1 << top
        yield from reversed(found)
        return
    digits = bin(mask)[:1:-1]  # least significant digit first
    position = digits.find("1")
    while position != -1:
        yield position
        position = digits.find("1", position + 1)


def _describe_object(obj: object) -> str:
    shape = getattr(obj, "shape", None)
    dtype = getattr(obj, "dtype", None)
    name = type(obj).__name__
    if shape is not None and dtype is not None:
        return f"{name} {dtype} {tuple(shape)}"
    try:
        return f"{name} len={len(obj)}"  # type: ignore[arg-type]
    except Exception:
        return name


def _measure_population(
    agents: Sequence[object],
    *,
    module_globals: Iterable[object] = (),
    attribute_detail: bool = True,
    max_shared_groups: int = 20,
    paths: bool = True,
    path_detail: bool = False,
    boundaries: Iterable[object] = (),
    handlers: HandlerTable | None = None,
) -> PopulationSize:
    """measure_population with the collector already paused."""
    agent_list = list(agents)
    boundary_ids = {id(agent) for agent in agent_list}
    program_objects = list(boundaries)
    shared: dict[str, Any] = {"handlers": handlers, "buffers": {}}
    global_ids = _reachable_ids(module_globals, boundary_ids, **shared)
    boundary_bytes: int | None = None
    if program_objects:
        program_graph = _program_graph(program_objects, boundary_ids, **shared)
        boundary_bytes = sum(program_graph.sizes)
        global_ids |= set(program_graph.index)
        del program_graph
    # A model is entered from the program's side only: what it holds is the program's,
    # and an agent's own log that the model also lists stays that agent's.
    program_ids = {id(obj) for obj in program_objects}
    boundary_ids |= program_ids

    # Bit layout: per agent, one bit for the agent object itself, then one per attribute.
    bit_agent: list[int] = []
    bit_name: list[str] = []
    attribute_lists: list[list[tuple[str, Any]]] = []
    for agent_index, agent in enumerate(agent_list):
        attributes = agent_attributes(agent) if attribute_detail else []
        attribute_lists.append(attributes)
        bit_agent.append(agent_index)
        bit_name.append(SELF_ATTRIBUTE)
        for name, _ in attributes:
            bit_agent.append(agent_index)
            bit_name.append(name)
    global_bit_index = len(bit_agent)
    global_bit = 1 << global_bit_index
    # Seeds are compact masks (~bit position): building 1 << position for every
    # attribute of every agent would cost time quadratic in the population.
    graph = _Graph(boundary_ids, global_ids, ~global_bit_index, **shared)

    # First every agent's own structure (its object and instance dict), so that an
    # agent holding another agent's dict reaches that dict, never through it.
    self_bits: list[int] = []
    next_bit = 0
    for agent_index, agent in enumerate(agent_list):
        self_bit = ~next_bit
        self_bits.append(next_bit)
        next_bit += 1 + len(attribute_lists[agent_index])
        graph.boundary_ids.discard(id(agent))
        position = graph.node(agent, expand=False)  # expanded by hand below
        graph.boundary_ids.add(id(agent))
        if position is None:
            raise TypeError(f"agent {agent_index} is a {type(agent).__name__}, which cannot be sized")
        graph.seeds[position] = _merge(graph.seeds[position], self_bit)
        instance_dict = getattr(agent, "__dict__", None)
        if attribute_detail and isinstance(instance_dict, dict):
            dict_node = graph.node(instance_dict, expand=False)
            if dict_node is not None:
                graph.seeds[dict_node] = _merge(graph.seeds[dict_node], self_bit)
                graph.children[position].append(dict_node)
    attribute_nodes: list[list[int | None]] = []
    for agent_index, agent in enumerate(agent_list):
        position = graph.index[id(agent)]
        bit = self_bits[agent_index]
        value_nodes: list[int | None] = []
        instance_dict = getattr(agent, "__dict__", None)
        if attribute_detail and isinstance(instance_dict, dict):
            dict_node = graph.index.get(id(instance_dict))
            if dict_node is not None:
                for key in instance_dict:
                    key_node = graph.node(key)
                    if key_node is not None:
                        graph.children[dict_node].append(key_node)
        for name, value in attribute_lists[agent_index]:
            bit += 1
            value_node = graph.node(value)
            value_nodes.append(value_node)
            if value_node is not None:
                graph.seeds[value_node] = _merge(graph.seeds[value_node], ~bit)
        # Whatever else the agent references (the items of a dict or list agent, all of
        # it without attribute detail) belongs to the agent object itself.
        covered = {id(value) for _, value in attribute_lists[agent_index]}
        if attribute_detail:
            covered.add(id(instance_dict))
        for referent in graph.referents(agent):
            if id(referent) not in covered:
                child = graph.node(referent)
                if child is not None and child != position:
                    graph.children[position].append(child)
        attribute_nodes.append(value_nodes)
    graph.expand_all()
    graph.resolve_borrowed()
    masks = _propagate(graph)

    # Aggregate bytes by mask: few distinct masks, so per-bit work stays small. Masks
    # are wide integers, so each node costs one lookup: [heap bytes, objects, largest].
    by_mask: dict[int, list[int]] = {}
    file_by_mask: dict[int, int] = {}
    sizes = graph.sizes
    for position, mask in enumerate(masks):
        entry = by_mask.get(mask)
        size = sizes[position]
        if entry is None:
            by_mask[mask] = [size, 1, position]
        else:
            entry[0] += size
            entry[1] += 1
            if size > sizes[entry[2]]:
                entry[2] = position
    for position, file_bytes in graph.file_sizes.items():
        mask = masks[position]
        file_by_mask[mask] = file_by_mask.get(mask, 0) + file_bytes
    device_by_mask: dict[int, dict[str, int]] = {}
    device_total: dict[str, int] = {}
    for position, (device_name, device_bytes) in graph.device_sizes.items():
        on_device = device_by_mask.setdefault(masks[position], {})
        on_device[device_name] = on_device.get(device_name, 0) + device_bytes
        device_total[device_name] = device_total.get(device_name, 0) + device_bytes

    agent_count = len(agent_list)
    exclusive = [0] * agent_count
    shared = [0] * agent_count
    amortized = [0.0] * agent_count
    file_backed = [0] * agent_count
    devices: list[dict[str, float]] = [{} for _ in range(agent_count)]
    bit_count = global_bit_index
    deep = [0] * bit_count
    bit_exclusive = [0] * bit_count
    bit_amortized = [0.0] * bit_count
    bit_file = [0] * bit_count
    groups: list[SharedGroup] = []
    sharers_by_mask: dict[int, int] = {}
    global_by_mask: dict[int, bool] = {}
    distinct = shared_total = exclusive_total = file_total = 0
    for mask, (heap_bytes, object_count, largest_position) in by_mask.items():
        file_bytes = file_by_mask.get(mask, 0)
        distinct += heap_bytes
        file_total += file_bytes
        wide = _wide(mask)
        is_global = bool(wide & global_bit)
        global_by_mask[mask] = is_global
        bits_by_agent: dict[int, list[int]] = {}
        for bit in ((~mask,) if mask < 0 else _bits(wide & (global_bit - 1))):
            if bit == global_bit_index:
                continue
            bits_by_agent.setdefault(bit_agent[bit], []).append(bit)
        sharers = len(bits_by_agent)
        sharers_by_mask[mask] = sharers
        if sharers == 0:
            continue  # unreachable from any agent (cannot happen: every node is reached)
        is_shared = sharers > 1 or is_global
        if is_shared:
            shared_total += heap_bytes
            largest = graph.objects[largest_position]
            names = sorted({bit_name[bit] for bits in bits_by_agent.values() for bit in bits})
            groups.append(
                SharedGroup(
                    sharers=sharers,
                    bytes=heap_bytes,
                    objects=object_count,
                    module_global=is_global,
                    attributes=names,
                    largest=_describe_object(largest),
                    largest_bytes=sizes[largest_position],
                )
            )
        else:
            exclusive_total += heap_bytes
        per_agent = heap_bytes / sharers
        for device_name, device_bytes in device_by_mask.get(mask, {}).items():
            for agent_index in bits_by_agent:
                devices[agent_index][device_name] = devices[agent_index].get(device_name, 0.0) + device_bytes / sharers
        for agent_index, bits in bits_by_agent.items():
            if is_shared:
                shared[agent_index] += heap_bytes
            else:
                exclusive[agent_index] += heap_bytes
            amortized[agent_index] += per_agent
            file_backed[agent_index] += file_bytes
            per_bit = per_agent / len(bits)
            single = not is_shared and len(bits) == 1
            for bit in bits:
                deep[bit] += heap_bytes
                bit_amortized[bit] += per_bit
                bit_file[bit] += file_bytes
                if single:
                    bit_exclusive[bit] += heap_bytes

    tree = (
        _path_trees(graph, masks, sharers_by_mask, global_by_mask, attribute_lists, attribute_nodes, path_detail)
        if paths and attribute_detail
        else []
    )
    results: list[AgentSize] = []
    bit = 0
    for agent_index, agent in enumerate(agent_list):
        sized_attributes: list[AttributeSize] = []
        self_bit = bit
        bit += 1
        for (name, value), value_node in zip(attribute_lists[agent_index], attribute_nodes[agent_index]):
            if value_node is None:
                sharers, is_global = 0, id(value) in program_ids
            else:
                value_mask = masks[value_node]
                sharers = sharers_by_mask[value_mask]
                is_global = bool(_wide(value_mask) & global_bit)
            sized_attributes.append(
                AttributeSize(
                    name=name,
                    type_name=type(value).__name__,
                    deep_bytes=deep[bit],
                    exclusive_bytes=bit_exclusive[bit],
                    amortized_bytes=bit_amortized[bit],
                    sharers=sharers,
                    module_global=is_global,
                    file_backed_bytes=bit_file[bit],
                )
            )
            bit += 1
        sized_attributes.insert(
            0,
            AttributeSize(
                name=SELF_ATTRIBUTE,
                type_name=type(agent).__name__,
                deep_bytes=deep[self_bit],
                exclusive_bytes=bit_exclusive[self_bit],
                amortized_bytes=bit_amortized[self_bit],
                sharers=1,
                module_global=False,
            ),
        )
        results.append(
            AgentSize(
                index=agent_index,
                type_name=type(agent).__name__,
                exclusive_bytes=exclusive[agent_index],
                shared_bytes=shared[agent_index],
                amortized_bytes=amortized[agent_index],
                file_backed_bytes=file_backed[agent_index],
                attributes=sized_attributes if attribute_detail else [],
                device_bytes=devices[agent_index],
            )
        )
    groups.sort(key=lambda group: group.bytes, reverse=True)
    return PopulationSize(
        agents=results,
        distinct_bytes=distinct,
        exclusive_bytes=exclusive_total,
        shared_bytes=shared_total,
        file_backed_bytes=file_total,
        boundary_bytes=boundary_bytes,
        objects=len(masks),
        shared_groups=groups[:max_shared_groups],
        unsized_objects=graph.unsized,
        paths=tree,
        device_bytes=device_total,
    )


def _path_trees(
    graph: _Graph,
    masks: list[int],
    sharers_by_mask: dict[int, int],
    global_by_mask: dict[int, bool],
    attribute_lists: list[list[tuple[str, Any]]],
    attribute_nodes: list[list[int | None]],
    detail: bool,
) -> list[PathNode]:
    """The population's tree of paths (fa_memtool.pathtree) from the graph and its masks."""
    roots = [
        [(name, node) for (name, _), node in zip(attributes, nodes) if node is not None]
        for attributes, nodes in zip(attribute_lists, attribute_nodes)
    ]
    forest = Forest(
        objects=graph.objects,
        sizes=graph.sizes,
        file_sizes=graph.file_sizes,
        device_sizes=graph.device_sizes,
        children=graph.children,
        sharers=[sharers_by_mask[mask] for mask in masks],
        module_global=[global_by_mask[mask] for mask in masks],
        label=lambda obj: labelled_children(obj, graph.handlers),
    )
    forest.claim_all(roots)
    return forest.population_tree(roots, detail=detail, describe=lambda obj, detail: describe_path_object(obj, detail, graph.handlers))


_DTYPE_NAMES: dict[Any, str] = {}


def describe_path_object(obj: object, detail: bool, handlers: HandlerTable | None = None) -> dict[str, Any]:
    """Shape, dtype and length of an object in the tree; with ``detail``, the zero
    fraction of a numeric array too (it reads every element: the final sample only)."""
    found: dict[str, Any] = {}
    kind = type(obj)
    if kind in _ATOMIC_TYPES:
        return found
    numpy = sys.modules.get("numpy")
    if numpy is None or kind is not numpy.ndarray:
        handler = (default_table() if handlers is None else handlers).handler_for(obj)
        if handler is not None:
            try:
                described = handler.describe(obj)
            except Exception:  # a handler that cannot describe one object: nothing to show
                described = {}
            if described:
                return {key: described[key] for key in ("shape", "dtype", "device", "length") if key in described}
    shape = getattr(obj, "shape", None)
    dtype = getattr(obj, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        try:
            found["shape"] = [int(extent) for extent in shape]
        except (TypeError, ValueError):
            pass
        name = _DTYPE_NAMES.get(dtype)
        if name is None:
            name = _DTYPE_NAMES[dtype] = str(dtype)  # str(dtype) is slow; dtypes are few
        found["dtype"] = name
    elif isinstance(obj, (list, tuple, dict, set, frozenset)) or type(obj).__name__ == "deque":
        found["length"] = len(obj)  # type: ignore[arg-type]
    array: Any = obj
    if detail and numpy is not None and kind is numpy.ndarray and array.dtype != object and array.dtype.fields is None and array.size:
        found["zero_fraction"] = 1.0 - int(numpy.count_nonzero(array)) / int(array.size)
    return found


def measure_population(
    agents: Sequence[object],
    *,
    module_globals: Iterable[object] = (),
    attribute_detail: bool = True,
    max_shared_groups: int = 20,
    paths: bool = True,
    path_detail: bool = False,
    boundaries: Iterable[object] = (),
    handlers: HandlerTable | None = None,
) -> PopulationSize:
    """Size a whole population in one walk.

    ``module_globals`` are objects owned by the program (module-level values, class
    attributes): where agents reach them they are shared, never exclusive.
    ``boundaries`` are objects of the program that the walk never enters from an agent,
    as it never enters another agent (a model that owns the agents): what they reach
    is the program's, and an object an agent holds itself, that a boundary also holds
    (an agent's log in the model's list of logs), stays the agent's.
    ``handlers`` sizes library objects (fa_memtool.buffers; default: the installed
    plugins' handlers).
    With ``attribute_detail`` every top-level attribute gets its own split, and with
    ``paths`` each agent (and the population) a bounded tree of the paths inside its
    attributes (fa_memtool.pathtree); ``path_detail`` adds each array's zero fraction.

    The garbage collector is paused during the walk: the walk's own bookkeeping
    would otherwise trigger collections that traverse the whole heap (the cost grows
    with the population) and would be counted as the agents' GC activity. Everything
    the walk allocates is freed when it returns.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _measure_population(
            agents,
            module_globals=module_globals,
            attribute_detail=attribute_detail,
            max_shared_groups=max_shared_groups,
            paths=paths,
            path_detail=path_detail,
            boundaries=boundaries,
            handlers=handlers,
        )
    finally:
        if collecting:
            gc.enable()


def deep_size(obj: object) -> int:
    """Heap bytes reachable from one object, every object and buffer counted once."""
    graph = _Graph(set(), set(), 0)
    graph.node(obj)
    graph.expand_all()
    graph.resolve_borrowed()
    return sum(graph.sizes)
