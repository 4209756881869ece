"""lazy-beliefs: mostly-zero float arrays stored sparsely (LazyBeliefArray).

Candidates are paths holding a plain float ndarray of at least 64 KiB, with a zero
fraction of at least ``sparsity_threshold`` on every agent (``belief``, ``agent.B[0]``);
the saving is the dense bytes minus what LazyBeliefArray stores (a value and an index
per non-zero), computed from each distinct array that replacing really frees.
"""

from __future__ import annotations

from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import format_bytes, freed_values, kept_alive_note, path_groups, plain_arrays, transform

NAME = "lazy-beliefs"
PRIORITY = 30
SPARSITY_THRESHOLD = 0.9
MIN_ARRAY_BYTES = 64 * 1024


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "mostly-zero float arrays -> LazyBeliefArray (sparse, numpy-compatible)", PRIORITY)


def sparse_bytes(array: Any) -> int:
    """What LazyBeliefArray.from_dense stores for ``array``: a value and an index (int32
    below 2**31 elements, else int64) per non-zero."""
    import numpy

    index_bytes = 4 if array.size < 2**31 else 8
    return int(numpy.count_nonzero(array)) * (int(array.itemsize) + index_bytes)


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    import numpy

    candidates = []
    for path, members in path_groups(agents, context).items():
        arrays = plain_arrays(members, kinds="f")
        if arrays is None or not all(array.nbytes >= MIN_ARRAY_BYTES and array.size for array in arrays):
            continue
        fractions = [1.0 - int(numpy.count_nonzero(array)) / array.size for array in arrays]
        if min(fractions) < SPARSITY_THRESHOLD:
            continue  # the worst agent decides: its array would stay dense
        free, alive = freed_values(members, arrays)
        dense = sum(int(array.nbytes) for array in free)
        sparse = sum(sparse_bytes(array) for array in free)
        if dense <= sparse:
            continue
        saved = dense - sparse
        candidates.append(
            Candidate(
                plugin=NAME,
                attribute=path,
                estimated_bytes_saved_per_agent=saved / len(agents),
                reason=f"at least {min(fractions):.1%} zeros on every agent" + kept_alive_note(alive),
                parameters={"sparsity_threshold": SPARSITY_THRESHOLD},
                kind="mostly-zeros",
                message=(
                    f"{path}: {len(arrays)} array(s) are {min(fractions):.1%}-{max(fractions):.1%} zeros; stored sparsely "
                    f"they take {format_bytes(sparse)} instead of {format_bytes(dense)}" + kept_alive_note(alive)
                ),
                evidence={
                    "arrays": len(arrays),
                    "dense_bytes": dense,
                    "sparse_bytes": sparse,
                    "min_zero_fraction": min(fractions),
                    "kept_alive": len(alive),
                },
            )
        )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    import numpy

    from fa_memtool.containers.lazy import LazyBeliefArray

    threshold = float(candidate.parameters.get("sparsity_threshold", SPARSITY_THRESHOLD))

    def sparse(value: Any) -> Any:
        if type(value) is numpy.ndarray and value.dtype.kind == "f":
            return LazyBeliefArray.from_dense(value, sparsity_threshold=threshold)
        return value

    transform(agents, candidate.attribute, sparse)
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"LazyBeliefArray.from_dense({expression})"
