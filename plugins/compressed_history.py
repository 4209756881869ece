"""compressed-history: growing lists of entries stored in compressed chunks.

Candidates are list or deque paths that grew during the profile (the analysis context
names them, e.g. ``history`` or ``agent.qs_hist``) and whose entries CompressedHistory
can store losslessly; the saving is measured by compressing the entries the agents
hold now.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import format_bytes, growing_values, mean_deep_bytes, only_held_by, transform

NAME = "compressed-history"
PRIORITY = 40  # before bounded-history: a bound then keeps the compressed form
COMPRESSION_LEVEL = 6
SAMPLE_ENTRIES = 64


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "growing lists/deques -> CompressedHistory (lossless zlib chunks, same sequence API)", PRIORITY)


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    from fa_memtool.containers.history import encode_entry

    candidates = []
    for path, members in growing_values(agents, context, (list, deque)).items():
        sample = list(members[0][2])[-SAMPLE_ENTRIES:]
        if not sample:
            continue
        try:
            encoded = [encode_entry(entry) for entry in sample]
        except (TypeError, ValueError):
            continue  # entries CompressedHistory cannot store losslessly
        raw = b"".join(encoded)
        ratio = len(zlib.compress(raw, COMPRESSION_LEVEL)) / max(len(raw), 1)
        entry_bytes = mean_deep_bytes(sample)
        encoded_bytes = len(raw) / len(sample)
        # What goes: the entries only this container holds. What comes: every entry,
        # encoded and compressed at the sample's ratio.
        freed = sum(sum(only_held_by(holdings, entry, value) for entry in value) for holdings, _, value in members)
        held = sum(len(value) for _, _, value in members)
        saved = freed * entry_bytes - held * encoded_bytes * ratio
        if saved <= 0:
            continue
        growth = context.growing[path]
        candidates.append(
            Candidate(
                plugin=NAME,
                attribute=path,
                estimated_bytes_saved_per_agent=saved / len(agents),
                reason=f"grows {growth:.0f} B per agent per step; entries compress to {ratio:.1%}",
                parameters={"compression_level": COMPRESSION_LEVEL},
                kind="unbounded-history",
                message=(
                    f"{path} grows by {format_bytes(growth)} per agent per step; its last {len(sample)} entries compress "
                    f"to {ratio:.1%} with zlib, so CompressedHistory keeps all {held / len(members):.0f} entries "
                    f"losslessly in {format_bytes(held * encoded_bytes * ratio / len(members))} per agent"
                ),
                evidence={
                    "bytes_per_step_per_agent": growth,
                    "steps": context.steps,
                    "entries_compressed": len(sample),
                    "zlib_ratio": ratio,
                    "entries_held": held,
                    "entries_freed": freed,
                },
            )
        )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    from fa_memtool.containers.history import CompressedHistory

    level = int(candidate.parameters.get("compression_level", COMPRESSION_LEVEL))

    def compressed(value: Any) -> Any:
        if isinstance(value, CompressedHistory):
            raise ValueError("already a CompressedHistory")
        if type(value) not in (list, deque):
            return value
        return CompressedHistory(value, maxlen=getattr(value, "maxlen", None), compression_level=level)

    transform(agents, candidate.attribute, compressed)
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"CompressedHistory({expression})"
