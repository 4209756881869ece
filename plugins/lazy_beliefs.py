"""lazy-beliefs: mostly-zero float arrays stored sparsely (LazyBeliefArray).

Candidates are attributes holding one float ndarray whose zero fraction is at least
``sparsity_threshold`` on every agent; the saving is the dense bytes minus the sparse
storage (a value and an index per non-zero), computed from each agent's array.
"""

from __future__ import annotations

from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import agents_with, attributes_by_name

NAME = "lazy-beliefs"
SPARSITY_THRESHOLD = 0.9
MIN_ARRAY_BYTES = 64 * 1024


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "mostly-zero float arrays -> LazyBeliefArray (sparse, numpy-compatible)")


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    import numpy

    candidates = []
    for name, values in attributes_by_name(agents).items():
        if not all(type(value) is numpy.ndarray and value.dtype.kind == "f" and value.nbytes >= MIN_ARRAY_BYTES for value in values):
            continue
        saved = 0.0
        worst = 1.0
        for value in values:
            nonzero = int(numpy.count_nonzero(value))
            worst = min(worst, 1.0 - nonzero / value.size)
            index_bytes = 4 if value.size < 2**31 else 8
            saved += value.nbytes - nonzero * (value.itemsize + index_bytes)
        if worst >= SPARSITY_THRESHOLD and saved > 0:
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=name,
                    estimated_bytes_saved_per_agent=saved / len(agents),
                    reason=f"at least {worst:.1%} zeros on every agent",
                    parameters={"sparsity_threshold": SPARSITY_THRESHOLD},
                )
            )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    from fa_memtool.containers.lazy import LazyBeliefArray

    threshold = float(candidate.parameters.get("sparsity_threshold", SPARSITY_THRESHOLD))
    for agent in agents_with(agents, candidate.attribute):
        value = getattr(agent, candidate.attribute)
        setattr(agent, candidate.attribute, LazyBeliefArray.from_dense(value, sparsity_threshold=threshold))
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"LazyBeliefArray.from_dense({expression})"
