"""What keeps released agents alive: the check after a run, with the reference paths.

A run builds agents (and perhaps a model), steps them and lets go of them. What is
still alive after the program dropped every reference it meant to drop, and a full
collection ran, is retained: a class-level registry keyed by the model, a module-level
list, a closure, a thread. ``ReleaseWatch`` records the population without keeping it
alive (weak references; objects that take none are remembered by id and type and looked
up among the collector's objects), and ``check`` says what survived, how many bytes stay
reachable from it, and for each survivor the shortest reference path from a root:

    mesa.agent.Agent._ids[<Model>] -> <Model>._agents -> agent 17

Roots are module globals, class attributes, closure cells of module-level functions,
and the frames of other threads. Paths use the notation of fa_memtool.paths, with
``->`` where the path enters an object reached from the previous one.
"""

from __future__ import annotations

import gc
import sys
import threading
import types
import weakref
from collections.abc import Iterable
from typing import Any

from fa_memtool.report import ReleasedRun, Retention

__all__ = ["ReleaseWatch", "Retention", "check_released", "runs_verdict"]

MAX_PATHS = 8  # reference paths reported (the first survivor's roots, then one per survivor)
MAX_ROOTS = 3  # roots listed for the first survivor (the model) when several hold it
MAX_LEVELS = 24  # referrer levels searched back from a survivor
MAX_FRONTIER = 2000  # referrers followed per level


class _Tracked:
    """One watched object: a weak reference, or its id and type where it takes none."""

    __slots__ = ("label", "ref", "key", "kind")

    def __init__(self, obj: Any, label: Any) -> None:
        self.label = label
        try:
            self.ref: Any = weakref.ref(obj)
            self.key = self.kind = None
        except TypeError:
            self.ref = None
            self.key, self.kind = id(obj), type(obj)

    def alive(self, by_id: dict[int, Any] | None) -> Any:
        if self.ref is not None:
            return self.ref()
        found = (by_id or {}).get(self.key)  # type: ignore[arg-type]
        return found if found is not None and type(found) is self.kind else None


class ReleaseWatch:
    """Watch a population (and its model) across its release.

    Create it while the program still holds the agents; drop every reference the
    program means to drop; then call ``check()``. The watch itself holds no strong
    reference to any of them.
    """

    def __init__(self, agents: Iterable[Any], *, ids: Iterable[Any] | None = None, model: Any = None) -> None:
        agent_list = list(agents)
        labels = list(ids) if ids is not None else list(range(len(agent_list)))
        self._agents = [_Tracked(agent, label) for agent, label in zip(agent_list, labels)]
        self._model = _Tracked(model, "model") if model is not None else None
        del agent_list

    def check(self, *, paths: bool = True) -> Retention:
        """Collect, and say what survived (with reference paths unless ``paths`` is off)."""
        gc.collect()
        gc.collect()
        untracked = [item for item in self._agents + ([self._model] if self._model else []) if item.ref is None]
        by_id = {id(obj): obj for obj in gc.get_objects()} if untracked else None
        survivors: list[tuple[Any, Any]] = []  # (label, object)
        for item in self._agents:
            obj = item.alive(by_id)
            if obj is not None:
                survivors.append((item.label, obj))
        model = self._model.alive(by_id) if self._model is not None else None
        result = Retention(
            agents=len(self._agents),
            retained_agents=[label for label, _ in survivors],
            model_retained=None if self._model is None else model is not None,
            untracked=len(untracked),
        )
        del by_id
        if survivors or model is not None:
            from fa_memtool.sizing import measure_population

            held = [obj for _, obj in survivors] + ([model] if model is not None else [])
            result.retained_bytes = measure_population(held, attribute_detail=False, paths=False).distinct_bytes
            if paths:
                targets = ([("model", model)] if model is not None else []) + survivors
                result.paths = reference_paths(targets, limit=MAX_PATHS)
            del held
        del survivors, model
        return result


RUN_LEAK_MIN_BYTES = 1024 * 1024  # RSS growth per run below this is noise, not a leak


def runs_verdict(runs: list[ReleasedRun]) -> str | None:
    """What K runs leave behind, from each run's release (the sweep a user runs)."""
    if len(runs) < 2:
        return None
    from fa_memtool.growth import slope
    from fa_memtool.units import format_bytes

    retaining = [run for run in runs if run.retained_agents or run.model_retained]
    per_run = slope([float(run.run) for run in runs], [float(run.rss_bytes) for run in runs])
    if len(retaining) == len(runs):
        mean = sum(run.retained_bytes for run in runs) / len(runs)
        return (
            f"every run leaves its population behind: {format_bytes(mean)} retained per run "
            f"(RSS after release {per_run:+,.0f} B per run over {len(runs)} runs)"
        )
    if retaining:
        return f"{len(retaining)} of {len(runs)} runs left agents behind (RSS after release {per_run:+,.0f} B per run)"
    if per_run > RUN_LEAK_MIN_BYTES:
        return (
            f"no agent survives, but RSS after release grows by {format_bytes(per_run)} per run: memory is held "
            "outside the agents (caches, module state, the allocator)"
        )
    return f"runs leave nothing behind: {len(runs)} runs, RSS after release {per_run:+,.0f} B per run"


def check_released(population: Any, *, paths: bool = True) -> Retention:
    """Release check for the caller's own code: pass a callable that builds, runs and
    returns the agents (or a model holding them); it is called, its result is watched
    and dropped, and what survived is returned::

        retention = fa_memtool.check_released(lambda: run_sweep_point(params))
        assert retention.clean, retention.paths
    """
    if not callable(population):
        raise TypeError("check_released() takes a callable that builds and returns the agents or the model")
    built = population()
    agents, model = _population_of(built)
    watch = ReleaseWatch(agents, model=model)
    del built, agents, model
    return watch.check(paths=paths)


def _population_of(built: Any) -> tuple[list[Any], Any]:
    if isinstance(built, (list, tuple)):
        return list(built), None
    for name in ("agents", "_agents", "agent_set", "schedule"):
        members = getattr(built, name, None)
        if members is not None and not callable(members):
            try:
                return list(members), built
            except TypeError:
                continue
    return [], built


# -- reference paths ----------------------------------------------------------------------------


def _root_name(obj: Any, module_dicts: dict[int, str]) -> str | None:
    """The name of a root that holds the previous object, or None if ``obj`` is no root."""
    name = module_dicts.get(id(obj))
    if name is not None:
        return name
    if isinstance(obj, type):
        return f"{obj.__module__}.{obj.__qualname__}"
    return None


def _describe(obj: Any) -> str:
    return f"<{type(obj).__name__}>"


_CONTAINERS = (dict, list, tuple, set, frozenset, types.CellType, types.FunctionType, type)


def _step(holder: Any, held: Any, attribute_dicts: set[int]) -> str:
    """How ``holder`` holds ``held``: ``.name`` (attributes, globals), ``[key]``,
    ``[<Class>]`` (``held`` is a dict key), ``[3]``, ``[*]``, `` (closure)``."""
    from fa_memtool.paths import Step

    if isinstance(holder, dict):
        for key, value in holder.items():
            if value is held:
                if id(holder) in attribute_dicts and isinstance(key, str) and key.isidentifier():
                    return f".{key}"
                return Step("key", key).text()
        return f"[{_describe(held)}]"  # held as a key
    if isinstance(holder, (list, tuple)):
        for position, value in enumerate(holder):
            if value is held:
                return f"[{position}]"
    if isinstance(holder, (set, frozenset)):
        return "[*]"
    if isinstance(holder, types.CellType):
        return " (closure)"
    if isinstance(holder, types.FunctionType):
        if held is holder.__closure__:
            return ""
        if held is holder.__defaults__:
            return " (defaults)"
    try:  # an object's attribute (its dict may not exist until read: CPython 3.11)
        from fa_memtool.paths import object_attributes

        for name, value in object_attributes(holder):
            if value is held:
                return f".{name}"
    except Exception:
        pass
    return f" -> {_describe(held)}"


def reference_paths(targets: list[tuple[Any, Any]], *, limit: int = MAX_PATHS) -> list[str]:
    """For each ``(label, object)``, the shortest chain of referrers from a root, as text
    (``module.Class.attr[<Model>] -> <Model>.agents[3] -> agent 3``). Searched back
    level by level with ``gc.get_referrers`` (one heap scan per level), ignoring this
    search's own frames and lists."""
    module_dicts: dict[int, str] = {}
    for name, module in list(sys.modules.items()):
        state = getattr(module, "__dict__", None)
        if isinstance(state, dict) and (id(state) not in module_dicts or module_dicts[id(state)].startswith("__mp_")):
            module_dicts[id(state)] = name  # __main__ rather than its alias __mp_main__
    own_frames = {id(frame) for frame in _stack(sys._getframe())}
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    thread_frames: dict[int, str] = {}  # every frame of another thread's stack -> its name
    thread_locals: dict[int, Any] = {}  # id of a local of such a frame -> the frame
    for thread_id, top in sys._current_frames().items():
        if thread_id == threading.get_ident():
            continue
        for frame in _stack(top):
            thread_frames[id(frame)] = names.get(thread_id, str(thread_id))
            try:
                values = list(frame.f_locals.values())
            except Exception:
                continue
            for value in values:
                thread_locals.setdefault(id(value), frame)
    found: list[str] = []
    for position, (label, target) in enumerate(targets):
        if len(found) >= limit:
            break
        # Every root that holds the first survivor (the model, when there is one), up
        # to MAX_ROOTS; the shortest one for the others.
        chains = _chains_to_roots(
            target, module_dicts, own_frames, thread_frames, thread_locals, targets, most=MAX_ROOTS if position == 0 else 1
        )
        if not chains:
            found.append(f"{_label(label)}: held by objects no root reaches (a cycle the collector could not free?)")
            continue
        found.extend(_render(chain, label, module_dicts, thread_frames) for chain in chains)
    del found[limit:]
    return found


def _label(label: Any) -> str:
    return "the model" if label == "model" else f"agent {label}"


def _stack(frame: Any) -> list[Any]:
    """``frame`` and every frame below it."""
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def _chain(root: Any, held: Any, parent: dict[int, Any]) -> list[Any]:
    """[root, held, ..., target] by following ``parent`` from ``held`` to the target."""
    chain = [root]
    current: Any = held
    while current is not None:
        chain.append(current)
        current = parent.get(id(current))
    return chain


def _chains_to_roots(
    target: Any,
    module_dicts: dict[int, str],
    own_frames: set[int],
    thread_frames: dict[int, str],
    thread_locals: dict[int, Any],
    targets: list[tuple[Any, Any]],
    *,
    most: int = 1,
) -> list[list[Any]]:
    """Up to ``most`` chains [root, ..., target] from distinct roots, shortest first,
    found breadth first (a root is not searched beyond)."""
    parent: dict[int, Any] = {id(target): None}
    frontier: list[Any] = [target]
    chains: list[list[Any]] = []
    bookkeeping = {id(parent), id(frontier), id(targets), id(chains), *(id(pair) for pair in targets)}
    for _ in range(MAX_LEVELS):
        # A running thread's locals are not found as referrers of its frames: look them up.
        for obj in frontier:
            frame = thread_locals.get(id(obj))
            if frame is not None and len(chains) < most:
                chains.append(_chain(frame, obj, parent))
        if len(chains) >= most:
            return chains
        bookkeeping.add(id(frontier))
        following: list[Any] = []
        bookkeeping.add(id(following))
        for referrer in gc.get_referrers(*frontier):
            key = id(referrer)
            if key in parent or key in bookkeeping or key in own_frames:
                continue
            if isinstance(referrer, types.FrameType) and key not in thread_frames:
                continue  # a frame of this thread (fa-mem's own, or a finished call's)
            referents = {id(item) for item in gc.get_referents(referrer)}
            held = next((obj for obj in frontier if id(obj) in referents), None)
            if held is None:
                continue
            parent[key] = held
            if key in module_dicts or isinstance(referrer, type) or key in thread_frames:
                chains.append(_chain(referrer, held, parent))
                if len(chains) >= most:
                    return chains
                continue
            if len(following) < MAX_FRONTIER:
                following.append(referrer)
        if not following:
            return chains
        frontier = following
    return chains


def _render(chain: list[Any], label: Any, module_dicts: dict[int, str], thread_frames: dict[int, str]) -> str:
    """``root.step.step -> <Class>.step ... -> agent N`` for a chain [root, ..., target]."""
    root, target = chain[0], chain[-1]
    attribute_dicts: set[int] = set()
    if id(root) in thread_frames:
        pieces = [f"thread {thread_frames[id(root)]!r} (in {root.f_code.co_name})"]
    elif id(root) in module_dicts:
        pieces = [module_dicts[id(root)]]
        attribute_dicts.add(id(root))
    else:
        pieces = [_root_name(root, module_dicts) or _describe(root)]
    for holder, held in zip(chain, chain[1:]):
        if isinstance(held, dict) and (getattr(holder, "__dict__", None) is held or isinstance(holder, type)):
            attribute_dicts.add(id(held))  # an object's (or class's) attributes
            continue
        if isinstance(holder, types.FrameType):
            local = next((name for name, value in holder.f_locals.items() if value is held), None)
            pieces.append(f" local {local}" if local else f" -> {_describe(held)}")
        else:
            pieces.append(_step(holder, held, attribute_dicts))
        if held is not target and not isinstance(held, _CONTAINERS):
            pieces.append(f" -> {_describe(held)}")
    return "".join(pieces) + f" -> {_label(label)}"
