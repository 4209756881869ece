"""Gate results for people: a terminal table (rich) and a Markdown summary for CI pages."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.table import Table
from fa_memtool.renderers import SafeText as Text

from fa_memtool.gate import Check, GateResult, describe_change, describe_value
from fa_memtool.text import visible

IMPROVEMENTS_SHOWN = 10


def _rows(checks: list[Check]) -> list[tuple[str, str, str, str, str]]:
    return [
        (
            check.label,
            describe_value(check.kind, check.baseline),
            describe_value(check.kind, check.now),
            describe_change(check),
            describe_value(check.kind, check.limit),
        )
        for check in checks
    ]


def render(result: GateResult, console: Console) -> None:
    header = ("metric", "baseline", "now", "change", "limit")
    if result.regressions:
        table = Table(title=f"fa-mem gate: {len(result.regressions)} regression(s)", title_justify="left", title_style="bold red")
        for column in header:
            table.add_column(column, justify="left" if column == "metric" else "right")
        for row in _rows(result.regressions):
            table.add_row(Text(row[0]), *row[1:])
        console.print(table)
    improvements = result.improvements
    if improvements:
        table = Table(title=f"Improvements ({len(improvements)})", title_justify="left", title_style="green")
        for column in header[:4]:
            table.add_column(column, justify="left" if column == "metric" else "right")
        for row in _rows(improvements[:IMPROVEMENTS_SHOWN]):
            table.add_row(Text(row[0]), *row[1:4])
        console.print(table)
    checked = len(result.checks)
    if result.passed:
        console.print(Text(f"fa-mem gate passed: {checked} checks within their limits", style="bold green"))
    else:
        console.print(Text(f"fa-mem gate failed: {len(result.regressions)} of {checked} checks over their limits", style="bold red"))
    if improvements and result.update_command:
        console.print(Text(f"memory went down; record it as the new baseline with:\n  {result.update_command}"))


def _markdown(cell: str) -> str:
    """A table cell: control characters shown, pipes and backticks escaped."""
    return visible(cell).replace("|", "\\|").replace("`", "\\`")


def render_markdown(result: GateResult, out: TextIO) -> None:
    verdict = "passed" if result.passed else f"failed: {len(result.regressions)} regression(s)"
    out.write(f"### fa-mem memory gate {verdict}\n\n")
    fingerprint = result.fingerprint
    out.write(
        f"Workload `{_markdown(fingerprint.module)}` ({_markdown(fingerprint.factory)}), {fingerprint.agents} agents x "
        f"{fingerprint.steps} steps, seed {fingerprint.seed}; {len(result.checks)} checks.\n\n"
    )
    if result.regressions:
        out.write("| metric | baseline | now | change | limit |\n|---|---:|---:|---:|---:|\n")
        for row in _rows(result.regressions):
            out.write("| " + " | ".join(_markdown(cell) for cell in row) + " |\n")
        out.write("\n")
    if result.improvements:
        out.write("<details><summary>Improvements</summary>\n\n| metric | baseline | now | change |\n|---|---:|---:|---:|\n")
        for row in _rows(result.improvements[:IMPROVEMENTS_SHOWN]):
            out.write("| " + " | ".join(_markdown(cell) for cell in row[:4]) + " |\n")
        out.write("\n</details>\n\n")
        if result.update_command:
            out.write(f"Update the baseline with `{result.update_command}`.\n")
