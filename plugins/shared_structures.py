"""shared-structures: one read-only copy of plain-Python structures identical across agents.

Agents often each build the same table: a gymnasium FrozenLake or Taxi environment's
transition table ``env.unwrapped.P`` (a dict of dicts of lists of tuples), a lookup
table, a configuration. This plugin finds the paths whose values are plain structures
(dicts, lists and tuples of numbers, strings, bytes and None, nested) with identical
contents on several agents (the same types, items and order) and gives every agent the
pool's one read-only copy (``FrozenDict`` / ``FrozenList``, which read exactly like the
dict and list and raise ``TypeError`` on any change). Only the outermost such path is
proposed (the table, not each of its rows), and paths that grew during the profile, or
hold a path that grew, are left alone: a growing structure is not a constant.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl
from fa_memtool.holdings import is_under

from ._common import format_bytes, freed_values, kept_alive_note, path_groups, transform

NAME = "shared-structures"
PRIORITY = 25
MIN_STRUCTURE_BYTES = 1024  # deep size of one copy; smaller duplicates are not worth sharing


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "plain dict/list/tuple structures identical across agents -> one shared read-only copy", PRIORITY)


def _content(value: Any) -> bytes | None:
    """A digest of the structure's type-exact, order-keeping encoding; None if it is
    not a plain structure."""
    from fa_memtool.containers.frozen import is_plain_structure
    from fa_memtool.containers.history import encode_entry

    if not is_plain_structure(value):
        return None
    try:
        return hashlib.blake2b(encode_entry(value), digest_size=32).digest()
    except (TypeError, ValueError):
        return None


def _saving(copies: list[Any]) -> int:
    """What one shared copy frees: the deep size of all the copies together (an object
    they have in common, such as a small int, once) minus the deep size of one."""
    import sys

    from fa_memtool.sizing import deep_size

    together = deep_size(tuple(copies)) - sys.getsizeof(tuple(copies))
    return together - deep_size(copies[0])


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    from fa_memtool.sizing import deep_size

    from fa_memtool.containers.frozen import FrozenDict, FrozenList

    candidates: list[Candidate] = []
    chosen: list[str] = []
    for path, members in path_groups(agents, context).items():
        # A structure that grew, or holds something that grew, is not a constant. Growth
        # is named by the deepest path that grows, so a table inside a growing object
        # (a gymnasium env whose counters change) is not taken for growing itself.
        if any(is_under(path, outer) for outer in chosen) or any(is_under(grown, path) for grown in context.growing):
            continue
        values = list({id(held.value): held.value for _, held in members}.values())
        if len(values) < 2 or any(isinstance(value, (FrozenDict, FrozenList)) for value in values):
            continue
        by_content: dict[bytes, list[Any]] = {}
        for value in values:
            content = _content(value)
            if content is None:
                break
            by_content.setdefault(content, []).append(value)
        else:
            groups = [group for group in by_content.values() if len(group) > 1 and deep_size(group[0]) >= MIN_STRUCTURE_BYTES]
            if not groups:
                continue
            free, alive = freed_values(members, [value for group in groups for value in group])
            free_ids = {id(value) for value in free}
            saved = sum(_saving(kept) for group in groups if len(kept := [v for v in group if id(v) in free_ids]) > 1)
            if saved <= 0:
                continue
            chosen.append(path)
            copies = sum(len(group) for group in groups)
            candidates.append(
                Candidate(
                    plugin=NAME,
                    attribute=path,
                    estimated_bytes_saved_per_agent=saved / len(agents),
                    reason=f"{copies} {type(groups[0][0]).__name__}s with {len(groups)} distinct contents across agents"
                    + kept_alive_note(alive),
                    kind="identical-structures",
                    message=(
                        f"{path}: {copies} copies of a {type(groups[0][0]).__name__} hold only {len(groups)} distinct "
                        f"contents; one shared read-only copy saves {format_bytes(saved)} in the population"
                        + kept_alive_note(alive)
                    ),
                    evidence={"copies": copies, "distinct_contents": len(groups), "kept_alive": len(alive)},
                )
            )
    return candidates


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    from fa_memtool.containers.frozen import is_plain_structure
    from fa_memtool.containers.shared import get_shared_pool

    pool = get_shared_pool()

    def share(value: Any) -> Any:
        return pool.share_structure(value) if is_plain_structure(value) else value

    transform(agents, candidate.attribute, share)
    return True


@hookimpl
def fa_mem_adoption(candidate: Candidate, expression: str) -> str | None:
    if candidate.plugin != NAME:
        return None
    return f"get_shared_pool().share_structure({expression})"
