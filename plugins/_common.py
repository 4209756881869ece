"""Helpers the built-in plugins share: attribute values across agents, owned arrays."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fa_memtool.analysis import buffer_owner, distinct_owners, numeric_arrays
from fa_memtool.sizing import agent_attributes


def attributes_by_name(agents: list[Any]) -> dict[str, list[Any]]:
    """Each top-level attribute name with its value on every agent that has it."""
    found: dict[str, list[Any]] = {}
    for agent in agents:
        for name, value in agent_attributes(agent):
            found.setdefault(name, []).append(value)
    return found


def owned_arrays(values: list[Any]) -> list[Any]:
    """Distinct buffer-owning numeric arrays held by these values (one container level)."""
    return distinct_owners([array for value in values for array in numeric_arrays(value)])


def agents_with(agents: list[Any], attribute: str) -> Iterator[Any]:
    for agent in agents:
        if hasattr(agent, attribute):
            yield agent


__all__ = ["agents_with", "attributes_by_name", "buffer_owner", "owned_arrays"]
