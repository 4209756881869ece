"""torch tensors and JAX arrays at a path, for the built-in plugins that handle them
like numpy arrays (shared-parameters, lower-precision).

Only values that are safe to replace are offered: dense, strided torch tensors that are
not views of another tensor's storage and require no gradient (a trained parameter is
updated in place by its optimizer, which holds it by identity), and concrete JAX arrays
(immutable). Neither library is imported here: a value is recognised only if the
program already imported its library.
"""

from __future__ import annotations

import sys
from typing import Any

from fa_memtool.holdings import iter_values

from ._common import Members

__all__ = ["library_arrays", "lowered", "narrower_float", "nbytes", "replaceable"]

_NARROWER = {"float64": "float32", "float32": "float16"}


def _torch_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return (
        torch is not None
        and isinstance(value, torch.Tensor)
        and value.layout is torch.strided
        and not value.is_meta
        and not value.requires_grad
        # A view shares its storage with another tensor: a replacement would no longer
        # see what is written through the other (a window on a replay buffer).
        and value._base is None
        and int(value.untyped_storage().nbytes()) == int(value.nbytes)
    )


def _jax_array(value: Any) -> bool:
    jax = sys.modules.get("jax")
    array = getattr(jax, "Array", None) if jax is not None else None
    return isinstance(array, type) and isinstance(value, array) and hasattr(value, "is_deleted") and not value.is_deleted()


def replaceable(value: Any) -> bool:
    """A torch tensor or JAX array the plugins may replace (see the module doc)."""
    return _torch_tensor(value) or _jax_array(value)


def library_arrays(members: Members) -> list[Any] | None:
    """The distinct values at a path when every one is replaceable, else None."""
    values = list(iter_values(members))
    if not values or not all(map(replaceable, values)):
        return None
    return values


def nbytes(value: Any) -> int:
    """Bytes of the value's own elements (a view's share, not its whole storage)."""
    return int(value.nbytes)


def dtype_name(value: Any) -> str:
    return str(value.dtype).removeprefix("torch.")


def narrower_float(value: Any) -> str | None:
    """The next narrower float dtype for the value (float64 -> float32 -> float16)."""
    return _NARROWER.get(dtype_name(value))


def lowered(value: Any, dtype: str, rtol: float, atol: float) -> Any | None:
    """``value`` converted to ``dtype`` if every value survives the round trip within
    rtol/atol (NaN stays NaN, infinities stay), else None."""
    import numpy

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        target = getattr(torch, dtype)
        converted = value.to(target)
        back = converted.to(value.dtype)
        original, restored = value.detach().cpu().double().numpy(), back.detach().cpu().double().numpy()
        if isinstance(value, torch.nn.Parameter):
            converted = torch.nn.Parameter(converted, requires_grad=False)
    else:
        converted = value.astype(dtype)
        original, restored = numpy.asarray(value, dtype=numpy.float64), numpy.asarray(converted, dtype=numpy.float64)
    if not numpy.allclose(restored, original, rtol=rtol, atol=atol, equal_nan=True):
        return None
    if numpy.isinf(restored).sum() != numpy.isinf(original).sum():
        return None  # a finite value that overflowed the narrower type
    return converted
