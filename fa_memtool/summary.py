"""Population-level views of a report, shared by every renderer (and later the gate)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from fa_memtool.pathtree import PathNode
from fa_memtool.report import AttributeGrowth, AttributeReport, Report


@dataclass
class AttributeSummary:
    """One attribute name across all agents that have it."""

    name: str
    type_name: str
    agents: int
    mean_deep_bytes: float
    mean_amortized_bytes: float
    mean_exclusive_bytes: float
    max_sharers: int
    module_global: bool
    shape: list[int] | None
    dtype: str | None
    zero_fraction: float | None  # mean over agents
    resident_fraction: float | None  # resident / allocated bytes of its array buffers
    allocation_site: str | None
    allocation_code: str | None


def attribute_summaries(report: Report) -> list[AttributeSummary]:
    """Attributes by name, largest mean amortized bytes first."""
    grouped: dict[str, list[AttributeReport]] = {}
    for agent in report.agents:
        for attribute in agent.attributes:
            grouped.setdefault(attribute.name, []).append(attribute)
    summaries = []
    for name, items in grouped.items():
        first = items[0]
        zeros = [item.zero_fraction for item in items if item.zero_fraction is not None]
        measured = [item for item in items if item.resident_bytes is not None and item.array_bytes]
        resident_total = sum(item.resident_bytes or 0 for item in measured)
        arrays_total = sum(item.array_bytes or 0 for item in measured)
        summaries.append(
            AttributeSummary(
                name=name,
                type_name=first.type_name,
                agents=len(items),
                mean_deep_bytes=statistics.fmean(item.deep_bytes for item in items),
                mean_amortized_bytes=statistics.fmean(item.amortized_bytes for item in items),
                mean_exclusive_bytes=statistics.fmean(item.exclusive_bytes for item in items),
                max_sharers=max(item.sharers for item in items),
                module_global=any(item.module_global for item in items),
                shape=first.shape,
                dtype=first.dtype,
                zero_fraction=statistics.fmean(zeros) if zeros else None,
                resident_fraction=min(resident_total / arrays_total, 1.0) if arrays_total else None,
                allocation_site=next((item.allocation_site for item in items if item.allocation_site), None),
                allocation_code=next((item.allocation_code for item in items if item.allocation_code), None),
            )
        )
    summaries.sort(key=lambda summary: summary.mean_amortized_bytes, reverse=True)
    return summaries


def sparkline(values: list[float], *, width: int = 40) -> str:
    """Unicode block sparkline, resampled to at most ``width`` characters."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[int(index * len(values) / width)] for index in range(width - 1)] + [values[-1]]
    blocks = "▁▂▃▄▅▆▇█"
    low, high = min(values), max(values)
    if high == low:
        return blocks[0] * len(values)
    return "".join(blocks[min(int((value - low) / (high - low) * (len(blocks) - 1) + 0.5), len(blocks) - 1)] for value in values)


PATH_SHARE = 0.01  # rows under this share of an agent's amortized bytes are left out


def largest_paths(report: Report, *, limit: int) -> list[tuple[int, PathNode]]:
    """The tree's rows worth reading, parents before children, with their depth: every
    row holding at least PATH_SHARE of the mean agent's amortized bytes (or of its bytes
    on accelerators), at most ``limit``, largest first among siblings (``(other)`` rows
    last)."""
    floor = PATH_SHARE * report.population.per_agent_bytes
    agents = max(report.population.agents, 1)
    device_floor = PATH_SHARE * sum(report.population.device_bytes.values()) / agents
    found: list[tuple[int, PathNode]] = []
    stack: list[tuple[int, PathNode]] = [(0, row) for row in reversed(_ordered(report.paths))]
    while stack and len(found) < limit:
        depth, row = stack.pop()
        on_device = device_floor > 0 and row.device_bytes >= device_floor
        if row.amortized_bytes < floor and row.deep_bytes < floor and not on_device:
            continue
        found.append((depth, row))
        stack.extend((depth + 1, child) for child in reversed(_ordered(row.children)))
    return found


def _ordered(rows: list[PathNode]) -> list[PathNode]:
    return sorted(rows, key=lambda row: (row.name == "(other)", -row.amortized_bytes))


def has_nested_paths(report: Report) -> bool:
    return any(row.children for row in report.paths)


def growth_rows(report: Report) -> list[AttributeGrowth]:
    """What grew, by the deepest paths when the report has them (older reports: attributes)."""
    return report.growth.paths or report.growth.attributes
