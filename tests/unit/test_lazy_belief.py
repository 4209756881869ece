"""Unit tests for fa_memtool.containers.lazy.LazyBeliefArray.

Ground truth is always numpy itself, run on the dense equivalent the test keeps
alongside the LazyBeliefArray; no expected number is copied from a run.

Test data uses multiples of 0.25 in [-4, 4] ("dyadic" values): every sum of them is
exact in float64 whatever the order of additions, so sums and means of the sparse
fast paths (which add only the stored values) can be compared exactly with numpy's
pairwise sums over the dense array.

Writes are compared bit for bit (``bits``): LazyBeliefArray stores every element whose
bytes are not all zero, -0.0 and NaN payloads included, so after any sequence of writes
its dense equivalent has exactly the bytes numpy's array has.
"""

from __future__ import annotations

import copy
import gc
import math
import operator
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from fa_memtool.containers.lazy import LazyBeliefArray, LazyBeliefView
from fa_memtool.sizing import deep_size

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DYADIC = st.integers(-16, 16).map(lambda quarters: quarters / 4)
NONZERO_DYADIC = st.integers(-16, 16).filter(bool).map(lambda quarters: quarters / 4)
THRESHOLDS = st.sampled_from([0.0, 0.5, 0.9, 1.0])
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
INDEX_ITEMSIZE = np.dtype(np.int32).itemsize  # every test array has size < 2**31
IN_PLACE_OPERATORS: list[Callable[[Any, Any], Any]] = [operator.iadd, operator.isub, operator.imul, operator.itruediv]


# ---------------------------------------------------------------------- strategies


@st.composite
def dense_contents(draw: st.DrawFn, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A float64 array, usually mostly zeros (zero background), sometimes dense or all zero."""
    shape = draw(SHAPES) if shape is None else shape
    background = draw(st.sampled_from([0.0, 0.0, 0.0, -1.25]))
    return draw(hnp.arrays(np.float64, shape, elements=DYADIC, fill=st.just(background)))


@st.composite
def beliefs(draw: st.DrawFn) -> tuple[np.ndarray, LazyBeliefArray]:
    """(dense truth, LazyBeliefArray holding the same values) in any storage state."""
    dense = draw(dense_contents())
    threshold = draw(THRESHOLDS)
    if draw(st.booleans()):
        return dense, LazyBeliefArray.from_dense(dense, sparsity_threshold=threshold)
    built = LazyBeliefArray(dense.shape, sparsity_threshold=threshold)  # reach the same values by writing
    built[...] = dense
    return dense, built


@st.composite
def index_expressions(draw: st.DrawFn, shape: tuple[int, ...]) -> Any:
    """Any index numpy accepts for ``shape``: basic (ints incl. negative, slices with steps,
    Ellipsis, newaxis), integer arrays, full and per-axis boolean masks, and mixtures of
    integer arrays with slices (which move the broadcast axes, numpy's trickiest rule)."""
    kind = draw(st.sampled_from(["basic", "integer_arrays", "mask", "axis_mask", "mixed"]))
    if kind == "basic":
        return draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    if kind == "integer_arrays":
        return draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)))
    if kind == "mask":
        return draw(hnp.arrays(np.bool_, shape))
    if kind == "axis_mask":
        return (draw(hnp.arrays(np.bool_, (shape[0],))), *(draw(st.slices(length)) for length in shape[1:]))
    selection_length = draw(st.integers(0, 3))
    parts: list[Any] = []
    for length in shape:
        part_kind = draw(st.sampled_from(["int", "slice", "array"]))
        if part_kind == "int":
            parts.append(draw(st.integers(-length, length - 1)))
        elif part_kind == "slice":
            parts.append(draw(st.slices(length)))
        else:
            parts.append(draw(hnp.arrays(np.intp, (selection_length,), elements=st.integers(-length, length - 1))))
    return tuple(parts)


@st.composite
def assigned_values(draw: st.DrawFn, shape: tuple[int, ...], key: Any) -> Any:
    """A value numpy accepts for ``dense[key] = value``: a scalar, an array of the selection's
    shape, a trailing part of it (broadcast), or the same as a nested list. Keys selecting an
    element twice get a scalar, since numpy leaves the order of repeated writes unspecified."""
    positions = np.arange(int(np.prod(shape))).reshape(shape)[key]
    selection_shape = np.shape(positions)
    repeats = np.size(positions) != np.unique(positions).size
    mode = "scalar" if repeats else draw(st.sampled_from(["scalar", "full", "trailing", "list"]))
    if mode == "scalar":
        return draw(DYADIC)
    if mode == "trailing":
        selection_shape = selection_shape[draw(st.integers(0, len(selection_shape))) :]
    value = draw(hnp.arrays(np.float64, selection_shape, elements=DYADIC, fill=st.sampled_from([0.0, 0.5])))
    return value.tolist() if mode == "list" and value.size else value  # an empty nested list loses its shape


# ---------------------------------------------------------------------- helpers


def sparse_capacity(size: int, threshold: float) -> int:
    """Most nonzeros with a zero fraction still >= threshold, straight from the definition."""
    return max(nnz for nnz in range(size + 1) if size == 0 or (size - nnz) / size >= threshold)


def held_buffers(belief: LazyBeliefArray) -> list[np.ndarray]:
    """The arrays the object references, as a deep sizer's walk finds them."""
    return [referent for referent in gc.get_referents(belief) if isinstance(referent, np.ndarray)]


def bits(array: np.ndarray) -> np.ndarray:
    """The bytes of an array's elements, in C order (for bit-for-bit comparisons)."""
    return np.ascontiguousarray(array).view(np.uint8)


def stored_count(truth: np.ndarray) -> int:
    """Elements LazyBeliefArray stores for these values: those with a nonzero byte."""
    return int(np.count_nonzero(bits(truth).reshape(truth.size, truth.dtype.itemsize).any(axis=1))) if truth.size else 0


def assert_matches(belief: LazyBeliefArray, truth: np.ndarray) -> None:
    """Same bytes, shape and dtype as the truth, and storage consistent with them."""
    dense = np.asarray(belief)
    assert dense.shape == truth.shape and dense.dtype == truth.dtype
    assert np.array_equal(bits(dense), bits(truth)), (dense, truth)
    assert belief.nnz == int(np.count_nonzero(truth))
    stored = stored_count(truth)
    assert belief.stored_count == stored
    assert belief.stored_bytes == sum(buffer.nbytes for buffer in held_buffers(belief))
    if belief.is_sparse:
        assert stored <= belief.sparse_capacity
        assert belief.stored_bytes == stored * (INDEX_ITEMSIZE + belief.dtype.itemsize)
    else:
        assert belief.stored_bytes == truth.size * truth.dtype.itemsize


def memory_owner(array: np.ndarray) -> Any:
    """The object at the end of the base chain: the array that owns the memory."""
    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return array


def assert_same_result(got: Any, expected: Any, dense: np.ndarray | None = None) -> None:
    """What numpy returned: a LazyBeliefView where numpy returned a view of ``dense``, a plain
    ndarray where it returned a new array, a numpy scalar for a scalar."""
    if isinstance(expected, np.ndarray):
        if dense is not None and memory_owner(expected) is memory_owner(dense):  # numpy gave a view
            assert type(got) is LazyBeliefView
        else:
            assert type(got) is np.ndarray
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_array_equal(np.asarray(got), expected)
    else:
        assert type(got) is type(expected)
        assert got == expected or (got != got and expected != expected)


# ---------------------------------------------------------------------- construction and storage


def test_new_array_holds_no_buffers_until_a_nonzero_write() -> None:
    belief = LazyBeliefArray((448, 8))
    assert belief.stored_bytes == 0 and held_buffers(belief) == []
    assert belief.is_sparse and belief.nnz == 0
    assert belief.shape == (448, 8) and belief.dtype == np.float64 and belief.ndim == 2 and belief.size == 3584
    assert belief.nbytes == np.zeros((448, 8)).nbytes  # the dense equivalent, as numpy reports it
    belief[3, 5] = 0.0  # a zero write stores nothing
    assert belief.stored_bytes == 0
    belief[3, 5] = 0.25
    assert belief.stored_bytes == INDEX_ITEMSIZE + 8 == sum(buffer.nbytes for buffer in held_buffers(belief))
    belief[3, 5] = 0.0  # back to all zeros: the buffers go away again
    assert belief.stored_bytes == 0 and held_buffers(belief) == []


@PROPERTY_SETTINGS
@given(dense=dense_contents(), threshold=THRESHOLDS)
def test_from_dense_round_trips_and_picks_storage_by_zero_fraction(dense: np.ndarray, threshold: float) -> None:
    belief = LazyBeliefArray.from_dense(dense, sparsity_threshold=threshold)
    assert belief.sparse_capacity == sparse_capacity(dense.size, threshold)
    zero_fraction = (dense.size - stored_count(dense)) / dense.size
    assert belief.is_sparse == (zero_fraction >= threshold)
    assert_matches(belief, dense)
    dense[...] = 7.0  # the values were copied
    assert not np.any(np.asarray(belief) == 7.0)


@PROPERTY_SETTINGS
@given(original=hnp.arrays(st.sampled_from([np.float64, np.float32, np.int64, np.int8, np.uint16, np.bool_, np.complex128]), SHAPES))
def test_from_dense_round_trip_is_bit_exact_for_every_nonzero(original: np.ndarray) -> None:
    back = np.asarray(LazyBeliefArray.from_dense(original))
    assert back.dtype == original.dtype and back.shape == original.shape
    assert np.array_equal(bits(back), bits(original))  # -0.0 and NaN payloads included


def test_index_arrays_use_int32_below_two_to_the_31() -> None:
    belief = LazyBeliefArray((10,))
    belief[4] = 1.0
    index_buffers = [buffer for buffer in held_buffers(belief) if buffer.dtype.kind == "i"]
    assert [buffer.dtype for buffer in index_buffers] == [np.dtype(np.int32)]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (((-1, 3),), ValueError),
        (((3,), object), TypeError),
        (((3,), "U4"), TypeError),
        (((3,), np.float64, 1.5), ValueError),
        (((3,), np.float64, float("nan")), ValueError),
    ],
)
def test_rejects_what_it_cannot_represent(arguments: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        LazyBeliefArray(*arguments)


def test_sizer_sees_plain_slot_state_and_charges_only_the_nonzeros() -> None:
    dense = np.zeros((448, 8))
    dense[100:104, 2:6] = 1 / 16
    belief = LazyBeliefArray.from_dense(dense)
    assert not hasattr(belief, "__dict__")
    assert sum(buffer.nbytes for buffer in held_buffers(belief)) == belief.stored_bytes == 16 * (INDEX_ITEMSIZE + 8)
    assert deep_size(belief) < dense.nbytes / 10


# ---------------------------------------------------------------------- indexing


@PROPERTY_SETTINGS
@given(data=st.data())
def test_reads_match_numpy_views_where_numpy_views(data: st.DataObject) -> None:
    dense, belief = data.draw(beliefs())
    key = data.draw(index_expressions(dense.shape))
    got, expected = belief[key], dense[key]
    assert_same_result(got, expected, dense)
    if type(got) is np.ndarray:  # a new array, as numpy's: writable and detached from the storage
        assert got.flags.writeable
        assert not any(np.shares_memory(got, buffer) for buffer in held_buffers(belief))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_writes_match_numpy(data: st.DataObject) -> None:
    truth, belief = data.draw(beliefs())
    truth = truth.copy()
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(index_expressions(truth.shape))
        value = data.draw(assigned_values(truth.shape, key))
        truth[key] = value
        belief[key] = value
        assert_matches(belief, truth)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ((0, slice(0, 3)), [[1.0, 2.0, 3.0]]),  # basic index, nested list with an extra dimension
        (np.eye(3, dtype=bool), np.ones((1, 3))),  # a full mask takes only 0-d or 1-d values
        ((np.array([0, 1]), slice(None)), np.ones(4)),  # shapes that do not broadcast
        (5, 1.0),  # out of bounds
        ((0, 0, 0), 1.0),  # too many indices
    ],
)
def test_invalid_writes_raise_what_numpy_raises(key: Any, value: Any) -> None:
    dense = np.zeros((3, 3))
    with pytest.raises(Exception) as numpy_error:
        dense[key] = value
    belief = LazyBeliefArray((3, 3))
    with pytest.raises(type(numpy_error.value)):
        belief[key] = value
    assert belief.stored_bytes == 0


def test_repeated_fancy_positions_keep_the_last_write() -> None:
    belief = LazyBeliefArray((6,))
    belief[[1, 3, 1]] = [5.0, 6.0, 7.0]
    np.testing.assert_array_equal(np.asarray(belief), [0, 7, 0, 6, 0, 0])


# ---------------------------------------------------------------------- write-through views and write forms


def numpy_raises(action: Callable[[], Any]) -> type[Exception] | None:
    """The exception type numpy raises for ``action``, or None."""
    try:
        action()
    except Exception as error:  # noqa: BLE001 - any numpy error is the expectation
        return type(error)
    return None


def same_effect(truth: np.ndarray, belief: Any, operation: Callable[[Any], Any]) -> None:
    """Run ``operation`` on the numpy array and on the lazy one: the same error, or none."""
    with np.errstate(all="ignore"):
        error = numpy_raises(lambda: operation(truth))
    if error is None:
        with np.errstate(all="ignore"):
            operation(belief)
    else:
        with pytest.raises(error), np.errstate(all="ignore"):
            operation(belief)


SCALAR_OPERANDS = st.one_of(DYADIC, st.sampled_from([-0.0, -2.0, 0.5, np.float32(1.5), np.float64(-0.75), 3]))


@st.composite
def whole_array_writes(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[str, Callable[[Any], Any]]:
    """One write numpy accepts on a whole array: ufuncs with ``out=`` (also as a tuple, also
    reading the array they write), in-place operators, ``np.copyto``, ``fill``, ``[...] =``."""
    kind = draw(st.sampled_from(["out", "out_tuple", "out_self", "unary_out", "in_place", "copyto", "fill", "ellipsis", "normalise"]))
    array = draw(hnp.arrays(np.float64, draw(st.sampled_from([shape, shape[-1:]])), elements=DYADIC, fill=st.just(0.0)))
    scalar = draw(SCALAR_OPERANDS)
    other = draw(st.sampled_from([array, scalar]))
    ufunc = draw(st.sampled_from([np.add, np.subtract, np.multiply, np.maximum, np.true_divide, np.hypot, np.fmin]))
    unary = draw(st.sampled_from([np.negative, np.absolute, np.square, np.sqrt, np.exp, np.floor, np.sin]))
    in_place = draw(st.sampled_from(IN_PLACE_OPERATORS))
    if kind == "out":
        return kind, lambda target: ufunc(np.broadcast_to(array, shape), other, out=target)
    if kind == "out_tuple":
        return kind, lambda target: ufunc(target, other, out=(target,))
    if kind == "out_self":
        return kind, lambda target: ufunc(target, target, out=target)
    if kind == "unary_out":
        return kind, lambda target: unary(target, out=target)
    if kind == "in_place":
        return kind, lambda target: in_place(target, other)
    if kind == "copyto":
        return kind, lambda target: np.copyto(target, array)
    if kind == "fill":
        return kind, lambda target: target.fill(scalar)
    if kind == "ellipsis":
        return kind, lambda target: target.__setitem__(Ellipsis, array)
    return kind, lambda target: operator.itruediv(target, target.sum() or 1.0)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_whole_array_writes_match_numpy_bitwise(data: st.DataObject) -> None:
    truth, belief = data.draw(beliefs())
    truth = truth.copy()
    for _ in range(data.draw(st.integers(1, 4))):
        _, write = data.draw(whole_array_writes(truth.shape))
        same_effect(truth, belief, write)
        assert_matches(belief, truth)


@PROPERTY_SETTINGS
@given(data=st.data(), in_place=st.sampled_from(IN_PLACE_OPERATORS))
def test_in_place_operators_on_any_index_match_numpy_bitwise(data: st.DataObject, in_place: Callable[[Any, Any], Any]) -> None:
    """``b[idx] op= v`` for every index kind (integer arrays, masks, slices, mixtures), and
    ``np.add.at``/``np.multiply.at`` with the same indices."""
    truth, belief = data.draw(beliefs())
    truth = truth.copy()
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(index_expressions(truth.shape))
        value = data.draw(assigned_values(truth.shape, key))

        def update(target: Any, key: Any = key, value: Any = value) -> None:
            target[key] = in_place(target[key], value)  # exactly what ``target[key] op= value`` runs

        same_effect(truth, belief, update)
        assert_matches(belief, truth)
        ufunc = data.draw(st.sampled_from([np.add, np.multiply, np.maximum]))
        same_effect(truth, belief, lambda target, key=key, value=value, ufunc=ufunc: ufunc.at(target, key, value))
        assert_matches(belief, truth)


@st.composite
def view_steps(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[str, Any]:
    """One numpy operation that returns a view of an ndarray (or, for reshape/ravel of some
    layouts, a copy: then both sides must detach)."""
    kind = draw(st.sampled_from(["index", "index", "T", "transpose", "reshape", "ravel", "swapaxes", "squeeze", "np.reshape"]))
    if kind == "index":
        return kind, draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
    if kind == "transpose":
        return kind, tuple(draw(st.permutations(range(len(shape)))))
    if kind == "swapaxes":
        return kind, (draw(st.integers(-len(shape), len(shape) - 1)), draw(st.integers(-len(shape), len(shape) - 1))) if shape else (0, 0)
    if kind in ("reshape", "np.reshape"):
        size = math.prod(shape)
        factors = [factor for factor in range(1, size + 1) if size % factor == 0] or [1]
        first = draw(st.sampled_from(factors))
        return kind, (draw(st.sampled_from([(-1,), (first, -1), (-1, first, 1)])), draw(st.sampled_from(["C", "F", "A"])))
    if kind == "ravel":
        return kind, draw(st.sampled_from(["C", "F", "A", "K"]))
    return kind, None


def apply_view_step(target: Any, step: tuple[str, Any]) -> Any:
    kind, argument = step
    if kind == "index":
        return target[argument]
    if kind == "T":
        return target.T
    if kind == "transpose":
        return target.transpose(argument)
    if kind == "reshape":
        return target.reshape(argument[0], order=argument[1])
    if kind == "np.reshape":
        return np.reshape(target, argument[0], order=argument[1])
    if kind == "ravel":
        return target.ravel(argument)
    if kind == "swapaxes":
        return target.swapaxes(*argument)
    return np.squeeze(target)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_views_write_through_exactly_like_numpy_views(data: st.DataObject) -> None:
    """Chains of view operations, then a write into the last one: the owner changes exactly
    as numpy's array does, and a result numpy copies is detached on both sides."""
    truth, belief = data.draw(beliefs())
    truth = truth.copy()
    dense_view: Any = truth
    lazy_view: Any = belief
    for _ in range(data.draw(st.integers(1, 3))):
        if not isinstance(dense_view, np.ndarray):
            break
        step = data.draw(view_steps(dense_view.shape))
        error = numpy_raises(lambda step=step: apply_view_step(dense_view, step))
        if error is not None:
            with pytest.raises(error):
                apply_view_step(lazy_view, step)
            continue
        dense_view, lazy_view = apply_view_step(dense_view, step), apply_view_step(lazy_view, step)
        assert_same_result(lazy_view, dense_view, truth)
    if not isinstance(dense_view, np.ndarray):
        assert_matches(belief, truth)
        return
    write = data.draw(st.sampled_from(["item", "iadd", "imul", "out", "fill"]))
    value = data.draw(DYADIC)
    if write == "item":
        key = data.draw(hnp.basic_indices(dense_view.shape, allow_ellipsis=True)) if dense_view.ndim else ()
        same_effect(dense_view, lazy_view, lambda target: target.__setitem__(key, value))
    elif write in ("iadd", "imul"):
        same_effect(dense_view, lazy_view, lambda target: (operator.iadd if write == "iadd" else operator.imul)(target, value))
    elif write == "out":
        same_effect(dense_view, lazy_view, lambda target: np.multiply(target, -1.0, out=target))
    else:
        same_effect(dense_view, lazy_view, lambda target: target.fill(value))
    assert_matches(belief, truth)
    assert np.array_equal(bits(np.asarray(lazy_view)), bits(dense_view))


@pytest.mark.parametrize("threshold", [0.9, 1.0], ids=["sparse-storage", "dense-storage"])
def test_the_common_view_writes_write_through(threshold: float) -> None:
    start = np.zeros((4, 6))
    start[1, 2], start[3, 5] = 0.5, 0.25
    writes: list[Callable[[Any], Any]] = [
        lambda b: b[0].__setitem__(3, 1.0),  # b[0][3] = 1
        lambda b: b.__setitem__(0, operator.iadd(b[0], 1.0)),  # b[0] += 1
        lambda b: b.T.__setitem__((1, 2), 5.0),  # b.T[1, 2] = 5
        lambda b: b.reshape(-1).__setitem__(7, 2.0),  # b.reshape(-1)[7] = 2
        lambda b: b[1].__setitem__(slice(None), 0.0),  # row = b[1]; row[:] = 0
        lambda b: b.__setitem__((slice(2, 5), 1), operator.imul(b[2:5, 1], 3.0)),  # b[2:5, 1] *= 3
        lambda b: np.multiply(b[3], 4.0, out=b[3]),
        lambda b: np.ravel(b)[::5].__setitem__(Ellipsis, -1.0),
    ]
    for write in writes:
        truth = start.copy()
        belief = LazyBeliefArray.from_dense(start, sparsity_threshold=threshold)
        assert belief.is_sparse == (threshold < 1.0)
        write(truth)
        write(belief)
        assert_matches(belief, truth)


def test_a_kept_view_follows_its_owner_through_storage_changes() -> None:
    belief = LazyBeliefArray((10, 10), sparsity_threshold=0.9)
    truth = np.zeros((10, 10))
    row, column = belief[2], belief[:, 7]
    assert type(row) is LazyBeliefView and row.base is belief
    assert not [referent for referent in gc.get_referents(row) if isinstance(referent, np.ndarray)]  # views hold no buffers
    for target in (belief, truth):
        target[2, 7] = 1.5
    assert row[7] == 1.5 and column[2] == 1.5
    for target in (belief, truth):
        target[...] = 1.0  # dense now
    assert not belief.is_sparse
    row[:] = 0.0
    truth[2] = 0.0
    assert_matches(belief, truth)
    for target in (belief, truth):
        target[:] = 0.0  # back to sparse
        target[0, 0] = 3.0
    assert belief.is_sparse
    column += 2.0
    truth[:, 7] += 2.0
    assert_matches(belief, truth)
    np.testing.assert_array_equal(np.asarray(row), truth[2])


def test_reshape_that_numpy_copies_is_detached_as_numpy_s() -> None:
    truth = np.arange(12.0).reshape(3, 4)
    belief = LazyBeliefArray.from_dense(truth)
    copied, expected = belief.T.reshape(-1), truth.T.reshape(-1)
    assert not np.shares_memory(expected, truth) and type(copied) is np.ndarray
    copied[0] = 99.0
    assert_matches(belief, truth)
    with pytest.raises(ValueError):
        np.reshape(belief.T, -1, copy=False)


def test_pickle_and_deepcopy_keep_views_tied_to_their_owner() -> None:
    holder = {"belief": LazyBeliefArray.from_dense(np.eye(3))}
    holder["row"] = holder["belief"][1]
    for twin in (pickle.loads(pickle.dumps(holder)), copy.deepcopy(holder)):
        assert twin["row"].base is twin["belief"] and twin["belief"] is not holder["belief"]
        twin["row"][0] = 7.0
        assert twin["belief"][1, 0] == 7.0
    assert holder["belief"][1, 0] == 0.0
    assert type(holder["row"].copy()) is LazyBeliefArray and holder["row"].copy()[1] == 1.0


def test_fresh_results_are_writable_and_independent() -> None:
    belief = LazyBeliefArray.from_dense(np.eye(3))
    for fresh in (np.asarray(belief), np.array(belief), belief.astype(np.float32), belief.flatten(), np.copy(belief), belief * 2):
        assert type(fresh) is np.ndarray and fresh.flags.writeable
        fresh[...] = 9
    np.testing.assert_array_equal(np.asarray(belief), np.eye(3))
    with pytest.raises(ValueError):
        belief.__array__(copy=False)  # no copy-free dense view exists


# ---------------------------------------------------------------------- re-compression


def test_switches_storage_at_the_threshold_with_hysteresis() -> None:
    belief = LazyBeliefArray((10, 10), sparsity_threshold=0.9)
    truth = np.zeros((10, 10))
    assert belief.sparse_capacity == 10 and belief.resparsify_limit == 5

    def write(position: tuple[int, int], value: float) -> None:
        belief[position] = value
        truth[position] = value
        assert_matches(belief, truth)

    for cell in range(10):
        write(divmod(cell, 10), 1.0)
    assert belief.is_sparse  # 10 nonzeros: zero fraction 0.9 >= 0.9
    write((5, 5), 1.0)
    assert not belief.is_sparse  # 11 nonzeros: below the threshold
    for cell in range(5):
        write(divmod(cell, 10), 0.0)
    assert not belief.is_sparse  # 6 nonzeros would fit sparse storage, but hysteresis waits for <= 5 ...
    write((0, 6), 0.0)
    assert belief.is_sparse  # ... which this write reaches
    belief *= 0.0  # an in-place ufunc re-checks too
    truth *= 0.0
    assert_matches(belief, truth)
    assert belief.is_sparse and belief.stored_bytes == 0
    belief += 0.5  # and goes dense when it fills the array
    truth += 0.5
    assert_matches(belief, truth)
    assert not belief.is_sparse
    belief -= 0.5
    truth -= 0.5
    assert belief.is_sparse and belief.stored_bytes == 0


class RecompressionMachine(RuleBasedStateMachine):
    """Random writes and in-place ops; storage follows the documented switching rules.

    Sparse goes dense as soon as the stored count (elements with a nonzero byte, so
    -0.0 counts) > sparse_capacity. Dense goes back to sparse when it is <=
    resparsify_limit at a check: after a write whose written elements hold an unstored
    zero, and after every in-place operation."""

    SHAPE = (6, 5)

    def __init__(self) -> None:
        super().__init__()
        self.belief = LazyBeliefArray(self.SHAPE, sparsity_threshold=0.8)
        self.truth = np.zeros(self.SHAPE)
        self.expect_sparse = True

    def _expect(self, checked_back: bool) -> None:
        nnz = stored_count(self.truth)
        if self.expect_sparse:
            self.expect_sparse = nnz <= self.belief.sparse_capacity
        elif checked_back:
            self.expect_sparse = nnz <= self.belief.resparsify_limit

    @rule(
        key=st.one_of(
            st.tuples(st.integers(-6, 5), st.integers(-5, 4)),
            hnp.basic_indices(SHAPE, allow_ellipsis=True),
        ),
        value=DYADIC,
    )
    def write(self, key: Any, value: float) -> None:
        self.belief[key] = value
        self.truth[key] = value
        self._expect(checked_back=stored_count(np.atleast_1d(self.truth[key])) < np.size(self.truth[key]))

    @rule(factor=DYADIC)
    def scale_in_place(self, factor: float) -> None:
        self.belief *= factor
        self.truth *= factor
        self._expect(checked_back=True)

    @rule(row=hnp.arrays(np.float64, (5,), elements=DYADIC))
    def add_row_with_out(self, row: np.ndarray) -> None:
        assert np.add(self.belief, row, out=self.belief) is self.belief
        self.truth += row
        self._expect(checked_back=True)

    @invariant()
    def matches_truth_and_rules(self) -> None:
        assert_matches(self.belief, self.truth)
        assert self.belief.is_sparse == self.expect_sparse


RecompressionMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)
TestRecompression = RecompressionMachine.TestCase


# ---------------------------------------------------------------------- ufuncs and operators

BINARY_UFUNCS = [np.add, np.subtract, np.multiply, np.maximum, np.minimum, np.greater, np.less_equal, np.equal, np.logical_and, np.hypot]
UNARY_UFUNCS = [np.negative, np.absolute, np.exp, np.square, np.sign, np.isfinite, np.logical_not]


@st.composite
def operands_for(draw: st.DrawFn, shape: tuple[int, ...], nonzero: bool = False) -> tuple[Any, Any]:
    """(operand as passed, its dense truth): a scalar, a same-shape array, a broadcast row,
    or another LazyBeliefArray."""
    elements = NONZERO_DYADIC if nonzero else DYADIC
    kind = draw(st.sampled_from(["scalar", "array", "row", "lazy"]))
    if kind == "scalar":
        scalar = draw(elements)
        return scalar, scalar
    array = draw(hnp.arrays(np.float64, shape[-1:] if kind == "row" else shape, elements=elements))
    return (LazyBeliefArray.from_dense(array), array) if kind == "lazy" else (array, array)


@PROPERTY_SETTINGS
@given(data=st.data(), ufunc=st.sampled_from(BINARY_UFUNCS + UNARY_UFUNCS))
def test_ufuncs_and_operators_return_what_numpy_returns(data: st.DataObject, ufunc: np.ufunc) -> None:
    dense, belief = data.draw(beliefs())
    if ufunc.nin == 1:
        assert_same_result(ufunc(belief), ufunc(dense))
    else:
        operand, operand_truth = data.draw(operands_for(dense.shape))
        assert_same_result(ufunc(belief, operand), ufunc(dense, operand_truth))
        assert_same_result(ufunc(operand, belief), ufunc(operand_truth, dense))
        assert_same_result(belief * operand, dense * operand_truth)
        assert_same_result(operand - belief, operand_truth - dense)
        assert_same_result(belief < operand, dense < operand_truth)
        assert_same_result(belief == operand, dense == operand_truth)
    assert_same_result(-belief, -dense)
    matrix = np.arange(dense.shape[-1] * 2, dtype=np.float64).reshape(dense.shape[-1], 2)
    assert_same_result(belief @ matrix, dense @ matrix)
    assert_same_result(np.add.reduce(belief, axis=0), np.add.reduce(dense, axis=0))
    assert_same_result(np.maximum.accumulate(belief, axis=-1), np.maximum.accumulate(dense, axis=-1))




@PROPERTY_SETTINGS
@given(data=st.data(), in_place=st.sampled_from(IN_PLACE_OPERATORS))
def test_in_place_operators_update_storage_and_recompress(data: st.DataObject, in_place: Callable[[Any, Any], Any]) -> None:
    truth, belief = data.draw(beliefs())
    truth = truth.copy()
    operand, operand_truth = data.draw(operands_for(truth.shape, nonzero=True))  # nonzero: /= stays finite
    was_sparse = belief.is_sparse
    assert in_place(belief, operand) is belief
    in_place(truth, operand_truth)
    assert_matches(belief, truth)
    stored = stored_count(truth)
    assert belief.is_sparse == (stored <= (belief.sparse_capacity if was_sparse else belief.resparsify_limit))


@PROPERTY_SETTINGS
@given(data=st.data())
def test_out_arguments_write_into_the_lazy_array(data: st.DataObject) -> None:
    truth, belief = data.draw(beliefs())
    truth = truth.copy()
    left = data.draw(dense_contents(truth.shape))
    right, right_truth = data.draw(operands_for(truth.shape))
    assert np.multiply(left, right, out=belief) is belief
    np.multiply(left, right_truth, out=truth)
    assert_matches(belief, truth)
    assert np.add(belief, belief, out=belief) is belief  # the same array read and written
    truth += truth
    assert_matches(belief, truth)
    flat_positions = data.draw(hnp.arrays(np.intp, st.integers(0, 4), elements=st.integers(0, truth.size - 1)))
    unraveled = np.unravel_index(flat_positions, truth.shape)
    np.add.at(belief, unraveled, 1.0)  # unbuffered: repeated positions add up
    np.add.at(truth, unraveled, 1.0)
    assert_matches(belief, truth)


def test_ufunc_defers_to_foreign_overrides() -> None:
    class Foreign:
        def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> str:
            return "foreign"

    assert np.add(LazyBeliefArray((2,)), Foreign()) == "foreign"


# ---------------------------------------------------------------------- numpy functions and reductions


@PROPERTY_SETTINGS
@given(data=st.data())
def test_numpy_functions_match_numpy(data: st.DataObject) -> None:
    dense, belief = data.draw(beliefs())
    vector = data.draw(hnp.arrays(np.float64, dense.shape[-1:], elements=DYADIC))
    axis = data.draw(st.integers(-dense.ndim, dense.ndim - 1))
    assert_same_result(np.sum(belief), np.sum(dense))
    assert_same_result(np.sum(belief, axis=axis), np.sum(dense, axis=axis))
    assert_same_result(np.sum(belief, axis=axis, keepdims=True), np.sum(dense, axis=axis, keepdims=True))
    assert_same_result(np.dot(belief, vector), np.dot(dense, vector))
    assert_same_result(np.einsum("...i,i->...", belief, vector), np.einsum("...i,i->...", dense, vector))
    every_axis = list(range(dense.ndim))  # einsum's sublist form: operands inside argument lists
    assert_same_result(np.einsum(belief, every_axis, []), np.einsum(dense, every_axis, []))
    assert_same_result(np.where(belief > 0, belief, -1.0), np.where(dense > 0, dense, -1.0))
    assert_same_result(np.concatenate([belief, dense], axis=axis), np.concatenate([dense, dense], axis=axis))
    assert_same_result(np.cumsum(belief, axis=axis), np.cumsum(dense, axis=axis))
    assert_same_result(np.count_nonzero(belief), np.count_nonzero(dense))
    assert_same_result(np.count_nonzero(belief, axis=axis), np.count_nonzero(dense, axis=axis))
    assert_same_result(belief.std(), dense.std())
    for got, expected in zip((*np.nonzero(belief), *belief.nonzero()), (*np.nonzero(dense), *dense.nonzero()), strict=True):
        assert_same_result(got, expected)
    assert np.allclose(belief, dense) and np.array_equal(belief, dense)
    assert_same_result(np.zeros_like(belief), np.zeros_like(dense))
    assert_same_result(np.copy(belief), dense)
    assert belief.tolist() == dense.tolist()
    assert len(belief) == len(dense)
    for got_row, expected_row in zip(belief, dense, strict=True):
        assert_same_result(got_row, expected_row, dense)


REDUCTIONS = ["sum", "mean", "max", "min", "argmax", "argmin", "any", "all"]


@PROPERTY_SETTINGS
@given(data=st.data(), reduction=st.sampled_from(REDUCTIONS))
def test_reductions_match_numpy_including_negatives_and_all_zero(data: st.DataObject, reduction: str) -> None:
    dense, belief = data.draw(beliefs())
    assert_same_result(getattr(belief, reduction)(), getattr(dense, reduction)())
    assert_same_result(getattr(np, reduction)(belief), getattr(np, reduction)(dense))
    axis = data.draw(st.integers(-dense.ndim, dense.ndim - 1))
    assert_same_result(getattr(belief, reduction)(axis=axis), getattr(dense, reduction)(axis=axis))


@pytest.mark.parametrize(
    "values",
    [
        np.zeros(7),
        np.array([0.0, -2.0, 0.0, -0.5, 0.0, 0.0, 0.0]),
        np.array([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0]),
        np.array([0.0, np.nan, 0.0, 5.0, np.nan, 0.0, 0.0]),
        np.array([0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 3.0]),
        np.array([0, 3, 0, 0, 0, 0, 0], dtype=np.uint8),
        np.array([0, -3, 0, 0, 0, 0, 9], dtype=np.int8),
        np.array([False, True, False, False, False, False, False]),
        np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.25], dtype=np.float16),
        np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.25], dtype=np.float32),
        np.array([0, 1 + 1j, 0, 0, 0, 0, -1j]),
    ],
    ids=lambda values: f"{values.dtype}-{values.tolist()}",
)
def test_reductions_on_edge_cases(values: np.ndarray) -> None:
    belief = LazyBeliefArray.from_dense(values, sparsity_threshold=0.5)
    assert belief.is_sparse or np.count_nonzero(values) > 3
    with np.errstate(invalid="ignore"):
        for reduction in REDUCTIONS:
            assert_same_result(getattr(belief, reduction)(), getattr(values, reduction)())
        assert_same_result(np.count_nonzero(belief), np.count_nonzero(values))


def test_empty_and_zero_dimensional_arrays() -> None:
    empty = LazyBeliefArray((0, 3))
    assert empty.sum() == 0.0 and empty.any() == np.False_ and empty.all() == np.True_
    with pytest.raises(ValueError):
        empty.max()
    scalar = LazyBeliefArray(())
    scalar[()] = 2.5
    assert scalar[()] == 2.5 and float(scalar) == 2.5 and scalar.shape == () and scalar.nnz == 1
    assert type(scalar[...]) is LazyBeliefView and scalar[...].shape == () and float(scalar[...]) == 2.5
    with pytest.raises(TypeError):
        len(scalar)


# ---------------------------------------------------------------------- copies, pickling, protocols


@pytest.mark.parametrize("threshold", [0.0, 0.9])
@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy, lambda belief: belief.copy(), lambda belief: pickle.loads(pickle.dumps(belief))])
def test_copies_are_independent_and_keep_state(duplicate: Callable[[LazyBeliefArray], Any], threshold: float) -> None:
    truth = np.zeros((4, 4), dtype=np.float32)
    truth[1, 2] = 0.5
    original = LazyBeliefArray.from_dense(truth, sparsity_threshold=threshold)
    twin = duplicate(original)
    assert type(twin) is LazyBeliefArray
    assert (twin.is_sparse, twin.sparsity_threshold, twin.dtype) == (original.is_sparse, threshold, np.float32)
    assert not any(np.shares_memory(mine, theirs) for mine in held_buffers(original) for theirs in held_buffers(twin))
    twin[1, 2] = 7.0
    twin *= 2
    assert_matches(original, truth)


def test_mutating_numpy_functions_write_back() -> None:
    belief = LazyBeliefArray((3, 3))
    np.copyto(belief, np.eye(3))
    np.fill_diagonal(belief, 2.0)
    np.putmask(belief, np.eye(3, dtype=bool), 0.0)
    np.put(belief, [1], [4.0])
    expected = np.zeros((3, 3))
    expected[0, 1] = 4.0
    assert_matches(belief, expected)


def test_repr_and_str_show_values_and_storage() -> None:
    belief = LazyBeliefArray((4, 5))
    belief[1, 2] = 0.5
    assert repr(belief).startswith("LazyBeliefArray([[0. , 0. , 0. , 0. , 0. ],")
    assert "storage=sparse" in repr(belief) and "nnz=1" in repr(belief)
    assert str(belief) == str(np.asarray(belief))
    assert 0.5 in belief and 3.0 not in belief
