"""Unit and property tests for fa_memtool.containers.history.CompressedHistory.

The reference model is ``collections.deque(maxlen=...)`` (a plain list when maxlen is
None) holding deep copies of what was appended; every read from the history must be
*identical* to the model's entry: same type, same dtype/shape/memory order for
arrays, and bit-identical values (NaN payloads and -0.0 included), while being a new,
writeable object.
"""

from __future__ import annotations

import collections
import copy
import enum
import struct
import subprocess
import sys
import zlib
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fa_memtool.containers.history import CompressedHistory, UnsupportedEntryError, decode_entry, encode_entry

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- strategies

ARRAY_DTYPES = [np.dtype(name) for name in ("bool", "int8", "uint16", ">i4", "float32", "float64", "complex128")]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def _layouts(array: np.ndarray[Any, Any]) -> st.SearchStrategy[np.ndarray[Any, Any]]:
    """The same values as C-ordered, F-ordered, or a non-contiguous (reversed) view."""
    return st.sampled_from(
        [array, np.asfortranarray(array), array[::-1] if array.ndim else array],
    )


# Arbitrary bit patterns reinterpreted as floats: every NaN payload, signalling NaNs,
# -0.0, subnormals and infinities, which value-based strategies rarely produce.
_float_bits = st.one_of(
    hnp.arrays(np.uint64, SHAPES).map(lambda bits: bits.view(np.float64)),
    hnp.arrays(np.uint32, SHAPES).map(lambda bits: bits.view(np.float32)),
)
arrays = st.one_of(
    st.sampled_from(ARRAY_DTYPES).flatmap(lambda dtype: hnp.arrays(dtype, SHAPES)),
    _float_bits,
).flatmap(_layouts)

numpy_scalars = st.sampled_from(ARRAY_DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, ()).map(lambda zero_d: zero_d[()])
)

python_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: exercises the big-int path
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
)
hashable_keys = st.one_of(st.integers(), st.text(max_size=5), st.tuples(st.integers(), st.text(max_size=3)))
python_values = st.recursive(
    python_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(hashable_keys, children, max_size=4),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=8,
)
entries = st.one_of(arrays, numpy_scalars, python_values, st.lists(arrays, max_size=2).map(tuple))


# --------------------------------------------------------------------------- exact comparison


def _float_bits_of(value: float) -> bytes:
    return struct.pack("<d", value)


def assert_identical(got: Any, expected: Any) -> None:
    """``got`` is a faithful, independent copy of ``expected`` (bit for bit)."""
    assert type(got) is type(expected), (type(got), type(expected))
    if isinstance(expected, np.ndarray):
        assert got is not expected
        assert got.dtype == expected.dtype
        assert got.shape == expected.shape
        assert got.tobytes() == expected.tobytes()  # logical contents, bit-identical
        if expected.flags.f_contiguous and not expected.flags.c_contiguous:
            assert got.flags.f_contiguous
        assert got.flags.writeable
    elif isinstance(expected, np.generic):
        assert got.dtype == expected.dtype
        assert got.tobytes() == expected.tobytes()
    elif isinstance(expected, float):
        assert _float_bits_of(got) == _float_bits_of(expected)
    elif isinstance(expected, complex):
        assert _float_bits_of(got.real) == _float_bits_of(expected.real)
        assert _float_bits_of(got.imag) == _float_bits_of(expected.imag)
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected)
        for got_item, expected_item in zip(got, expected, strict=True):
            assert_identical(got_item, expected_item)
    elif isinstance(expected, dict):
        assert len(got) == len(expected)
        for (got_key, got_item), (key, item) in zip(got.items(), expected.items(), strict=True):
            assert_identical(got_key, key)  # insertion order is kept too
            assert_identical(got_item, item)
    else:
        assert got == expected


def assert_matches(history: CompressedHistory, model: collections.deque[Any]) -> None:
    assert len(history) == len(model)
    for got, expected in zip(history, model, strict=True):
        assert_identical(got, expected)


# --------------------------------------------------------------------------- model-based property test


@PROPERTY_SETTINGS
@given(
    data=st.data(),
    maxlen=st.none() | st.integers(0, 9),
    chunk_size=st.integers(1, 5),
    chunk_bytes=st.sampled_from([1, 100, 1 << 20]),
)
def test_behaves_like_deque_and_list(data: st.DataObject, maxlen: int | None, chunk_size: int, chunk_bytes: int) -> None:
    history = CompressedHistory(maxlen=maxlen, chunk_size=chunk_size, chunk_bytes=chunk_bytes)
    model: collections.deque[Any] = collections.deque(maxlen=maxlen)
    assert history.maxlen == maxlen
    operations = ["append", "extend", "index", "slice", "iterate", "reversed", "popleft", "pop", "copy", "clear"]
    for _ in range(data.draw(st.integers(0, 30), label="steps")):
        operation = data.draw(st.sampled_from(operations), label="operation")
        length = len(model)
        if operation == "append":
            entry = data.draw(entries, label="entry")
            history.append(entry)
            model.append(copy.deepcopy(entry))
        elif operation == "extend":
            batch = data.draw(st.lists(entries, max_size=6), label="batch")
            history.extend(batch)
            model.extend(copy.deepcopy(batch))
        elif operation == "index" and length:
            index = data.draw(st.integers(-length, length - 1), label="index")
            assert_identical(history[index], model[index])
            with pytest.raises(IndexError):
                history[data.draw(st.sampled_from([length, -length - 1, length + 7]), label="bad index")]
        elif operation == "slice":
            bound = st.none() | st.integers(-length - 3, length + 3)
            step = st.none() | st.sampled_from([-4, -3, -2, -1, 1, 2, 3, 4])
            window = slice(data.draw(bound), data.draw(bound), data.draw(step))
            got = history[window]
            assert type(got) is list
            assert_identical(got, list(model)[window])
        elif operation == "iterate":
            assert_identical(list(history), list(model))
        elif operation == "reversed":
            assert_identical(list(reversed(history)), list(reversed(model)))
        elif operation == "popleft" and length:
            assert_identical(history.popleft(), model.popleft())
        elif operation == "pop" and length:
            assert_identical(history.pop(), model.pop())
        elif operation == "copy":
            # Continue on the copy; the original must stay as it was.
            original, snapshot = history, list(model)
            history = history.copy()
            history.append(1)
            model.append(1)
            assert_identical(list(original), snapshot)
        elif operation == "clear":
            history.clear()
            model.clear()
        assert len(history) == len(model)
        if maxlen is not None:
            assert len(history) <= maxlen
    assert_matches(history, model)
    assert history == list(model)


@PROPERTY_SETTINGS
@given(entry=entries)
def test_codec_round_trip_is_exact(entry: Any) -> None:
    assert_identical(decode_entry(encode_entry(entry)), entry)


# --------------------------------------------------------------------------- refused values


class _Plain:
    pass


class _Point(NamedTuple):
    x: int
    y: int


class _Colour(enum.IntEnum):
    RED = 1


def _cyclic_list() -> list[Any]:
    loop: list[Any] = [1]
    loop.append(loop)
    return loop


REFUSED = [
    pytest.param(object(), "object", id="object"),
    pytest.param(_Plain(), "_Plain", id="class-instance"),
    pytest.param(np.array([1, "a", None], dtype=object), "numpy.ndarray", id="object-array"),
    pytest.param(np.array(["a", "bc"], dtype=np.dtypes.StringDType()), "numpy.ndarray", id="stringdtype-array"),
    pytest.param(np.ma.masked_array([1.0, 2.0]), "MaskedArray", id="ndarray-subclass"),
    pytest.param(_Point(1, 2), "_Point", id="namedtuple"),
    pytest.param(collections.OrderedDict(a=1), "OrderedDict", id="ordereddict"),
    pytest.param(_Colour.RED, "_Colour", id="intenum"),
    pytest.param(memoryview(b"abc"), "memoryview", id="memoryview"),
    pytest.param(lambda: 0, "function", id="function"),
    pytest.param([1, (2, {"deep": [object()]})], r"entry\[1\]\[1\]\['deep'\]\[0\]", id="nested"),
    pytest.param({object(): 1}, "key", id="dict-key"),
    pytest.param({1, frozenset([_Point(1, 2)])}, "_Point", id="in-set"),
]


def _filled_history() -> CompressedHistory:
    history = CompressedHistory(chunk_size=3, maxlen=10)
    history.extend([np.arange(4.0), 1, "two", (3, 4.5), {"k": np.ones((2, 2), dtype=np.int8)}])
    history.extend(range(6))  # trims to maxlen, leaves a partly dropped first chunk
    return history


@pytest.mark.parametrize(("value", "message"), REFUSED)
def test_refused_values_raise_type_error_and_leave_history_unchanged(value: Any, message: str) -> None:
    history = _filled_history()
    before = list(history)
    stored = history.stored_bytes  # after list(): the read cache is in a steady state
    with pytest.raises(UnsupportedEntryError, match=message) as caught:
        history.append(value)
    assert isinstance(caught.value, TypeError)
    assert "supported entries are" in str(caught.value)
    with pytest.raises(TypeError):
        history.extend([7, 8, value, 9])  # all or nothing
    with pytest.raises(TypeError):
        history += [value]
    with pytest.raises(TypeError):
        CompressedHistory([1, value])
    assert_identical(list(history), before)
    assert history.stored_bytes == stored


def test_self_referencing_structure_raises_value_error_and_leaves_history_unchanged() -> None:
    history = _filled_history()
    before = list(history)
    with pytest.raises(ValueError, match="contains itself"):
        history.append(_cyclic_list())
    assert_identical(list(history), before)


@PROPERTY_SETTINGS
@given(
    good=st.lists(entries, max_size=5),
    bad=st.sampled_from([param.values[0] for param in REFUSED]),
    position=st.integers(0, 5),
    maxlen=st.none() | st.integers(1, 6),
)
def test_refusal_anywhere_in_extend_changes_nothing(good: list[Any], bad: Any, position: int, maxlen: int | None) -> None:
    history = CompressedHistory(good, maxlen=maxlen, chunk_size=2)
    before = list(history)
    batch = [*good[:position], bad, *good[position:]]
    with pytest.raises(TypeError):
        history.extend(batch)
    assert_identical(list(history), before)


# --------------------------------------------------------------------------- exactness details


def test_nan_payloads_and_negative_zero_are_bit_identical() -> None:
    float64_bits = np.array(
        [0x7FF8000000000001, 0x7FF0000000000001, 0xFFF8DEADBEEF0000, 0x8000000000000000, 1], dtype=np.uint64
    )
    float32_bits = np.array([0x7FC00001, 0x7F800001, 0xFFC12345, 0x80000000], dtype=np.uint32)
    signalling_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))[0]
    values = [float64_bits.view(np.float64), float32_bits.view(np.float32), signalling_nan, -0.0, complex(-0.0, float("nan"))]
    history = CompressedHistory(values, chunk_size=2)
    for got, expected in zip(history, values, strict=True):
        assert_identical(got, expected)


def test_numpy_scalars_keep_their_type() -> None:
    structured = np.array([(1, 2.5)], dtype=[("a", "<i2"), ("b", "<f8")])
    scalars = [
        np.float64(1.5),
        np.int64(-3),
        np.uint8(200),
        np.bool_(True),
        np.float32("nan"),
        np.complex64(1 - 2j),
        np.datetime64("2024-01-02T03:04", "m"),
        np.timedelta64(5, "s"),
        np.str_("héllo"),
        np.str_(""),
        np.bytes_(b"ab"),
        structured[0],
    ]
    history = CompressedHistory(scalars, chunk_size=5)
    for got, expected in zip(history, scalars, strict=True):
        assert_identical(got, expected)
    assert history[0] == 1.5 and type(history[0]) is np.float64


def test_other_dtypes_and_layouts_round_trip() -> None:
    aligned = np.dtype([("a", "u1"), ("b", "<f8"), ("c", "<i4", (2,))], align=True)
    out_of_order = np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i4"], "offsets": [4, 0], "itemsize": 12})
    values = [
        np.zeros(3, dtype=aligned),
        np.frombuffer(bytes(range(24)), dtype=out_of_order),
        np.array(["a", "bcd"], dtype="<U3"),
        np.array([b"x", b"yz"], dtype="S2"),
        np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"),
        np.arange(12, dtype=">f8").reshape(3, 4).T,  # F-ordered, big-endian
        np.zeros((0, 3, 0)),
        np.array(7, dtype=np.uint16),  # 0-d
        np.arange(24).reshape(2, 3, 4)[:, ::2, 1:],  # non-contiguous view
        np.array([2, 0, 1], dtype=np.uint8).view(np.bool_),  # raw bool bytes other than 0/1
    ]
    history = CompressedHistory(values, chunk_size=4)
    for got, expected in zip(history, values, strict=True):
        assert_identical(got, expected)


def test_python_values_round_trip_exactly() -> None:
    values = [
        2**200,
        -(2**63) - 1,
        2**63,
        "\ud800 lone surrogate",
        bytearray(b"\x00\xff"),
        {(1, "a"): {2, 3}, None: frozenset({"x"}), 2.5: [True, None]},
        (),
        [],
        {},
        float("inf"),
        complex("nan+infj"),
    ]
    history = CompressedHistory(values, chunk_size=3)
    for got, expected in zip(history, values, strict=True):
        assert_identical(got, expected)


def test_entries_are_snapshots_and_reads_are_independent_copies() -> None:
    belief = np.zeros((4, 2))
    trace = [1, 2]
    nested = {"belief": belief, "trace": trace}
    history = CompressedHistory([belief, nested], chunk_size=1)
    belief[0, 0] = 1.0  # the caller keeps mutating its own objects
    trace.append(3)
    assert history[0][0, 0] == 0.0
    assert history[1]["trace"] == [1, 2]
    first = history[0]
    assert first is not history[0]
    assert first.flags.writeable and first.flags.owndata
    first[:] = 5.0  # mutating what was read does not reach the history
    assert not history[0].any()


def test_maxlen_alias_and_validation() -> None:
    history = CompressedHistory(range(10), max_size=3)
    assert history.maxlen == 3
    assert history == [7, 8, 9]
    with pytest.raises(TypeError, match="max_size"):
        CompressedHistory(maxlen=3, max_size=3)
    with pytest.raises(ValueError, match="non-negative"):
        CompressedHistory(maxlen=-1)
    with pytest.raises(ValueError):
        CompressedHistory(chunk_size=0)
    with pytest.raises(ValueError):
        CompressedHistory(compression_level=10)
    empty = CompressedHistory(maxlen=0)
    empty.append(1)  # like deque(maxlen=0): keeps nothing
    assert len(empty) == 0


def test_maxlen_drops_whole_chunks_without_recompressing() -> None:
    history = CompressedHistory(maxlen=10, chunk_size=4)
    chunks_seen: dict[int, bytes] = {}  # holding the chunks keeps their ids unique
    for step in range(1000):
        history.append(step)
        chunks_seen.update((id(chunk), chunk) for chunk in history._chunks)
        # At most the live entries plus one chunk of already-dropped ones are kept.
        assert len(history._chunks) * 4 + len(history._tail) <= 10 + 4
    assert history == list(range(990, 1000))
    assert len(chunks_seen) == 1000 // 4  # every chunk was compressed exactly once


def test_pop_and_popleft_across_chunk_boundaries() -> None:
    history = CompressedHistory(range(10), chunk_size=3)
    model = collections.deque(range(10))
    while model:
        assert history.pop() == model.pop()
        if model:
            assert history.popleft() == model.popleft()
        assert history == list(model)
    with pytest.raises(IndexError, match="empty"):
        history.pop()
    with pytest.raises(IndexError, match="empty"):
        history.popleft()


def test_equality_contains_index_count_and_repr() -> None:
    values = [np.array([1.0, np.nan]), float("nan"), (1, [2]), "x", "x"]
    history = CompressedHistory(values, chunk_size=2)
    assert history == values  # NaN equals NaN: entries are copies, identity cannot apply
    assert history == collections.deque(values)
    assert history == CompressedHistory(values, chunk_size=4)
    assert history != values[:-1]
    assert history != [np.array([1.0, np.nan], dtype=np.float32), *values[1:]]
    assert history != tuple(values)  # like list == tuple
    assert np.array([1.0, np.nan]) in history
    assert (1, [2]) in history and (1, (2,)) not in history
    assert history.index("x") == 3 and history.count("x") == 2
    with pytest.raises(ValueError):
        history.index("missing")
    assert "len=5" in repr(history)
    with pytest.raises(TypeError):
        hash(history)
    with pytest.raises(TypeError, match="indices must be integers"):
        history["0"]  # type: ignore[call-overload]
    assert history[np.int64(-2)] == "x"


def test_mutation_during_iteration_raises() -> None:
    history = CompressedHistory(range(5))
    with pytest.raises(RuntimeError, match="mutated during iteration"):
        for item in history:
            history.append(item)


def test_copy_shares_chunks_and_is_independent() -> None:
    history = CompressedHistory(range(100), chunk_size=8)
    clone = history.copy()
    assert clone == history and clone.maxlen == history.maxlen
    assert all(mine is theirs for mine, theirs in zip(clone._chunks, history._chunks, strict=True))
    clone.append(100)
    history.pop()
    assert list(history) == list(range(99))
    assert list(clone) == list(range(101))


# --------------------------------------------------------------------------- memory


def _sparse_belief(rng: np.random.Generator) -> np.ndarray[Any, Any]:
    belief = np.zeros((448, 8))
    nonzero = rng.choice(belief.size, int(belief.size * 0.005), replace=False)
    belief.flat[nonzero] = rng.random(nonzero.size)
    return belief


def test_stored_bytes_of_sparse_beliefs_is_close_to_zlib_of_the_raw_bytes() -> None:
    rng = np.random.default_rng(7)
    beliefs = [_sparse_belief(rng) for _ in range(200)]
    raw = b"".join(belief.tobytes() for belief in beliefs)
    zlib_size = len(zlib.compress(raw, 6))
    history = CompressedHistory()
    for belief in beliefs:
        history.append(belief)
    # Per-chunk overhead may cost up to 2x zlib's single-stream size; the uncompressed
    # tail holds less than chunk_bytes of encoded entries (plus their object headers).
    assert history.stored_bytes <= 2 * zlib_size + history.chunk_bytes + 4096
    assert history.stored_bytes < len(raw) / 20
    # Reading fills the one-chunk cache, which stored_bytes reports, and which is
    # bounded by one chunk's payload (about chunk_bytes plus one entry).
    assert_identical(history[3], beliefs[3])
    with_cache = history.stored_bytes
    history.drop_cache()
    cache_bytes = with_cache - history.stored_bytes
    assert 0 < cache_bytes <= history.chunk_bytes + beliefs[0].nbytes + 4096


def test_library_does_not_import_cli_dependencies() -> None:
    code = (
        "import sys, fa_memtool.containers.history, fa_memtool.containers.shared, fa_memtool.containers.precision;"
        "print(sorted(name for name in ('typer', 'rich') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
