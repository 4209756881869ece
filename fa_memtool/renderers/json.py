"""The report as JSON (the machine-readable form ``--json`` writes)."""

from __future__ import annotations

from typing import TextIO

from fa_memtool.report import Report


def render(report: Report, out: TextIO) -> None:
    out.write(report.to_json())
    out.write("\n")
