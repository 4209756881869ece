"""The optimize before/after report for the terminal (rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from fa_memtool.renderers import SafeText as Text

from fa_memtool.optimize import OptimizeResult
from fa_memtool.summary import attribute_summaries
from fa_memtool.units import format_bytes


def _ratio(before: float, after: float) -> str:
    return f"{before / after:.1f}x smaller" if after > 0 else ""


def render(result: OptimizeResult, console: Console) -> None:
    before = result.before.population
    after_report = result.after or result.before
    after = after_report.population
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(
        "per agent (amortized)",
        f"{format_bytes(before.per_agent_bytes)} -> {format_bytes(after.per_agent_bytes)}  {_ratio(before.per_agent_bytes, after.per_agent_bytes)}",
    )
    grid.add_row("population", f"{format_bytes(before.distinct_bytes)} -> {format_bytes(after.distinct_bytes)} distinct")
    if before.marginal_rss_per_agent_after_steps is not None and after.marginal_rss_per_agent_after_steps is not None:
        grid.add_row(
            "marginal RSS",
            f"{format_bytes(before.marginal_rss_per_agent_after_steps)} -> "
            f"{format_bytes(after.marginal_rss_per_agent_after_steps)} per agent after the steps",
        )
    met = Text("met" if result.target_met else "missed", style="green" if result.target_met else "red")
    grid.add_row("target", Text(f"{format_bytes(result.target_bytes)} per agent: ").append_text(met))
    style = {True: "green", False: "bold red", None: "yellow"}[result.verified]
    grid.add_row("replay", Text(result.summary, style=style))
    if result.step_time_ratio is not None:
        grid.add_row("step time", f"{result.step_time_ratio:.2f}x the original (the replays against the original)")
    console.print(Panel(grid, title=Text(f"fa-mem optimize: {result.before.workload.target}"), title_align="left", border_style="cyan"))

    if not result.trials:
        _plugin_failures(result, console)
        _missed(result, after.per_agent_bytes, console)
        return
    kept = Table(title="Transformations kept (measured)", title_justify="left")
    for column in ("plugin", "attribute", "per agent before", "after", "saved", "adopt with"):
        kept.add_column(column, justify="right" if column in ("per agent before", "after", "saved") else "left")
    for trial in result.trials:
        if trial.accepted and trial.bytes_before is not None and trial.bytes_after is not None:
            kept.add_row(
                Text(trial.plugin),
                Text(trial.attribute),
                format_bytes(trial.bytes_before),
                format_bytes(trial.bytes_after),
                format_bytes(trial.bytes_before - trial.bytes_after),
                Text(result.adoption.get(f"{trial.plugin}:{trial.attribute}", "")),
            )
    if kept.row_count:
        console.print(kept)
    rejected = [trial for trial in result.trials if not trial.accepted]
    if rejected:
        table = Table(title="Rolled back", title_justify="left")
        for column in ("plugin", "attribute", "estimated", "reason"):
            table.add_column(column)
        for trial in rejected:
            table.add_row(Text(trial.plugin), Text(trial.attribute), format_bytes(trial.estimated_bytes_saved_per_agent), Text(trial.reason))
        console.print(table)
    _plugin_failures(result, console)

    attributes = Table(title="Per attribute (mean per agent, amortized)", title_justify="left")
    for column in ("attribute", "before", "after", "type now"):
        attributes.add_column(column, justify="right" if column in ("before", "after") else "left")
    now = {summary.name: summary for summary in attribute_summaries(after_report)}
    for summary in attribute_summaries(result.before)[:15]:
        current = now.get(summary.name)
        attributes.add_row(
            Text(summary.name),
            format_bytes(summary.mean_amortized_bytes),
            format_bytes(current.mean_amortized_bytes) if current else "-",
            Text(current.type_name if current else ""),
        )
    console.print(Group(attributes))
    _missed(result, after.per_agent_bytes, console)


def _plugin_failures(result: OptimizeResult, console: Console) -> None:
    for failure in result.plugin_failures:
        stage = {"analyse": "analysing", "apply": "applying", "load": "loading"}.get(failure.stage, failure.stage)
        console.print(Text(f"plugin {failure.plugin} failed while {stage} and was skipped: {failure.message}", style="yellow"))


def _missed(result: OptimizeResult, per_agent: float, console: Console) -> None:
    if result.target_met:
        return
    rejected = any(not trial.accepted for trial in result.trials)
    why = (
        "no remaining candidate passed replay with a measured saving (see Rolled back above)"
        if rejected
        else "no candidate is left to try"
    )
    console.print(Text(f"target missed by {format_bytes(per_agent - result.target_bytes)} per agent: {why}", style="red"))
