"""``fa-mem report``: render a saved report without running anything."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fa_memtool.cli._common import stdout_console
from fa_memtool.renderers import json as json_renderer
from fa_memtool.renderers import terminal
from fa_memtool.report import load_report


def report_command(
    path: Annotated[str, typer.Argument(help="A report written by fa-mem profile --json.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Render a saved report (from --json) without re-running the agents.

    Exit codes: 0 ok; 2 missing, corrupt or incompatible report.
    """
    report = load_report(path)
    if as_json:
        json_renderer.render(report, sys.stdout)
    else:
        terminal.render(report, stdout_console())
