"""The user documentation keeps up with the code.

- Every field of every dataclass reachable from ``fa_memtool.report.Report`` (including
  ``fa_memtool.sizing.SharedGroup``) has a row in docs/report-schema.md, in the table under
  the heading named after its dataclass, and that table documents no field that does not exist.
- Every option of ``fa-mem profile`` (and of ``fa-mem report``) is mentioned in docs/profile.md.
- Every exit code fa-mem profile can return is in the exit-code table of docs/profile.md.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

import fa_memtool.cli
from fa_memtool import errors
from fa_memtool.report import Report
from fa_memtool.errors import InternalError
from fa_memtool.sizing import SharedGroup

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA_DOC = DOCS / "report-schema.md"
PROFILE_DOC = DOCS / "profile.md"


def _dataclasses_in(hint: typing.Any) -> Iterator[type]:
    """Dataclasses named by a type hint, through ``list[...]``, ``X | None`` and the like."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        yield hint
    for argument in typing.get_args(hint):
        yield from _dataclasses_in(argument)


def reachable_dataclasses(root: type) -> dict[str, type]:
    """Every dataclass reachable from ``root`` through its fields' type hints, by name."""
    found: dict[str, type] = {}
    pending = [root]
    while pending:
        cls = pending.pop()
        if cls.__name__ in found:
            assert found[cls.__name__] is cls, f"two dataclasses named {cls.__name__}"
            continue
        found[cls.__name__] = cls
        hints = typing.get_type_hints(cls)
        for item in dataclasses.fields(cls):
            pending.extend(_dataclasses_in(hints[item.name]))
    return found


def schema_sections(text: str) -> dict[str, str]:
    """Markdown sections keyed by heading text (``## Name``, ``### `Name` ``, ...)."""
    sections: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        heading = re.match(r"^#{1,6}\s+`?([^`\n]+?)`?\s*$", line)
        if heading:
            if current is not None:
                sections[current] = "\n".join(lines)
            current, lines = heading.group(1).strip(), []
        else:
            lines.append(line)
    if current is not None:
        sections[current] = "\n".join(lines)
    return sections


def documented_fields(section: str) -> list[str]:
    """Backticked names in the first column of the section's table rows."""
    return re.findall(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|", section, flags=re.MULTILINE)


DATACLASSES = reachable_dataclasses(Report)


def test_walk_reaches_every_part_of_the_report() -> None:
    # Guards the walk itself: these are nested two and three levels down.
    for name in ("SharedGroup", "AttributeReport", "ScalingPoint", "AllocationSite", "TimelineSample"):
        assert name in DATACLASSES
    assert DATACLASSES["SharedGroup"] is SharedGroup


def test_every_report_field_is_in_backticks_in_the_schema_doc() -> None:
    text = SCHEMA_DOC.read_text(encoding="utf-8")
    missing = [
        f"{name}.{item.name}"
        for name, cls in sorted(DATACLASSES.items())
        for item in dataclasses.fields(cls)
        if f"`{item.name}`" not in text
    ]
    assert not missing, f"fields not documented in {SCHEMA_DOC.name}: {missing}"


@pytest.mark.parametrize("name", sorted(DATACLASSES))
def test_each_dataclass_has_its_own_table_matching_its_fields(name: str) -> None:
    sections = schema_sections(SCHEMA_DOC.read_text(encoding="utf-8"))
    assert name in sections, f"{SCHEMA_DOC.name} has no heading '{name}'"
    actual = [item.name for item in dataclasses.fields(DATACLASSES[name])]
    documented = documented_fields(sections[name])
    assert sorted(set(documented)) == sorted(actual), (
        f"table under '{name}' documents {sorted(set(documented) - set(actual))} that do not exist "
        f"and misses {sorted(set(actual) - set(documented))}"
    )
    assert len(documented) == len(set(documented)), f"a field of {name} is documented twice"


def _options(command_name: str) -> list[str]:
    group = typer.main.get_command(fa_memtool.cli.app)
    command = group.commands[command_name]  # type: ignore[attr-defined]
    found: list[str] = []
    for parameter in command.params:
        # param_type_name rather than isinstance(click.Option): newer typer vendors click.
        if parameter.param_type_name == "option":
            found.extend(parameter.opts)
            found.extend(parameter.secondary_opts)
    return found


def _mentions(text: str, option: str) -> bool:
    # "--trace" must be mentioned on its own, not only as part of "--trace-frames".
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


@pytest.mark.parametrize("command_name", ["profile", "report"])
def test_every_cli_option_is_in_the_profile_guide(command_name: str) -> None:
    options = _options(command_name)
    assert options, f"found no options for fa-mem {command_name}"
    text = PROFILE_DOC.read_text(encoding="utf-8")
    missing = [option for option in options if not _mentions(text, option)]
    assert not missing, f"options of fa-mem {command_name} not mentioned in {PROFILE_DOC.name}: {missing}"


def test_profile_options_include_the_documented_essentials() -> None:
    # Guards the option walk: secondary names of boolean flags must be collected too.
    options = set(_options("profile"))
    assert {"--agents", "-n", "--trace", "--no-trace", "--progress", "--no-progress", "--json"} <= options


def test_every_exit_code_is_in_the_exit_code_table() -> None:
    text = PROFILE_DOC.read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\|\s*`?(\d+)`?\s*\|", text, flags=re.MULTILINE)}
    codes = {
        errors.EXIT_OK,
        errors.EXIT_USAGE,
        errors.EXIT_WORKLOAD_FAILED,
        errors.EXIT_RESOURCE_LIMIT,
        errors.EXIT_INTERRUPTED,
        errors.EXIT_INTERNAL,
        errors.EXIT_OUTPUT,
        errors.EXIT_HANGUP,
        errors.EXIT_TERMINATED,
        InternalError.exit_code,
    }
    assert codes <= documented, f"exit codes missing from the table in {PROFILE_DOC.name}: {sorted(codes - documented)}"
