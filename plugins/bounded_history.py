"""bounded-history: a growing list or deque that keeps only its last N entries.

Candidates are list, deque and CompressedHistory paths that grew during the profile
and have no bound (a deque with a maxlen is bounded by its author's choice). N is not guessed: the plugin measures how
many entries one step adds (entries held / steps run) and proposes that, then twice as
many, and so on while the bound keeps at most half of what is held. It cannot know
which entries the agent reads later; ``fa-mem optimize`` tries the bounds smallest
first and keeps the first one whose replay shows identical actions (the others are then
not tried). The saving is what dropping the oldest entries frees: entries held nowhere
else in the agent, at the mean deep size of a sample.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import bounds, format_bytes, growing_values, mean_deep_bytes, only_held_by, transform

NAME = "bounded-history"
PRIORITY = 45  # after compressed-history, so a bound keeps the compressed form
SAMPLE_ENTRIES = 64


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "growing lists/deques -> the last N entries (deque or CompressedHistory with maxlen=N)", PRIORITY)


def _dropped_bytes(members: list[tuple[Any, str, Any]], bound: int) -> tuple[float, int]:
    """Bytes and entries freed over the population by keeping the last ``bound`` entries."""
    freed = 0
    dropped: list[Any] = []
    for holdings, _, value in members:
        entries = list(value)[: max(len(value) - bound, 0)]
        kept_elsewhere = [entry for entry in entries if not only_held_by(holdings, entry, value)]
        freed += len(entries) - len(kept_elsewhere)
        dropped.extend(entries[-SAMPLE_ENTRIES:])
    return freed * mean_deep_bytes(dropped[-SAMPLE_ENTRIES:]), freed


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    from fa_memtool.containers.history import CompressedHistory

    candidates = []
    for path, members in growing_values(agents, context, (list, deque, CompressedHistory)).items():
        if any(getattr(value, "maxlen", None) is not None for _, _, value in members):
            continue
        held = sum(len(value) for _, _, value in members) / len(members)
        growth = context.growing[path]
        for bound in bounds(held, context.steps):
            saved, freed = _dropped_bytes(members, bound)
            if saved <= 0:
                continue
            per_step = held / context.steps if context.steps else None
            adds = f" ({per_step:.3g} per step)" if per_step is not None else ""
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=path,
                    estimated_bytes_saved_per_agent=saved / len(agents),
                    reason=f"holds {held:.0f} entries{adds}; keeping the last {bound} frees {freed} entries",
                    parameters={"maxlen": bound},
                    kind="unbounded-history",
                    message=(
                        f"{path} grows by {format_bytes(growth)} per agent per step without bound and holds {held:.0f} "
                        f"entries{adds}; keeping the last {bound} frees {format_bytes(saved)} in the population. "
                        "Only a replay (fa-mem optimize) shows whether the agent reads older entries"
                    ),
                    evidence={
                        "bytes_per_step_per_agent": growth,
                        "steps": context.steps,
                        "entries_held": held,
                        "maxlen": bound,
                        "entries_freed": freed,
                    },
                )
            )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    from fa_memtool.containers.bounded import bounded
    from fa_memtool.containers.history import CompressedHistory

    maxlen = int(candidate.parameters["maxlen"])

    def bound(value: Any) -> Any:
        if type(value) not in (list, deque, CompressedHistory):
            return value
        return bounded(value, maxlen=maxlen)

    transform(agents, candidate.attribute, bound)
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"bounded({expression}, maxlen={int(candidate.parameters['maxlen'])})"
