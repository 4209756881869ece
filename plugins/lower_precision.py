"""lower-precision: float64 arrays whose values survive float32 within the tolerance.

Candidates are attributes whose float64 arrays (directly or one container level down)
all survive the round trip to float32 within the run's rtol/atol on every agent; the
saving is half of their bytes. Whether behaviour survives is for replay to prove.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import agents_with, attributes_by_name, owned_arrays

NAME = "lower-precision"
MIN_ARRAY_BYTES = 64 * 1024


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "float64 arrays whose values survive float32 -> float32")


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    import numpy

    from fa_memtool.containers.precision import lower_precision

    candidates = []
    for name, values in attributes_by_name(agents).items():
        arrays = [array for array in owned_arrays(values) if array.dtype == numpy.float64]
        if not arrays or sum(array.nbytes for array in arrays) < MIN_ARRAY_BYTES:
            continue
        if all(lower_precision(array, rtol=context.rtol, atol=context.atol) is not None for array in arrays):
            saved = sum(int(array.nbytes) for array in arrays) / 2
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=name,
                    estimated_bytes_saved_per_agent=saved / len(agents),
                    reason=f"{len(arrays)} float64 arrays survive float32 within rtol={context.rtol:g}, atol={context.atol:g}",
                    parameters={"dtype": "float32", "rtol": context.rtol, "atol": context.atol},
                )
            )
    return candidates


def _convert(value: Any, rtol: float, atol: float, memo: dict[int, Any]) -> Any:
    """The value with its float64 arrays lowered; ``memo`` keeps an array shared by
    several agents shared (one converted copy), as the analysis counted it once."""
    import numpy

    from fa_memtool.containers.precision import lower_precision

    if id(value) in memo:
        return memo[id(value)]
    converted: Any = value
    if isinstance(value, numpy.ndarray):
        if value.dtype == object:
            converted = numpy.empty(value.shape, dtype=object)
            for index, element in numpy.ndenumerate(value):
                converted[index] = _convert(element, rtol, atol, memo)
        elif value.dtype == numpy.float64:
            converted = lower_precision(value, rtol=rtol, atol=atol)
            if converted is None:
                raise ValueError("an array no longer survives float32 within the tolerance")
    elif type(value) is list:
        converted = [_convert(element, rtol, atol, memo) for element in value]
    elif type(value) is tuple:
        converted = tuple(_convert(element, rtol, atol, memo) for element in value)
    elif type(value) is deque:
        converted = deque((_convert(element, rtol, atol, memo) for element in value), maxlen=value.maxlen)
    elif type(value) is dict:
        converted = {key: _convert(element, rtol, atol, memo) for key, element in value.items()}
    memo[id(value)] = converted
    return converted


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    rtol = float(candidate.parameters.get("rtol", 1e-5))
    atol = float(candidate.parameters.get("atol", 1e-8))
    memo: dict[int, Any] = {}
    for agent in agents_with(agents, candidate.attribute):
        setattr(agent, candidate.attribute, _convert(getattr(agent, candidate.attribute), rtol, atol, memo))
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    rtol = candidate.parameters.get("rtol", 1e-5)
    atol = candidate.parameters.get("atol", 1e-8)
    return f"lower_precision({expression}, rtol={rtol}, atol={atol})"
