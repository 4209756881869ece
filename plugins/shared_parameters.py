"""shared-parameters: one read-only copy of arrays identical across agents.

Agents built from one template often each hold a copy of the same matrices. This
plugin finds attributes whose arrays have identical contents (dtype, shape, bytes)
across agents and hands every agent the same pooled, read-only array. An agent that
writes to a pooled array gets numpy's "assignment destination is read-only" error.
The pool is the process-wide one (``fa_memtool.containers.get_shared_pool()``), which
keeps its arrays until it is cleared.
"""

from __future__ import annotations

from typing import Any

from fa_memtool.analysis import duplicate_groups
from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import agents_with, attributes_by_name, owned_arrays

NAME = "shared-parameters"


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "arrays identical across agents -> one shared read-only copy")


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    candidates = []
    for name, values in attributes_by_name(agents).items():
        groups = duplicate_groups(owned_arrays(values))
        saved = sum((len(group) - 1) * int(group[0].nbytes) for group in groups)
        if saved > 0:
            copies = sum(len(group) for group in groups)
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=name,
                    estimated_bytes_saved_per_agent=saved / len(agents),
                    reason=f"{copies} arrays with identical contents across agents",
                )
            )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    from fa_memtool.containers.shared import get_shared_pool

    # The process-wide pool: agents transformed one at a time (optimize_agent, or
    # apply_plan called per agent) still end up sharing one copy.
    pool = get_shared_pool()
    for agent in agents_with(agents, candidate.attribute):
        setattr(agent, candidate.attribute, pool.share_tree(getattr(agent, candidate.attribute)))
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"get_shared_pool().share_tree({expression})"
