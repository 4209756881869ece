"""Byte sizes: one parser and one formatter for the CLI, the gate and the pytest plugin."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
    "t": 1024**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:e([+-]?[0-9]+))?\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """Parse "24 MB", "10MB", "1.5 GiB", "512k" or "1048576" into bytes.

    Decimal units (kB, MB, GB) are powers of 1000, binary units (KiB, MiB, GiB and the
    single letters k, m, g) powers of 1024, as ``ls -h`` and ``free`` use them.
    Raises ValueError with a message that names the accepted units.
    """
    match = _SIZE_RE.match(text)
    unit = match.group(3).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"cannot read {text!r} as a size; use a number with an optional unit "
            "(B, kB, MB, GB, KiB, MiB, GiB), e.g. '24 MB' or '1.5GiB'"
        )
    if match.group(2) and abs(int(match.group(2))) > 400:  # beyond any float: refuse before computing
        raise ValueError(f"{text!r} is too large to be a size")
    try:
        number = float(match.group(1)) * (10 ** int(match.group(2)) if match.group(2) else 1)
        return int(round(number * _UNITS[unit]))
    except (OverflowError, ValueError):
        raise ValueError(f"{text!r} is too large to be a size") from None


def format_count(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless it is one: "1 agent", "3 agents"."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_bytes(count: float, *, signed: bool = False) -> str:
    """Format bytes with decimal units and three significant figures ("34.5 MB").

    Decimal units match how sizes are usually written in budgets ("10MB"); the
    parser reads both decimal and binary units.
    """
    count = float(count)
    if abs(count) < 999.5:
        count = round(count)
    sign = "+" if signed and count > 0 else ""
    if count < 0:
        sign, count = "-", -count
    if count < 999.5:
        return f"{sign}{count:.0f} B"
    for unit in ("kB", "MB", "GB", "TB"):
        count /= 1000
        if count < 999.5 or unit == "TB":
            return f"{sign}{count:.3g} {unit}" if count < 100 else f"{sign}{count:.0f} {unit}"
    raise AssertionError("unreachable")
