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

__all__ = ["PopulationSize", "__version__", "deep_size", "format_bytes", "measure_population", "parse_size"]
