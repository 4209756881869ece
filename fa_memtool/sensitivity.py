"""The sensitivity test for lossy transformations (lower precision and any plugin that
declares itself lossy).

A replay that shows identical actions after float64 -> float32 proves nothing about
agents that sit close to a decision boundary: the next observation stream may push one
of them over. So, before a lossy candidate is kept, the *original* agents are replayed
``REPLAYS`` more times with the values at the candidate's path perturbed by
``MARGIN`` times the largest relative change the transformation makes (for float32,
10 x 2**-24, about 6e-7), each value up or down at random, once after building and
again at every checkpoint (the values are recomputed while the agents step, and a
lossy container rounds every write). Each perturbed replay is compared with the
original's recorded actions. If any action differs, the population is sensitive at that
precision and the candidate is rolled back.

Why five replays: an agent whose action the rounding changes sits within the rounding
of a decision boundary at some step. A perturbation ten times larger, with a random
sign per value, moves it across that boundary with probability at least about one
half (whenever it moves the value the same way the rounding did). Five independent
perturbations then all miss such an agent with probability at most 0.5**5 = 3.1 %:
a change that alters even 1 agent in 50 within the steps replayed is caught with at
least 96.9 % probability. ``test_sensitivity`` checks this on agents built to flip.

What it cannot rule out: changes that need other observations or more steps than the
replay ran; a sensitivity that only the accumulated rounding of many float32
operations reaches, beyond the perturbation's size; and values outside the
candidate's path that the transformation changes indirectly.
"""

from __future__ import annotations

import sys
from typing import Any

from fa_memtool.paths import ALL, Step, labelled_children, parse_path

__all__ = ["MARGIN", "REPLAYS", "perturb", "scope"]

REPLAYS = 5
MARGIN = 10.0
DEFAULT_RELATIVE_CHANGE = 2.0**-24  # float64 -> float32 rounding


def _values_at(root: Any, steps: list[Step]) -> list[tuple[Any, Any, Step]]:
    """(holder, value, step) for every object at the path below ``root``; ``[*]``
    steps fan out over the container's items."""
    found: list[tuple[Any, Any, Step]] = []
    frontier: list[tuple[Any, Any, Step | None]] = [(None, root, None)]
    for step in steps:
        following: list[tuple[Any, Any, Step | None]] = []
        for _, value, _ in frontier:
            for label, child in labelled_children(value):
                if label == step or (step == ALL and label.kind in ("index", "key")):
                    following.append((value, child, label))
        frontier = following
    for holder, value, label in frontier:
        if label is not None:
            found.append((holder, value, label))
    return found


def _factors(shape: tuple[int, ...], magnitude: float, rng: Any, dtype: Any) -> Any:
    """1 + magnitude or 1 - magnitude for each value, at random (one random bit each)."""
    import numpy

    size = int(numpy.prod(shape, dtype=numpy.int64))
    bits = numpy.unpackbits(numpy.frombuffer(rng.bytes((size + 7) // 8), dtype=numpy.uint8), count=size).astype(bool)
    factors = numpy.where(bits, numpy.asarray(1 + magnitude, dtype=dtype), numpy.asarray(1 - magnitude, dtype=dtype))
    return factors.reshape(shape)


def _perturbed_numpy(array: Any, magnitude: float, rng: Any) -> Any:
    return array * _factors(array.shape, magnitude, rng, array.dtype)


def perturb(agents: list[Any], path: str, relative: float, rng: Any) -> int:
    """Move every float value at ``path`` on every agent up or down by ``relative``
    (in place where the object allows it, so every path that holds it sees the change);
    the number of arrays perturbed."""
    import numpy

    steps = parse_path(path)
    torch = sys.modules.get("torch")
    count = 0
    seen: dict[int, Any] = {}  # an array several agents share is moved once (kept: ids stay unique)
    for agent in agents:
        for holder, value, label in _values_at(agent, steps):
            if id(value) in seen:
                continue
            seen[id(value)] = value
            if isinstance(value, numpy.ndarray):
                if value.dtype.kind != "f" or not value.size:
                    continue
                if value.flags.writeable:
                    value *= _factors(value.shape, relative, rng, value.dtype)
                else:
                    _replace(holder, label, _perturbed_numpy(value, relative, rng))
                count += 1
            elif torch is not None and isinstance(value, torch.Tensor):
                if not value.dtype.is_floating_point or not value.numel():
                    continue
                factors = torch.from_numpy(_factors(tuple(value.shape), relative, rng, "float64")).to(value.dtype).to(value.device)
                with torch.no_grad():
                    value.mul_(factors)
                count += 1
            elif hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "__array__"):
                dense = numpy.asarray(value)
                if dense.dtype.kind != "f" or not dense.size:
                    continue
                moved = _perturbed_numpy(dense, relative, rng)
                if callable(getattr(value, "__setitem__", None)):
                    try:
                        value[...] = moved  # array-likes such as LazyBeliefArray
                        count += 1
                        continue
                    except (TypeError, ValueError):
                        pass
                jax_numpy = sys.modules.get("jax.numpy")
                if jax_numpy is not None and type(value).__module__.startswith("jax"):
                    _replace(holder, label, jax_numpy.asarray(moved, dtype=value.dtype))
                    count += 1
    return count


def _replace(holder: Any, label: Step, value: Any) -> None:
    if label.kind == "attr":
        setattr(holder, label.value, value)
    else:
        holder[label.value] = value


def scope(candidate: Any) -> float:
    """The relative size of the perturbation for a candidate: MARGIN x its change."""
    change = getattr(candidate, "relative_change", None)
    return MARGIN * (change if change else DEFAULT_RELATIVE_CHANGE)
