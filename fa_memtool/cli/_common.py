"""What every subcommand shares: consoles, the progress bar, and option parsing helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fa_memtool.errors import UsageError
from fa_memtool.units import parse_size


def stdout_console() -> Console:
    # rich honours NO_COLOR and a non-terminal stdout on its own.
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def size_option(value: str | None, flag: str) -> int | None:
    if value is None:
        return None
    try:
        size = parse_size(value)
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from None
    if size <= 0:
        raise UsageError(f"{flag} must be more than 0 bytes (got {value!r})")
    return size


def int_list_option(value: str | None, flag: str) -> list[int] | None:
    if value is None or value.strip().lower() in ("", "none", "off", "0"):
        return None
    try:
        numbers = sorted({int(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"{flag} takes population sizes separated by commas, e.g. 1,10,50 (got {value!r})") from None
    if not numbers or numbers[0] < 1:
        raise UsageError(f"{flag} sizes must be 1 or more (got {value!r})")
    return numbers


@contextmanager
def child_progress(enabled: bool) -> Iterator[Any]:
    """A progress bar fed by the child's events; a no-op callback when disabled."""
    if not enabled or os.environ.get("FA_MEM_NO_PROGRESS"):
        yield None
        return
    console = stderr_console()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    state: dict[str, Any] = {"configuration": "", "task": None}

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "configuration":
            state["configuration"] = event.get("name", "")
            if state["task"] is not None:
                progress.remove_task(state["task"])
            state["task"] = progress.add_task(f"{state['configuration']}: starting", total=None)
            return
        task = state["task"]
        if task is None:
            return
        prefix = state["configuration"]
        if kind == "phase":
            progress.update(task, description=f"{prefix}: {event.get('name')} done")
        elif kind == "build":
            progress.update(task, description=f"{prefix}: building {event.get('total')} agents", total=None)
        elif kind == "sample":
            progress.update(task, description=f"{prefix}: sizing the population")
        elif kind == "steps":
            progress.update(
                task, description=f"{prefix}: stepping", completed=event.get("done", 0), total=event.get("total")
            )
        elif kind == "analyse":
            progress.update(task, description=f"{prefix}: analysing arrays", total=None)
        elif kind == "trials":
            if event.get("stage") == "analyse":
                progress.update(task, description=f"{prefix}: stepping and asking the plugins", total=None)
            else:
                progress.update(
                    task,
                    description=f"{prefix}: replaying {event.get('name', '')}",
                    completed=event.get("done", 0),
                    total=event.get("total"),
                )

    with progress:
        yield on_event
