"""A lazy, sparse stand-in for the mostly-zero belief arrays agents keep.

Why this exists: active-inference agents hold joint beliefs such as a (448, 8) float64
array whose mass sits on a handful of cells (the explorer sample agent's position
marginal covers at most 5 of its 448 cells), and a population keeps one per agent plus
history copies. Storing only the nonzeros, and nothing at all until the first write,
shrinks such an array roughly in proportion to its density; ``LazyBeliefArray`` does so
while still behaving like the dense float ndarray the agent code was written against,
writes through views included.

Storage, exactly one of three states at any time:

- unwritten: no buffers at all (not even empty index arrays); every element reads 0.
  An array whose every element becomes zero again returns to this state.
- sparse: ``_flat_indices``, the sorted, unique C-order flat positions of the stored
  elements (int32 while ``size < 2**31``, halving index memory; ``np.intp`` beyond),
  and ``_values``, their values in the array's dtype. That is a scipy CSR matrix of the
  same values without its row-pointer array, so it never takes more than the CSR does.
- dense: ``_dense``, a private C-contiguous ndarray that owns its data.

"Stored" is decided on the bits, not the value: an element is left out only when all
its bytes are zero (+0.0, 0, False). A -0.0 (what ``0.0 * -2.0`` gives) or a NaN is
stored, so every read, write and ufunc gives bit for bit what numpy gives on the dense
equivalent. The price: an operation that turns the zeros into -0.0 (multiplying by a
negative number, ``np.negative``) fills the array, which then goes dense as numpy's own
array would hold those -0.0 values. ``nnz`` counts nonzero *values*, as
``np.count_nonzero``; the storage rules below count stored elements.

Re-compression: with ``sparsity_threshold`` t the sparse form is kept while the
unstored fraction ``(size - stored) / size >= t``, i.e. while ``stored <=
sparse_capacity``. A write that pushes it above that switches to dense at once. Going
back is checked only where it can have become true and costs little next to the write
itself: after a dense write whose written elements contain a zero, and after any
in-place ufunc or in-place numpy function. It then needs ``stored <=
floor(sparse_capacity * 0.5)``: the hysteresis keeps an array hovering at the threshold
from converting (an O(size) copy) on every write.

Views write through. Everything numpy hands out as a view of an ndarray (basic
indexing ``b[0]``, ``b[2:5, 1]``, ``b[..., None]``; ``T``, ``transpose``, ``swapaxes``,
``squeeze``, ``view()``, and ``reshape``/``ravel`` where numpy can avoid a copy; the
matching numpy functions; iteration over rows) is a ``LazyBeliefView``: the owning
LazyBeliefArray plus an offset, shape and strides in elements, exactly the geometry
numpy would give the view. Reading it reads the owner's current values; writing it
(``b[0][3] = 1``, ``b[0] += 1``, ``row = b[1]; row[:] = 0``, ``np.multiply(x, y,
out=b[0])``) writes the owner at those positions, under the same storage rules. A view
stores nothing, so it needs no bookkeeping when the owner changes state. The geometry
comes from numpy itself: the same key is applied to a stand-in uint8 array whose
element addresses are the flat positions (it claims memory it never touches; only
stride arithmetic runs on it), so negative steps, newaxis, Ellipsis, bounds errors and
numpy's view-or-copy decision for ``reshape`` are numpy's own.

Why element positions rather than a paged (block-sparse) layout: a block layout stores
every allocated block whole, so its size depends on where the nonzeros fall (scattered
nonzeros cost a block each); the position/value pair is always the CSR's size or less
and write-through does not need pages, because a view is geometry and every write
lands in the owner. The costs that matter for speed are O(size) either way: building
the dense equivalent for a ufunc and re-scanning after an in-place one. Those run as
single vectorized numpy passes (a zero fill plus one scatter; one bitwise compare plus
one ``nonzero``), and the common in-place updates that keep zeros zero (``b /=
b.sum()``, ``b *= 0.5``, ``np.sqrt(b, out=b)``) skip them and touch only the stored
values: a one-element probe shows that the operation maps a stored-nothing zero to a
zero, which makes skipping the unstored elements exact.

What comes back as what: scalar indexing returns a numpy scalar, as numpy does;
advanced indexing, arithmetic, ufuncs, reductions, ``astype``, ``flatten``,
``np.copy`` and ``np.asarray`` return new, writable plain ndarrays, as numpy does. The
exceptions: ``np.asarray(b)`` is a copy (numpy would return ``b`` itself), so writing
into it does not change ``b``; numpy functions that return views other than those
listed above (``np.diagonal``, ``np.broadcast_to``, ``np.moveaxis``, ...) return
read-only copies, so such a write raises instead of silently not writing through;
``copy()`` and unpickling return LazyBeliefArrays.

Sizing: instances use ``__slots__`` (no instance dict), so the object's whole state is
its slot values: the shape tuple, the dtype, two numbers and at most two buffers,
all plain attributes that ``gc.get_referents`` reports, which is exactly what a deep
sizer walks. A view's slots are its owner and three small values, so a sizer charges
the owner to whoever keeps the view, as for a numpy view and its base.
``stored_bytes`` is the buffer bytes alone; ``nbytes`` is, as for numpy, the bytes of
the dense equivalent.
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

__all__ = ["LazyBeliefArray", "LazyBeliefView"]

_Order = Literal["K", "A", "C", "F"]
_Casting = Literal["no", "equiv", "safe", "same_kind", "unsafe"]

# Zero has an obvious meaning for these kinds only (bool, signed, unsigned, float, complex).
_NUMERIC_KINDS = frozenset("biufc")
# Kinds whose ordering lets max/min/argmax/argmin be read off the stored values plus an
# implicit zero; complex ordering is lexicographic, so it takes the dense path instead.
_ORDERED_KINDS = frozenset("biuf")
# A dense array returns to sparse storage only once its stored elements fit in this share
# of the sparse capacity; see the module docstring for why.
_RESPARSIFY_SHARE = 0.5
# Flat positions below this bound fit int32, which halves the memory of the index array.
_INT32_POSITION_LIMIT = 2**31
# A view covering at least this share of its owner is read from the owner's dense
# equivalent (one scatter) instead of by searching the stored positions.
_WHOLE_READ_SHARE = 0.25
# Ufuncs whose every result is the correctly rounded (or exact) value of its operands, so
# computing them on the stored values alone gives the dense call's bits.
_EXACT_ELEMENTWISE: frozenset[np.ufunc] = frozenset(
    {np.add, np.subtract, np.multiply, np.true_divide, np.negative, np.positive, np.absolute, np.sqrt, np.square,
     np.maximum, np.minimum, np.fmax, np.fmin, np.floor, np.ceil, np.trunc, np.rint, np.conjugate, np.copysign}
)
# Python scalars and numpy scalars: operands whose promotion is the same whether the
# other operand holds every element or only the stored ones.
_SCALAR_TYPES = (int, float, complex, bool, np.generic)


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
    """Largest stored count whose unstored fraction ``(size - stored) / size`` is still >= threshold.

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


def _stored_mask(values: NDArray[Any]) -> NDArray[np.bool_]:
    """Per element of a C-contiguous array: True unless all its bytes are zero (flat)."""
    flat = values.reshape(-1)
    itemsize = flat.dtype.itemsize
    if itemsize in (1, 2, 4, 8):
        return flat.view(f"u{itemsize}") != 0
    words = flat.view(np.uint8).reshape(flat.size, itemsize)
    return words.any(axis=1)


def _stored_count(values: NDArray[Any]) -> int:
    """Number of elements of a C-contiguous array with a nonzero byte."""
    itemsize = values.dtype.itemsize
    if itemsize in (1, 2, 4, 8):
        return int(np.count_nonzero(values.reshape(-1).view(f"u{itemsize}")))
    return int(np.count_nonzero(_stored_mask(values)))


def _all_stored(values: NDArray[Any]) -> bool:
    """True when no element of ``values`` (any layout) is all zero bytes."""
    contiguous = np.ascontiguousarray(values)
    return _stored_count(contiguous) == contiguous.size


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


# ---------------------------------------------------------------------- view geometry

# Geometry probes: read-only uint8 arrays whose element at flat position p has the address
# _ANCHOR_ADDRESS + p. Indexing, transposing or reshaping a probe is pure stride arithmetic,
# so numpy computes every view's geometry; the memory is never read (only operations that
# cannot read it are ever applied, and the probe is never handed out).
_ANCHOR = np.zeros(1, dtype=np.uint8)
_ANCHOR_ADDRESS: int = _ANCHOR.__array_interface__["data"][0]


class _ProbeInterface:
    __slots__ = ("__array_interface__",)

    def __init__(self, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> None:
        self.__array_interface__ = {
            "data": (_ANCHOR_ADDRESS + offset, True),
            "shape": shape,
            "strides": strides,
            "typestr": "|u1",
            "version": 3,
        }


def _probe(offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> NDArray[np.uint8]:
    return np.asarray(_ProbeInterface(offset, shape, strides))


def _geometry_of(probe: NDArray[np.uint8]) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(offset, shape, strides) in elements of a probe derived by stride arithmetic."""
    return probe.__array_interface__["data"][0] - _ANCHOR_ADDRESS, probe.shape, probe.strides


_ZERO_BYTE = np.zeros((), dtype=np.uint8)


def _reshaped_probe(probe: NDArray[np.uint8], shape: Any, order: str) -> NDArray[np.uint8] | None:
    """``probe`` reshaped as numpy would reshape the view, or None when numpy would copy.

    numpy's own errors for impossible shapes (and the resolved ``-1``) come from reshaping
    an all-zero-stride stand-in first, which needs no copy and reads one real byte."""
    target = np.broadcast_to(_ZERO_BYTE, probe.shape).reshape(shape, order=order).shape  # type: ignore[call-overload]
    try:
        return np.reshape(probe, target, order=order, copy=False)  # type: ignore[call-overload,no-any-return]
    except ValueError:
        return None
    except TypeError:  # numpy < 2.1 has no copy argument: the classic in-place shape change
        fortran = order == "F" or (order == "A" and probe.flags.f_contiguous and not probe.flags.c_contiguous)
        attempt = (probe.T if fortran else probe).view()
        try:
            attempt.shape = tuple(reversed(target)) if fortran else target
        except AttributeError:
            return None
        return attempt.T if fortran else attempt


def _ravel_order(probe: NDArray[np.uint8], order: str) -> tuple[str, NDArray[np.uint8] | None]:
    """numpy's ravel rule: (order to read in, flat probe when ravel returns a view, else None)."""
    if order == "A":
        order = "F" if probe.flags.f_contiguous and not probe.flags.c_contiguous else "C"
    if order == "K":
        if probe.flags.c_contiguous:
            order = "C"
        elif probe.flags.f_contiguous:
            order = "F"
        else:
            # numpy returns a view when the strides, sorted, are exactly contiguous.
            axes = sorted((axis for axis in range(probe.ndim) if probe.shape[axis] != 1), key=lambda axis: -probe.strides[axis])
            permuted = probe.transpose([*axes, *(axis for axis in range(probe.ndim) if probe.shape[axis] == 1)])
            if permuted.flags.c_contiguous and all(probe.strides[axis] > 0 for axis in axes):
                return "K", permuted.reshape(-1)
            return "K", None
    if order == "C" and probe.flags.c_contiguous:
        return "C", probe.reshape(-1)
    if order == "F" and probe.flags.f_contiguous:
        return "F", probe.reshape(-1, order="F")
    return order, None


def _positions_for(offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> NDArray[np.intp]:
    """Flat positions of every element of a view geometry, shaped like the view."""
    positions: NDArray[np.intp] = np.full((), offset, dtype=np.intp)
    for length, stride in zip(shape, strides):
        positions = positions[..., None] + np.arange(length, dtype=np.intp) * stride
    return positions


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


def _basic_view_probe(probe: NDArray[np.uint8], key: Any) -> tuple[NDArray[np.uint8], bool]:
    """``probe[key]`` for a basic key, and whether numpy would return a scalar instead.

    An Ellipsis is appended to keys without one: it selects the same elements and makes
    numpy return a 0-d array instead of reading a scalar out of the probe."""
    parts = key if isinstance(key, tuple) else (key,)
    if any(part is Ellipsis for part in parts):
        return probe[parts], False
    selected = probe[(*parts, Ellipsis)]
    return selected, selected.ndim == 0


def _plain_key(key: Any) -> Any:
    """The key with lazily stored parts (e.g. a lazily stored mask) made dense."""
    if isinstance(key, _LazyArray):
        return key._read_only_dense()
    if isinstance(key, tuple):
        return tuple(part._read_only_dense() if isinstance(part, _LazyArray) else part for part in key)
    return key


def _basic_region(shape: tuple[int, ...], key: Any) -> tuple[tuple[Any, ...], tuple[int, ...]] | None:
    """For a key of integers, slices and at most one Ellipsis (no newaxis, no arrays), each
    axis's selection (an int, or (start, stop, step) from ``slice.indices``) and the
    region's shape; None for any other key, or an integer out of bounds (the general
    path then raises numpy's own error)."""
    parts = key if type(key) is tuple else (key,)
    if not all(type(part) in (int, slice) or part is Ellipsis for part in parts) or sum(part is Ellipsis for part in parts) > 1:
        return None
    fixed = len(parts) - (1 if Ellipsis in parts else 0)
    if fixed > len(shape):
        return None
    if Ellipsis in parts:
        at = parts.index(Ellipsis)
        parts = parts[:at] + (slice(None),) * (len(shape) - fixed) + parts[at + 1 :]
    else:
        parts = parts + (slice(None),) * (len(shape) - len(parts))
    axes: list[Any] = []
    region: list[int] = []
    for part, length in zip(parts, shape):
        if type(part) is int:
            index = part + length if part < 0 else part
            if not 0 <= index < length:
                return None
            axes.append(index)
        else:
            start, stop, step = part.indices(length)
            axes.append((start, stop, step))
            region.append(len(range(start, stop, step)))
    return tuple(axes), tuple(region)


def _element_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """C-order strides of ``shape``, in elements."""
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    return tuple(strides)


def _region_walk(axes: tuple[Any, ...], strides: tuple[int, ...], region_shape: tuple[int, ...]) -> tuple[int, list[tuple[int, int]]]:
    """A basic-index region as a flat offset and (length, flat stride) per region axis, with
    neighbouring axes that are contiguous together merged: the flat position of the region's
    C-order element ``i`` is the offset plus ``i``'s digits in those lengths times the strides."""
    offset = 0
    dimensions: list[tuple[int, int]] = []
    sliced = iter(region_shape)
    for selection, stride in zip(axes, strides):
        if isinstance(selection, int):
            offset += selection * stride
            continue
        start, _, step = selection
        offset += start * stride
        length = next(sliced)
        if length == 1:
            continue  # contributes nothing beyond its start
        if dimensions and dimensions[-1][1] == length * stride * step:
            dimensions[-1] = (dimensions[-1][0] * length, stride * step)
        else:
            dimensions.append((length, stride * step))
    return offset, dimensions


def _stage(shape: tuple[int, ...], dtype: np.dtype[Any], key: Any, positions: Any, value: Any) -> NDArray[Any]:
    """``value`` converted for ``dense[key] = value`` (numpy's rules and errors), one value per
    selected position, laid out like ``positions``."""
    staged = np.empty(np.shape(positions), dtype=dtype)
    if not isinstance(positions, np.ndarray):
        staged[()] = value
    elif _is_basic_index(key):
        staged[...] = value  # basic indexing converts values exactly like an Ellipsis assignment
    else:
        _assignment_shadow(shape, dtype)[key] = value  # numpy's advanced-assignment checks
        staged[...] = np.asarray(value, dtype=dtype)
    return staged


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
        if isinstance(argument, (np.ndarray, _LazyArray)):
            continue
        override = getattr(type(argument), "__array_ufunc__", None)
        if override is not None and override is not np.ndarray.__array_ufunc__:
            return True
    return False


class _DenseWorkspace:
    """Dense stand-ins for the lazy arguments (arrays and views) of one numpy call.

    Why one object per call: the same array may appear several times
    (``np.add(b, b, out=b)``), and every appearance must be the same buffer so numpy's
    aliasing rules hold; arrays numpy writes into (``out=``, ``np.copyto``'s destination)
    must be written back afterwards. Arrays only read are handed over read-only, so a
    numpy function that tries to write into one raises instead of losing the write."""

    __slots__ = ("_working", "_targets")

    def __init__(self) -> None:
        self._working: dict[int, tuple[_LazyArray, NDArray[Any]]] = {}
        self._targets: list[tuple[_LazyArray, NDArray[Any]]] = []

    def target(self, lazy: _LazyArray) -> NDArray[Any]:
        """A writable dense array for ``lazy``, written back by ``commit``."""
        known = self._working.get(id(lazy))
        if known is not None:
            return known[1]
        working = lazy._working_buffer()
        self._working[id(lazy)] = (lazy, working)
        self._targets.append((lazy, working))
        return working

    def targets_in(self, value: Any) -> Any:
        if isinstance(value, _LazyArray):
            return self.target(value)
        if isinstance(value, tuple):
            return tuple(self.target(item) if isinstance(item, _LazyArray) else item for item in value)
        return value

    def operand(self, lazy: _LazyArray) -> NDArray[Any]:
        known = self._working.get(id(lazy))
        if known is not None:
            return known[1]
        working = lazy._read_only_dense()
        self._working[id(lazy)] = (lazy, working)
        return working

    def operands_in(self, value: Any) -> Any:
        """``value`` with every lazy array, also inside lists and tuples, made dense."""
        if isinstance(value, _LazyArray):
            return self.operand(value)
        if type(value) in (list, tuple):
            return type(value)(self.operands_in(item) for item in value)
        return value

    def commit(self) -> None:
        """Write every array numpy may have written into back where it belongs."""
        for lazy, working in self._targets:
            lazy._commit(working)

    def publish(self, result: Any) -> Any:
        """The call's result as the caller should see it (after ``commit``).

        An output buffer maps back to its lazy array (as numpy returns ``out``). An
        array sharing memory with an argument's dense stand-in (a view numpy returned)
        is copied when that stand-in is real storage, so the storage never leaks; views
        of temporaries need no copy. Both become read-only: numpy would have returned a
        view that writes through, and a silently detached copy must not pass for one."""
        if isinstance(result, np.ndarray):
            for lazy, working in self._targets:
                if result is working:
                    return lazy
            for lazy, working in self._working.values():
                if not np.may_share_memory(result, working):
                    continue
                storage = lazy._root()._dense
                if storage is not None and np.may_share_memory(result, storage):
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
    """Run a numpy function on the dense equivalents of its lazy arguments."""
    workspace = _DenseWorkspace()
    kwargs = dict(kwargs)
    # Outputs first, so an array that is both written and read is the one writable buffer.
    if "out" in kwargs:
        kwargs["out"] = workspace.targets_in(kwargs["out"])
    if mutates_first_argument and args and isinstance(args[0], _LazyArray):
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


class _LazyArray(NDArrayOperatorsMixin):
    """What LazyBeliefArray and its views share: the ndarray interface, written once in
    terms of a handful of storage hooks (``_root``, ``_geometry``, ``_read_only_dense``,
    ``_working_buffer``, ``_commit``, ``_write_at``)."""

    __slots__ = ()

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
        "trace": np.trace,
        "ptp": np.ptp,
        "repeat": np.repeat,
        "searchsorted": np.searchsorted,
        "conj": np.conj,
        "conjugate": np.conjugate,
    }

    # ------------------------------------------------------------------ storage hooks

    def _root(self) -> LazyBeliefArray:
        raise NotImplementedError

    def _geometry(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """(offset, shape, strides) of these elements in the root's flat C order, in elements."""
        raise NotImplementedError

    def _read_only_dense(self) -> NDArray[Any]:
        raise NotImplementedError

    def _working_buffer(self) -> NDArray[Any]:
        """A writable dense array with the current values, for numpy to write into."""
        raise NotImplementedError

    def _commit(self, working: NDArray[Any]) -> None:
        """Take back a buffer from ``_working_buffer`` that numpy has written into."""
        raise NotImplementedError

    def _write_at(self, key: Any, value: Any) -> None:
        """``dense[key] = value`` on these elements (key and value already plain)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ ndarray attributes

    @property
    def shape(self) -> tuple[int, ...]:
        return self._geometry()[1]

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._root()._dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the *dense equivalent*, as numpy reports for an ndarray of this shape and
        dtype; not what is held (that is ``stored_bytes``)."""
        return self.size * self.dtype.itemsize

    @property
    def T(self) -> Any:
        """The transpose: a view that writes through, as numpy's."""
        return self.transpose()

    def _fresh_dense(self) -> NDArray[Any]:
        """A new, writable, C-contiguous dense copy of these elements."""
        return np.array(self._read_only_dense(), order="C", copy=True)

    def _probe(self) -> NDArray[np.uint8]:
        return _probe(*self._geometry())

    def _view_from(self, probe: NDArray[np.uint8]) -> LazyBeliefView:
        return LazyBeliefView(self._root(), *_geometry_of(probe))

    # ------------------------------------------------------------------ indexing

    def __getitem__(self, key: Any) -> Any:
        """numpy's result for ``dense[key]``: a numpy scalar, a view that writes through
        (basic indexing), or a new writable array (advanced indexing)."""
        key = _plain_key(key)
        if _is_basic_index(key):
            selected, scalar = _basic_view_probe(self._probe(), key)
            if scalar:
                return self._root()._value_at(_geometry_of(selected)[0])
            return self._view_from(selected)
        return self._read_only_dense()[key]  # advanced indexing: numpy returns a new array

    def __setitem__(self, key: Any, value: Any) -> None:
        """``dense[key] = value`` for every key numpy accepts, with numpy's broadcasting and casting."""
        key = _plain_key(key)
        if isinstance(value, LazyBeliefView) and value._owner is self._root() and _is_basic_index(key):
            # ``b[2:5, 1] *= 3`` ends by assigning the updated view to the place it views.
            selected, scalar = _basic_view_probe(self._probe(), key)
            if not scalar and _geometry_of(selected) == value._geometry():
                return
        if isinstance(value, _LazyArray):
            value = value._read_only_dense()
        self._write_at(key, value)

    def fill(self, value: Any) -> None:
        """Set every element to ``value``."""
        self[...] = value

    # ------------------------------------------------------------------ numpy protocols

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> NDArray[Any]:
        """The dense equivalent, always a new writable array.

        Never the storage itself, so writes into it cannot corrupt (or be lost in) a later
        re-compression; ``copy=False`` therefore raises, as the numpy 2 protocol asks."""
        if copy is False:
            raise ValueError("LazyBeliefArray has no dense buffer to share; converting it always copies")
        dense = self._fresh_dense()
        return dense if dtype is None else dense.astype(dtype, copy=False)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """Ufuncs on the dense equivalents; ``out=`` lazy arrays and views (including
        in-place operators) are written back and re-compressed."""
        outputs = kwargs.get("out", ())
        if _defers_to_other((*inputs, *outputs)):
            return NotImplemented
        if method == "__call__":
            if not kwargs:
                # The common ``b * likelihood``: nothing is written back and a plain ufunc call
                # always returns new arrays, so the workspace bookkeeping can be skipped.
                return ufunc(*(item._read_only_dense() if isinstance(item, _LazyArray) else item for item in inputs))
            if len(kwargs) == 1 and len(outputs) == 1 and isinstance(outputs[0], LazyBeliefArray):
                done = outputs[0]._in_place_call(ufunc, inputs)
                if done is not None:
                    return done
        workspace = _DenseWorkspace()
        if outputs:
            kwargs["out"] = workspace.targets_in(outputs)
        if method == "at" and isinstance(inputs[0], _LazyArray):  # ufunc.at updates its first input in place
            inputs = (workspace.target(inputs[0]), *inputs[1:])
        dense_inputs = workspace.operands_in(inputs)
        dense_kwargs = {name: workspace.operands_in(value) for name, value in kwargs.items()}
        result = getattr(ufunc, method)(*dense_inputs, **dense_kwargs)
        workspace.commit()
        return workspace.publish(result)

    def __array_function__(
        self, func: Callable[..., Any], types: Collection[type], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """numpy functions on the dense equivalents, with sparse fast paths for reductions
        and views for the view-returning functions that have a method of the same name."""
        if not all(issubclass(kind, (_LazyArray, np.ndarray)) for kind in types):
            return NotImplemented
        if args and isinstance(args[0], _LazyArray):
            method_name = _FAST_FUNCTION_METHODS.get(func)
            if method_name is not None:
                return getattr(args[0], method_name)(*args[1:], **kwargs)
            view_function = _VIEW_FUNCTIONS.get(func)
            if view_function is not None:
                return view_function(*args, **kwargs)
        return _call_densified(func, args, kwargs, mutates_first_argument=func in _FIRST_ARGUMENT_MUTATORS)

    # ------------------------------------------------------------------ reductions (dense equivalents)

    def _reduce(self, function: Callable[..., Any], **kwargs: Any) -> Any:
        return _call_densified(function, (self,), kwargs)

    def sum(self, axis: Any = None, dtype: DTypeLike | None = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        return self._reduce(np.sum, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **options)

    def mean(self, axis: Any = None, dtype: DTypeLike | None = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        return self._reduce(np.mean, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **options)

    def max(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        return self._reduce(np.max, axis=axis, out=out, keepdims=keepdims, **options)

    def min(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        return self._reduce(np.min, axis=axis, out=out, keepdims=keepdims, **options)

    def argmax(self, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        return self._reduce(np.argmax, axis=axis, out=out, keepdims=keepdims)

    def argmin(self, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        return self._reduce(np.argmin, axis=axis, out=out, keepdims=keepdims)

    def any(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        return self._reduce(np.any, axis=axis, out=out, keepdims=keepdims, **options)

    def all(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        return self._reduce(np.all, axis=axis, out=out, keepdims=keepdims, **options)

    def _count_nonzero(self, axis: Any = None, *, keepdims: bool = False) -> Any:
        return self._reduce(np.count_nonzero, axis=axis, keepdims=keepdims)

    def nonzero(self) -> tuple[NDArray[np.intp], ...]:
        return self._reduce(np.nonzero)  # type: ignore[no-any-return]

    def dot(self, other: ArrayLike, out: Any = None) -> Any:
        """As ``ndarray.dot``."""
        return np.dot(self, other) if out is None else np.dot(self, other, out=out)

    # ------------------------------------------------------------------ views and copies

    def transpose(self, *axes: Any) -> LazyBeliefView:
        """The transpose, a view that writes through (as numpy's)."""
        order = axes[0] if len(axes) == 1 else (axes or None)
        return self._view_from(self._probe().transpose(order))

    def swapaxes(self, axis1: int, axis2: int) -> LazyBeliefView:
        """A view with two axes swapped, as numpy's."""
        return self._view_from(self._probe().swapaxes(axis1, axis2))

    def squeeze(self, axis: Any = None) -> LazyBeliefView:
        """A view without the length-1 axes, as numpy's."""
        return self._view_from(self._probe().squeeze(axis))

    def view(self, dtype: Any = None) -> Any:
        """``view()``: a view of every element that writes through. Reinterpreting the bytes
        as another dtype is not supported (there are no dense bytes to reinterpret)."""
        if dtype is not None and np.dtype(dtype) != self.dtype:
            raise TypeError("a LazyBeliefArray view keeps the dtype; use astype() to convert")
        return self._view_from(self._probe())

    def reshape(self, *shape: Any, order: Literal["C", "F", "A"] = "C") -> Any:
        """Reshaped as numpy reshapes: a view that writes through when numpy can avoid a
        copy, otherwise a new array (as numpy's copy)."""
        new_shape = shape[0] if len(shape) == 1 else shape
        reshaped = _reshaped_probe(self._probe(), new_shape, order)
        if reshaped is None:
            return self._fresh_dense().reshape(new_shape, order=order)
        return self._view_from(reshaped)

    def ravel(self, order: _Order = "C") -> Any:
        """Flattened as numpy's ravel: a view when numpy returns one, else a new array."""
        read_order, flat = _ravel_order(self._probe(), order)
        if flat is None:
            return self._fresh_dense().ravel(order=read_order)
        return self._view_from(flat)

    def flatten(self, order: _Order = "C") -> NDArray[Any]:
        """The dense equivalent flattened into a new writable array, as numpy's flatten."""
        return self._read_only_dense().flatten(order=order)

    def astype(
        self, dtype: DTypeLike, order: _Order = "K", casting: _Casting = "unsafe", subok: bool = True, copy: bool = True
    ) -> NDArray[Any]:
        """The dense equivalent converted to ``dtype``: a new writable ndarray (``copy=False``
        cannot hand out the storage, so it changes nothing)."""
        return self._read_only_dense().astype(dtype, order=order, casting=casting, subok=subok, copy=True)

    def tolist(self) -> Any:
        return self._read_only_dense().tolist()

    def item(self, *args: Any) -> Any:
        """As ``ndarray.item``: a Python scalar."""
        if len(args) > 1 or (args and isinstance(args[0], tuple)):
            return self[args if len(args) > 1 else args[0]].item()
        return self._read_only_dense().item(*args)

    def __getattr__(self, name: str) -> Any:
        """The ndarray methods in ``_FUNCTION_METHODS``, bound to this array."""
        function = _LazyArray._FUNCTION_METHODS.get(name)
        if function is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return functools.partial(function, self)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_LazyArray._FUNCTION_METHODS})

    # ------------------------------------------------------------------ Python protocols

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Iterator[Any]:
        """Rows (views that write through) or, for 1-d, numpy scalars, read at each step."""
        if not self.shape:
            raise TypeError("iteration over a 0-d array")
        for row in range(self.shape[0]):
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

    def __index__(self) -> int:
        return operator.index(self._read_only_dense())

    def __str__(self) -> str:
        return str(self._read_only_dense())


class LazyBeliefArray(_LazyArray):
    """A numeric array that stores only its nonzeros, and nothing until first written.

    Usable where agent code used a dense ndarray: indexing and assignment with every numpy
    index kind, views that write through, arithmetic and comparison operators, ufuncs
    (also with ``out=`` and as in-place operators), numpy functions, and the common
    reductions. See the module docstring for storage states, re-compression and what
    comes back as what.
    """

    __slots__ = ("_shape", "_dtype", "_sparsity_threshold", "_capacity", "_flat_indices", "_values", "_dense", "__weakref__")

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
        """A copy of ``array`` (same shape and dtype), sparse when its unstored fraction >= threshold."""
        source = np.asarray(array)
        belief = cls(source.shape, source.dtype, sparsity_threshold)
        belief._settle_fresh(np.array(source, order="C", copy=True))
        return belief

    # ------------------------------------------------------------------ ndarray attributes

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    # ------------------------------------------------------------------ storage introspection

    @property
    def sparsity_threshold(self) -> float:
        return self._sparsity_threshold

    @property
    def sparse_capacity(self) -> int:
        """Most stored elements the sparse form holds before a write switches to dense storage."""
        return self._capacity

    @property
    def resparsify_limit(self) -> int:
        """Stored-element count at or below which dense storage goes back to sparse (hysteresis)."""
        return math.floor(self._capacity * _RESPARSIFY_SHARE)

    @property
    def is_sparse(self) -> bool:
        """True when unwritten or held as index/value arrays, False when held densely."""
        return self._dense is None

    @property
    def nnz(self) -> int:
        """Number of nonzero values, as ``np.count_nonzero`` (a -0.0 is stored but is zero)."""
        if self._dense is not None:
            return int(np.count_nonzero(self._dense))
        return 0 if self._values is None else int(np.count_nonzero(self._values))

    @property
    def stored_count(self) -> int:
        """Number of elements the storage rules count: those with a nonzero byte."""
        if self._dense is not None:
            return _stored_count(self._dense)
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

    # ------------------------------------------------------------------ storage hooks

    def _root(self) -> LazyBeliefArray:
        return self

    def _geometry(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        return 0, self._shape, _layout(self._shape)[1]

    def _index_dtype(self) -> np.dtype[Any]:
        return _index_dtype(self.size)

    def _stored_values(self) -> NDArray[Any]:
        """The stored values (an empty array when unwritten), for sparse fast paths."""
        return self._values if self._values is not None else np.empty(0, dtype=self._dtype)

    def _materialize(self) -> NDArray[Any]:
        """A fresh, writable, C-contiguous dense copy that owns its data."""
        if self._dense is not None:
            return self._dense.copy()
        dense = np.zeros(self._shape, dtype=self._dtype)
        if self._flat_indices is not None and self._values is not None:
            np.put(dense, self._flat_indices, self._values)  # flat C-order positions, as stored
        return dense

    def _fresh_dense(self) -> NDArray[Any]:
        return self._materialize()

    def _read_only_dense(self) -> NDArray[Any]:
        """The dense equivalent for reading: the storage itself behind a read-only view when
        dense (no copy), a read-only materialized copy otherwise."""
        dense = self._dense.view() if self._dense is not None else self._materialize()
        dense.flags.writeable = False
        return dense

    def _working_buffer(self) -> NDArray[Any]:
        return self._dense if self._dense is not None else self._materialize()

    def _commit(self, working: NDArray[Any]) -> None:
        self._settle(working)

    def _strided_dense(self, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> NDArray[Any]:
        """A numpy view of the dense storage with a view's geometry (storage must be dense)."""
        assert self._dense is not None
        itemsize = self._dtype.itemsize
        return np.ndarray(shape, self._dtype, buffer=self._dense, offset=offset * itemsize, strides=tuple(stride * itemsize for stride in strides))

    def _set_sparse(self, flat_indices: NDArray[Any], values: NDArray[Any]) -> None:
        """Hold these (sorted, unique, stored) entries; none at all means no buffers."""
        if flat_indices.size == 0:
            self._flat_indices = self._values = None
        else:
            self._flat_indices, self._values = flat_indices, values
        self._dense = None

    def _adopt_dense(self, dense: NDArray[Any]) -> None:
        """Hold ``dense`` (owned by nobody else, C-contiguous, right dtype) as the storage."""
        self._dense = dense
        self._flat_indices = self._values = None

    def _settle_fresh(self, working: NDArray[Any]) -> None:
        """Store the values of a fresh C-contiguous buffer nobody else holds, in the form
        the storage rules choose for them (one bitwise pass, one ``nonzero``)."""
        flat = working.reshape(-1)
        positions = _stored_mask(flat).nonzero()[0]
        if positions.size > self._capacity:
            self._adopt_dense(working)
        else:
            self._set_sparse(positions.astype(self._index_dtype()), flat.take(positions))

    def _resparsify_if_sparse_enough(self) -> None:
        """Dense storage back to sparse once the stored count fits the hysteresis limit."""
        if self._dense is not None and _stored_count(self._dense) <= self.resparsify_limit:
            flat = self._dense.reshape(-1)
            positions = _stored_mask(flat).nonzero()[0]
            self._set_sparse(positions.astype(self._index_dtype()), flat.take(positions))

    def _settle(self, working: NDArray[Any]) -> None:
        """Take back a dense buffer numpy has written into and choose the storage again."""
        if working is self._dense:  # written in place: only the way back to sparse is open
            self._resparsify_if_sparse_enough()
        else:
            self._settle_fresh(working)  # a fresh materialized copy that nobody else holds

    def _in_place_call(self, ufunc: np.ufunc, inputs: tuple[Any, ...]) -> LazyBeliefArray | None:
        """``ufunc(*inputs, out=self)`` on the stored values alone, when that is exact; None
        when the general path must run.

        Exact when this array is sparse, every other input is a scalar, and the ufunc maps
        an unstored element (all zero bytes) to all zero bytes: every unstored element then
        stays unstored, and each stored one gets what the dense call gives it, since the
        same loop runs on the same operand types. A one-element probe decides the zero
        case, so no list of "zero-preserving" operations is needed; the ufuncs are limited
        to correctly rounded ones (``_EXACT_ELEMENTWISE``), whose result for an element
        cannot depend on where in the array it sits (SIMD bodies and scalar tails agree)."""
        if self._dense is not None or ufunc.nout != 1:
            return None
        if ufunc not in _EXACT_ELEMENTWISE or not any(item is self for item in inputs):
            return None
        if not all(item is self or isinstance(item, _SCALAR_TYPES) for item in inputs):
            return None
        probe = np.zeros(1, dtype=self._dtype)
        with np.errstate(all="ignore"):
            try:
                ufunc(*(probe if item is self else item for item in inputs), out=probe)
            except Exception:  # the general path raises numpy's own error
                return None
        if probe.view(np.uint8).any():
            return None
        if self._values is None or self._flat_indices is None:
            return self
        values = self._values
        ufunc(*(values if item is self else item for item in inputs), out=values)
        keep = _stored_mask(values)
        if not keep.all():
            self._set_sparse(self._flat_indices[keep], values[keep])
        return self

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
        """The numpy scalar at one flat position."""
        if self._dense is not None:
            return self._dense.reshape(-1)[position]
        if self._flat_indices is not None and self._values is not None:
            # bisect on the array beats np.searchsorted's call overhead for one position.
            slot = bisect.bisect_left(self._flat_indices, position)
            if slot < self._flat_indices.size and self._flat_indices[slot] == position:
                return self._values[slot]
        return self._dtype.type(0)

    def _gather(self, positions: NDArray[Any]) -> NDArray[Any]:
        """Values at many flat positions (a new array shaped like ``positions``)."""
        if self._dense is not None:
            return self._dense.reshape(-1)[positions]
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
        """numpy's result for ``dense[key]``: a numpy scalar, a view that writes through
        (basic indexing), or a new writable array (advanced indexing)."""
        key = _plain_key(key)
        position = self._scalar_position(key)
        if position is not None:
            return self._value_at(position)
        if _is_basic_index(key):
            return super().__getitem__(key)
        if self._dense is not None:
            return self._dense[key]  # advanced indexing always copies
        positions = self._flat_positions(key)
        if not isinstance(positions, np.ndarray):
            return self._value_at(int(positions))
        return self._gather(positions)

    def _write_at(self, key: Any, value: Any) -> None:
        if self._dense is not None:
            self._dense[key] = value
            # Only a write that leaves unstored elements behind can make the array sparse enough again.
            written = self._dense[key]
            if not (_all_stored(written) if isinstance(written, np.ndarray) else _all_stored(np.asarray(written))):
                self._resparsify_if_sparse_enough()
            return
        position = self._scalar_position(key)
        if position is not None:
            staged = np.empty(1, dtype=self._dtype)
            staged[0] = value  # numpy's conversion rules for a single element
            self._write_sparse(np.array([position], dtype=np.intp), staged)
            return
        if key is Ellipsis or (type(key) is tuple and len(key) == 1 and key[0] is Ellipsis) or (
            type(key) is slice and key == slice(None) and self._shape
        ):
            working = np.empty(self._shape, dtype=self._dtype)
            working[...] = value  # the whole array: numpy's broadcasting, then one settling pass
            self._settle_fresh(working)
            return
        region = _basic_region(self._shape, key)
        if region is not None:
            self._write_region(region, value)
            return
        positions = self._flat_positions(key)
        staged = _stage(self._shape, self._dtype, key, positions, value)
        self._write_sparse(np.ravel(positions), staged.reshape(-1))

    def _write_region(self, region: tuple[tuple[Any, ...], tuple[int, ...]], value: Any) -> None:
        """A basic-index write into sparse storage, at a cost in the stored elements and the
        value's nonzeros rather than in positions of the region: the stored elements inside
        the region are found from their coordinates, the new ones from the value's
        nonzeros (``b[:, t] = block`` on a large, mostly-zero array)."""
        axes, region_shape = region
        staged = np.empty(region_shape, dtype=self._dtype)
        staged[...] = value  # numpy's broadcasting and conversion rules
        index_dtype = self._index_dtype()
        kept_positions = self._flat_indices if self._flat_indices is not None else np.empty(0, dtype=index_dtype)
        kept_values = self._stored_values()
        strides = _element_strides(self._shape)
        if kept_positions.size:
            # Only the axes the region constrains are read off the flat positions.
            inside = np.ones(kept_positions.size, dtype=bool)
            for axis, selection in enumerate(axes):
                if isinstance(selection, int):
                    inside &= (kept_positions // strides[axis]) % self._shape[axis] == selection
                elif selection != (0, self._shape[axis], 1):
                    coordinate = (kept_positions // strides[axis]) % self._shape[axis]
                    start, stop, step = selection
                    low, high = (start, stop) if step > 0 else (stop + 1, start + 1)
                    inside &= (coordinate >= low) & (coordinate < high) & ((coordinate - start) % step == 0)
            if inside.any():
                kept_positions, kept_values = kept_positions[~inside], kept_values[~inside]
        contiguous = np.ascontiguousarray(staged)
        found = np.flatnonzero(_stored_mask(contiguous))
        if found.size:
            offset, dimensions = _region_walk(axes, strides, region_shape)
            new_positions = np.full(found.size, offset, dtype=np.intp)
            rest = found
            for length, stride in reversed(dimensions):
                rest, coordinate = np.divmod(rest, length)
                new_positions += coordinate * stride
            new_positions = new_positions.astype(index_dtype)
            new_values = contiguous.reshape(-1)[found]
            if any(stride < 0 for _, stride in dimensions):  # a negative step walks backwards
                order = np.argsort(new_positions, kind="stable")
                new_positions, new_values = new_positions[order], new_values[order]
        else:
            new_positions, new_values = np.empty(0, dtype=index_dtype), np.empty(0, dtype=self._dtype)
        self._store(kept_positions, kept_values, new_positions, new_values)

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
        values = np.ascontiguousarray(values)
        stored = _stored_mask(values)
        new_positions = positions[stored].astype(index_dtype)
        new_values = values[stored]
        self._store(kept_positions, kept_values, new_positions, new_values)

    def _store(self, kept_positions: NDArray[Any], kept_values: NDArray[Any], new_positions: NDArray[Any], new_values: NDArray[Any]) -> None:
        """Store the kept entries and the new ones (each sorted by position, disjoint) sparsely,
        or densely once together they pass the sparse capacity."""
        if kept_positions.size + new_positions.size > self._capacity:
            dense = np.zeros(self._shape, dtype=self._dtype)
            flat = dense.reshape(-1)
            flat[kept_positions] = kept_values
            flat[new_positions] = new_values
            self._adopt_dense(dense)
            return
        merged_positions, merged_values = _merge_sorted(kept_positions, kept_values, new_positions, new_values)
        self._set_sparse(merged_positions, merged_values)

    # ------------------------------------------------------------------ reductions

    def _simple_reduction(self, axis: Any, out: Any, keepdims: Any, options: dict[str, Any]) -> bool:
        """Whether a reduction can be read off sparse storage: whole array, no out/where/initial."""
        return self._dense is None and axis is None and out is None and not keepdims and not options

    def _exact_sum_fast_path(self, axis: Any, dtype: DTypeLike | None, out: Any, keepdims: Any, options: dict[str, Any]) -> bool:
        """Whether a whole-array sum can add the stored values alone and still give numpy's
        bits: only when every addition is exact in any order (bool and integer elements
        summed in an integer type). Float sums take the dense path, because numpy's
        pairwise summation groups the additions by position, zeros included, and a
        different grouping rounds differently (``b /= b.sum()`` must match numpy's)."""
        if not self._simple_reduction(axis, out, keepdims, options) or self._dtype.kind not in "biu":
            return False
        return dtype is None or np.dtype(dtype).kind in "biu"

    def sum(self, axis: Any = None, dtype: DTypeLike | None = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.sum``, bit for bit."""
        if self._exact_sum_fast_path(axis, dtype, out, keepdims, options):
            return self._stored_values().sum(dtype=dtype)
        return self._reduce(np.sum, axis=axis, dtype=dtype, out=out, keepdims=keepdims, **options)

    def mean(self, axis: Any = None, dtype: DTypeLike | None = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.mean``, bit for bit (numpy's own computation on the dense equivalent)."""
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

    def _sparse_arg_extreme(self, pick_index: Callable[..., Any], beats_zero: Callable[[Any], bool]) -> np.intp | None:
        """argmax/argmin: the first flat position holding the extreme, as numpy returns
        (None: a stored zero value, -0.0, makes the dense path decide).

        A stored value wins if it is NaN (numpy returns the first NaN) or beats zero;
        otherwise the extreme is zero and its first position is the first unstored one."""
        if self._flat_indices is None or self._values is None:
            return np.intp(0)
        best_slot = int(pick_index(self._values))
        best = self._values[best_slot]
        nnz = self._flat_indices.size
        if nnz == self.size or best != best or beats_zero(best):
            return np.intp(self._flat_indices[best_slot])
        if not self._values.all():
            return None
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
            found = self._sparse_arg_extreme(np.argmax, lambda best: bool(best > 0))
            if found is not None:
                return found
        return self._reduce(np.argmax, axis=axis, out=out, keepdims=keepdims)

    def argmin(self, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
        """As ``ndarray.argmin``: the first flat position of the minimum."""
        if self._ordered_fast_path(axis, out, keepdims, {}):
            found = self._sparse_arg_extreme(np.argmin, lambda best: bool(best < 0))
            if found is not None:
                return found
        return self._reduce(np.argmin, axis=axis, out=out, keepdims=keepdims)

    def any(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.any``."""
        if self._simple_reduction(axis, out, keepdims, options):
            return np.bool_(self._stored_values().any())
        return self._reduce(np.any, axis=axis, out=out, keepdims=keepdims, **options)

    def all(self, axis: Any = None, out: Any = None, keepdims: bool = False, **options: Any) -> Any:
        """As ``ndarray.all``."""
        if self._simple_reduction(axis, out, keepdims, options):
            return np.bool_(self.nnz == self.size)
        return self._reduce(np.all, axis=axis, out=out, keepdims=keepdims, **options)

    def _count_nonzero(self, axis: Any = None, *, keepdims: bool = False) -> Any:
        if self._simple_reduction(axis, None, keepdims, {}):
            return np.count_nonzero(self._stored_values())  # numpy's own result type
        return self._reduce(np.count_nonzero, axis=axis, keepdims=keepdims)

    def nonzero(self) -> tuple[NDArray[np.intp], ...]:
        """As ``ndarray.nonzero``; read straight off the stored positions when sparse."""
        if self._dense is not None or not self._shape:
            return self._reduce(np.nonzero)  # type: ignore[no-any-return]
        if self._flat_indices is None or self._values is None:
            positions: NDArray[Any] = np.empty(0, dtype=np.intp)
        else:
            positions = self._flat_indices[self._values != 0]
        return tuple(np.asarray(coordinates, dtype=np.intp) for coordinates in np.unravel_index(positions, self._shape))

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

    def __repr__(self) -> str:
        prefix = f"{type(self).__name__}("
        body = np.array2string(self._read_only_dense(), separator=", ", prefix=prefix)
        storage = "sparse" if self.is_sparse else "dense"
        return f"{prefix}{body}, dtype={self._dtype}, storage={storage}, nnz={self.nnz}, stored_bytes={self.stored_bytes})"

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


class LazyBeliefView(_LazyArray):
    """A view of a LazyBeliefArray (what numpy would return as a view of an ndarray).

    It holds the owner and the view's geometry, nothing else: reads see the owner's
    current values, writes (item assignment, in-place operators, ``out=``) change the
    owner, exactly at the elements numpy's view would change."""

    __slots__ = ("_owner", "_offset", "_view_shape", "_strides", "__weakref__")

    def __init__(self, owner: LazyBeliefArray, offset: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> None:
        self._owner = owner
        self._offset = offset
        self._view_shape = shape
        self._strides = strides

    @property
    def base(self) -> LazyBeliefArray:
        """The LazyBeliefArray whose elements this view shows (as ``ndarray.base``)."""
        return self._owner

    def _root(self) -> LazyBeliefArray:
        return self._owner

    def _geometry(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        return self._offset, self._view_shape, self._strides

    def _positions(self) -> NDArray[np.intp]:
        return _positions_for(self._offset, self._view_shape, self._strides)

    def _read_only_dense(self) -> NDArray[Any]:
        owner = self._owner
        if owner._dense is None and self.size < owner.size * _WHOLE_READ_SHARE:
            values = owner._gather(self._positions())
        else:
            source = owner._dense if owner._dense is not None else owner._materialize()
            itemsize = owner._dtype.itemsize
            values = np.ndarray(
                self._view_shape, owner._dtype, buffer=source, offset=self._offset * itemsize, strides=tuple(stride * itemsize for stride in self._strides)
            )
        values.flags.writeable = False
        return values

    def _working_buffer(self) -> NDArray[Any]:
        return self._fresh_dense()

    def _commit(self, working: NDArray[Any]) -> None:
        self._write_at(..., working)

    def _write_at(self, key: Any, value: Any) -> None:
        owner = self._owner
        if owner._dense is not None:
            target = owner._strided_dense(self._offset, self._view_shape, self._strides)
            target[key] = value  # numpy's own assignment on a numpy view of the storage
            written = target[key]
            if not _all_stored(np.asarray(written)):
                owner._resparsify_if_sparse_enough()
            return
        positions = self._positions()[key]  # numpy's indexing rules and errors
        staged = _stage(self._view_shape, owner._dtype, key, positions, value)
        owner._write_sparse(np.ravel(positions), staged.reshape(-1))

    def copy(self) -> LazyBeliefArray:
        """A new LazyBeliefArray holding these values (numpy's ``copy`` of a view owns its data)."""
        return LazyBeliefArray.from_dense(self._read_only_dense(), self._owner._sparsity_threshold)

    def __repr__(self) -> str:
        prefix = f"{type(self).__name__}("
        body = np.array2string(self._read_only_dense(), separator=", ", prefix=prefix)
        return f"{prefix}{body}, dtype={self.dtype})"

    def __copy__(self) -> LazyBeliefArray:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> LazyBeliefView:
        """A view of the deep copy of the owner (one copy per owner within one deepcopy)."""
        import copy as copy_module

        return LazyBeliefView(copy_module.deepcopy(self._owner, memo), self._offset, self._view_shape, self._strides)

    def __reduce__(self) -> tuple[type[LazyBeliefView], tuple[LazyBeliefArray, int, tuple[int, ...], tuple[int, ...]]]:
        """Pickles the owner and the geometry, so a pickle holding an array and views of it
        still has views of that array after loading."""
        return LazyBeliefView, (self._owner, self._offset, self._view_shape, self._strides)


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

# numpy functions that return views, answered by the methods that return a LazyBeliefView.


def _np_transpose(array: _LazyArray, axes: Any = None) -> Any:
    return array.transpose() if axes is None else array.transpose(axes)


def _np_reshape(array: _LazyArray, shape: Any = None, order: Literal["C", "F", "A"] = "C", *, newshape: Any = None, copy: bool | None = None) -> Any:
    shape = newshape if shape is None else shape
    if copy:
        return array._fresh_dense().reshape(shape, order=order)
    result = array.reshape(shape, order=order)
    if copy is False and not isinstance(result, LazyBeliefView):
        raise ValueError("Unable to avoid creating a copy while reshaping.")
    return result


def _np_ravel(array: _LazyArray, order: _Order = "C") -> Any:
    return array.ravel(order)


def _np_squeeze(array: _LazyArray, axis: Any = None) -> Any:
    return array.squeeze(axis)


def _np_swapaxes(array: _LazyArray, axis1: int, axis2: int) -> Any:
    return array.swapaxes(axis1, axis2)


_VIEW_FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.transpose: _np_transpose,
    np.reshape: _np_reshape,
    np.ravel: _np_ravel,
    np.squeeze: _np_squeeze,
    np.swapaxes: _np_swapaxes,
}
