"""Lower a floating array's precision only when no value changes beyond a tolerance.

Parameters and beliefs are often float64 although float32 would represent them to
well within the accuracy the model needs (probabilities, normalised counts). Halving
them is a large, easy saving, but only if it is checked value by value: a single
1e300 overflows float32 to inf, and tight tolerances can need float64's precision.
``lower_precision`` converts, converts back and compares, and returns None whenever
the round trip is not faithful, so callers can apply it blindly to every array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import DTypeLike

__all__ = ["lower_precision"]


def lower_precision(
    array: np.ndarray[Any, Any],
    *,
    dtype: DTypeLike = np.float32,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> np.ndarray[Any, Any] | None:
    """Return ``array`` converted to ``dtype`` if every value survives, else None.

    "Survives" means the converted array, cast back, satisfies
    ``np.allclose(back, array, rtol=rtol, atol=atol, equal_nan=True)`` (the tolerance
    is relative to the original values) and no finite value overflowed to ±inf.

    Applies only to floating arrays (real to a narrower real dtype, complex to a
    narrower complex dtype); for anything else (integers, bool, object arrays, a
    float32 array with a float32 target, ...) there is nothing to lower and the
    result is None, so the function can be run over every array of an agent. The
    result is a new array with the same shape and memory order; ``array`` is not
    modified. Raises TypeError if ``array`` is not an ndarray or ``dtype`` is not a
    floating or complex dtype, ValueError for a negative tolerance.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"lower_precision() takes a numpy.ndarray, not {type(array).__name__}")
    target = np.dtype(dtype)
    if target.kind not in "fc":
        raise TypeError(f"lower_precision() needs a floating or complex target dtype, not {target}")
    if rtol < 0 or atol < 0:
        raise ValueError("rtol and atol must be non-negative")
    source = array.dtype
    if source.kind != target.kind or source.itemsize <= target.itemsize:
        return None
    # Overflow is detected explicitly below; numpy's cast warning would only be noise.
    with np.errstate(over="ignore", invalid="ignore"):
        converted = array.astype(target, order="K")
        if np.any(np.isinf(converted) & np.isfinite(array)):
            return None
        back = converted.astype(source, order="K")
        faithful = np.allclose(back, array, rtol=rtol, atol=atol, equal_nan=True)
    return converted if faithful else None
