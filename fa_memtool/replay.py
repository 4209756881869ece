"""Replay comparison: do twin agents (original and transformed) still agree?

Actions are compared exactly, at every step (``same_action``). Numeric state is compared
at the end of a replay (``compare_agents``), at every path: the original agent's objects are
walked breadth first, following the children ``fa_memtool.paths`` labels (attributes,
dict values, sequence and object-array items), and each is compared with what the
transformed twin holds at the same path, so a transformation deep inside a held object
(``agent.B[0]`` of a pymdp Agent) is checked where it happened. The walk is bounded
(COMPARED_OBJECTS objects, COMPARED_DEPTH levels per agent) so a comparison stays fast.
"""

from __future__ import annotations

import math
import random
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fa_memtool.paths import ALL, PathError, Step, join, labelled_children, resolve

__all__ = ["COMPARED_DEPTH", "COMPARED_OBJECTS", "RandomStream", "compare_agents", "same_action"]

COMPARED_OBJECTS = 20_000  # per agent and comparison: bounds its time
COMPARED_DEPTH = 8


def same_action(left: Any, right: Any) -> bool:
    """Actions are equal: arrays (numpy, torch, JAX) by numpy.array_equal of their
    values, other values equal and of one type."""
    if left is right:
        return True
    try:
        import numpy

        dense_left, dense_right = _numeric(left), _numeric(right)
        if dense_left is not None or dense_right is not None:
            if dense_left is None or dense_right is None:
                return False
            return bool(numpy.array_equal(dense_left, dense_right))
        return bool(left == right) and type(left) is type(right)
    except Exception:
        return False


def _capture_random() -> tuple[Any, Any, Any]:
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    return (
        random.getstate(),
        numpy.random.get_state() if numpy is not None else None,
        torch.get_rng_state() if torch is not None and hasattr(torch, "get_rng_state") else None,
    )


def _restore_random(state: tuple[Any, Any, Any]) -> None:
    python, numpy_state, torch_state = state
    random.setstate(python)
    if numpy_state is not None:
        sys.modules["numpy"].random.set_state(numpy_state)
    if torch_state is not None:
        sys.modules["torch"].set_rng_state(torch_state)


class RandomStream:
    """One population's own copy of the process's global random state (``random``,
    ``numpy.random``, torch's default generator).

    Agents that draw from the global generators (pymdp's tie-breaking between equally
    good actions, ``torch.randn``) would otherwise see different numbers in a lockstep
    replay, where the original and the transformed population step in turn: each runs
    inside its own stream, and streams copied from one state give both the same draws.
    """

    def __init__(self, state: tuple[Any, Any, Any] | None = None) -> None:
        self._state = _capture_random() if state is None else state

    @classmethod
    def seeded(cls, seed: int) -> RandomStream:
        """A stream whose generators start from ``seed`` (``random.seed``,
        ``numpy.random.seed``, ``torch.manual_seed`` when torch is loaded): two
        populations stepped in streams of one seed see the same draws, whenever each runs."""
        outer = _capture_random()
        try:
            random.seed(seed)
            numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
            if numpy is not None:
                numpy.random.seed(seed % 2**32)
            if torch is not None and hasattr(torch, "manual_seed"):
                torch.manual_seed(seed)
            return cls(_capture_random())
        finally:
            _restore_random(outer)

    def copy(self) -> RandomStream:
        return RandomStream(self._state)

    @contextmanager
    def active(self) -> Iterator[None]:
        outer = _capture_random()
        _restore_random(self._state)
        try:
            yield
        finally:
            self._state = _capture_random()
            _restore_random(outer)


def _numeric(value: Any) -> Any | None:
    """A dense numeric numpy array for values that stand for one: numpy arrays,
    array-likes such as LazyBeliefArray, torch tensors (detached, on the host) and
    JAX arrays; float16 / bfloat16 values widened so they compare as numbers."""
    import numpy

    if isinstance(value, numpy.ndarray):
        dense = value
    elif isinstance(value, (str, bytes)) or not (hasattr(value, "shape") and hasattr(value, "dtype")):
        return None
    elif callable(getattr(value, "detach", None)) and callable(getattr(value, "cpu", None)):
        tensor = value.detach().cpu()  # a torch tensor: its values, whatever its device
        if not tensor.dtype.is_floating_point and not tensor.dtype.is_complex:
            dense = tensor.numpy()
        else:
            dense = tensor.double().numpy() if not tensor.dtype.is_complex else tensor.cdouble().numpy()
    elif hasattr(value, "__array__"):
        dense = numpy.asarray(value)  # array-likes, JAX arrays
    else:
        return None
    if dense.dtype == object:
        return None
    if dense.dtype.kind not in "biufc":  # bfloat16 and other extension dtypes
        try:
            dense = dense.astype(numpy.float64)
        except (TypeError, ValueError):
            return None
    return dense


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
    if isinstance(original, dict) and isinstance(optimized, dict) and not all(map(_literal_key, original)):
        # Keyed by objects each twin has its own of (an optimizer's state, keyed by its
        # parameters): entries are paired in insertion order.
        if len(original) != len(optimized):
            return [], f"{_where(index, path)} holds {len(optimized)} entries instead of {len(original)}"
        return [
            (join(path, step), child, other)
            for (step, child), other in zip(labelled_children(original), optimized.values())
            if child is not None
        ], None
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


def _literal_key(key: Any) -> bool:
    """A dict key both twins hold as an equal value (a name, a number, a tuple of them)."""
    if key is None or isinstance(key, (str, bytes, int, float, bool)):
        return True
    return isinstance(key, tuple) and all(map(_literal_key, key))


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
