"""Turning what the child measured into report sections: per-agent attribute reports
(with residency and array totals) and the timing figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fa_memtool import analysis
from fa_memtool.pathtree import PathNode, flatten
from fa_memtool.report import AgentReport, AttributeGrowth, Timing
from fa_memtool.sizing import SELF_ATTRIBUTE, PopulationSize


@dataclass
class Attribution:
    agents: list[AgentReport]
    values: dict[str, analysis.AttributeValues]  # live values by attribute name, for the suggestions
    allocated_array_bytes: int  # the agents' own (unshared) array buffers, each once
    resident_array_bytes: int | None


def attribute_agents(
    final: PopulationSize,
    per_agent_values: list[dict[str, Any]],
    attribute_sites: dict[str, tuple[str, str]],
    growth_sites: dict[str, tuple[str, str]],
) -> Attribution:
    """AgentReports from the final population size and the live attribute values."""
    attribute_values: dict[str, analysis.AttributeValues] = {}
    agent_reports: list[AgentReport] = []
    # Residency first, buffer by buffer, for every agent: the analysis below reads
    # every array, which would map untouched pages.
    arrays_of: list[dict[str, list[Any]]] = []
    owner_resident: dict[int, int | None] = {}
    host_views = analysis.HostViews()  # tensors' and JAX arrays' host memory, one base per buffer
    for named in per_agent_values:
        arrays_of.append({name: analysis.numeric_arrays(value, host_views) for name, value in named.items()})
        for arrays in arrays_of[-1].values():
            for owner in analysis.distinct_owners(arrays):
                if id(owner) not in owner_resident:
                    owner_resident[id(owner)] = analysis.resident_of([owner])
    # Population totals: each unshared buffer once, even when two attributes reach it.
    unshared_owners: dict[int, int] = {}
    for sized, named, arrays_by_name in zip(final.agents, per_agent_values, arrays_of):
        reports = []
        for size in sized.attributes:
            if size.name == SELF_ATTRIBUTE:
                reports.append(analysis.attribute_report(size, None, [], resident=None))
                continue
            value = named.get(size.name)
            arrays = arrays_by_name.get(size.name, [])
            entry = attribute_values.setdefault(size.name, analysis.AttributeValues(size.name))
            entry.values.append(value)
            entry.arrays.append(arrays)
            owners = analysis.distinct_owners(arrays)
            residents = [owner_resident.get(id(owner)) for owner in owners]
            resident = None if not owners or None in residents else sum(r or 0 for r in residents)
            report = analysis.attribute_report(size, value, arrays, resident=resident)
            site = attribute_sites.get(size.name) or growth_sites.get(size.name)
            if site is not None:
                report.allocation_site, report.allocation_code = site
            if not report.shared:
                unshared_owners.update((id(owner), int(owner.nbytes)) for owner in owners)
            reports.append(report)
        agent_reports.append(
            AgentReport(
                index=sized.index,
                type_name=sized.type_name,
                exclusive_bytes=sized.exclusive_bytes,
                shared_bytes=sized.shared_bytes,
                amortized_bytes=sized.amortized_bytes,
                file_backed_bytes=sized.file_backed_bytes,
                attributes=reports,
                device_bytes=dict(sized.device_bytes),
            )
        )
    owner_residents = [owner_resident.get(key) for key in unshared_owners]
    return Attribution(
        agents=agent_reports,
        values=attribute_values,
        allocated_array_bytes=sum(unshared_owners.values()),
        resident_array_bytes=None if None in owner_residents else sum(r or 0 for r in owner_residents),
    )


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def timing_report(
    stepped: dict[str, Any], *, traced: list[float], sampling_seconds: float, create_seconds: float, agents: int
) -> Timing:
    """Latencies and the profiling overhead from the stepping loop's record (untraced),
    and the median of the traced sample's step latencies (``traced``)."""
    latencies: list[float] = stepped["latencies"]
    stepping_seconds: float = stepped["stepping_seconds"]
    # The overhead: the stepping phase's wall time against the time inside the steps.
    overhead = (stepped["wall_seconds"] - stepping_seconds) / stepping_seconds if stepping_seconds > 0 else None
    return Timing(
        create_seconds=create_seconds,
        create_ms_per_agent=create_seconds * 1000.0 / agents,
        step_ms_p50=percentile(latencies, 0.5) * 1000.0,
        step_ms_p95=percentile(latencies, 0.95) * 1000.0,
        step_ms_max=max(latencies, default=0.0) * 1000.0,
        stepping_seconds=stepping_seconds,
        stepping_wall_seconds=stepped["wall_seconds"],
        sampling_seconds=sampling_seconds,
        traced_step_ms_p50=percentile(traced, 0.5) * 1000.0 if traced else None,
        untraced_step_ms_p50=percentile(latencies, 0.5) * 1000.0 if latencies else None,
        profiling_overhead_fraction=overhead,
    )


def _site_for(path: str, sites: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """A path's site; a ``[*]`` row takes its first item's (``history[*]`` -> ``history[0]``)."""
    found = sites.get(path)
    if found is None and "[*]" in path:
        found = sites.get(path.replace("[*]", "[0]"))
    return found


def attach_path_sites(
    rows: list[PathNode],
    growth: list[AttributeGrowth],
    *,
    built: dict[str, tuple[str, str]],
    newest: dict[str, tuple[str, str]],
) -> None:
    """The allocation site of each row of the tree, and of each growing path's newest entries."""
    for row in flatten(rows):
        site = _site_for(row.path, built) or _site_for(row.path, newest)
        if site is not None:
            row.allocation_site, row.allocation_code = site
    for item in growth:
        site = newest.get(item.name)
        if site is not None:
            item.growth_site, item.growth_code = site


def fill_zero_fractions(rows: list[PathNode], agents: list[Any]) -> None:
    """The zero fraction of every numeric-array row of the tree, over the distinct
    arrays at its path in every agent. It reads every element: call it after the
    residency of the arrays has been measured."""
    import numpy

    from fa_memtool.paths import PathError, resolve_all
    from fa_memtool.pathtree import OTHER

    for row in flatten(rows):
        if row.name == OTHER or row.dtype is None or row.dtype == "object":
            continue
        seen: set[int] = set()
        zeros = elements = 0
        for agent in agents:
            try:
                found = resolve_all(agent, row.path)
            except PathError:
                continue
            for value in found:
                if type(value) is not numpy.ndarray or value.dtype.hasobject or id(value) in seen or not value.size:
                    continue
                seen.add(id(value))
                elements += int(value.size)
                zeros += int(value.size) - int(numpy.count_nonzero(value))
        row.zero_fraction = zeros / elements if elements else None
