"""Replay comparison: do twin agents (original and transformed) still agree?

Actions are compared exactly, at every step (``same_action``). Numeric state is compared
at checkpoints (``compare_agents``), at every path: the original agent's objects are
walked breadth first, following the children ``fa_memtool.paths`` labels (attributes,
dict values, sequence and object-array items), and each is compared with what the
transformed twin holds at the same path, so a transformation deep inside a held object
(``agent.B[0]`` of a pymdp Agent) is checked where it happened. The walk is bounded
(COMPARED_OBJECTS objects, COMPARED_DEPTH levels per agent) so a checkpoint stays fast.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from fa_memtool.paths import ALL, PathError, Step, join, labelled_children, resolve

__all__ = ["COMPARED_DEPTH", "COMPARED_OBJECTS", "compare_agents", "same_action"]

COMPARED_OBJECTS = 20_000  # per agent and checkpoint: bounds the comparison's time
COMPARED_DEPTH = 8


def same_action(left: Any, right: Any) -> bool:
    """Actions are equal: arrays by numpy.array_equal, other values equal and of one type."""
    if left is right:
        return True
    try:
        import numpy

        if isinstance(left, numpy.ndarray) or isinstance(right, numpy.ndarray):
            return bool(numpy.array_equal(left, right))
        return bool(left == right) and type(left) is type(right)
    except Exception:
        return False


def _numeric(value: Any) -> Any | None:
    """A dense float/int array for values that stand for one (arrays and array-likes)."""
    import numpy

    if isinstance(value, numpy.ndarray):
        return value if value.dtype != object else None
    if hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype"):
        dense = numpy.asarray(value)  # array-likes such as LazyBeliefArray
        return dense if dense.dtype != object else None
    return None


def value_difference(original: Any, optimized: Any, rtol: float, atol: float, where: str) -> str | None:
    """How two values that are compared as a whole (arrays, floats) differ, or None."""
    import numpy

    dense_original = _numeric(original)
    if dense_original is not None:
        dense_optimized = _numeric(optimized)
        if dense_optimized is None or dense_original.shape != dense_optimized.shape:
            return f"{where} changed shape or type"
        if dense_original.dtype.kind in "fc" or dense_optimized.dtype.kind in "fc":
            if not numpy.allclose(dense_optimized, dense_original, rtol=rtol, atol=atol, equal_nan=True):
                gap = float(numpy.nanmax(numpy.abs(dense_optimized.astype(complex) - dense_original.astype(complex))))
                return f"{where} differs by up to {gap:.3g} (rtol={rtol:g}, atol={atol:g})"
            return None
        return None if numpy.array_equal(dense_original, dense_optimized) else f"{where} differs"
    if isinstance(original, float) and isinstance(optimized, (int, float)):
        same = math.isclose(optimized, original, rel_tol=rtol, abs_tol=atol) or (math.isnan(original) and math.isnan(optimized))
        return None if same else f"{where} differs"
    return None


def _where(index: int, path: str) -> str:
    return f"agent {index} .{path}" if path else f"agent {index}"


def _tail_offset(original: Any, optimized: Any, where: str) -> int | str:
    """Where the optimized sequence's entries start in the original's, or why they cannot:
    equal lengths align at 0; a bounded container (a full deque or CompressedHistory
    with maxlen) holds the original's most recent entries."""
    try:
        length = len(optimized)
    except TypeError:
        return f"{where} is no longer a sequence"
    if length == len(original):
        return 0
    bound = getattr(optimized, "maxlen", None)
    if isinstance(bound, int) and length == bound < len(original):
        return len(original) - length
    return f"{where} holds {length} entries instead of {len(original)}"


def _child_pairs(original: Any, optimized: Any, index: int, path: str) -> tuple[list[tuple[str, Any, Any]], str | None]:
    """The original's children paired with the optimized object's at the same step
    (or why they cannot be: a sequence of another length, a path that is missing)."""
    offset = 0
    if isinstance(original, (list, tuple, deque)):
        found = _tail_offset(original, optimized, _where(index, path))
        if isinstance(found, str):
            return [], found
        offset = found
    # A bounded cache drops entries by design: the entries it kept are compared.
    bounded_cache = isinstance(original, dict) and hasattr(optimized, "maxsize")
    pairs = []
    for step, child in labelled_children(original):
        if step == ALL or child is None:
            continue  # set items have no position to compare
        read = step
        if offset and step.kind == "index":
            if step.value < offset:
                continue
            read = Step("index", step.value - offset)
        try:
            other = resolve(optimized, (read,))
        except PathError:
            if bounded_cache:
                continue
            return [], f"{_where(index, join(path, step))} is missing"
        pairs.append((join(path, step), child, other))
    return pairs, None


def compare_agents(originals: list[Any], optimized: list[Any], rtol: float, atol: float) -> str | None:
    """The first numeric difference between twin agents, at any path: arrays (and
    array-likes) within rtol/atol, floats, and sequence lengths (a bounded container
    holds the original's latest entries). The original agent's structure is walked
    breadth first (fa_memtool.paths' children), each object once, up to
    COMPARED_OBJECTS objects and COMPARED_DEPTH levels per agent."""
    boundary = {id(agent) for agent in originals} | {id(agent) for agent in optimized}
    for index, (original, trial) in enumerate(zip(originals, optimized)):
        seen = set(boundary)
        queue: deque[tuple[str, Any, Any, int]] = deque([("", original, trial, 0)])
        compared = 0
        while queue and compared < COMPARED_OBJECTS:
            path, left, right, depth = queue.popleft()
            compared += 1
            found = value_difference(left, right, rtol, atol, _where(index, path))
            if found:
                return found
            if left is right or depth >= COMPARED_DEPTH or _numeric(left) is not None:
                continue
            pairs, found = _child_pairs(left, right, index, path)
            if found:
                return found
            for child_path, child, other in pairs:
                if id(child) not in seen:
                    seen.add(id(child))
                    queue.append((child_path, child, other, depth + 1))
    return None
