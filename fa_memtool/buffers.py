"""Memory an object holds outside its Python header: the array libraries' buffers.

``sys.getsizeof`` of a numpy array that owns its data includes the data, but that of
a torch tensor, a JAX array or a pyarrow array is its Python header alone: the storage
lives elsewhere, and may be shared by many objects (views, tied weights, slices).
A **buffer handler** tells the sizer, for the types it knows, what an object's own
bytes are, which objects it holds, and which external buffers it keeps alive, each
with a key that identifies the memory (two objects with the same key share one
buffer, counted once) and the device it lives on.

Handlers come from plugins (the ``fa_mem_buffer_handlers`` hook): fa-mem's own, for
numpy, scipy.sparse, torch, JAX, pandas, pyarrow and any object exposing the buffer
protocol, are registered exactly as a third-party handler would be. A handler never
imports its library: ``types()`` looks in ``sys.modules`` and returns nothing while
the user's program has not imported it, so no import lands in fa-mem's fixed cost.

Host memory ("cpu") is counted with every other byte an agent holds; memory on an
accelerator is counted apart, per device, never in host bytes or RSS.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HOST",
    "Buffer",
    "BufferHandler",
    "ExternalBuffer",
    "HandlerTable",
    "default_table",
    "installed_handlers",
    "prepare_libraries",
]

DEFAULT_PRIORITY = 100
HOST = "cpu"  # the device name of host memory: counted with the rest of the heap


@dataclass(frozen=True)
class Buffer:
    """One block of memory an object keeps alive outside its Python header.

    ``key`` identifies the memory: every object whose handler gives the same key
    shares it, and it is counted once (torch: the storage; JAX: a shard's buffer).
    ``address`` is the host address of the first byte when it is known: a buffer that
    lies inside a numpy array's own data (``torch.from_numpy``) is that array's memory
    and is not counted again.
    """

    key: Hashable
    nbytes: int
    device: str = HOST
    address: int | None = None


class BufferHandler:
    """The base class of a buffer handler: override what differs for your types.

    Every method gets one object of a type ``matches`` accepted. None of them may
    modify the object or import a library the program has not imported.
    """

    name = "buffers"
    # Handlers are asked in increasing priority; the first that matches a type sizes it.
    priority = DEFAULT_PRIORITY

    def types(self) -> tuple[type, ...]:
        """The types this handler sizes, among the libraries already imported
        (``sys.modules``); () while none is. Subclasses are included."""
        return ()

    def prepare(self) -> None:
        """Called once in a measuring process, after the program's module is imported
        and before anything is built or traced: import what the library would import
        lazily while the agents are built (torch imports its compiler stack when the
        first optimizer is made), so that cost lands in the import phase, not in the
        traced build. Must do nothing when the library is not imported."""

    def matches(self, kind: type, example: object) -> bool:
        """Whether this handler sizes objects of ``kind`` (``example`` is the first one
        seen). The default: ``kind`` is a subclass of one of ``types()``."""
        handled = self.types()
        return bool(handled) and issubclass(kind, handled)

    def own_size(self, obj: Any) -> int:
        """The object's own bytes: its header and what it owns that no other object
        reports (never an external buffer)."""
        return sys.getsizeof(obj)

    def referents(self, obj: Any) -> Iterable[object]:
        """The Python objects ``obj`` keeps alive (walked and counted by the sizer)."""
        return gc.get_referents(obj)

    def buffers(self, obj: Any) -> Iterable[Buffer]:
        """The external buffers ``obj`` keeps alive."""
        return ()

    def children(self, obj: Any) -> list[tuple[Any, Any]] | None:
        """The objects ``obj`` holds as data, each with the ``fa_memtool.paths.Step``
        that names it in a path (``policy[0].weight`` rather than
        ``policy._modules["0"]._parameters["weight"]``); ``resolve`` and ``assign``
        must work on the paths they make. None: the default (its attributes)."""
        return None

    def describe(self, obj: Any) -> dict[str, Any]:
        """What the path tree shows for the object: ``shape`` (list of ints), ``dtype``
        (str), ``device`` (str). Empty when there is nothing to say."""
        return {}


class ExternalBuffer:
    """A buffer as a node of the sizer's graph: reached from every object that keeps
    it alive, counted once. It has no Python referents."""

    __slots__ = ("key", "nbytes", "device", "address", "handler")

    def __init__(self, buffer: Buffer, handler: str) -> None:
        self.key = buffer.key
        self.nbytes = int(buffer.nbytes)
        self.device = buffer.device
        self.address = buffer.address
        self.handler = handler

    @property
    def host(self) -> bool:
        return self.device == HOST

    def __repr__(self) -> str:
        return f"<{self.handler} buffer {self.nbytes} B on {self.device}>"


class HandlerTable:
    """Which handler sizes each type, resolved once per type for one measurement.

    Built at the start of a walk, so a library the program imported since the last
    walk is seen; the types themselves are asked about once.
    """

    def __init__(self, handlers: Iterable[BufferHandler] | None = None) -> None:
        self.handlers = list(installed_handlers() if handlers is None else handlers)
        # type -> its handler (None: the generic rules); read directly by the sizer's loop
        self.by_type: dict[type, BufferHandler | None] = {}

    def __bool__(self) -> bool:
        return bool(self.handlers)

    def handler_for(self, obj: object) -> BufferHandler | None:
        kind = type(obj)
        try:
            return self.by_type[kind]
        except KeyError:
            pass
        found: BufferHandler | None = None
        for handler in self.handlers:
            try:
                if handler.matches(kind, obj):
                    found = handler
                    break
            except Exception:  # a handler that cannot decide does not size the type
                continue
        self.by_type[kind] = found
        return found


def prepare_libraries(handlers: Iterable[BufferHandler] | None = None) -> None:
    """Every handler's ``prepare`` (see BufferHandler.prepare); one that raises is skipped."""
    for handler in installed_handlers() if handlers is None else handlers:
        try:
            prepare = getattr(handler, "prepare", None)
            if prepare is not None:
                prepare()
        except Exception:  # preparing is an optimisation: a failure costs time, not figures
            continue


_default_table: HandlerTable | None = None


def default_table() -> HandlerTable:
    """The process's table over the installed handlers. A type is resolved the first
    time an object of it is seen, which is after its library was imported, so one
    table serves every measurement."""
    global _default_table
    if _default_table is None:
        _default_table = HandlerTable()
    return _default_table


_installed: list[BufferHandler] | None = None
_installed_lock = threading.Lock()


def installed_handlers() -> list[BufferHandler]:
    """Every installed plugin's handlers, in the order the plugins declare (their
    ``PluginInfo.priority``; fa-mem's generic buffer-protocol handler comes last).
    Loaded once per process."""
    global _installed
    with _installed_lock:
        if _installed is None:
            _installed = handlers_of(_manager())
        return list(_installed)


def _manager() -> Any:
    from fa_memtool.plugins import plugin_manager

    return plugin_manager()


def handlers_of(manager: Any) -> list[BufferHandler]:
    """The handlers a plugin manager's plugins offer, by their ``priority`` (lowest
    first; ties in registration order)."""
    ordered: list[tuple[int, int, BufferHandler]] = []
    for implementation in manager.hook.fa_mem_buffer_handlers.get_hookimpls():
        try:
            offered = implementation.function()
        except Exception:  # a plugin whose hook raises offers nothing
            continue
        for handler in offered or ():
            if all(hasattr(handler, name) for name in ("matches", "own_size", "referents", "buffers")):
                ordered.append((int(getattr(handler, "priority", DEFAULT_PRIORITY)), len(ordered), handler))
    ordered.sort(key=lambda item: (item[0], item[1]))
    return [handler for _, _, handler in ordered]
