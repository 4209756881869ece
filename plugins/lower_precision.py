"""lower-precision: float64 arrays whose values survive float32 within the tolerance.

Candidates are paths whose float64 arrays (64 KiB or more together) all survive the
round trip to float32 within the run's rtol/atol on every agent; the saving is half the
bytes of the arrays that replacing really frees. torch tensors that require no gradient
and JAX arrays go one step narrower the same way: float64 to float32, float32 to
float16. Whether behaviour survives is for replay to prove.
"""

from __future__ import annotations

from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import format_bytes, freed_values, kept_alive_note, operand, path_groups, plain_arrays, transform
from ._tensors import dtype_name, library_arrays, lowered as lowered_tensor, narrower_float, replaceable

NAME = "lower-precision"
PRIORITY = 10  # before the containers: they keep the dtype they are given, so both apply
MIN_ARRAY_BYTES = 64 * 1024
TARGET = "float32"


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "float64 arrays whose values survive float32 -> float32", PRIORITY, lossy=True)


ROUNDING = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}  # half the machine epsilon


def _rounding(dtype: str) -> float:
    """The largest relative change rounding to ``dtype`` makes to a value."""
    return ROUNDING[dtype]


def _largest_change(array: Any, lowered: Any) -> float:
    import numpy

    finite = numpy.isfinite(array)
    if not finite.any():
        return 0.0
    return float(numpy.max(numpy.abs(lowered[finite].astype(numpy.float64) - array[finite])))


BATCH_BYTES = 4 * 1024 * 1024  # small arrays are checked together, up to this many bytes at a time


def _batches(arrays: list[Any]) -> Any:
    """The arrays to check, small ones joined into one flat array per BATCH_BYTES: one
    round trip over thousands of history entries instead of one per entry (a value
    survives or not whatever array it sits in, so the verdict is the same)."""
    import numpy

    pending: list[Any] = []
    size = 0
    for array in arrays:
        if array.nbytes >= BATCH_BYTES:
            yield array
            continue
        pending.append(array.ravel())
        size += int(array.nbytes)
        if size >= BATCH_BYTES:
            yield numpy.concatenate(pending)
            pending, size = [], 0
    if pending:
        yield numpy.concatenate(pending) if len(pending) > 1 else pending[0]


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    import numpy

    from fa_memtool.containers.precision import lower_precision

    candidates = []
    for path, members in path_groups(agents, context).items():
        arrays = plain_arrays(members, kinds="f")
        if arrays is None:
            tensors = library_arrays(members)
            if tensors is not None:
                candidates.extend(_tensor_candidates(path, members, tensors, context, len(agents)))
            continue
        if not all(array.dtype == numpy.float64 for array in arrays):
            continue
        if sum(int(array.nbytes) for array in arrays) < MIN_ARRAY_BYTES:
            continue
        worst = 0.0
        for batch in _batches(arrays):
            lowered = lower_precision(batch, rtol=context.rtol, atol=context.atol)
            if lowered is None:
                break
            worst = max(worst, _largest_change(batch, lowered))
        else:
            free, alive = freed_values(members, arrays)
            total = sum(int(array.nbytes) for array in free)
            saved = total / 2
            if saved <= 0:
                continue
            tolerance = f"rtol={context.rtol:g}, atol={context.atol:g}"
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=path,
                    estimated_bytes_saved_per_agent=saved / len(agents),
                    reason=f"{len(arrays)} float64 arrays survive float32 within {tolerance}" + kept_alive_note(alive),
                    parameters={"dtype": TARGET, "rtol": context.rtol, "atol": context.atol},
                    relative_change=_rounding(TARGET),
                    kind="float32-safe",
                    message=(
                        f"{path}: float64 values survive float32 within {tolerance} (largest change {worst:.3g}, "
                        f"{len(arrays)} array(s) checked); halves {format_bytes(total)}" + kept_alive_note(alive)
                    ),
                    evidence={
                        "arrays": len(arrays),
                        "arrays_checked": len(arrays),
                        "max_abs_change": worst,
                        "rtol": context.rtol,
                        "atol": context.atol,
                        "kept_alive": len(alive),
                    },
                )
            )
    return candidates


def _tensor_candidates(path: str, members: Any, tensors: list[Any], context: AnalysisContext, agents: int) -> list[Candidate]:
    """torch tensors / JAX arrays of one float dtype that survive the next narrower one."""
    sources = {dtype_name(tensor) for tensor in tensors}
    targets = {narrower_float(tensor) for tensor in tensors}
    if len(sources) != 1 or len(targets) != 1 or None in targets:
        return []
    libraries = {_library(tensor) for tensor in tensors}
    if len(libraries) != 1:
        return []
    (source,), (target,), (library,) = sources, targets, libraries
    if sum(int(tensor.nbytes) for tensor in tensors) < MIN_ARRAY_BYTES:
        return []
    for tensor in tensors:
        if lowered_tensor(tensor, target, context.rtol, context.atol) is None:
            return []
    free, alive = freed_values(members, tensors)
    total = sum(int(tensor.nbytes) for tensor in free)
    saved = total / 2
    if saved <= 0:
        return []
    tolerance = f"rtol={context.rtol:g}, atol={context.atol:g}"
    return [
        Candidate(
            plugin=NAME,
            attribute=path,
            estimated_bytes_saved_per_agent=saved / agents,
            reason=f"{len(tensors)} {source} tensors survive {target} within {tolerance}" + kept_alive_note(alive),
            parameters={"dtype": target, "rtol": context.rtol, "atol": context.atol, "values": "tensors", "library": library},
            relative_change=_rounding(target),
            kind=f"{target}-safe",
            message=(
                f"{path}: {source} values survive {target} within {tolerance} ({len(tensors)} tensor(s) checked); "
                f"halves {format_bytes(total)}" + kept_alive_note(alive)
            ),
            evidence={"arrays": len(tensors), "arrays_checked": len(tensors), "rtol": context.rtol, "atol": context.atol, "kept_alive": len(alive)},
        )
    ]


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    import numpy

    if candidate.parameters.get("values") == "tensors":
        return _apply_to_tensors(agents, candidate)

    from fa_memtool.containers.precision import lower_precision

    rtol = float(candidate.parameters.get("rtol", 1e-5))
    atol = float(candidate.parameters.get("atol", 1e-8))
    dtype = numpy.dtype(str(candidate.parameters.get("dtype", TARGET)))

    def lowered(value: Any) -> Any:
        if type(value) is not numpy.ndarray or value.dtype.kind != "f" or value.dtype.itemsize <= dtype.itemsize:
            return value
        converted = lower_precision(value, dtype=dtype, rtol=rtol, atol=atol)
        if converted is None:
            raise ValueError("an array no longer survives float32 within the tolerance")
        return converted

    transform(agents, candidate.attribute, lowered)
    return True


def _library(value: Any) -> str:
    return "torch" if type(value).__module__.startswith("torch") else "jax"


def _apply_to_tensors(agents: list[Any], candidate: Candidate) -> bool:
    rtol = float(candidate.parameters.get("rtol", 1e-5))
    atol = float(candidate.parameters.get("atol", 1e-8))
    target = str(candidate.parameters["dtype"])

    def lowered(value: Any) -> Any:
        if not replaceable(value) or narrower_float(value) != target:
            return value
        converted = lowered_tensor(value, target, rtol, atol)
        if converted is None:
            raise ValueError(f"a tensor no longer survives {target} within the tolerance")
        return converted

    transform(agents, candidate.attribute, lowered)
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    # astype always returns an array (lower_precision may return None): the replay
    # proved the values at this path survive, new data is the user's to check.
    dtype = candidate.parameters.get("dtype", TARGET)
    if candidate.parameters.get("values") == "tensors":
        if candidate.parameters.get("library") == "torch":
            return f"{operand(expression)}.to(torch.{dtype})"
        return f'{operand(expression)}.astype("{dtype}")'
    return f'{operand(expression)}.astype("{dtype}")'
