"""shared-parameters: one read-only copy of arrays identical across agents (numpy arrays,
torch tensors that require no gradient, JAX arrays).

Agents built from one template often each hold a copy of the same matrices. This
plugin finds the paths whose arrays have identical contents (dtype, shape, bytes)
across agents (``A``, ``agent.B[0]``, ``params["likelihood"]``) and hands every agent
the same pooled, read-only array, wherever the agent holds it. An agent that writes to
a pooled array gets numpy's "assignment destination is read-only" error. The pool is
the process-wide one (``fa_memtool.containers.get_shared_pool()``), which keeps its
arrays until it is cleared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import format_bytes, freed_values, kept_alive_note, path_groups, plain_arrays, transform
from ._tensors import library_arrays, replaceable

NAME = "shared-parameters"
PRIORITY = 20
IDENTICAL_MIN_BYTES = 1024  # smaller duplicates are not worth sharing
SHAREABLE_KINDS = "biufcmMSUV"  # plain-bytes dtypes, as the pool accepts


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "arrays identical across agents -> one shared read-only copy", PRIORITY)


def duplicate_groups(arrays: Sequence[Any], *, tensors: bool = False) -> list[list[Any]]:
    """Distinct arrays grouped by content (the pool's content key; for torch tensors
    and JAX arrays, the pool's tensor key), only the groups of two or more, each of at
    least IDENTICAL_MIN_BYTES."""
    from fa_memtool.containers.shared import _tensor_content, content_key

    groups: dict[Any, list[Any]] = {}
    for array in arrays:
        if int(array.nbytes) >= IDENTICAL_MIN_BYTES:
            key = _tensor_content(array)[2] if tensors else content_key(array)
            groups.setdefault(key, []).append(array)
    return [members for members in groups.values() if len(members) > 1]


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    candidates = []
    for path, members in path_groups(agents, context).items():
        arrays = plain_arrays(members, kinds=SHAREABLE_KINDS)
        tensors = arrays is None
        if tensors:
            arrays = library_arrays(members)  # torch tensors without gradients, JAX arrays
            if arrays is None:
                continue
        groups = duplicate_groups(arrays, tensors=tensors)
        if not groups:
            continue
        free, alive = freed_values(members, [array for group in groups for array in group])
        free_ids = {id(array) for array in free}
        # The pool keeps one copy of each content; every freed copy beyond it is saved.
        saved = sum(max(sum(id(array) in free_ids for array in group) - 1, 0) * int(group[0].nbytes) for group in groups)
        if saved <= 0:
            continue
        copies = sum(len(group) for group in groups)
        candidates.append(
            Candidate(
                plugin=NAME,
                attribute=path,
                estimated_bytes_saved_per_agent=saved / len(agents),
                reason=f"{copies} arrays with {len(groups)} distinct contents across agents" + kept_alive_note(alive),
                kind="identical-across-agents",
                message=(
                    f"{path}: {copies} arrays hold only {len(groups)} distinct contents; one shared read-only "
                    f"copy of each saves {format_bytes(saved)} in the population" + kept_alive_note(alive)
                ),
                parameters={"values": "tensors"} if tensors else {},
                evidence={"copies": copies, "distinct_contents": len(groups), "kept_alive": len(alive)},
            )
        )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    import numpy

    from fa_memtool.containers.shared import get_shared_pool

    # The process-wide pool: agents transformed one at a time (optimize_agent, or
    # apply_plan called per agent) still end up sharing one copy.
    pool = get_shared_pool()

    def share(value: Any) -> Any:
        if type(value) is numpy.ndarray and value.dtype.kind in SHAREABLE_KINDS:
            return pool.share(value)
        if candidate.parameters.get("values") == "tensors" and replaceable(value):
            return pool.share_tensor(value)
        return value

    transform(agents, candidate.attribute, share)
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    method = "share_tensor" if candidate.parameters.get("values") == "tensors" else "share"
    return f"get_shared_pool().{method}({expression})"
