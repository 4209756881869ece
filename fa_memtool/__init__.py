"""fa-mem: truthful per-agent memory profiles for populations of Python agents.

The library half of fa-mem. It never imports typer or rich, and importing it stays
cheap (numpy is imported only by the parts that need it), because the measuring
child process imports it before the user's module and its cost is part of the
fixed baseline.
"""

from __future__ import annotations

__version__ = "0.1.0"

from fa_memtool.pathtree import PathNode
from fa_memtool.sizing import PopulationSize, deep_size, measure_population
from fa_memtool.units import format_bytes, parse_size

__all__ = [
    "CompressedHistory",
    "LazyBeliefArray",
    "PathNode",
    "PopulationSize",
    "ReleaseWatch",
    "SharedParameterPool",
    "__version__",
    "apply_plan",
    "check_released",
    "deep_size",
    "format_bytes",
    "get_agent_optimizer",
    "get_shared_pool",
    "measure_population",
    "parse_size",
]

# Loaded on first use: these import numpy (and pluggy), which plain `import fa_memtool`
# must not, since the measuring process imports fa_memtool before the user's module.
_LAZY = {
    "apply_plan": "fa_memtool.plan",
    "get_agent_optimizer": "fa_memtool.plan",
    "LazyBeliefArray": "fa_memtool.containers",
    "CompressedHistory": "fa_memtool.containers",
    "SharedParameterPool": "fa_memtool.containers",
    "get_shared_pool": "fa_memtool.containers",
    "check_released": "fa_memtool.retention",
    "ReleaseWatch": "fa_memtool.retention",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fa_memtool' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
