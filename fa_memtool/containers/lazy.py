"""A lazy, sparse stand-in for the mostly-zero belief arrays agents keep.

Why this exists: active-inference agents hold joint beliefs such as a (448, 8) float64
array whose mass sits on a handful of cells (the explorer sample agent's position
marginal covers at most 5 of its 448 cells), and a population keeps one per agent plus
history copies. Storing only the nonzeros, and nothing at all until the first write,
shrinks such an array roughly in proportion to its density; ``LazyBeliefArray`` does so
while still behaving like the dense float ndarray the agent code was written against.

Storage, exactly one of three states at any time:

- unwritten: no buffers at all (not even empty index arrays); every element reads 0.
  An array whose every value becomes zero again returns to this state.
- sparse: ``_flat_indices``, the sorted, unique C-order flat positions of the nonzero
  elements (int32 while ``size < 2**31``, halving index memory; ``np.intp`` beyond),
  and ``_values``, their values in the array's dtype. No stored value is zero.
- dense: ``_dense``, a private C-contiguous ndarray that owns its data.

Re-compression: with ``sparsity_threshold`` t the sparse form is kept while the zero
fraction ``(size - nnz) / size >= t``, i.e. while ``nnz <= sparse_capacity``. A write
that pushes nnz above that switches to dense at once. Going back is checked only
where it can have become true and costs little next to the write itself: after a
dense write whose written elements contain a zero, and after any in-place ufunc or
in-place numpy function. It then needs ``nnz <= floor(sparse_capacity * 0.5)``: the
hysteresis keeps an array hovering at the threshold from converting (an O(size)
copy) on every write.

What comes back as what: every read returns plain numpy objects, never a
``LazyBeliefArray`` (exceptions: ``copy()``, ``copy.copy``/``copy.deepcopy``,
unpickling and ``from_dense``). Scalar indexing returns a numpy scalar, as numpy does.
Anything numpy would hand out as a *view* of the array (indexing results, ``T``,
``reshape``, ``ravel``, ``transpose``, view-returning numpy functions) is a fresh copy
marked read-only, so ``b[0][3] = 1`` or ``b[0] += 1`` raises ``ValueError`` instead of
silently not writing through; write with ``b[0, 3] = 1`` or ``b[0] = b[0] + 1``.
Results numpy computes fresh anyway (arithmetic, ufuncs, reductions, ``astype``,
``flatten``, ``np.copy``, ``np.asarray``) are ordinary writable ndarrays.

Sizing: instances use ``__slots__`` (no instance dict), so the object's whole state is
its slot values: the shape tuple, the dtype, two numbers and at most two buffers,
all plain attributes that ``gc.get_referents`` reports, which is exactly what a deep
sizer walks. ``stored_bytes`` is the buffer bytes alone; ``nbytes`` is, as for numpy,
the bytes of the dense equivalent.
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin
from numpy.lib.stride_tricks import as_strided
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = ["LazyBeliefArray"]

_Order = Literal["K", "A", "C", "F"]
_Casting = Literal["no", "equiv", "safe", "same_kind", "unsafe"]

# Zero has an obvious meaning for these kinds only (bool, signed, unsigned, float, complex).
_NUMERIC_KINDS = frozenset("biufc")
# Kinds whose ordering lets max/min/argmax/argmin be read off the stored values plus an
# implicit zero; complex ordering is lexicographic, so it takes the dense path instead.
_ORDERED_KINDS = frozenset("biuf")
# A dense array returns to sparse storage only once its nonzeros fit in this share of the
# sparse capacity; see the module docstring for why.
_RESPARSIFY_SHARE = 0.5
# Flat positions below this bound fit int32, which halves the memory of the index array.
_INT32_POSITION_LIMIT = 2**31


def _checked_shape(shape: int | Iterable[int]) -> tuple[int, ...]:
    """The shape as a tuple of ints, rejecting what numpy rejects."""
    if isinstance(shape, (int, np.integer)):
        dimensions: tuple[int, ...] = (operator.index(shape),)
    else:
        dimensions = tuple(operator.index(length) for length in shape)
    if any(length < 0 for length in dimensions):
        raise ValueError("negative dimensions are not allowed")
    return dimensions


def _checked_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """Only numeric dtypes: sparsity is defined by "equals zero"."""
    resolved = np.dtype(dtype)
    if resolved.kind not in _NUMERIC_KINDS:
        raise TypeError(f"LazyBeliefArray stores bool, integer, float or complex values, not {resolved}")
    return resolved


def _checked_threshold(sparsity_threshold: float) -> float:
    threshold = float(sparsity_threshold)
    if not 0.0 <= threshold <= 1.0:  # also rejects NaN
        raise ValueError(f"sparsity_threshold must be within [0, 1], got {sparsity_threshold!r}")
    return threshold


def _sparse_capacity(size: int, threshold: float) -> int:
    """Largest nonzero count whose zero fraction ``(size - nnz) / size`` is still >= threshold.

    Searched with that exact float expression rather than ``floor((1 - t) * size)`` alone,
    because the latter rounds differently (0.9 on 10 elements gives 0, not 1) and callers
    checking the documented fraction themselves must see the same boundary."""
    if size == 0:
        return 0
    capacity = min(size, max(0, math.floor((1.0 - threshold) * size)))
    while capacity < size and (size - capacity - 1) / size >= threshold:
        capacity += 1
    while capacity > 0 and (size - capacity) / size < threshold:
        capacity -= 1
    return capacity


def _index_dtype(size: int) -> np.dtype[Any]:
    return np.dtype(np.int32) if size < _INT32_POSITION_LIMIT else np.dtype(np.intp)


@functools.lru_cache(maxsize=256)
def _layout(shape: tuple[int, ...]) -> tuple[tuple[NDArray[np.intp], ...], tuple[int, ...]]:
    """Per-axis coordinate grids broadcast (without copying) to ``shape``, and C-order element strides.

    Indexing grid k with any numpy key yields the axis-k coordinates of exactly the elements
    that key selects, laid out as numpy lays out the result; summing coordinate * stride
    gives their flat positions. That reuses numpy's own indexing rules (negative indices,
    steps, newaxis, Ellipsis, broadcasting of integer arrays, boolean masks, error messages)
    at a cost proportional to the selection, not to the array. Cached per shape because
    agents hold many arrays of one shape; each grid costs ``shape[k]`` integers."""
    grids = []
    for axis, length in enumerate(shape):
        axis_shape = [1] * len(shape)
        axis_shape[axis] = length
        coordinates = np.arange(length, dtype=np.intp).reshape(axis_shape)
        coordinates.flags.writeable = False
        grids.append(np.broadcast_to(coordinates, shape))
    strides = tuple(math.prod(shape[axis + 1 :]) for axis in range(len(shape)))
    return tuple(grids), strides


@functools.lru_cache(maxsize=64)
def _assignment_shadow(shape: tuple[int, ...], dtype: np.dtype[Any]) -> NDArray[Any]:
    """A writable array of ``shape`` whose elements all alias one scratch element.

    Advanced-index assignment has value-conversion rules of its own (nested lists with
    extra leading dimensions are accepted, a boolean mask takes only 0-d or 1-d values,
    ...). Performing the assignment on this shadow lets numpy apply and enforce exactly
    those rules, raising its own errors, in O(selection) instead of O(size); the written
    contents are meaningless and never read."""
    return as_strided(np.zeros(1, dtype), shape=shape, strides=(0,) * len(shape), writeable=True)


# A 0-d array indexed by any valid 0-d key gives position 0 in the shape numpy would give.
_ZERO_D_POSITION = np.zeros((), dtype=np.intp)
_ZERO_D_POSITION.flags.writeable = False


def _is_basic_index(key: Any) -> bool:
    """True when numpy would use basic indexing (ints, slices, Ellipsis, newaxis only)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(
        part is None
        or part is Ellipsis
        or isinstance(part, slice)
        or (isinstance(part, (int, np.integer)) and not isinstance(part, (bool, np.bool_)))
        for part in parts
    )


def _plain_key(key: Any) -> Any:
    """The key with LazyBeliefArray parts (e.g. a lazily stored mask) made dense."""
    if isinstance(key, LazyBeliefArray):
        return key._read_only_dense()
    if isinstance(key, tuple):
        return tuple(part._read_only_dense() if isinstance(part, LazyBeliefArray) else part for part in key)
    return key


def _merge_sorted(
    first_positions: NDArray[Any], first_values: NDArray[Any], second_positions: NDArray[Any], second_values: NDArray[Any]
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Merge two sorted position lists with disjoint positions, values alongside.

    Each element of ``second`` lands after the ``first`` elements smaller than it plus the
    ``second`` elements before it: one searchsorted instead of re-sorting everything."""
    if second_positions.size == 0:
        return first_positions, first_values
    if first_positions.size == 0:
        return second_positions, second_values
    total = first_positions.size + second_positions.size
    second_slots = np.searchsorted(first_positions, second_positions) + np.arange(second_positions.size)
    first_slots = np.ones(total, dtype=bool)
    first_slots[second_slots] = False
    positions = np.empty(total, dtype=first_positions.dtype)
    values = np.empty(total, dtype=first_values.dtype)
    positions[second_slots] = second_positions
    values[second_slots] = second_values
    positions[first_slots] = first_positions
    values[first_slots] = first_values
    return positions, values


def _last_write_wins(positions: NDArray[Any], values: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Sort writes by position, keeping only the last write to a repeated position.

    numpy does not promise an order for repeated fancy-index assignments; in practice the
    last one in C order of the index wins, and so it does here."""
    if positions.size <= 1 or bool(np.all(positions[1:] > positions[:-1])):
        return positions, values  # the usual case: a slice or mask already yields sorted, unique positions
    order = np.argsort(positions, kind="stable")  # stable: equal positions stay in write order
    positions, values = positions[order], values[order]
    last_of_run = np.empty(positions.size, dtype=bool)
    last_of_run[-1] = True
    np.not_equal(positions[1:], positions[:-1], out=last_of_run[:-1])
    return positions[last_of_run], values[last_of_run]


def _defers_to_other(arguments: Sequence[Any]) -> bool:
    """True when an argument brings its own ``__array_ufunc__`` (dask, xarray, ...), which must
    get its turn instead of being silently densified (NEP 13)."""
    for argument in arguments:
        if isinstance(argument, (np.ndarray, LazyBeliefArray)):
            continue
        override = getattr(type(argument), "__array_ufunc__", None)
        if override is not None and override is not np.ndarray.__array_ufunc__:
            return True
    return False


class _DenseWorkspace:
    """Dense stand-ins for the LazyBeliefArray arguments of one numpy call.

    Why one object per call: the same LazyBeliefArray may appear several times
    (``np.add(b, b, out=b)``), and every appearance must be the same buffer so numpy's
    aliasing rules hold; arrays numpy writes into (``out=``, ``np.copyto``'s destination)
    must be written back afterwards. Arrays only read are handed over read-only, so a
    numpy function that tries to write into one raises instead of losing the write."""

    __slots__ = ("_working", "_targets")

    def __init__(self) -> None:
        self._working: dict[int, tuple[LazyBeliefArray, NDArray[Any]]] = {}
        self._targets: list[tuple[LazyBeliefArray, NDArray[Any]]] = []

    def target(self, belief: LazyBeliefArray) -> NDArray[Any]:
        """A writable dense array for ``belief``: its own dense buffer, or a materialized copy."""
        known = self._working.get(id(belief))
        if known is not None:
            return known[1]
        working = belief._dense if belief._dense is not None else belief._materialize()
        self._working[id(belief)] = (belief, working)
        self._targets.append((belief, working))
        return working

    def targets_in(self, value: Any) -> Any:
        if isinstance(value, LazyBeliefArray):
            return self.target(value)
        if isinstance(value, tuple):
            return tuple(self.target(item) if isinstance(item, LazyBeliefArray) else item for item in value)
        return value

    def operand(self, belief: LazyBeliefArray) -> NDArray[Any]:
        known = self._working.get(id(belief))
        if known is not None:
            return known[1]
        working = belief._read_only_dense()
        self._working[id(belief)] = (belief, working)
        return working

    def operands_in(self, value: Any) -> Any:
        """``value`` with every LazyBeliefArray, also inside lists and tuples, made dense."""
        if isinstance(value, LazyBeliefArray):
            return self.operand(value)
        if type(value) in (list, tuple):
            return type(value)(self.operands_in(item) for item in value)
        return value

    def commit(self) -> None:
        """Write every array numpy may have written into back into its LazyBeliefArray."""
        for belief, working in self._targets:
            belief._settle(working)

    def publish(self, result: Any) -> Any:
        """The call's result as the caller should see it (after ``commit``).

        An output buffer maps back to its LazyBeliefArray (as numpy returns ``out``). An
        array sharing memory with a LazyBeliefArray's own storage (a view numpy returned)
        is copied, so the storage never leaks; views of temporaries need no copy. Both
        become read-only: numpy would have returned a view that writes through, and a
        silently detached copy must not pass for one."""
        if isinstance(result, np.ndarray):
            for belief, working in self._targets:
                if result is working:
                    return belief
            for belief, working in self._working.values():
                if not np.may_share_memory(result, working):
                    continue
                if belief._dense is not None and np.may_share_memory(result, belief._dense):
                    result = result.copy()
                result.flags.writeable = False
                return result
            return result
        if type(result) in (list, tuple):
            return type(result)(self.publish(item) for item in result)
        return result


def _call_densified(
    function: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], *, mutates_first_argument: bool = False
) -> Any:
    """Run a numpy function on the dense equivalents of its LazyBeliefArray arguments."""
    workspace = _DenseWorkspace()
    kwargs = dict(kwargs)
    # Outputs first, so an array that is both written and read is the one writable buffer.
    if "out" in kwargs:
        kwargs["out"] = workspace.targets_in(kwargs["out"])
    if mutates_first_argument and args and isinstance(args[0], LazyBeliefArray):
        args = (workspace.target(args[0]), *args[1:])
    dense_args = workspace.operands_in(tuple(args))
    dense_kwargs = {name: workspace.operands_in(value) for name, value in kwargs.items()}
    result = function(*dense_args, **dense_kwargs)
    workspace.commit()
    return workspace.publish(result)


# numpy functions that write into their first argument: it must be written back, not copied.
_FIRST_ARGUMENT_MUTATORS: frozenset[Callable[..., Any]] = frozenset(
    {np.copyto, np.put, np.place, np.putmask, np.fill_diagonal, np.put_along_axis}
)


class LazyBeliefArray(NDArrayOperatorsMixin):
    """A numeric array that stores only its nonzeros, and nothing until first written.

    Usable where agent code used a dense ndarray: indexing and assignment with every numpy
    index kind, arithmetic and comparison operators, ufuncs (also with ``out=`` and as
    in-place operators), numpy functions, and the common reductions. See the module
    docstring for storage states, re-compression and which results are read-only.
    """

    __slots__ = ("_shape", "_dtype", "_sparsity_threshold", "_capacity", "_flat_indices", "_values", "_dense", "__weakref__")

    # Methods numpy implements as functions with the same signature (``b.std(axis=0)`` is
    # ``np.std(b, axis=0)``); they run on the dense equivalent through __array_function__.
    _FUNCTION_METHODS: ClassVar[dict[str, Callable[..., Any]]] = {
        "prod": np.prod,
        "std": np.std,
        "var": np.var,
        "cumsum": np.cumsum,
        "cumprod": np.cumprod,
        "clip": np.clip,
        "round": np.round,
        "argsort": np.argsort,
        "take": np.take,
        "diagonal": np.diagonal,
        "squeeze": np.squeeze,
        "trace": np.trace,
        "ptp": np.ptp,
        "repeat": np.repeat,
        "searchsorted": np.searchsorted,
        "conj": np.conj,
        "conjugate": np.conjugate,
    }

    def __init__(self, shape: int | Iterable[int], dtype: DTypeLike = np.float64, sparsity_threshold: float = 0.9) -> None:
        """An all-zero array of ``shape`` holding no buffers until its first nonzero write.

        ``sparsity_threshold``: the sparse form is kept while at least this fraction of the
        elements is zero (0.9: up to 10 % nonzeros)."""
        self._shape = _checked_shape(shape)
        self._dtype = _checked_dtype(dtype)
        self._sparsity_threshold = _checked_threshold(sparsity_threshold)
        self._capacity = _sparse_capacity(math.prod(self._shape), self._sparsity_threshold)
        self._flat_indices: NDArray[Any] | None = None
        self._values: NDArray[Any] | None = None
        self._dense: NDArray[Any] | None = None

    @classmethod
    def from_dense(cls, array: ArrayLike, sparsity_threshold: float = 0.9) -> LazyBeliefArray:
        """A copy of ``array`` (same shape and dtype), sparse when its zero fraction >= threshold."""
        source = np.asarray(array)
        belief = cls(source.shape, source.dtype, sparsity_threshold)
        flat = np.ravel(source)  # a view when contiguous; the values are copied below either way
        positions = np.flatnonzero(flat)
        if positions.size <= belief._capacity:
            belief._set_sparse(positions.astype(belief._index_dtype()), flat[positions])
        else:
            belief._adopt_dense(np.array(source, order="C", copy=True))
        return belief

    # ------------------------------------------------------------------ ndarray attributes

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    @property
    def itemsize(self) -> int:
        return self._dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the *dense equivalent*, as numpy reports for an ndarray of this shape and
        dtype; not what is held (that is ``stored_bytes``)."""
        return self.size * self._dtype.itemsize

    @property
    def T(self) -> NDArray[Any]:
        """The transpose, as a read-only dense copy (numpy would return a view)."""
        return self.transpose()

    # ------------------------------------------------------------------ storage introspection

    @property
    def sparsity_threshold(self) -> float:
        return self._sparsity_threshold

    @property
    def sparse_capacity(self) -> int:
        """Most nonzeros the sparse form holds before a write switches to dense storage."""
        return self._capacity

    @property
    def resparsify_limit(self) -> int:
        """Nonzero count at or below which dense storage goes back to sparse (hysteresis)."""
        return math.floor(self._capacity * _RESPARSIFY_SHARE)

    @property
    def is_sparse(self) -> bool:
        """True when unwritten or held as index/value arrays, False when held densely."""
        return self._dense is None

    @property
    def nnz(self) -> int:
        """Number of nonzero elements (O(1) when sparse, one counting pass when dense)."""
        if self._dense is not None:
            return int(np.count_nonzero(self._dense))
        return 0 if self._flat_indices is None else int(self._flat_indices.size)

    @property
    def stored_bytes(self) -> int:
        """Bytes of the buffers held: 0 unwritten, index + value arrays when sparse, the dense
        array when dense. Excludes the Python object headers a deep sizer adds."""
        if self._dense is not None:
            return int(self._dense.nbytes)
        if self._flat_indices is None or self._values is None:
            return 0
        return int(self._flat_indices.nbytes + self._values.nbytes)

    # ------------------------------------------------------------------ storage internals

    def _index_dtype(self) -> np.dtype[Any]:
        return _index_dtype(self.size)

    def _stored_values(self) -> NDArray[Any]:
        """The stored nonzeros (an empty array when unwritten), for sparse fast paths."""
        return self._values if self._values is not None else np.empty(0, dtype=self._dtype)

    def _materialize(self) -> NDArray[Any]:
        """A fresh, writable, C-contiguous dense copy that owns its data."""
        if self._dense is not None:
            return self._dense.copy()
        dense = np.zeros(self._shape, dtype=self._dtype)
        if self._flat_indices is not None and self._values is not None:
            np.put(dense, self._flat_indices, self._values)  # flat C-order positions, as stored
        return dense

    def _read_only_dense(self) -> NDArray[Any]:
        """The dense equivalent for reading: the storage itself behind a read-only view when
        dense (no copy), a read-only materialized copy otherwise."""
        dense = self._dense.view() if self._dense is not None else self._materialize()
        dense.flags.writeable = False
        return dense

    def _dense_for_ufunc_call(self) -> NDArray[Any]:
        """The dense equivalent for a plain ufunc call (no ``out``), which neither writes into
        nor returns its inputs: the storage itself when dense, else a temporary."""
        return self._dense if self._dense is not None else self._materialize()

    def _set_sparse(self, flat_indices: NDArray[Any], values: NDArray[Any]) -> None:
        """Hold these (sorted, unique, nonzero) entries; none at all means no buffers."""
        if flat_indices.size == 0:
            self._flat_indices = self._values = None
        else:
            self._flat_indices, self._values = flat_indices, values
        self._dense = None

    def _adopt_dense(self, dense: NDArray[Any]) -> None:
        """Hold ``dense`` (owned by nobody else, C-contiguous, right dtype) as the storage."""
        self._dense = dense
        self._flat_indices = self._values = None

    def _store_sparse_from(self, dense: NDArray[Any]) -> None:
        flat = dense.reshape(-1)
        positions = np.flatnonzero(flat)
        self._set_sparse(positions.astype(self._index_dtype()), flat[positions])

    def _resparsify_if_sparse_enough(self) -> None:
        """Dense storage back to sparse once nnz fits the hysteresis limit."""
        if self._dense is not None and np.count_nonzero(self._dense) <= self.resparsify_limit:
            self._store_sparse_from(self._dense)

    def _settle(self, working: NDArray[Any]) -> None:
        """Take back a dense buffer numpy has written into and choose the storage again."""
        if working is self._dense:  # written in place: only the way back to sparse is open
            self._resparsify_if_sparse_enough()
        elif np.count_nonzero(working) <= self._capacity:
            self._store_sparse_from(working)
        else:
            self._adopt_dense(working)  # a fresh materialized copy that nobody else holds

    # ------------------------------------------------------------------ indexing

    def _scalar_position(self, key: Any) -> int | None:
        """Flat position for a key of exactly one integer per axis, else None.

        The common ``b[i, j]`` read and write skips array machinery this way."""
        parts = key if isinstance(key, tuple) else (key,)
        if len(parts) != len(self._shape):
            return None
        _, strides = _layout(self._shape)
        position = 0
        for axis, (index, length, stride) in enumerate(zip(parts, self._shape, strides)):
            if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
                return None
            index = int(index)
            if not -length <= index < length:
                raise IndexError(f"index {index} is out of bounds for axis {axis} with size {length}")
            position += (index + length if index < 0 else index) * stride
        return position

    def _flat_positions(self, key: Any) -> Any:
        """Flat positions of the elements ``key`` selects, shaped like numpy's result for it
        (an integer scalar when numpy would return a scalar)."""
        if not self._shape:
            return _ZERO_D_POSITION[key]
        if isinstance(key, np.ndarray) and key.dtype == np.bool_ and key.shape == self._shape:
            return np.flatnonzero(key)  # a full mask selects in C order, which flatnonzero gives directly
        grids, strides = _layout(self._shape)
        coordinates = [grid[key] for grid in grids]
        positions = sum(coordinate * stride for coordinate, stride in zip(coordinates, strides))
        # Arithmetic turns a 0-d array (``b[..., 0]`` on 1-d) into a scalar; keep numpy's distinction.
        return np.asarray(positions) if isinstance(coordinates[0], np.ndarray) else positions

    def _value_at(self, position: int) -> Any:
        """The numpy scalar at one flat position of sparse storage."""
        if self._flat_indices is not None and self._values is not None:
            # bisect on the array beats np.searchsorted's call overhead for one position.
            slot = bisect.bisect_left(self._flat_indices, position)
            if slot < self._flat_indices.size and self._flat_indices[slot] == position:
                return self._values[slot]
        return self._dtype.type(0)

    def _gather(self, positions: NDArray[Any]) -> NDArray[Any]:
        """Values at many flat positions, from sparse storage."""
        result = np.zeros(positions.shape, dtype=self._dtype)
        if self._flat_indices is None or self._values is None or positions.size == 0:
            return result
        # Same dtype as the index array, or searchsorted would convert the whole index array.
        wanted = positions.reshape(-1).astype(self._flat_indices.dtype, copy=False)
        slots = np.searchsorted(self._flat_indices, wanted)
        np.minimum(slots, self._flat_indices.size - 1, out=slots)
        found = self._flat_indices[slots] == wanted
        result.reshape(-1)[found] = self._values[slots[found]]  # a view: result is fresh and contiguous
        return result

    def __getitem__(self, key: Any) -> Any:
        """numpy's result for ``dense[key]``: a numpy scalar, or a fresh read-only array.

        Read-only because numpy would return a view that writes through, which this copy
        cannot: ``b[0][3] = 1`` raises rather than silently changing nothing."""
        key = _plain_key(key)
        if self._dense is not None:
            result = self._dense[key]
            if isinstance(result, np.ndarray):
                if np.may_share_memory(result, self._dense):
                    result = result.copy()
                result.flags.writeable = False
            return result
        position = self._scalar_position(key)
        if position is not None:
            return self._value_at(position)
        positions = self._flat_positions(key)
        if not isinstance(positions, np.ndarray):
            return self._value_at(int(positions))
        selected = self._gather(positions)
        selected.flags.writeable = False
        return selected

    def __setitem__(self, key: Any, value: Any) -> None:
        """``dense[key] = value`` for every key numpy accepts, with numpy's broadcasting and casting."""
        key = _plain_key(key)
        if isinstance(value, LazyBeliefArray):
            value = value._read_only_dense()
        if self._dense is not None:
            self._dense[key] = value
            # Only a write that leaves zeros behind can make the array sparse enough again.
            if np.any(self._dense[key] == 0):
                self._resparsify_if_sparse_enough()
            return
        position = self._scalar_position(key)
        if position is not None:
            staged = np.empty(1, dtype=self._dtype)
            staged[0] = value  # numpy's conversion rules for a single element
            self._write_sparse(np.array([position], dtype=np.intp), staged)
            return
        positions = self._flat_positions(key)
        staged = np.empty(np.shape(positions), dtype=self._dtype)
        if not isinstance(positions, np.ndarray):
            staged[()] = value
        elif _is_basic_index(key):
            staged[...] = value  # basic indexing converts values exactly like an Ellipsis assignment
        else:
            _assignment_shadow(self._shape, self._dtype)[key] = value  # numpy's advanced-assignment checks
            staged[...] = np.asarray(value, dtype=self._dtype)
        self._write_sparse(np.ravel(positions), staged.reshape(-1))

    def _write_sparse(self, positions: NDArray[Any], values: NDArray[Any]) -> None:
        """Apply writes (flat positions, values) to sparse storage, switching to dense when full."""
        positions, values = _last_write_wins(positions, values)
        index_dtype = self._index_dtype()
        kept_positions = self._flat_indices if self._flat_indices is not None else np.empty(0, dtype=index_dtype)
        kept_values = self._stored_values()
        if kept_positions.size and positions.size:
            slots = np.searchsorted(positions, kept_positions)
            inside = slots < positions.size
            overwritten = np.zeros(kept_positions.size, dtype=bool)
            overwritten[inside] = positions[slots[inside]] == kept_positions[inside]
            if overwritten.any():
                kept_positions, kept_values = kept_positions[~overwritten], kept_values[~overwritten]
        nonzero = values != 0
        new_positions = positions[nonzero].astype(index_dtype)
        new_values = values[nonzero]
        if kept_positions.size + new_positions.size > self._capacity:
            dense = np.zeros(self._shape, dtype=self._dtype)
            flat = dense.reshape(-1)
            flat[kept_positions] = kept_values
            flat[new_positions] = new_values
            self._adopt_dense(dense)
            return
        merged_positions, merged_values = _merge_sorted(kept_positions, kept_values, new_positions, new_values)
        self._set_sparse(merged_positions, merged_values)

    def fill(self, value: Any) -> None:
        """Set every element to ``value`` (0 releases all storage)."""
        self[...] = value

    # ------------------------------------------------------------------ numpy protocols

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> NDArray[Any]:
        """The dense equivalent, always a new writable array.

        Never the storage itself, so writes into it cannot corrupt (or be lost in) a later
        re-compression; ``copy=False`` therefore raises, as the numpy 2 protocol asks."""
        if copy is False:
            raise ValueError("LazyBeliefArray has no dense buffer to share; converting it always copies")
        dense = self._materialize()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """Ufuncs on the dense equivalents; ``out=`` LazyBeliefArrays (including in-place
        operators) are written back and re-compressed."""
        outputs = kwargs.get("out", ())
        if _defers_to_other((*inputs, *outputs)):
            return NotImplemented
        if method == "__call__" and not kwargs:
            # The common ``b * likelihood``: nothing is written back and a plain ufunc call
            # always returns new arrays, so the workspace bookkeeping can be skipped.
            return ufunc(*(item._dense_for_ufunc_call() if isinstance(item, LazyBeliefArray) else item for item in inputs))
        workspace = _DenseWorkspace()
        if outputs:
            kwargs["out"] = workspace.targets_in(outputs)
        if method == "at" and isinstance(inputs[0], LazyBeliefArray):  # ufunc.at updates its first input in place
            inputs = (workspace.target(inputs[0]), *inputs[1:])
        dense_inputs = workspace.operands_in(inputs)
        dense_kwargs = {name: workspace.operands_in(value) for name, value in kwargs.items()}
        result = getattr(ufunc, method)(*dense_inputs, **dense_kwargs)
        workspace.commit()
        return workspace.publish(result)

    def __array_function__(
        self, func: Callable[..., Any], types: Collection[type], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """numpy functions on the dense equivalents, with sparse fast paths for reductions."""
        if not all(issubclass(kind, (LazyBeliefArray, np.ndarray)) for kind in types):
            return NotImplemented
        method_name = _FAST_FUNCTION_METHODS.get(func)
        if method_name is not None and args and isinstance(args[0], LazyBeliefArray):
            return getattr(args[0], method_name)(*args[1:], **kwargs)
        return _call_densified(func, args, kwargs, mutates_first_argument=func in _FIRST_ARGUMENT_MUTATORS)

    # ------------------------------------------------------------------ reductions

    def _simple_reduction(self, axis: Any, out: Any, keepdims: Any, options: dict[str, Any]) -> bool:
        """Whether a reduction can be read off sparse storage: whole array, no out/where/initial."""
        return self._dense is None and axis is None and out is None and not keepdims and not options

    def _reduce(self, function: Callable[..., Any], **kwargs: Any) -> Any:
        return _call_densified(function, (self,), kwargs)

    def sum(self, axis: Any = None, dtype: DTypeLike | None = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.sum``. Sparse whole-array sums add only the stored values, so float
        results can differ from numpy's pairwise sum over the dense array in the last bits."""
        if self._simple_reduction(axis, out, keepdims, options):
            return self._stored_values().sum(dtype=dtype)
        return self._reduce(np.sum, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **options)

    def mean(self, axis: Any = None, dtype: DTypeLike | None = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.mean`` (same accumulator and result dtypes as numpy's)."""
        if self._simple_reduction(axis, out, keepdims, options) and self.size > 0:
            accumulator = dtype
            if accumulator is None and self._dtype.kind in "biu":
                accumulator = np.float64  # numpy averages integers and bools in float64
            elif accumulator is None and self._dtype == np.float16:
                accumulator = np.float32  # ... and float16 in float32, returning float16
            total = self._stored_values().sum(dtype=accumulator)
            result_type = self._dtype.type if dtype is None and self._dtype == np.float16 else total.dtype.type
            return result_type(total / self.size)
        return self._reduce(np.mean, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **options)

    def _sparse_extreme(self, pick: Callable[..., Any], combine: np.ufunc) -> Any:
        """max/min of stored values and, if any element is unstored, of an implicit zero
        (``combine`` propagates NaN the way numpy's max/min do)."""
        zero = self._dtype.type(0)
        values = self._stored_values()
        if values.size == 0:
            return zero
        extreme = pick(values)
        return combine(extreme, zero) if values.size < self.size else extreme

    def _sparse_arg_extreme(self, pick_index: Callable[..., Any], beats_zero: Callable[[Any], bool]) -> np.intp:
        """argmax/argmin: the first flat position holding the extreme, as numpy returns.

        A stored value wins if it is NaN (numpy returns the first NaN) or beats zero;
        otherwise the extreme is zero and its first position is the first unstored one
        (stored values are never zero)."""
        if self._flat_indices is None or self._values is None:
            return np.intp(0)
        best_slot = int(pick_index(self._values))
        best = self._values[best_slot]
        nnz = self._flat_indices.size
        if nnz == self.size or best != best or beats_zero(best):
            return np.intp(self._flat_indices[best_slot])
        # Positions are sorted and unique, so the first gap is where position != slot number.
        gaps = np.flatnonzero(self._flat_indices != np.arange(nnz, dtype=self._flat_indices.dtype))
        return np.intp(gaps[0] if gaps.size else nnz)

    def _ordered_fast_path(self, axis: Any, out: Any, keepdims: Any, options: dict[str, Any]) -> bool:
        return self._simple_reduction(axis, out, keepdims, options) and self.size > 0 and self._dtype.kind in _ORDERED_KINDS

    def max(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.max``."""
        if self._ordered_fast_path(axis, out, keepdims, options):
            return self._sparse_extreme(np.max, np.maximum)
        return self._reduce(np.max, axis=axis, out=out, keepdims=keepdims, **options)

    def min(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.min``."""
        if self._ordered_fast_path(axis, out, keepdims, options):
            return self._sparse_extreme(np.min, np.minimum)
        return self._reduce(np.min, axis=axis, out=out, keepdims=keepdims, **options)

    def argmax(self, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        """As ``ndarray.argmax``: the first flat position of the maximum."""
        if self._ordered_fast_path(axis, out, keepdims, {}):
            return self._sparse_arg_extreme(np.argmax, lambda best: bool(best > 0))
        return self._reduce(np.argmax, axis=axis, out=out, keepdims=keepdims)

    def argmin(self, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        """As ``ndarray.argmin``: the first flat position of the minimum."""
        if self._ordered_fast_path(axis, out, keepdims, {}):
            return self._sparse_arg_extreme(np.argmin, lambda best: bool(best < 0))
        return self._reduce(np.argmin, axis=axis, out=out, keepdims=keepdims)

    def any(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.any``."""
        if self._simple_reduction(axis, out, keepdims, options):
            return np.bool_(self._flat_indices is not None)  # stored values are never zero
        return self._reduce(np.any, axis=axis, out=out, keepdims=keepdims, **options)

    def all(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.all``."""
        if self._simple_reduction(axis, out, keepdims, options):
            return np.bool_(self.nnz == self.size)
        return self._reduce(np.all, axis=axis, out=out, keepdims=keepdims, **options)

    def _count_nonzero(self, axis: Any = None, *, keepdims: bool = False) -> Any:
        if self._simple_reduction(axis, None, keepdims, {}):
            return np.count_nonzero(self._stored_values())  # numpy's own result type; every stored value counts
        return self._reduce(np.count_nonzero, axis=axis, keepdims=keepdims)

    def nonzero(self) -> tuple[NDArray[np.intp], ...]:
        """As ``ndarray.nonzero``; read straight off the stored positions when sparse."""
        if self._dense is not None or not self._shape:
            return self._reduce(np.nonzero)  # type: ignore[no-any-return]
        positions = self._flat_indices if self._flat_indices is not None else np.empty(0, dtype=np.intp)
        return tuple(np.asarray(coordinates, dtype=np.intp) for coordinates in np.unravel_index(positions, self._shape))

    def dot(self, other: ArrayLike, out: Any = None) -> Any:
        """As ``ndarray.dot``."""
        return np.dot(self, other) if out is None else np.dot(self, other, out=out)

    # ------------------------------------------------------------------ conversions and copies

    def copy(self) -> LazyBeliefArray:
        """An independent LazyBeliefArray with copied buffers (same storage state)."""
        twin = type(self)(self._shape, self._dtype, self._sparsity_threshold)
        if self._dense is not None:
            twin._adopt_dense(self._dense.copy())
        elif self._flat_indices is not None and self._values is not None:
            twin._set_sparse(self._flat_indices.copy(), self._values.copy())
        return twin

    def astype(
        self, dtype: DTypeLike, order: _Order = "K", casting: _Casting = "unsafe", subok: bool = True, copy: bool = True
    ) -> NDArray[Any]:
        """The dense equivalent converted to ``dtype``: a new writable ndarray (``copy=False``
        cannot hand out the storage, so it changes nothing)."""
        source = self._dense if self._dense is not None else self._materialize()
        converted: NDArray[Any] = source.astype(dtype, order=order, casting=casting, subok=subok, copy=source is self._dense)
        return converted

    def reshape(self, *shape: Any, order: Literal["C", "F", "A"] = "C") -> NDArray[Any]:
        """The dense equivalent reshaped, read-only (numpy would return a view)."""
        new_shape = shape[0] if len(shape) == 1 else shape
        return self._frozen(self._materialize().reshape(new_shape, order=order))

    def transpose(self, *axes: Any) -> NDArray[Any]:
        """The dense equivalent transposed, read-only (numpy would return a view)."""
        order = axes[0] if len(axes) == 1 else (axes or None)
        return self._frozen(self._materialize().transpose(order))

    def ravel(self, order: _Order = "C") -> NDArray[Any]:
        """The dense equivalent flattened, read-only (numpy would return a view)."""
        return self._frozen(self._materialize().ravel(order=order))

    def flatten(self, order: _Order = "C") -> NDArray[Any]:
        """The dense equivalent flattened into a new writable array, as numpy's flatten."""
        return self._materialize().flatten(order=order)

    def tolist(self) -> Any:
        return self._read_only_dense().tolist()

    def item(self, *args: Any) -> Any:
        """As ``ndarray.item``: a Python scalar."""
        if len(args) > 1 or (args and isinstance(args[0], tuple)):
            return self[args if len(args) > 1 else args[0]].item()
        return self._read_only_dense().item(*args)

    @staticmethod
    def _frozen(array: NDArray[Any]) -> NDArray[Any]:
        array.flags.writeable = False
        return array

    def __getattr__(self, name: str) -> Any:
        """The ndarray methods in ``_FUNCTION_METHODS``, bound to this array."""
        function = LazyBeliefArray._FUNCTION_METHODS.get(name)
        if function is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return functools.partial(function, self)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *LazyBeliefArray._FUNCTION_METHODS})

    # ------------------------------------------------------------------ Python protocols

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of unsized object")
        return self._shape[0]

    def __iter__(self) -> Iterator[Any]:
        """Rows (read-only arrays) or, for 1-d, numpy scalars, read at each step."""
        if not self._shape:
            raise TypeError("iteration over a 0-d array")
        for row in range(self._shape[0]):
            yield self[row]

    def __contains__(self, value: Any) -> bool:
        return bool((self == value).any())

    def __bool__(self) -> bool:
        return bool(self._read_only_dense())

    def __float__(self) -> float:
        return float(self._read_only_dense())

    def __int__(self) -> int:
        return int(self._read_only_dense())

    def __complex__(self) -> complex:
        return complex(self._read_only_dense())

    def __repr__(self) -> str:
        prefix = f"{type(self).__name__}("
        body = np.array2string(self._read_only_dense(), separator=", ", prefix=prefix)
        storage = "sparse" if self.is_sparse else "dense"
        return f"{prefix}{body}, dtype={self._dtype}, storage={storage}, nnz={self.nnz}, stored_bytes={self.stored_bytes})"

    def __str__(self) -> str:
        return str(self._read_only_dense())

    def __copy__(self) -> LazyBeliefArray:
        """Copies the buffers, as ``copy.copy`` of an ndarray copies its data."""
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyBeliefArray:
        return self.copy()

    def __reduce__(self) -> tuple[Callable[..., LazyBeliefArray], tuple[dict[str, Any]]]:
        """Pickles by named state (not slot layout), so stored pickles survive internal renames."""
        state = {
            "shape": self._shape,
            "dtype": self._dtype,
            "sparsity_threshold": self._sparsity_threshold,
            "flat_indices": self._flat_indices,
            "values": self._values,
            "dense": self._dense,
        }
        return _restore, (state,)


def _restore(state: dict[str, Any]) -> LazyBeliefArray:
    """Rebuild a pickled LazyBeliefArray."""
    belief = LazyBeliefArray(state["shape"], state["dtype"], state["sparsity_threshold"])
    if state["dense"] is not None:
        belief._adopt_dense(state["dense"])
    elif state["flat_indices"] is not None:
        belief._set_sparse(state["flat_indices"].astype(belief._index_dtype(), copy=False), state["values"])
    return belief


# numpy functions answered by a method with the same signature, which has the sparse fast path.
_FAST_FUNCTION_METHODS: dict[Callable[..., Any], str] = {
    np.sum: "sum",
    np.mean: "mean",
    np.max: "max",
    np.amax: "max",
    np.min: "min",
    np.amin: "min",
    np.argmax: "argmax",
    np.argmin: "argmin",
    np.any: "any",
    np.all: "all",
    np.count_nonzero: "_count_nonzero",
    np.nonzero: "nonzero",
}
