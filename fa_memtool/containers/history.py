"""A lossless, compressed, list/deque-compatible history of snapshots.

Agents often keep an ever-growing history: a copy of the belief every step, every
observation, every action. Consecutive snapshots are highly redundant (mostly-zero
beliefs, small integer codes), so a population of agents spends most of its memory
on bytes that compress extremely well. ``CompressedHistory`` keeps that history in
zlib-compressed chunks while still behaving like a ``list`` for reading and like a
``collections.deque`` for appending (including ``maxlen``).

Storage layout (why it is cheap to append and to read back):

- New entries are *encoded* immediately (see "Encoding" below) and kept, still
  uncompressed, in a small tail. Encoding at append time takes a snapshot, so later
  mutation of the caller's object never changes the history, and it refuses
  unsupported values before the history is touched.
- When the tail holds ``chunk_size`` entries, or at least ``chunk_bytes`` encoded
  bytes, it is compressed with zlib into one immutable ``bytes`` chunk. The byte
  budget matters for large entries: a 448x8 float64 belief is 28 KiB, and waiting
  for 64 of them would keep 1.8 MiB uncompressed in the tail (and in the read
  cache). The default of 32 KiB matches zlib's window (back-references never reach
  further), bounds the tail and the cache to about 32 KiB plus one entry, and keeps
  a random read to decompressing at most that much; larger budgets shave only the
  per-chunk overhead (deflate block headers, one ``bytes`` object per chunk).
- Random access decompresses the one chunk that holds the entry and keeps it in a
  one-chunk cache (the decompressed payload plus the entry offsets), so reading
  neighbouring entries, iterating, or ``popleft`` in a loop decompresses each chunk
  once. Each read decodes only the requested entry from that payload; this is what
  makes every read a fresh copy without any deep-copying. The cache is counted in
  ``stored_bytes`` and can be released with ``drop_cache()``.
- ``maxlen`` trimming (deque semantics: appending to a full history drops the
  oldest entry) only advances an offset into the first chunk and frees that chunk
  once all of its entries have been dropped; nothing is recompressed on append. A
  full history may therefore still hold up to one chunk of already-dropped entries.

Encoding (lossless, no pickle): a small tagged binary codec written with ``struct``.

- numpy arrays of any non-object dtype (bool, integers, floats, complex, datetime,
  timedelta, bytes/unicode strings, structured/void), any shape, are stored as raw
  bytes + dtype + shape + memory order, so they come back bit-identical (NaN
  payloads, -0.0, padding bytes) with the same dtype, shape and C/F order. A
  non-contiguous view comes back as a C-ordered array with the same values.
- numpy scalars (``np.float64(1.5)``, ``np.int64(3)``, ``np.bool_``, ...) come back
  as the same numpy scalar type.
- Python ``None``, ``bool``, ``int`` (any size), ``float`` (bit-exact, incl. NaN,
  inf, -0.0), ``complex``, ``str`` (lone surrogates too), ``bytes``, ``bytearray``
  and, recursively, ``tuple``, ``list``, ``dict`` (any storable, hashable key) and
  ``set``/``frozenset`` (their elements are hashable scalars or tuples, which the
  codec stores exactly, so supporting them costs nothing). Dict insertion order is
  kept.
- Only *exact* types are accepted: a subclass (namedtuple, OrderedDict, IntEnum,
  np.matrix, np.memmap, ...) would come back as its base type and silently change
  behaviour, so it is refused. Everything else (object arrays, arbitrary class
  instances, functions, memoryview, ...) raises ``UnsupportedEntryError`` (a
  ``TypeError``) naming the type, where it was found inside the entry, and what is
  supported. A structure that contains itself raises ``ValueError``. Both are raised
  before the history is modified.

Read-back semantics differ from ``list`` in one deliberate way: an entry read back
is a new object decoded from storage, never the object that was appended, and
numpy arrays come back as writeable copies. Mutating what you read does not change
the history; ``history[0] is history[0]`` is False. Objects shared inside one entry
(the same array twice in a tuple) come back as separate copies.
"""

from __future__ import annotations

import array
import bisect
import collections
import functools
import itertools
import operator
import reprlib
import struct
import sys
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, SupportsIndex, cast, overload

import numpy as np

__all__ = ["CompressedHistory", "UnsupportedEntryError", "decode_entry", "encode_entry"]

# --------------------------------------------------------------------------- codec

_INT64 = struct.Struct("<q")
_UINT64 = struct.Struct("<Q")
_FLOAT64 = struct.Struct("<d")  # packs the double's bits verbatim: NaN payloads and -0.0 survive
_COMPLEX128 = struct.Struct("<dd")
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# One-byte tags, printable so a hex dump of a chunk is readable while debugging.
_TAG_NONE = ord("N")
_TAG_TRUE = ord("T")
_TAG_FALSE = ord("F")
_TAG_INT64 = ord("i")
_TAG_BIGINT = ord("I")
_TAG_FLOAT = ord("f")
_TAG_COMPLEX = ord("c")
_TAG_STR = ord("s")
_TAG_BYTES = ord("b")
_TAG_BYTEARRAY = ord("B")
_TAG_TUPLE = ord("t")
_TAG_LIST = ord("l")
_TAG_DICT = ord("d")
_TAG_SET = ord("e")
_TAG_FROZENSET = ord("z")
_TAG_ARRAY = ord("a")
_TAG_NUMPY_SCALAR = ord("g")

_CONTAINER_TAGS: dict[type, int] = {
    tuple: _TAG_TUPLE,
    list: _TAG_LIST,
    set: _TAG_SET,
    frozenset: _TAG_FROZENSET,
}
# Dtype kinds whose items are plain bytes (no references): b i u f c m M S U V.
# Object arrays ("O") and numpy 2's variable-width StringDType ("T") hold pointers.
_STORABLE_KINDS = frozenset("biufcmMSUV")
_SUPPORTED = (
    "supported entries are None, bool, int, float, complex, str, bytes, bytearray, "
    "tuple, list, dict, set and frozenset (nested freely), numpy arrays of any "
    "non-object dtype and numpy scalars; exact types only, because a subclass "
    "(namedtuple, OrderedDict, np.matrix, ...) would come back as its base type"
)


class UnsupportedEntryError(TypeError):
    """An entry, or a value nested inside it, cannot be stored losslessly.

    A ``TypeError`` so callers can treat it like any other wrong-type argument;
    ``type_name`` and ``path`` (e.g. ``"entry[2]['weights']"``) say what and where.
    """

    def __init__(self, type_name: str, path: str, reason: str) -> None:
        self.type_name = type_name
        self.path = path
        self.reason = reason
        super().__init__(f"CompressedHistory cannot store {type_name} at {path}: {reason}{_SUPPORTED}")


class _Refusal(Exception):
    """Internal: raised deep inside the encoder, collects the path while unwinding.

    The public error is built once at the top (``encode_entry``), so the common,
    successful path never formats strings.
    """

    def __init__(self, value: Any, reason: str, *, cyclic: bool = False) -> None:
        super().__init__(reason)
        self.value_type = type(value)
        self.reason = reason
        self.cyclic = cyclic
        self.path: list[str] = []


def _type_name(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _check_dtype(dtype: np.dtype[Any], value: Any) -> None:
    if dtype.hasobject or dtype.kind not in _STORABLE_KINDS:
        raise _Refusal(
            value,
            f"dtype {dtype} holds references to Python objects, not plain bytes; ",
        )


@functools.lru_cache(maxsize=512)
def _dtype_spec(dtype: np.dtype[Any]) -> Any:
    """A description of ``dtype`` made of str/int/tuple/None, i.e. storable by the codec.

    ``dtype.str`` is exact for simple dtypes but loses the fields of a structured
    dtype ("|V16"), and ``numpy.lib.format``'s descr cannot describe out-of-order or
    overlapping fields, so structured dtypes are described field by field with their
    offsets, titles, itemsize and alignment flag.
    """
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return ("subarray", _dtype_spec(base), tuple(shape))
    if dtype.names is None:
        return dtype.str
    fields = []
    for name in dtype.names:
        field_dtype, offset, *title = dtype.fields[name]  # type: ignore[index]  # (dtype, offset[, title])
        fields.append((name, _dtype_spec(field_dtype), int(offset), title[0] if title else None))
    return ("struct", tuple(fields), dtype.itemsize, bool(dtype.isalignedstruct))


@functools.lru_cache(maxsize=512)
def _dtype_from_spec(spec: Any) -> np.dtype[Any]:
    if isinstance(spec, str):
        return np.dtype(spec)
    if spec[0] == "subarray":
        return np.dtype((_dtype_from_spec(spec[1]), spec[2]))
    _, fields, itemsize, aligned = spec
    layout: dict[str, Any] = {
        "names": [field[0] for field in fields],
        "formats": [_dtype_from_spec(field[1]) for field in fields],
        "offsets": [field[2] for field in fields],
        "itemsize": itemsize,
    }
    if any(field[3] is not None for field in fields):
        layout["titles"] = [field[3] for field in fields]
    structured: np.dtype[Any] = np.dtype(cast(Any, layout), align=bool(aligned))
    return structured


def _storable_dtype_spec(dtype: np.dtype[Any], value: Any) -> Any:
    """The dtype's spec, after proving that it rebuilds the very same dtype."""
    _check_dtype(dtype, value)
    try:
        spec = _dtype_spec(dtype)
        rebuilt = _dtype_from_spec(spec)
    except (TypeError, ValueError) as error:  # e.g. an unhashable field title
        raise _Refusal(value, f"its dtype {dtype} cannot be described exactly ({error}); ") from None
    if rebuilt != dtype or rebuilt.itemsize != dtype.itemsize:
        raise _Refusal(value, f"its dtype {dtype} cannot be described exactly; ")
    return spec


def _encode_array(array: np.ndarray[Any, Any], out: bytearray) -> None:
    spec = _storable_dtype_spec(array.dtype, array)
    out.append(_TAG_ARRAY)
    _encode_value(spec, out, set())
    out += _UINT64.pack(array.ndim)
    for side in array.shape:
        out += _UINT64.pack(side)
    # Keep Fortran order when the array has it (so the copy read back has the same
    # layout and performance); a non-contiguous view is stored C-ordered.
    fortran = array.flags.f_contiguous and not array.flags.c_contiguous
    out.append(ord("F") if fortran else ord("C"))
    out += _UINT64.pack(array.nbytes)
    if array.nbytes:
        contiguous = array if (array.flags.c_contiguous or fortran) else np.ascontiguousarray(array)
        # ravel("K") is a view in memory order for a contiguous array: no extra copy.
        out += contiguous.ravel(order="K").view(np.uint8).data


def _encode_numpy_scalar(value: np.generic, out: bytearray) -> None:
    spec = _storable_dtype_spec(value.dtype, value)
    # A zero-width dtype (np.str_("") is "<U0") has no value bytes, although
    # tobytes() reports a padded item; the decoder rebuilds it from the dtype alone.
    raw = value.tobytes() if value.dtype.itemsize else b""
    out.append(_TAG_NUMPY_SCALAR)
    _encode_value(spec, out, set())
    out += _UINT64.pack(len(raw))
    out += raw


def _encode_value(value: Any, out: bytearray, active: set[int]) -> None:
    """Append the tagged encoding of ``value`` to ``out``.

    ``active`` holds the ids of the containers being encoded on the current path, so
    a structure that contains itself is refused instead of recursing forever.
    """
    kind = type(value)
    if value is None:
        out.append(_TAG_NONE)
    elif kind is bool:
        out.append(_TAG_TRUE if value else _TAG_FALSE)
    elif kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            out.append(_TAG_INT64)
            out += _INT64.pack(value)
        else:
            # bit_length + 1 sign bit, rounded up to whole bytes, two's complement.
            raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            out.append(_TAG_BIGINT)
            out += _UINT64.pack(len(raw))
            out += raw
    elif kind is float:
        out.append(_TAG_FLOAT)
        out += _FLOAT64.pack(value)
    elif kind is complex:
        out.append(_TAG_COMPLEX)
        out += _COMPLEX128.pack(value.real, value.imag)
    elif kind is str:
        raw = value.encode("utf-8", "surrogatepass")
        out.append(_TAG_STR)
        out += _UINT64.pack(len(raw))
        out += raw
    elif kind is bytes or kind is bytearray:
        out.append(_TAG_BYTES if kind is bytes else _TAG_BYTEARRAY)
        out += _UINT64.pack(len(value))
        out += value
    elif kind in _CONTAINER_TAGS or kind is dict:
        _encode_container(value, out, active)
    elif kind is np.ndarray:
        _encode_array(value, out)
    elif isinstance(value, np.generic):
        _encode_numpy_scalar(value, out)
    else:
        raise _Refusal(value, _refusal_reason(value))


def _refusal_reason(value: Any) -> str:
    kind = type(value)
    for base in (bool, int, float, complex, str, bytes, bytearray, tuple, list, dict, set, frozenset, np.ndarray):
        if isinstance(value, base):
            return f"it is a subclass of {_type_name(base)} and would come back as a plain {_type_name(base)}; "
    if isinstance(value, memoryview):
        return "it views memory owned by another object; store bytes(view) or a numpy array instead; "
    return f"{_type_name(kind)} is not a plain data type; "


def _encode_container(value: Any, out: bytearray, active: set[int]) -> None:
    identity = id(value)
    if identity in active:
        raise _Refusal(value, f"this {type(value).__name__} contains itself", cyclic=True)
    active.add(identity)
    try:
        out.append(_TAG_DICT if type(value) is dict else _CONTAINER_TAGS[type(value)])
        out += _UINT64.pack(len(value))
        if type(value) is dict:
            for key, item in value.items():
                try:
                    _encode_value(key, out, active)
                except _Refusal as refusal:
                    refusal.path.insert(0, f" (a key {reprlib.repr(key)})")
                    raise
                try:
                    _encode_value(item, out, active)
                except _Refusal as refusal:
                    refusal.path.insert(0, f"[{reprlib.repr(key)}]")
                    raise
        else:
            ordered = type(value) in (tuple, list)
            for index, item in enumerate(value):
                try:
                    _encode_value(item, out, active)
                except _Refusal as refusal:
                    refusal.path.insert(0, f"[{index}]" if ordered else " (an element)")
                    raise
    finally:
        active.discard(identity)


def encode_entry(entry: Any) -> bytes:
    """Encode one entry with the history's lossless codec (no pickle).

    Raises UnsupportedEntryError (a TypeError) for values the codec cannot store
    exactly and ValueError for a structure that contains itself.
    """
    out = bytearray()
    try:
        _encode_value(entry, out, set())
    except _Refusal as refusal:
        path = "entry" + "".join(refusal.path)
        if refusal.cyclic:
            raise ValueError(f"CompressedHistory cannot store a self-referencing structure: {refusal.reason} at {path}") from None
        raise UnsupportedEntryError(_type_name(refusal.value_type), path, refusal.reason) from None
    return bytes(out)


def _read_length(data: memoryview, position: int) -> tuple[int, int]:
    return _UINT64.unpack_from(data, position)[0], position + 8


def _decode_value(data: memoryview, position: int) -> tuple[Any, int]:
    """Decode the value starting at ``position``; return it and the position after it."""
    tag = data[position]
    position += 1
    if tag == _TAG_FLOAT:
        return _FLOAT64.unpack_from(data, position)[0], position + 8
    if tag == _TAG_INT64:
        return _INT64.unpack_from(data, position)[0], position + 8
    if tag == _TAG_ARRAY:
        return _decode_array(data, position)
    if tag == _TAG_NONE:
        return None, position
    if tag == _TAG_TRUE:
        return True, position
    if tag == _TAG_FALSE:
        return False, position
    if tag in (_TAG_STR, _TAG_BYTES, _TAG_BYTEARRAY, _TAG_BIGINT):
        length, position = _read_length(data, position)
        raw = data[position : position + length]
        position += length
        if tag == _TAG_STR:
            return str(raw, "utf-8", "surrogatepass"), position
        if tag == _TAG_BYTES:
            return bytes(raw), position
        if tag == _TAG_BYTEARRAY:
            return bytearray(raw), position
        return int.from_bytes(raw, "little", signed=True), position
    if tag == _TAG_COMPLEX:
        real, imag = _COMPLEX128.unpack_from(data, position)
        return complex(real, imag), position + 16
    if tag in (_TAG_TUPLE, _TAG_LIST, _TAG_SET, _TAG_FROZENSET):
        count, position = _read_length(data, position)
        items = []
        for _ in range(count):
            item, position = _decode_value(data, position)
            items.append(item)
        if tag == _TAG_LIST:
            return items, position
        if tag == _TAG_TUPLE:
            return tuple(items), position
        return (set(items) if tag == _TAG_SET else frozenset(items)), position
    if tag == _TAG_DICT:
        count, position = _read_length(data, position)
        result = {}
        for _ in range(count):
            key, position = _decode_value(data, position)
            result[key], position = _decode_value(data, position)
        return result, position
    if tag == _TAG_NUMPY_SCALAR:
        spec, position = _decode_value(data, position)
        dtype = _dtype_from_spec(spec)
        length, position = _read_length(data, position)
        if length:
            holder = _array_from_bytes(data, position, length, dtype, (1,), "C")
        else:
            holder = np.zeros(1, dtype=dtype)  # zero-width dtypes, e.g. np.str_("")
        return holder[0], position + length
    raise ValueError(f"corrupt CompressedHistory data: unknown tag {tag!r} at byte {position - 1}")


def _decode_array(data: memoryview, position: int) -> tuple[np.ndarray[Any, Any], int]:
    spec, position = _decode_value(data, position)
    dtype = _dtype_from_spec(spec)
    ndim, position = _read_length(data, position)
    shape = _UINT64.unpack_from(data, position) if ndim == 1 else struct.unpack_from(f"<{ndim}Q", data, position)
    position += 8 * ndim
    order = "F" if data[position] == ord("F") else "C"
    nbytes, position = _read_length(data, position + 1)
    return _array_from_bytes(data, position, nbytes, dtype, shape, order), position + nbytes


def _array_from_bytes(
    data: memoryview, position: int, nbytes: int, dtype: np.dtype[Any], shape: tuple[int, ...], order: str
) -> np.ndarray[Any, Any]:
    """A new, writeable array whose memory is exactly ``data[position:position + nbytes]``.

    The bytes are copied as bytes, not item by item: numpy copies structured arrays
    field by field and would leave padding bytes uninitialised. An F-ordered array's
    transpose is C-contiguous, so its 1-D uint8 view is always a view, never a copy.
    """
    array = np.empty(shape, dtype=dtype, order="F" if order == "F" else "C")
    if nbytes:
        c_contiguous = array.T if order == "F" else array
        c_contiguous.reshape(-1).view(np.uint8)[:] = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=position)
    return array


def decode_entry(data: bytes | memoryview) -> Any:
    """Decode bytes produced by ``encode_entry`` into a new object."""
    view = memoryview(data)
    value, end = _decode_value(view, 0)
    if end != len(view):
        raise ValueError(f"corrupt CompressedHistory data: {len(view) - end} bytes left after the entry")
    return value


# --------------------------------------------------------------------------- equality


def _is_nan(value: Any) -> bool:
    return isinstance(value, (float, complex, np.floating, np.complexfloating)) and value != value


def _values_equal(left: Any, right: Any) -> bool:
    """Value equality for entries, with NaN equal to NaN.

    ``list.__eq__`` relies on identity for NaN (``[x] == [x]`` is True for a NaN x
    only because it is the same object). History entries are decoded copies, so the
    identity shortcut never applies; NaN is treated as equal to NaN instead. Arrays
    compare by dtype, shape and values (``==`` on arrays would be ambiguous).
    """
    if left is right:
        return True
    left_is_array = isinstance(left, np.ndarray)
    if left_is_array or isinstance(right, np.ndarray):
        if not (left_is_array and isinstance(right, np.ndarray)):
            return False
        if left.dtype != right.dtype or left.shape != right.shape:
            return False
        if left.dtype.kind == "V" and left.dtype.names is None:  # raw void items: compare bytes
            return bool(np.ascontiguousarray(left).tobytes() == np.ascontiguousarray(right).tobytes())
        return bool(np.array_equal(left, right, equal_nan=left.dtype.kind in "fcmM"))
    if type(left) in (list, tuple) or type(right) in (list, tuple):
        return (
            type(left) is type(right)
            and len(left) == len(right)
            and all(_values_equal(a, b) for a, b in zip(left, right, strict=True))
        )
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_values_equal(item, right[key]) for key, item in left.items())
    try:
        equal = bool(left == right)
    except (TypeError, ValueError):
        return False
    return equal or (_is_nan(left) and _is_nan(right))


# --------------------------------------------------------------------------- the container


class CompressedHistory(Sequence[Any]):
    """A list/deque-compatible sequence that stores its entries compressed, losslessly.

    ``CompressedHistory(iterable=(), *, maxlen=None, chunk_size=64, compression_level=6,
    chunk_bytes=32768)``; ``max_size`` is accepted as an alias of ``maxlen`` (the name
    an older API used), but not both at once.

    Supported like a list: ``len``, indexing with positive and negative ints, slicing
    (returns a plain ``list``), iteration, ``reversed``, ``in``, ``index``, ``count``,
    ``==`` with lists, deques and other histories, ``+=``. Supported like a deque:
    ``append``, ``extend``, ``maxlen`` (appending to a full history drops the oldest
    entry), ``popleft`` and ``pop``, ``clear``, ``copy``.

    Costs: ``append`` encodes the entry (and every ``chunk_size`` entries or
    ``chunk_bytes`` bytes compresses the tail); ``popleft`` is O(1) amortised (the
    first chunk is decompressed once into the cache); ``pop`` is O(1) while the tail
    has entries and decompresses the last chunk back into the tail when it is empty,
    so alternating ``append``/``pop`` exactly at a chunk boundary recompresses each
    time. Inserting, deleting or replacing entries in the middle (``__setitem__``,
    ``insert``, ``appendleft``, ``rotate``) is not offered: it would mean rewriting
    compressed chunks. Not thread-safe, like most mutable containers. Iterating while
    the history is mutated raises RuntimeError, as for a deque.

    Entries read back are new objects (see the module docstring): mutating them never
    changes the history, and arrays come back writeable.
    """

    __slots__ = (
        "_base",
        "_cache_ends",
        "_cache_payload",
        "_cache_source",
        "_chunk_bytes",
        "_chunk_size",
        "_chunk_starts",
        "_chunks",
        "_compression_level",
        "_maxlen",
        "_mutations",
        "_tail",
        "_tail_bytes",
        "_tail_start",
    )

    def __init__(
        self,
        iterable: Iterable[Any] = (),
        *,
        maxlen: int | None = None,
        chunk_size: int = 64,
        compression_level: int = 6,
        chunk_bytes: int = 32 * 1024,
        max_size: int | None = None,
    ) -> None:
        if max_size is not None:
            if maxlen is not None:
                raise TypeError("pass maxlen or its older alias max_size, not both")
            maxlen = max_size
        if maxlen is not None:
            maxlen = operator.index(maxlen)
            if maxlen < 0:
                raise ValueError("maxlen must be non-negative")
        chunk_size = operator.index(chunk_size)
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        chunk_bytes = operator.index(chunk_bytes)
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        compression_level = operator.index(compression_level)
        if not -1 <= compression_level <= 9:
            raise ValueError("compression_level must be between -1 and 9 (zlib levels)")
        self._maxlen: int | None = maxlen
        self._chunk_size = chunk_size
        self._chunk_bytes = chunk_bytes
        self._compression_level = compression_level
        # Entries are numbered by an absolute counter that never goes back, so the
        # chunk boundaries stay valid as old entries are dropped from the front.
        self._chunks: list[bytes] = []  # compressed, oldest first
        # Absolute index of each chunk's first entry; an int64 array costs 8 bytes per
        # chunk where a list of ints costs ~40, and bisect works on it directly.
        self._chunk_starts = array.array("q")
        self._base = 0  # absolute index of the oldest live entry
        self._tail: list[bytes] = []  # encoded, not yet compressed entries
        self._tail_start = 0  # absolute index of _tail[0]
        self._tail_bytes = 0
        self._mutations = 0  # lets iterators detect concurrent modification
        self._cache_source: bytes | None = None  # the compressed chunk whose payload is cached
        self._cache_payload = b""
        self._cache_ends: tuple[int, ...] = ()
        self.extend(iterable)

    # ----------------------------------------------------------------- properties

    @property
    def maxlen(self) -> int | None:
        """The maximum length (None: unbounded), as ``collections.deque.maxlen``."""
        return self._maxlen

    @property
    def chunk_size(self) -> int:
        """Entries per compressed chunk (a chunk may close earlier, see chunk_bytes)."""
        return self._chunk_size

    @property
    def chunk_bytes(self) -> int:
        """Encoded bytes after which the uncompressed tail is compressed."""
        return self._chunk_bytes

    @property
    def compression_level(self) -> int:
        """The zlib level used for new chunks."""
        return self._compression_level

    @property
    def stored_bytes(self) -> int:
        """Bytes this history holds, for profiling.

        Counts ``sys.getsizeof`` of every compressed chunk, every encoded entry in the
        uncompressed tail, the read cache (decompressed payload and offsets) and the
        internal lists and chunk-start array. Chunks shared with a ``copy()`` are
        counted in both histories.
        """
        total = sys.getsizeof(self._chunks) + sys.getsizeof(self._chunk_starts) + sys.getsizeof(self._tail)
        total += sum(map(sys.getsizeof, self._chunks))
        total += sum(map(sys.getsizeof, self._tail))
        if self._cache_source is not None:
            total += sys.getsizeof(self._cache_payload) + sys.getsizeof(self._cache_ends)
        return total

    # ----------------------------------------------------------------- mutation

    def append(self, entry: Any) -> None:
        """Add ``entry`` at the end, dropping the oldest entry if the history is full.

        The entry is encoded first, so an unsupported value raises before the
        history changes, and later changes to ``entry`` do not reach the history.
        """
        self._append_encoded(encode_entry(entry))

    def extend(self, iterable: Iterable[Any]) -> None:
        """Append every entry of ``iterable``; all or nothing.

        Every entry is encoded before any is added, so one unsupported value leaves
        the history unchanged (the iterable is still consumed). With ``maxlen``, only
        the last ``maxlen`` entries can survive and only those are stored.
        """
        encoded = [encode_entry(entry) for entry in iterable]
        if self._maxlen is not None and len(encoded) > self._maxlen:
            encoded = encoded[len(encoded) - self._maxlen :]
        for item in encoded:
            self._append_encoded(item)

    def __iadd__(self, iterable: Iterable[Any]) -> CompressedHistory:
        self.extend(iterable)
        return self

    def popleft(self) -> Any:
        """Remove and return the oldest entry (O(1) amortised)."""
        if not len(self):
            raise IndexError("pop from an empty CompressedHistory")
        entry = self._decode_at(0)
        self._drop_oldest()
        return entry

    def pop(self) -> Any:
        """Remove and return the newest entry.

        O(1) while the uncompressed tail has entries; otherwise the last chunk is
        decompressed back into the tail first (O(chunk)).
        """
        if not len(self):
            raise IndexError("pop from an empty CompressedHistory")
        if not self._tail:
            self._reopen_last_chunk()
        encoded = self._tail.pop()
        self._tail_bytes -= len(encoded)
        self._mutations += 1
        return decode_entry(encoded)

    def clear(self) -> None:
        """Remove every entry and release all storage, including the cache."""
        self._chunks = []
        self._chunk_starts = array.array("q")
        self._tail = []
        self._tail_bytes = 0
        self._base = self._tail_start = 0
        self._mutations += 1
        self.drop_cache()

    def drop_cache(self) -> None:
        """Release the decompressed chunk kept for reads (it is rebuilt on demand)."""
        self._cache_source = None
        self._cache_payload = b""
        self._cache_ends = ()

    def copy(self) -> CompressedHistory:
        """A shallow copy that shares the immutable compressed chunks.

        Cheap (no decompression): chunks are ``bytes`` and never modified in place,
        so both histories can keep referencing them; later appends to either history
        do not affect the other.
        """
        clone = CompressedHistory(
            maxlen=self._maxlen,
            chunk_size=self._chunk_size,
            compression_level=self._compression_level,
            chunk_bytes=self._chunk_bytes,
        )
        clone._chunks = list(self._chunks)
        clone._chunk_starts = array.array("q", self._chunk_starts)
        clone._base = self._base
        clone._tail = list(self._tail)
        clone._tail_start = self._tail_start
        clone._tail_bytes = self._tail_bytes
        return clone

    __copy__ = copy

    def _append_encoded(self, encoded: bytes) -> None:
        if self._maxlen == 0:  # deque(maxlen=0) silently keeps nothing
            return
        self._tail.append(encoded)
        self._tail_bytes += len(encoded)
        self._mutations += 1
        # Trim before compressing, so an entry about to be dropped is never compressed.
        if self._maxlen is not None and len(self) > self._maxlen:
            self._drop_oldest()
        if len(self._tail) >= self._chunk_size or self._tail_bytes >= self._chunk_bytes:
            self._compress_tail()

    def _compress_tail(self) -> None:
        """Turn the tail into one compressed chunk: entry count, entry end offsets, entries."""
        count = len(self._tail)
        ends = itertools.accumulate(map(len, self._tail))
        header = struct.pack(f"<Q{count}Q", count, *ends)
        chunk = zlib.compress(b"".join([header, *self._tail]), self._compression_level)
        self._chunks.append(chunk)
        self._chunk_starts.append(self._tail_start)
        self._tail_start += count
        self._tail = []
        self._tail_bytes = 0

    def _drop_oldest(self) -> None:
        self._mutations += 1
        if not self._chunks:
            removed = self._tail.pop(0)
            self._tail_bytes -= len(removed)
            self._base += 1
            self._tail_start += 1
            return
        self._base += 1
        first_chunk_end = self._chunk_starts[1] if len(self._chunks) > 1 else self._tail_start
        if self._base >= first_chunk_end:  # every entry of the first chunk is gone: free it
            dropped = self._chunks.pop(0)
            self._chunk_starts.pop(0)
            if self._cache_source is dropped:
                self.drop_cache()

    def _reopen_last_chunk(self) -> None:
        """Move the live entries of the last chunk back into the (empty) tail."""
        payload, ends, header = self._load_chunk(len(self._chunks) - 1)
        start = self._chunk_starts[-1]
        first_live = max(start, self._base) - start
        self._tail = [
            payload[header + (ends[i - 1] if i else 0) : header + ends[i]] for i in range(first_live, len(ends))
        ]
        self._tail_bytes = sum(map(len, self._tail))
        self._tail_start = start + first_live
        self._chunks.pop()
        self._chunk_starts.pop()
        self.drop_cache()

    # ----------------------------------------------------------------- reading

    def _load_chunk(self, chunk_index: int) -> tuple[bytes, tuple[int, ...], int]:
        """The decompressed payload, entry end offsets and header length of a chunk (cached)."""
        chunk = self._chunks[chunk_index]
        if self._cache_source is not chunk:  # identity: chunks are immutable and never reused
            payload = zlib.decompress(chunk)
            count = _UINT64.unpack_from(payload, 0)[0]
            self._cache_ends = struct.unpack_from(f"<{count}Q", payload, 8)
            self._cache_payload = payload
            self._cache_source = chunk
        return self._cache_payload, self._cache_ends, 8 + 8 * len(self._cache_ends)

    def _decode_at(self, position: int) -> Any:
        """Decode the entry at logical ``position`` (0 = oldest, already range-checked)."""
        absolute = self._base + position
        if absolute >= self._tail_start:
            return decode_entry(self._tail[absolute - self._tail_start])
        chunk_index = bisect.bisect_right(self._chunk_starts, absolute) - 1
        inner = absolute - self._chunk_starts[chunk_index]
        payload, ends, header = self._load_chunk(chunk_index)
        begin = header + (ends[inner - 1] if inner else 0)
        return decode_entry(memoryview(payload)[begin : header + ends[inner]])

    def __len__(self) -> int:
        return self._tail_start + len(self._tail) - self._base

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            return [self._decode_at(position) for position in range(*index.indices(len(self)))]
        try:
            position = operator.index(index)
        except TypeError:
            raise TypeError(
                f"CompressedHistory indices must be integers or slices, not {type(index).__name__}"
            ) from None
        length = len(self)
        if position < 0:
            position += length
        if not 0 <= position < length:
            raise IndexError("CompressedHistory index out of range")
        return self._decode_at(position)

    def _iterate(self, positions: Iterable[int]) -> Iterator[Any]:
        mutations = self._mutations
        for position in positions:
            if self._mutations != mutations:
                raise RuntimeError("CompressedHistory mutated during iteration")
            yield self._decode_at(position)

    def __iter__(self) -> Iterator[Any]:
        return self._iterate(range(len(self)))

    def __reversed__(self) -> Iterator[Any]:
        return self._iterate(range(len(self) - 1, -1, -1))

    def __contains__(self, value: object) -> bool:
        return any(_values_equal(entry, value) for entry in self)

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """Position of the first entry equal to ``value`` (NaN equals NaN, arrays by value)."""
        for position in range(*slice(start, stop).indices(len(self))):
            if _values_equal(self._decode_at(position), value):
                return position
        raise ValueError(f"{reprlib.repr(value)} is not in CompressedHistory")

    def count(self, value: Any) -> int:
        """Number of entries equal to ``value`` (NaN equals NaN, arrays by value)."""
        return sum(1 for entry in self if _values_equal(entry, value))

    def __eq__(self, other: object) -> bool:
        """Equal to a list, deque or history with equal entries in the same order.

        Entries compare by value (arrays by dtype, shape and values, NaN equal to
        NaN), because entries read back are copies; ``maxlen`` is ignored, as for
        deques.
        """
        if not isinstance(other, (CompressedHistory, list, collections.deque)):
            return NotImplemented
        if other is self:
            return True
        if len(self) != len(other):
            return False
        return all(_values_equal(mine, theirs) for mine, theirs in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, like list and deque

    def __repr__(self) -> str:
        # A summary rather than the contents: printing would decompress and decode
        # the whole history, which may be far larger than its stored form.
        return (
            f"CompressedHistory(len={len(self)}, maxlen={self._maxlen!r}, chunk_size={self._chunk_size}, "
            f"compressed_chunks={len(self._chunks)}, uncompressed={len(self._tail)}, "
            f"stored_bytes={self.stored_bytes})"
        )
