"""The terminal report (rich). ``render(report, console)`` only renders; it measures nothing."""

from __future__ import annotations

import os
from pathlib import Path

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from fa_memtool.renderers import SafeText as Text

from fa_memtool.report import Report
from fa_memtool.summary import attribute_summaries, growth_rows, has_nested_paths, largest_paths, sparkline
from fa_memtool.units import format_bytes, format_count

AGENT_ROWS = 10
# Under this RSS difference between population sizes, allocator noise dominates the fit.
RSS_RESOLUTION = 1024 * 1024
ATTRIBUTE_ROWS = 25
PATH_ROWS = 24


def _short_site(site: str | None) -> str:
    if not site:
        return ""
    if site.startswith("("):
        return site
    path, _, line = site.rpartition(":")
    try:
        shown = os.path.relpath(path)
    except ValueError:
        shown = path
    if shown.startswith(".."):
        shown = Path(path).name
    return f"{shown}:{line}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _target(value: float, limit: float) -> Text:
    style = "green" if value < limit else "red"
    return Text(f"{_ms(value)} (target < {limit:g} ms)", style=style)


def _summary(report: Report) -> Panel:
    population = report.population
    workload = report.workload
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    created = population.per_agent_bytes_at_creation
    grid.add_row(
        "per agent (amortized)",
        f"{format_bytes(population.per_agent_bytes)} after {population.measured_after_steps} steps"
        + (f"  ({format_bytes(created)} when built)" if created is not None else ""),
    )
    grid.add_row(
        "population",
        f"{format_bytes(population.distinct_bytes)} distinct = {format_bytes(population.exclusive_bytes)} exclusive"
        f" + {format_bytes(population.shared_bytes)} shared  ({population.objects:,} objects)",
    )
    if population.model_bytes is not None:
        grid.add_row("model", f"{format_bytes(population.model_bytes)} held by the model itself (the program's; charged to no agent)")
    if population.file_backed_bytes:
        grid.add_row("file-backed", format_bytes(population.file_backed_bytes) + " memory-mapped (not heap)")
    if population.device_bytes:
        on_devices = ", ".join(f"{device} {format_bytes(size)}" for device, size in sorted(population.device_bytes.items()))
        grid.add_row("on accelerators", Text(on_devices + " distinct (not in host bytes or RSS)"))
    if population.marginal_rss_per_agent is not None and report.scaling is not None:
        points = report.scaling.points
        labels = {"build": " built only", "profile": " this run"}
        sizes = ", ".join(f"{point.agents}{labels.get(point.source, '')}" for point in points)
        spread = max(point.rss_after_build for point in points) - min(point.rss_after_build for point in points)
        after_steps = format_bytes(population.marginal_rss_per_agent_after_steps or 0)
        if report.scaling.after_steps_from == "growth":
            after_steps += " after the steps (at most: plus this run's RSS growth per agent)"
        else:
            after_steps += " after the steps"
        text = (
            f"{format_bytes(population.marginal_rss_per_agent)} per agent after building, {after_steps}; "
            f"fixed {format_bytes(population.fixed_rss_bytes or 0)} (fit over N = {sizes})"
        )
        if spread < RSS_RESOLUTION:
            text += f"; below RSS resolution: the populations differ by {format_bytes(spread)} of RSS"
        grid.add_row("marginal RSS", text)
    if population.resident_array_bytes is not None and population.allocated_array_bytes:
        share = population.resident_array_bytes / population.allocated_array_bytes
        grid.add_row(
            "arrays resident",
            f"{format_bytes(population.resident_array_bytes)} of {format_bytes(population.allocated_array_bytes)} "
            f"allocated in agents' own arrays ({share:.0%}); untouched np.zeros pages are allocated, not resident",
        )
    verdict_style = "red" if report.growth.leaking else "green"
    grid.add_row("growth", Text(report.growth.verdict, style=verdict_style))
    timing = report.timing
    build = _target(timing.create_ms_per_agent, timing.target_create_ms_per_agent).append(" per agent")
    if timing.plain_create_ms_per_agent is not None:
        build.append(f" ({_ms(timing.plain_create_ms_per_agent)} in the plain scaling run)")
    grid.add_row("build", build)
    step = _target(timing.step_ms_p50, timing.target_step_ms)
    step.append(f"  p95 {_ms(timing.step_ms_p95)} per agent step")
    if timing.traced_step_ms_p50 is not None:
        step.append(f" (traced steps: p50 {_ms(timing.traced_step_ms_p50)})")
    grid.add_row("step p50", step)
    gc_style = "green" if report.gc.overhead_fraction < 0.05 else "red"
    grid.add_row(
        "GC",
        Text(
            f"{report.gc.overhead_fraction:.2%} of step time (target < 5%), "
            f"{sum(report.gc.collections)} collections {report.gc.collections}, longest pause {report.gc.max_pause_ms:.2f} ms",
            style=gc_style,
        ),
    )
    if timing.profiling_overhead_fraction is None:
        overhead = "not measured (no step completed)"
    else:
        overhead = (
            f"{timing.profiling_overhead_fraction:.1%} added to the stepping phase by sampling "
            f"(stepping phase {timing.stepping_wall_seconds:.2f} s, inside the steps {timing.stepping_seconds:.2f} s)"
        )
    grid.add_row("profiling cost", overhead)
    title = f"fa-mem profile: {workload.target}  ({population.agents} agents x {workload.steps} steps, seed {workload.seed})"
    return Panel(grid, title=Text(title), title_align="left", border_style="red" if report.error else "cyan")


def _timeline(report: Report) -> Table | None:
    samples = report.growth.samples
    if len(samples) < 2:
        return None
    table = Table(title="Over the steps", title_justify="left", show_header=True, box=None)
    table.add_column("series")
    table.add_column("first", justify="right")
    table.add_column(f"steps {samples[0].step}..{samples[-1].step}")
    table.add_column("last", justify="right")
    table.add_column("slope per step", justify="right")
    per_agent = [sample.per_agent_bytes for sample in samples]
    rss = [float(sample.rss_bytes) for sample in samples]
    table.add_row(
        "per agent",
        format_bytes(per_agent[0]),
        sparkline(per_agent),
        format_bytes(per_agent[-1]),
        format_bytes(report.growth.bytes_per_step_per_agent, signed=True),
    )
    table.add_row(
        "process RSS",
        format_bytes(rss[0]),
        sparkline(rss),
        format_bytes(rss[-1]),
        format_bytes(report.growth.rss_bytes_per_step, signed=True),
    )
    for attribute in growth_rows(report)[:5]:
        label = Text(f"  .{attribute.name}")  # Text: user names are never markup
        label.append(" bounded" if attribute.bounded else " unbounded", style="green" if attribute.bounded else "red")
        table.add_row(
            label,
            format_bytes(attribute.start_bytes),
            Text(attribute.reason),
            format_bytes(attribute.end_bytes),
            format_bytes(attribute.bytes_per_step_per_agent, signed=True),
        )
    return table


def _agents(report: Report) -> Table:
    table = Table(title="Per agent", title_justify="left")
    for column in ("agent", "type", "exclusive", "shared", "amortized"):
        table.add_column(column, justify="left" if column == "type" else "right")
    agents = report.agents
    on_devices = any(agent.device_bytes for agent in agents)
    if on_devices:
        table.add_column("on accelerators", justify="right")
    shown = agents if len(agents) <= AGENT_ROWS else agents[: AGENT_ROWS - 1] + [agents[-1]]
    for position, agent in enumerate(shown):
        if len(agents) > AGENT_ROWS and position == AGENT_ROWS - 1:
            table.add_row("...", f"{len(agents) - AGENT_ROWS} more", "", "", "", *([""] if on_devices else []))
        cells = [
            str(agent.index),
            Text(agent.type_name),
            format_bytes(agent.exclusive_bytes),
            format_bytes(agent.shared_bytes),
            format_bytes(agent.amortized_bytes),
        ]
        if on_devices:
            cells.append(Text(", ".join(f"{device} {format_bytes(size)}" for device, size in sorted(agent.device_bytes.items()))))
        table.add_row(*cells)
    return table


def _attributes(report: Report) -> Table:
    table = Table(title="Per attribute (mean per agent)", title_justify="left")
    table.add_column("attribute")
    table.add_column("type")
    table.add_column("shape / dtype")
    table.add_column("deep", justify="right")
    table.add_column("amortized", justify="right")
    table.add_column("shared", justify="right")
    table.add_column("zeros", justify="right")
    table.add_column("resident", justify="right")
    table.add_column("allocated at")
    for summary in attribute_summaries(report)[:ATTRIBUTE_ROWS]:
        shape = ""
        if summary.shape is not None:
            shape = "x".join(str(extent) for extent in summary.shape) + (f" {summary.dtype}" if summary.dtype else "")
        if summary.module_global and summary.max_sharers <= 1:
            shared = "module"
        elif summary.module_global:
            shared = f"module, {summary.max_sharers} agents"
        elif summary.max_sharers > 1:
            shared = f"{summary.max_sharers} agents"
        else:
            shared = "no"
        table.add_row(
            Text(summary.name),
            Text(summary.type_name),
            shape,
            format_bytes(summary.mean_deep_bytes),
            format_bytes(summary.mean_amortized_bytes),
            shared,
            _percent(summary.zero_fraction),
            _percent(summary.resident_fraction),
            Text(_short_site(summary.allocation_site)),
        )
    return table


def _paths(report: Report) -> Table | None:
    if not has_nested_paths(report):
        return None  # the per-attribute table already says it all
    table = Table(title="Where the memory sits (mean per agent)", title_justify="left")
    table.add_column("path")
    table.add_column("type / shape")
    table.add_column("deep", justify="right")
    table.add_column("amortized", justify="right")
    table.add_column("shared", justify="right")
    table.add_column("zeros", justify="right")
    rows = largest_paths(report, limit=PATH_ROWS)
    on_devices = any(row.device_bytes for _, row in rows)
    if on_devices:
        table.add_column("on accelerator", justify="right")
    for depth, row in rows:
        label = Text("  " * depth + (f".{row.path}" if depth == 0 else row.name))
        if row.aliases:
            label.append(f"\n{'  ' * depth}  also at " + ", ".join(f".{alias}" for alias in row.aliases), style="dim")
        kind = row.type_name
        if row.shape is not None and row.dtype == "object":
            kind = "object array " + "x".join(str(extent) for extent in row.shape)
        elif row.shape is not None:
            kind = "x".join(str(extent) for extent in row.shape) + (f" {row.dtype}" if row.dtype else "")
        if row.items != 1 and row.name != "(other)":
            kind = f"{row.items:.3g} x {kind}"
        shared = f"{row.sharers} agents" if row.sharers > 1 else ("module" if row.module_global else "no")
        table.add_row(
            label,
            Text(kind),
            format_bytes(row.deep_bytes),
            format_bytes(row.amortized_bytes),
            shared,
            _percent(row.zero_fraction),
            *([Text(f"{format_bytes(row.device_bytes)} {row.device or ''}".rstrip() if row.device_bytes else "-")] if on_devices else []),
        )
    return table


def _shared(report: Report) -> Table | None:
    if not report.shared:
        return None
    table = Table(title="Shared objects", title_justify="left")
    for column in ("reached through", "agents", "bytes", "objects", "largest"):
        table.add_column(column, justify="right" if column in ("agents", "bytes", "objects") else "left")
    for group in report.shared[:8]:
        through = ", ".join(group.attributes[:4]) + (" (module global)" if group.module_global else "")
        table.add_row(Text(through), str(group.sharers), format_bytes(group.bytes), str(group.objects), Text(group.largest))
    return table


def _sites(report: Report) -> Table | None:
    allocations = report.allocations
    if not allocations.construction and not allocations.steps:
        return None
    table = Table(title=f"Allocation sites ({allocations.backend}, {allocations.frames} frames)", title_justify="left")
    table.add_column("phase")
    table.add_column("site")
    table.add_column("bytes", justify="right")
    table.add_column("code")
    sample = allocations.traced_agents
    build_label = f"build ({format_count(sample, 'agent')} traced)" if sample else "build"
    for site in allocations.construction[:5]:
        table.add_row(build_label, Text(_short_site(site.site)), format_bytes(site.bytes), Text(site.code))
        build_label = ""
    if sample:
        label = f"per agent step ({sample} x {allocations.traced_steps} traced)"
    else:
        label = f"per step ({allocations.traced_steps} traced)"
    for site in allocations.steps[:5]:
        table.add_row(label, Text(_short_site(site.site)), format_bytes(site.bytes), Text(site.code))
        label = ""
    return table


def _suggestions(report: Report) -> Table | None:
    if not report.suggestions:
        return None
    table = Table(title="Suggestions (estimates from the measured arrays; not additive)", title_justify="left")
    table.add_column("saves / agent", justify="right")
    table.add_column("transformation")
    table.add_column("finding")
    for suggestion in report.suggestions[:10]:
        finding = suggestion.message + (f"  [{_short_site(suggestion.site)}]" if suggestion.site else "")
        if suggestion.adoption:
            finding += f"\n  adopt: {suggestion.adoption}"
        table.add_row(format_bytes(suggestion.estimated_bytes_saved_per_agent), Text(suggestion.transformation), Text(finding))
    return table


def _runs(table: Table, retention: Any) -> None:
    if not retention.runs:
        return
    table.add_row(Text(f"{len(retention.runs)} runs in one process: {retention.runs_verdict}", style="bold"))
    for run in retention.runs:
        model = " and the model" if run.model_retained else ""
        table.add_row(
            Text(
                f"  run {run.run}: RSS after release {format_bytes(run.rss_bytes)}, "
                f"{run.retained_agents} agents{model} retained ({format_bytes(run.retained_bytes)})"
            )
        )


def _retention(report: Report) -> Table | None:
    retention = report.retention
    if retention is None:
        return None
    table = Table(title="Retained after release", title_justify="left", show_header=False, box=None)
    table.add_column("what")
    _runs(table, retention)
    if retention.clean:
        model = " and the model" if retention.model_retained is False else ""
        table.add_row(Text(f"nothing retained: all {retention.agents} agents{model} were freed when the run let go of them", style="green"))
        return table
    held = [f"{len(retention.retained_agents)} of {retention.agents} agents"]
    if retention.model_retained:
        held.append("the model")
    table.add_row(
        Text(
            f"{' and '.join(held)} still alive after the run let go of them and a full collection: "
            f"{format_bytes(retention.retained_bytes)} stay reachable from them",
            style="bold red",
        )
    )
    for path in retention.paths:
        table.add_row(Text(f"  {path}"))
    if retention.untracked:
        table.add_row(Text(f"  ({retention.untracked} objects take no weak reference: looked up by id among the collector's objects)", style="dim"))
    return table


def render(report: Report, console: Console) -> None:
    """Print the whole report."""
    parts = [
        _summary(report),
        _timeline(report),
        _agents(report),
        _attributes(report),
        _paths(report),
        _shared(report),
        _sites(report),
        _suggestions(report),
        _retention(report),
    ]
    console.print(Group(*(part for part in parts if part is not None)))
    if report.allocations.memray_capture:
        console.print(Text(f"memray capture: {report.allocations.memray_capture}"))
        for command in report.allocations.memray_commands:
            console.print(Text("  render it with: ").append(command, style="bold"))
    if report.error is not None:
        console.print(Text(f"incomplete: {report.error.message}", style="bold red"))
    for note in report.notes:
        console.print(Text(f"note: {note}", style="dim"))
