"""bounded-cache: a dict that keeps gaining entries becomes an LRU of N entries.

Candidates are dict paths that grew during the profile. N is measured, not guessed:
the entries one step adds (entries held / steps run), then twice as many, and so on
while the bound keeps at most half of the entries. Whether dropping entries is safe
(a memo that recomputes, or state the agent needs) only a replay shows: ``fa-mem
optimize`` tries the sizes smallest first and keeps the first one whose replay shows
identical actions. The saving is what dropping the oldest entries frees (keys, and the
values held nowhere else in the agent, at the mean deep size of a sample, plus their
share of the dict's table).
"""

from __future__ import annotations

import sys
from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import bounds, format_bytes, growing_values, mean_deep_bytes, only_held_by, transform

NAME = "bounded-cache"
PRIORITY = 50
SAMPLE_ENTRIES = 64


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "growing dicts -> BoundedCache (the N most recently used entries)", PRIORITY)


def _dropped_bytes(members: list[tuple[Any, str, Any]], size: int) -> tuple[float, int]:
    """Bytes and entries freed over the population by keeping the newest ``size`` entries
    (insertion order: the profile cannot see which entries were read last)."""
    freed_keys = freed_values = 0
    keys: list[Any] = []
    values: list[Any] = []
    table = 0.0
    for holdings, _, cache in members:
        dropped = list(cache.items())[: max(len(cache) - size, 0)]
        table += (sys.getsizeof(cache) - sys.getsizeof({})) * len(dropped) / max(len(cache), 1)
        freed_keys += len(dropped)
        kept = [value for _, value in dropped if only_held_by(holdings, value, cache)]
        freed_values += len(kept)
        keys.extend(key for key, _ in dropped[-SAMPLE_ENTRIES:])
        values.extend(kept[-SAMPLE_ENTRIES:])
    saved = freed_keys * mean_deep_bytes(keys[-SAMPLE_ENTRIES:]) + freed_values * mean_deep_bytes(values[-SAMPLE_ENTRIES:]) + table
    return saved, freed_keys


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    candidates = []
    for path, members in growing_values(agents, context, (dict,)).items():
        held = sum(len(cache) for _, _, cache in members) / len(members)
        growth = context.growing[path]
        for size in bounds(held, context.steps):
            saved, dropped = _dropped_bytes(members, size)
            if saved <= 0:
                continue
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=path,
                    estimated_bytes_saved_per_agent=saved / len(agents),
                    reason=f"holds {held:.0f} entries; keeping the {size} most recently used drops {dropped}",
                    parameters={"maxsize": size},
                    kind="growing-cache",
                    message=(
                        f"{path} (dict) keeps gaining entries, {format_bytes(growth)} per agent per step, and holds "
                        f"{held:.0f}; keeping the {size} most recently used (BoundedCache) frees {format_bytes(saved)} in the "
                        "population. Only a replay (fa-mem optimize) shows whether the agent needs the dropped ones"
                    ),
                    evidence={
                        "bytes_per_step_per_agent": growth,
                        "steps": context.steps,
                        "entries_held": held,
                        "maxsize": size,
                        "entries_dropped": dropped,
                    },
                )
            )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    from fa_memtool.containers.bounded import BoundedCache

    size = int(candidate.parameters["maxsize"])

    def bound(value: Any) -> Any:
        if type(value) is dict or type(value) is BoundedCache:
            return BoundedCache(value, maxsize=size)
        return value

    transform(agents, candidate.attribute, bound)
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"BoundedCache({expression}, maxsize={int(candidate.parameters['maxsize'])})"
