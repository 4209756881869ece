"""``fa-mem plugins``: which transformations are installed."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fa_memtool.cli._common import stderr_console, stdout_console
from fa_memtool.plugins import installed, load_failures, plugin_manager


def plugins_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """List the installed transformation plugins.

    Plugins come from the entry-point group fa_mem; each row gives what it transforms
    and the package and version that installed it.
    """
    manager = plugin_manager()
    found = installed(manager)
    for failure in load_failures(manager):
        stderr_console().print(Text(f"warning: plugin {failure.plugin} could not be loaded and was left out: {failure.message}", style="yellow"))
    if as_json:
        json.dump([item.__dict__ for item in found], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    table = Table(title="fa-mem transformation plugins", title_justify="left")
    for column in ("name", "transforms", "package", "version"):
        table.add_column(column)
    for item in found:
        table.add_row(Text(item.name), Text(item.transforms), Text(item.distribution or "(registered by hand)"), Text(item.version))
    stdout_console().print(table)
