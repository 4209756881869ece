"""Bounded replacements for histories and caches that grow without end.

- ``bounded(history, maxlen=N)`` keeps the last N entries of a list, deque or
  ``CompressedHistory`` in the bounded form of the same container: a
  ``collections.deque(maxlen=N)`` for lists and deques, a ``CompressedHistory`` with
  ``maxlen=N`` for a compressed one. One expression therefore adopts a bound whatever
  transformation came before it.
- ``BoundedCache(items, maxsize=N)`` is a dict that keeps at most N entries and drops
  the least recently used one (by ``d[key]``, ``get`` or ``setdefault``) when a new key
  arrives.

A bound changes what is kept: an agent that reads entries older than the bound (or
counts on a cache entry that was dropped) behaves differently. ``fa-mem optimize``
keeps a bound only when a replay with the same observations shows identical actions.
"""

from __future__ import annotations

import operator
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["BoundedCache", "bounded"]


def _checked_bound(value: int, name: str) -> int:
    bound = operator.index(value)
    if bound < 0:
        raise ValueError(f"{name} must be non-negative")
    return bound


def bounded(history: Iterable[Any], *, maxlen: int) -> Any:
    """The last ``maxlen`` entries of ``history``, in a container that keeps that bound
    as entries are appended (never None: a new container every call)."""
    from fa_memtool.containers.history import CompressedHistory

    bound = _checked_bound(maxlen, "maxlen")
    if isinstance(history, CompressedHistory):
        return CompressedHistory(history[-bound:] if bound else (), maxlen=bound, compression_level=history.compression_level)
    return deque(history, maxlen=bound)


def _restore_cache(items: list[tuple[Any, Any]], maxsize: int) -> BoundedCache:
    return BoundedCache(items, maxsize=maxsize)


class BoundedCache(dict):  # type: ignore[type-arg]
    """A dict of at most ``maxsize`` entries that drops the least recently used one.

    Reading a key (``d[key]``, ``get``, ``setdefault`` of an existing key) makes it the
    most recent; ``in`` and iteration do not. Iteration follows recency, oldest first.
    Built from ``items``, it keeps the last ``maxsize`` of them."""

    __slots__ = ("_maxsize",)

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), /, *, maxsize: int, **more: Any) -> None:
        super().__init__()
        self._maxsize = _checked_bound(maxsize, "maxsize")
        self.update(items, **more)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def _refresh(self, key: Any) -> Any:
        value = dict.pop(self, key)
        dict.__setitem__(self, key, value)
        return value

    def __getitem__(self, key: Any) -> Any:
        if not dict.__contains__(self, key):
            raise KeyError(key)
        return self._refresh(key)

    def get(self, key: Any, default: Any = None) -> Any:
        return self._refresh(key) if dict.__contains__(self, key) else default

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if dict.__contains__(self, key):
            return self._refresh(key)
        self[key] = default
        return default

    def __setitem__(self, key: Any, value: Any) -> None:
        if dict.__contains__(self, key):
            dict.__delitem__(self, key)
        dict.__setitem__(self, key, value)
        while len(self) > self._maxsize:
            dict.__delitem__(self, next(iter(self)))

    def update(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] = (), /, **more: Any) -> None:  # type: ignore[override]
        pairs = items.items() if isinstance(items, Mapping) else items
        for key, value in pairs:
            self[key] = value
        for key, value in more.items():
            self[key] = value

    def __ior__(self, other: Any) -> BoundedCache:  # type: ignore[misc]
        self.update(other)
        return self

    def copy(self) -> BoundedCache:
        return BoundedCache(self, maxsize=self._maxsize)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_cache, (list(self.items()), self._maxsize))

    def __repr__(self) -> str:
        return f"BoundedCache({dict.__repr__(self)}, maxsize={self._maxsize})"
