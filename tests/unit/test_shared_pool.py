"""Unit tests for fa_memtool.containers.shared (SharedParameterPool) and
fa_memtool.containers.precision (lower_precision).

The pool's contract: one read-only copy per distinct content (dtype, shape, bytes),
the same object for every caller, never a merge of different contents (even on a
forced digest collision), and never a change to the caller's own array.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fa_memtool.containers import shared
from fa_memtool.containers.precision import lower_precision
from fa_memtool.containers.shared import PoolStats, SharedParameterPool, get_shared_pool

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _likelihood(seed: int = 0) -> np.ndarray[Any, Any]:
    """A column-stochastic matrix, like one modality of a pymdp A array."""
    matrix: np.ndarray[Any, Any] = np.random.default_rng(seed).random((5, 4))
    normalised: np.ndarray[Any, Any] = matrix / matrix.sum(axis=0)
    return normalised


# --------------------------------------------------------------------------- sharing


def test_identical_contents_from_many_copies_are_stored_once() -> None:
    pool = SharedParameterPool()
    template = _likelihood()
    agents_parameters = [template.copy() for _ in range(50)]  # 50 separate copies
    shared_arrays = [pool.share(parameters) for parameters in agents_parameters]
    assert len(pool) == 1
    assert all(array is shared_arrays[0] for array in shared_arrays)
    assert all(array is not original for array, original in zip(shared_arrays, agents_parameters, strict=True))
    assert np.array_equal(shared_arrays[0], template) and shared_arrays[0].dtype == template.dtype
    assert pool.stats() == PoolStats(distinct_arrays=1, hits=49, bytes_saved=49 * template.nbytes, stored_bytes=template.nbytes)
    assert pool.stored_bytes == template.nbytes
    # Handing a pooled array back returns it unchanged and saves nothing.
    assert pool.share(shared_arrays[0]) is shared_arrays[0]
    assert pool.stats().hits == 49


def test_different_dtype_shape_or_contents_stay_distinct() -> None:
    pool = SharedParameterPool()
    base = np.arange(6, dtype=np.float64).reshape(2, 3)
    changed = base.copy()
    changed[1, 2] = np.nextafter(changed[1, 2], np.inf)  # one ulp apart
    variants: list[np.ndarray[Any, Any]] = [
        base,
        base.astype(np.float32),  # same values, other dtype
        base.reshape(3, 2),  # same bytes, other shape
        base.astype(">f8"),  # same values, other byte order
        changed,
        np.zeros(3),
        -np.zeros(3),  # 0.0 and -0.0 differ in their bits
        np.arange(6, dtype=np.int64).reshape(2, 3).view(np.float64),  # other bits, same dtype and shape as base
    ]
    pooled = [pool.share(variant) for variant in variants]
    assert len(pool) == len(variants)
    assert len({id(array) for array in pooled}) == len(variants)
    for array, variant in zip(pooled, variants, strict=True):
        assert array.dtype == variant.dtype and array.shape == variant.shape
        assert array.tobytes() == variant.tobytes()
    assert pool.stats().hits == 0


def test_memory_layout_is_not_part_of_the_content() -> None:
    pool = SharedParameterPool()
    c_ordered = _likelihood()
    first = pool.share(c_ordered)
    assert pool.share(np.asfortranarray(c_ordered)) is first
    assert pool.share(np.array(c_ordered[:, ::-1][:, ::-1])) is first
    assert pool.share(np.tile(c_ordered, 2)[:, :4]) is first  # non-contiguous view with equal values
    assert len(pool) == 1


def test_forced_digest_collision_never_merges_different_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "_content_digest", lambda data: b"every array collides")
    pool = SharedParameterPool()
    first = np.array([1.0, 2.0, 3.0])
    second = np.array([1.0, 2.0, 4.0])
    third = np.array([1.0, 2.0, 3.0]).view(np.int64)  # same shape and bytes, other dtype
    pooled = [pool.share(first), pool.share(second), pool.share(third)]
    assert len(pool) == 3
    assert [array.tobytes() for array in pooled] == [first.tobytes(), second.tobytes(), third.tobytes()]
    assert pooled[2].dtype == np.int64
    # Equal contents still find their match inside the colliding bucket.
    assert pool.share(second.copy()) is pooled[1]
    assert pool.share(first.copy()) is pooled[0]
    assert pool.stats().hits == 2


def test_writes_to_a_shared_array_raise_and_the_callers_array_stays_writeable() -> None:
    pool = SharedParameterPool()
    own = _likelihood()
    pooled = pool.share(own)

    class Agent:
        def __init__(self, likelihood: np.ndarray[Any, Any]) -> None:
            self.A = likelihood

    agent = Agent(pooled)
    with pytest.raises(ValueError, match="read-only"):
        agent.A[0, 0] = 1.0
    with pytest.raises(ValueError):
        agent.A += 1.0
    with pytest.raises(ValueError):
        agent.A.flags.writeable = True  # the lock cannot be lifted from the shared array
    # The caller's original is untouched, writeable, and independent of the pool.
    assert own.flags.writeable
    own[0, 0] = 42.0
    assert pooled[0, 0] != 42.0
    # An agent that must learn takes its own writeable copy.
    agent.A = agent.A.copy()
    agent.A[0, 0] = 1.0
    assert agent.A[0, 0] == 1.0 and pooled[0, 0] != 1.0


def test_share_refuses_what_it_cannot_pool() -> None:
    pool = SharedParameterPool()
    with pytest.raises(TypeError, match="share_tree"):
        pool.share(np.array([np.zeros(2), None], dtype=object))
    with pytest.raises(TypeError, match="subclass"):
        pool.share(np.ma.masked_array([1.0, 2.0]))
    with pytest.raises(TypeError, match="ndarray"):
        pool.share([1.0, 2.0])  # type: ignore[arg-type]
    assert len(pool) == 0


def test_share_tree_pools_pymdp_style_object_arrays() -> None:
    pool = SharedParameterPool()

    def build_agent_parameters() -> np.ndarray[Any, Any]:
        # An object array of matrices of different shapes, as pymdp builds A and B.
        modalities = np.empty(3, dtype=object)
        modalities[0] = _likelihood(0)
        modalities[1] = _likelihood(1)[:3]
        modalities[2] = np.eye(4)
        return modalities

    originals = [build_agent_parameters() for _ in range(10)]
    trees = [pool.share_tree(original) for original in originals]
    assert len(pool) == 3
    for tree, original in zip(trees, originals, strict=True):
        assert type(tree) is np.ndarray and tree.dtype == object and tree.shape == original.shape
        assert tree is not original
        for position in range(3):
            assert tree[position] is trees[0][position]
            assert not tree[position].flags.writeable
            assert np.array_equal(tree[position], original[position])
            assert original[position].flags.writeable  # the agent's own arrays are untouched
    assert pool.stats().hits == 27

    grid = np.empty((2, 2), dtype=object)  # multi-dimensional object arrays keep their shape
    for index in np.ndindex(2, 2):
        grid[index] = np.full(3, float(sum(index)))
    shared_grid = pool.share_tree(grid)
    assert shared_grid.shape == (2, 2)
    assert shared_grid[0, 1] is shared_grid[1, 0]  # equal contents inside one tree, too


class _Parameters(NamedTuple):
    A: Any
    B: Any


def test_share_tree_walks_lists_tuples_dicts_and_keeps_other_leaves() -> None:
    pool = SharedParameterPool()
    marker = object()
    value = {
        "params": _Parameters(A=np.ones(3), B=[np.ones(3), "text", 7]),
        "ordered": collections.OrderedDict(x=np.ones(3)),
        "leaf": marker,
        "strings": np.array(["a", "b"]),
    }
    result = pool.share_tree(value)
    assert type(result) is dict and type(result["params"]) is _Parameters
    assert type(result["ordered"]) is collections.OrderedDict
    assert result["params"].A is result["params"].B[0] is result["ordered"]["x"]
    assert result["params"].B[1:] == ["text", 7]
    assert result["leaf"] is marker
    assert not result["strings"].flags.writeable  # fixed-width strings are plain bytes too
    assert len(pool) == 2

    loop: list[Any] = [np.ones(3)]
    loop.append(loop)
    shared_loop = pool.share_tree(loop)
    assert shared_loop[1] is shared_loop and shared_loop[0] is result["params"].A


def test_clear_and_default_pool() -> None:
    pool = SharedParameterPool()
    handed_out = pool.share(np.ones(4))
    pool.clear()
    assert len(pool) == 0 and pool.stats() == PoolStats(0, 0, 0, 0)
    assert not handed_out.flags.writeable  # still valid and locked
    assert pool.share(np.ones(4)) is not handed_out
    assert get_shared_pool() is get_shared_pool()
    assert isinstance(get_shared_pool(), SharedParameterPool)


@PROPERTY_SETTINGS
@given(
    arrays=st.lists(
        st.sampled_from(["bool", "int8", "uint16", "float32", "float64", "complex128"]).flatmap(
            lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
        ),
        min_size=1,
        max_size=8,
    )
)
def test_pool_keeps_exactly_one_copy_per_distinct_content(arrays: list[np.ndarray[Any, Any]]) -> None:
    pool = SharedParameterPool()
    pooled = [pool.share(array) for array in arrays]
    contents = {(array.dtype.str, array.shape, array.tobytes()) for array in arrays}
    assert len(pool) == len(contents)
    for array, result in zip(arrays, pooled, strict=True):
        assert result.dtype == array.dtype and result.shape == array.shape
        assert result.tobytes() == array.tobytes()
        assert not result.flags.writeable and array.flags.writeable
        assert pool.share(array.copy()) is result


# --------------------------------------------------------------------------- lower_precision


def test_lower_precision_accepts_probabilities() -> None:
    probabilities = np.random.default_rng(3).dirichlet(np.ones(16), size=(448,)).T.copy(order="F")
    lowered = lower_precision(probabilities)
    assert lowered is not None
    assert lowered.dtype == np.float32 and lowered.shape == probabilities.shape
    assert lowered.flags.f_contiguous  # memory order is kept
    assert np.allclose(lowered.astype(np.float64), probabilities, rtol=1e-5, atol=1e-8)
    assert lowered.nbytes * 2 == probabilities.nbytes
    assert probabilities.dtype == np.float64  # the input is not modified


def test_lower_precision_refuses_overflow_and_lost_precision() -> None:
    assert lower_precision(np.array([0.5, 1e300])) is None  # overflows float32 to inf
    assert lower_precision(np.array([-1e39])) is None
    thirds = np.array([1.0, 1.0 / 3.0, 2.0 / 3.0])
    assert lower_precision(thirds) is not None  # within the default rtol
    assert lower_precision(thirds, rtol=1e-12, atol=0.0) is None  # needs more than float32
    assert lower_precision(np.array([1.0 + 1e-9]), rtol=1e-10, atol=0.0) is None
    # Infinities and NaN that were already there are not overflow.
    assert lower_precision(np.array([np.inf, -np.inf, np.nan, 0.25])) is not None


def test_lower_precision_only_applies_to_wider_floating_arrays() -> None:
    assert lower_precision(np.ones(3, dtype=np.float32)) is None
    assert lower_precision(np.ones(3, dtype=np.int64)) is None
    assert lower_precision(np.ones(3, dtype=bool)) is None
    assert lower_precision(np.ones(3, dtype=np.complex128)) is None  # complex needs a complex target
    lowered = lower_precision(np.array([1 + 2j, 0.5j]), dtype=np.complex64)
    assert lowered is not None and lowered.dtype == np.complex64
    half = lower_precision(np.array([0.5, 0.25], dtype=np.float32), dtype=np.float16)
    assert half is not None and half.dtype == np.float16
    with pytest.raises(TypeError):
        lower_precision(np.ones(3), dtype=np.int32)
    with pytest.raises(TypeError):
        lower_precision([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        lower_precision(np.ones(3), rtol=-1.0)


@PROPERTY_SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=5)))
def test_lower_precision_result_honours_its_contract(array: np.ndarray[Any, Any]) -> None:
    lowered = lower_precision(array)
    if lowered is None:
        with np.errstate(over="ignore", invalid="ignore"):
            narrowed = array.astype(np.float32)
            overflowed = bool(np.any(np.isinf(narrowed) & np.isfinite(array)))
            assert overflowed or not np.allclose(narrowed.astype(np.float64), array, rtol=1e-5, atol=1e-8, equal_nan=True)
    else:
        assert lowered.dtype == np.float32 and lowered.shape == array.shape
        assert not np.any(np.isinf(lowered) & np.isfinite(array))
        assert np.allclose(lowered.astype(np.float64), array, rtol=1e-5, atol=1e-8, equal_nan=True)
