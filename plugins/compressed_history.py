"""compressed-history: growing lists of entries stored in compressed chunks.

Candidates are list or deque attributes that grew during the profile (the analysis
context names them) and whose entries CompressedHistory can store losslessly; the
saving is measured by compressing the entries the agents hold now.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

from ._common import agents_with, attributes_by_name

NAME = "compressed-history"
COMPRESSION_LEVEL = 6
SAMPLE_ENTRIES = 64


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "growing lists/deques -> CompressedHistory (lossless zlib chunks, same sequence API)")


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    import sys

    from fa_memtool.containers.history import encode_entry

    candidates = []
    for name, values in attributes_by_name(agents).items():
        if name not in context.growing or not all(type(value) in (list, deque) for value in values):
            continue
        sample = list(values[0])[-SAMPLE_ENTRIES:]
        if not sample:
            continue
        try:
            encoded = [encode_entry(entry) for entry in sample]
        except (TypeError, ValueError):
            continue  # entries CompressedHistory cannot store losslessly
        raw = b"".join(encoded)
        ratio = len(zlib.compress(raw, COMPRESSION_LEVEL)) / max(len(raw), 1)
        entry_bytes = sum(sys.getsizeof(entry) for entry in sample) / len(sample)
        held = sum(len(value) for value in values) / len(values)
        saved = held * entry_bytes * (1.0 - ratio)
        if saved > 0:
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=name,
                    estimated_bytes_saved_per_agent=saved,
                    reason=f"grows {context.growing[name]:.0f} B per agent per step; entries compress to {ratio:.1%}",
                    parameters={"compression_level": COMPRESSION_LEVEL},
                )
            )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    from fa_memtool.containers.history import CompressedHistory

    level = int(candidate.parameters.get("compression_level", COMPRESSION_LEVEL))
    for agent in agents_with(agents, candidate.attribute):
        value = getattr(agent, candidate.attribute)
        setattr(
            agent,
            candidate.attribute,
            CompressedHistory(value, maxlen=getattr(value, "maxlen", None), compression_level=level),
        )
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"CompressedHistory({expression})"
