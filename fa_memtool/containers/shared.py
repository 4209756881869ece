"""One read-only copy of every distinct parameter array, shared by all agents.

A population built from one template usually gives every agent its own copy of the
same matrices (pymdp's A and B arrays, a policy prior, a lookup table): N agents,
N identical copies. ``SharedParameterPool`` keeps one copy per distinct content and
hands every agent the same array object, so the parameters cost their size once.

Content identity is (dtype, shape, exact bytes in C order): two arrays are merged
only when every byte of their logical contents is equal, so ``0.0`` and ``-0.0`` or
two different NaN payloads stay distinct, while a C-ordered and an F-ordered array
with equal values are the same content (the pooled copy keeps the layout of the
first array registered). Lookup goes through (dtype.str, shape, blake2b digest) and
every digest match is confirmed by comparing dtype and bytes in full, so a hash
collision can never merge different arrays.

Writes to a shared array raise a clear error instead of silently changing every
agent's parameters: pooled arrays are read-only, so ``agent.A[0, 0] = 1`` raises
numpy's ``ValueError: assignment destination is read-only``. An agent that must
learn or modify its parameters takes its own copy first (``agent.A = agent.A.copy()``),
which is writeable and costs memory again for that agent only. The pooled array is
a read-only view of a read-only owner, so ``arr.flags.writeable = True`` also raises
ValueError instead of unlocking the shared memory. The caller's own array is never
modified: the pool registers a copy.

``share_structure(value)`` does the same for plain-Python structures (dicts, lists and
tuples of numbers, strings, bytes and None, nested: a transition table, a lookup
table, a configuration): one read-only copy per distinct content (``FrozenDict`` and
``FrozenList``, which read exactly like the dict and list and raise ``TypeError`` on any
change). Content identity is the lossless, type-exact, order-keeping encoding of
``fa_memtool.containers.history`` (so ``1``, ``1.0`` and ``True`` differ, and so do two
dicts with the same items in another order); a digest match is confirmed by comparing
the encodings in full.

``share_tensor(value)`` does the same for torch tensors and JAX arrays. JAX arrays are
immutable, so the first array of a content is itself the shared one. torch has no
read-only tensors: the pooled tensor is a detached copy that requires no gradient (a
``Parameter`` stays a ``Parameter``), and an agent that writes into it in place changes
it for every agent, which is why fa-mem shares only tensors that require no gradient
and keeps a sharing only when a replay shows identical behaviour.

The pool keeps strong references: pooled arrays and structures live until ``clear()``
(or until the pool itself is garbage), even when no agent uses them any more.
"""

from __future__ import annotations

import copy
import hashlib
from collections import deque
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PoolStats", "SharedParameterPool", "get_shared_pool"]

_NUMERIC_KINDS = frozenset("biufcmMSUV")  # plain-bytes dtypes; object/StringDType hold pointers

_ContentKey = tuple[str, tuple[int, ...], bytes]


def _content_digest(data: np.ndarray[Any, Any]) -> bytes:
    """blake2b digest of a uint8 buffer; a module function so tests can force collisions."""
    return hashlib.blake2b(data.data, digest_size=32).digest()


def _content_bytes(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The array's logical contents in C order as a 1-D uint8 array (a view when possible).

    C order makes the content independent of memory layout; for a C-contiguous
    array this is a zero-copy view, so hashing a large parameter allocates nothing.
    """
    if array.nbytes == 0:
        return np.empty(0, dtype=np.uint8)
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


def content_key(array: np.ndarray[Any, Any]) -> _ContentKey:
    """(dtype.str, shape, digest of the C-order bytes): equal for arrays whose contents
    are equal, whatever their memory layout. The pool confirms every match in full;
    callers that only estimate (the analysis, the plugin) may rely on the digest."""
    return array.dtype.str, tuple(array.shape), _content_digest(_content_bytes(array))


def _read_only_copy(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A private copy, locked: a read-only view of a read-only owner.

    numpy lets the owner of a buffer flip ``writeable`` back to True; a view of a
    read-only base cannot, so handing out the view keeps the lock effective.
    """
    owner = np.array(array, copy=True, order="K")
    owner.flags.writeable = False
    return owner.view()


@dataclass(frozen=True)
class PoolStats:
    """Counters of a SharedParameterPool.

    ``bytes_saved`` is the sum of ``nbytes`` over hits: the memory the callers'
    own copies occupy, which is saved once they drop those copies and keep the
    pooled array instead.
    """

    distinct_arrays: int
    hits: int
    bytes_saved: int
    stored_bytes: int


class SharedParameterPool:
    """Deduplicates numeric numpy arrays by content and hands out one read-only copy.

    ``share(array)`` returns the pooled array for the array's content;
    ``share_tree(value)`` does the same for every numeric array inside object
    arrays, lists, tuples and dicts. Thread-safe: agents may be built concurrently.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Several arrays per key only when different contents collide on the digest
        # (or differ only in structured-dtype field names behind the same dtype.str).
        self._buckets: dict[_ContentKey, list[np.ndarray[Any, Any]]] = {}
        self._pooled_by_id: dict[int, np.ndarray[Any, Any]] = {}
        self._hits = 0
        self._bytes_saved = 0
        self._stored_bytes = 0
        # digest of the encoding -> [(encoding, frozen structure)]; the frozen
        # structures handed out, by id, so sharing one again returns it unchanged.
        self._structures: dict[bytes, list[tuple[bytes, Any]]] = {}
        self._structure_ids: dict[int, Any] = {}
        # (library, dtype, shape, device, digest) -> [(content bytes, pooled tensor or array)]
        self._tensors: dict[tuple[Any, ...], list[tuple[bytes, Any]]] = {}
        self._tensor_ids: dict[int, Any] = {}

    def __len__(self) -> int:
        """Number of distinct arrays held."""
        return len(self._pooled_by_id)

    @property
    def stored_bytes(self) -> int:
        """Data bytes of the distinct arrays held (``nbytes``; array headers excluded)."""
        return self._stored_bytes

    def stats(self) -> PoolStats:
        """Distinct arrays, hits, bytes saved and bytes stored."""
        with self._lock:
            return PoolStats(len(self._pooled_by_id), self._hits, self._bytes_saved, self._stored_bytes)

    def clear(self) -> None:
        """Forget every pooled array and reset the counters.

        Arrays already handed out stay valid and read-only; arrays shared after
        ``clear()`` are new copies, not identical to the earlier ones.
        """
        with self._lock:
            self._buckets = {}
            self._pooled_by_id = {}
            self._hits = self._bytes_saved = self._stored_bytes = 0
            self._structures = {}
            self._structure_ids = {}
            self._tensors = {}
            self._tensor_ids = {}

    def share(self, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Return the pooled, read-only array with the same content as ``array``.

        On first sight of a content a read-only copy is registered (``array`` itself
        is left untouched and writeable). Passing an array the pool handed out
        returns it unchanged and does not count as a hit.

        Raises TypeError for non-arrays, ndarray subclasses (the pooled copy would be
        a plain ndarray with different behaviour; pass ``np.asarray(x)`` to share a
        memmap's contents) and object or StringDType arrays (use ``share_tree`` for
        arrays of matrices).
        """
        if type(array) is not np.ndarray:
            if isinstance(array, np.ndarray):
                raise TypeError(
                    f"SharedParameterPool.share() takes a plain numpy.ndarray, not the subclass "
                    f"{type(array).__name__}; the pooled copy would lose the subclass's behaviour. "
                    "Pass np.asarray(array) to share its contents as a plain array."
                )
            raise TypeError(f"SharedParameterPool.share() takes a numpy.ndarray, not {type(array).__name__}")
        if array.dtype.hasobject or array.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(
                f"SharedParameterPool.share() cannot pool an array of dtype {array.dtype}: its items are "
                "references, not bytes. Use share_tree() to pool the numeric arrays inside an object array."
            )
        if self._pooled_by_id.get(id(array)) is array:
            return array
        content = _content_bytes(array)
        key: _ContentKey = (array.dtype.str, tuple(array.shape), _content_digest(content))
        with self._lock:
            bucket = self._buckets.setdefault(key, [])
            for candidate in bucket:
                # The digest only finds candidates; full equality decides.
                if candidate.dtype == array.dtype and np.array_equal(_content_bytes(candidate), content):
                    self._hits += 1
                    self._bytes_saved += array.nbytes
                    return candidate
            pooled = _read_only_copy(array)
            bucket.append(pooled)
            self._pooled_by_id[id(pooled)] = pooled  # the pool's reference keeps the id unique
            self._stored_bytes += pooled.nbytes
            return pooled

    def share_structure(self, value: Any) -> Any:
        """The pooled, read-only structure with the same content as ``value``.

        ``value`` is a plain dict, list or tuple holding only numbers, strings, bytes,
        None and such containers (``fa_memtool.containers.frozen.is_plain_structure``);
        anything else raises TypeError. The first structure of a content is frozen
        (``freeze``: new FrozenDict / FrozenList containers around the same scalars and
        tuples) and kept; ``value`` itself is never modified. Passing a structure the
        pool handed out returns it unchanged.
        """
        from fa_memtool.containers.frozen import freeze, is_plain_structure
        from fa_memtool.containers.history import encode_entry

        if self._structure_ids.get(id(value)) is value:
            return value
        if not is_plain_structure(value):
            raise TypeError(
                f"share_structure() takes a plain dict, list or tuple of numbers, strings, bytes and None "
                f"(nested), not this {type(value).__name__}"
            )
        encoding = encode_entry(value)
        digest = hashlib.blake2b(encoding, digest_size=32).digest()
        with self._lock:
            bucket = self._structures.setdefault(digest, [])
            for known, frozen in bucket:
                if known == encoding:
                    self._hits += 1
                    return frozen
            frozen = freeze(value)
            bucket.append((encoding, frozen))
            self._structure_ids[id(frozen)] = frozen
            return frozen

    def share_tensor(self, value: Any) -> Any:
        """The pooled torch tensor or JAX array with the same content (dtype, shape,
        device and every byte) as ``value``; ``value`` itself is never modified.
        Passing one the pool handed out returns it unchanged."""
        if self._tensor_ids.get(id(value)) is value:
            return value
        library, content, key = _tensor_content(value)
        with self._lock:
            bucket = self._tensors.setdefault(key, [])
            for known, pooled in bucket:
                if known == content:
                    self._hits += 1
                    self._bytes_saved += len(content)
                    return pooled
            pooled = value if library == "jax" else _detached_copy(value)
            bucket.append((content, pooled))
            self._tensor_ids[id(pooled)] = pooled
            self._stored_bytes += len(content)
            return pooled

    def share_tree(self, value: Any) -> Any:
        """Pool every numeric array inside ``value`` and return the rebuilt structure.

        Walks numpy object arrays (pymdp-style arrays of matrices: the result is a new
        object array of the same shape whose elements are pooled arrays), lists,
        tuples (namedtuples keep their type), and dicts (subclasses such as
        OrderedDict keep their type via ``copy.copy``). Numeric arrays are replaced by
        ``share(array)``; anything else (scalars, strings, ndarray subclasses, other
        objects) is returned as is. Containers are new objects; a container reached
        twice maps to one new container, and cycles are preserved.
        """
        return self._share_tree(value, {})

    def _share_tree(self, value: Any, memo: dict[int, Any]) -> Any:
        identity = id(value)
        if identity in memo:
            return memo[identity]
        kind = type(value)
        if kind is np.ndarray:
            if value.dtype.hasobject:
                result = np.empty(value.shape, dtype=object)
                memo[identity] = result
                flat = result.reshape(-1)  # a view: result is freshly allocated and contiguous
                for position, element in enumerate(value.flat):
                    flat[position] = self._share_tree(element, memo)
                return result
            if value.dtype.kind in _NUMERIC_KINDS:
                return self.share(value)
            return value
        if kind is list:
            new_list: list[Any] = []
            memo[identity] = new_list
            new_list.extend(self._share_tree(item, memo) for item in value)
            return new_list
        if isinstance(value, tuple) and (kind is tuple or hasattr(kind, "_make")):
            items = [self._share_tree(item, memo) for item in value]
            new_tuple = tuple(items) if kind is tuple else kind._make(items)
            memo[identity] = new_tuple
            return new_tuple
        if kind is deque:
            new_deque: deque[Any] = deque(maxlen=value.maxlen)
            memo[identity] = new_deque
            new_deque.extend(self._share_tree(item, memo) for item in value)
            return new_deque
        if isinstance(value, dict):
            new_dict = {} if kind is dict else copy.copy(value)
            memo[identity] = new_dict
            for key, item in value.items():
                new_dict[key] = self._share_tree(item, memo)
            return new_dict
        return value


_default_pool: SharedParameterPool | None = None
_default_pool_lock = threading.Lock()


def _tensor_content(value: Any) -> tuple[str, bytes, tuple[Any, ...]]:
    """(library, exact content bytes, lookup key) of a torch tensor or JAX array."""
    import sys

    torch, jax = sys.modules.get("torch"), sys.modules.get("jax")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.layout is not torch.strided:
            raise TypeError(f"share_tensor() takes a dense tensor, not a {value.layout} one")
        flat = value.detach().cpu().contiguous().reshape(-1)
        content = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        digest = hashlib.blake2b(content, digest_size=32).digest()
        return "torch", content, ("torch", str(value.dtype), tuple(value.shape), str(value.device), type(value).__name__, digest)
    if jax is not None and isinstance(value, jax.Array):
        host = np.asarray(value)
        content = np.ascontiguousarray(host).tobytes()
        digest = hashlib.blake2b(content, digest_size=32).digest()
        devices = tuple(sorted(str(device) for device in value.devices()))
        return "jax", content, ("jax", str(value.dtype), tuple(value.shape), devices, digest)
    raise TypeError(f"share_tensor() takes a torch tensor or a JAX array, not {type(value).__name__}")


def _detached_copy(tensor: Any) -> Any:
    import sys

    torch = sys.modules["torch"]
    copied = tensor.detach().clone()
    if isinstance(tensor, torch.nn.Parameter):
        return torch.nn.Parameter(copied, requires_grad=False)
    return copied


def get_shared_pool() -> SharedParameterPool:
    """The process-wide default pool, created on first use.

    Lazy so that importing this module does no work and allocates nothing; use
    your own ``SharedParameterPool()`` when populations must not share parameters
    (e.g. separate experiments in one process).
    """
    global _default_pool
    if _default_pool is None:
        with _default_pool_lock:
            if _default_pool is None:
                _default_pool = SharedParameterPool()
    return _default_pool
