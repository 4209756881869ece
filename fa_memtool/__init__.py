"""fa-mem: truthful per-agent memory profiles for populations of Python agents.

The library half of fa-mem. It never imports typer or rich, and importing it stays
cheap (numpy is imported only by the parts that need it), because the measuring
child process imports it before the user's module and its cost is part of the
fixed baseline.
"""

from __future__ import annotations

__version__ = "0.1.0"

from fa_memtool.sizing import PopulationSize, deep_size, measure_population
from fa_memtool.units import format_bytes, parse_size

__all__ = ["PopulationSize", "__version__", "apply_plan", "deep_size", "format_bytes", "measure_population", "parse_size"]


def __getattr__(name: str) -> object:
    # apply_plan loads the plugins (and numpy): only when asked for, never at import.
    if name == "apply_plan":
        from fa_memtool.plan import apply_plan

        return apply_plan
    raise AttributeError(f"module 'fa_memtool' has no attribute {name!r}")
