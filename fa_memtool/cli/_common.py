"""What every subcommand shares: consoles, the progress bar, and option parsing helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fa_memtool.errors import UsageError
from fa_memtool.units import format_count, parse_size


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


# Progress events come from the measuring child over a pipe that the workload's own code
# can write to as well (the descriptor is in the child's argv): every event is checked
# before it reaches rich, whose refresh thread would die on a total that is text, a
# negative count or a name with broken markup. A bad event is ignored and counted.
MAX_PROGRESS_COUNT = 10**12  # more agents, steps or trials than this is no real event
MAX_PROGRESS_TEXT = 80
PROGRESS_EVENTS = ("configuration", "phase", "build", "sample", "steps", "analyse", "trials")


class BadProgressEvent(ValueError):
    """An event that is not one the measuring child sends."""


def _progress_count(event: dict[str, Any], key: str, *, default: Any = None, required: bool = False) -> Any:
    """A count from an event: a whole, non-negative, not absurdly large number (not a bool)."""
    if key not in event or event[key] is None:
        if required:
            raise BadProgressEvent(f"{key} is missing")
        return default
    value = event[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadProgressEvent(f"{key} is not a number")
    if isinstance(value, float) and not value.is_integer():  # also NaN and infinities
        raise BadProgressEvent(f"{key} is not a whole number")
    if not 0 <= value <= MAX_PROGRESS_COUNT:
        raise BadProgressEvent(f"{key} is out of range")
    return int(value)


def _progress_text(event: dict[str, Any], key: str, *, default: str = "", required: bool = False) -> str:
    """A name from an event, safe to show: printable, short, with rich markup escaped."""
    if key not in event:
        if required:
            raise BadProgressEvent(f"{key} is missing")
        return default
    value = event[key]
    if not isinstance(value, str):
        raise BadProgressEvent(f"{key} is not a string")
    text = "".join(char if char.isprintable() else " " for char in value)
    if len(text) > MAX_PROGRESS_TEXT:
        text = text[: MAX_PROGRESS_TEXT - 3] + "..."
    return escape(text)


class ProgressConsumer:
    """Receives the child's progress events (on the pipe's reader thread, and the
    parent's own ``configuration`` events) and drives one rich Progress. An event that
    is not one fa-mem sends (not an object, an unknown kind, a missing or mistyped
    field, a negative or huge count) is ignored and counted in ``ignored``; nothing an
    event holds can raise here or in rich's refresh thread."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.configuration = ""
        self.task: Any = None
        self.ignored = 0

    def __call__(self, event: Any) -> None:
        try:
            self._update(event)
        except Exception:  # noqa: BLE001 - BadProgressEvent, or anything else: a display never ends a run
            self.ignored += 1

    def _update(self, event: Any) -> None:
        if not isinstance(event, dict):
            raise BadProgressEvent("not an object")
        kind = event.get("event")
        if not isinstance(kind, str) or kind not in PROGRESS_EVENTS:
            raise BadProgressEvent("unknown event")
        if kind == "configuration":
            name = _progress_text(event, "name")
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.configuration = name
            self.task = self.progress.add_task(f"{name}: starting", total=None)
            return
        # Every field is checked before the display changes: a bad event changes nothing.
        prefix = self.configuration
        if kind == "phase":
            update: dict[str, Any] = {"description": f"{prefix}: {_progress_text(event, 'name', required=True)} done"}
        elif kind == "build":
            total = _progress_count(event, "total", required=True)
            update = {"description": f"{prefix}: building {format_count(total, 'agent')}", "total": None}
        elif kind == "sample":
            update = {"description": f"{prefix}: sizing the population"}
        elif kind == "steps":
            update = {
                "description": f"{prefix}: stepping",
                "completed": _progress_count(event, "done", default=0),
                "total": _progress_count(event, "total"),
            }
        elif kind == "analyse":
            update = {"description": f"{prefix}: analysing arrays", "total": None}
        elif "stage" in event and not isinstance(event["stage"], str):
            raise BadProgressEvent("stage is not a string")
        elif event.get("stage") == "analyse":
            update = {"description": f"{prefix}: stepping and asking the plugins", "total": None}
        elif event.get("stage") == "record":
            update = {"description": f"{prefix}: recording {_progress_text(event, 'name')}"}  # the count stays
        elif event.get("stage") == "sensitivity":
            update = {"description": f"{prefix}: sensitivity of {_progress_text(event, 'name')}"}
        else:
            update = {
                "description": f"{prefix}: replaying {_progress_text(event, 'name')}",
                "completed": _progress_count(event, "done", default=0),
                "total": _progress_count(event, "total"),
            }
        if self.task is None:
            return
        self.progress.update(self.task, **update)


@contextmanager
def child_progress(enabled: bool) -> Iterator[Any]:
    """A progress bar fed by the child's events; a no-op callback when disabled.

    Malformed events (see ProgressConsumer) are ignored; when there were any and the
    run ended normally, one note line on stderr says how many, after the bar is gone."""
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
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    consumer = ProgressConsumer(progress)
    with progress:
        yield consumer
    # Only after a run that ended normally: a failure stays one error line on stderr.
    if consumer.ignored:
        console.print(
            f"note: ignored {consumer.ignored} malformed progress event(s) from the measuring process "
            "(something in the workload writes to fa-mem's progress pipe)",
            markup=False,
            highlight=False,
        )
