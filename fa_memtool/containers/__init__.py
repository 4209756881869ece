"""Runtime containers: drop-in, smaller replacements for what agents usually hold.

- ``LazyBeliefArray``: a mostly-zero array stored sparsely (nothing until first written),
  usable where a dense float ndarray was.
- ``CompressedHistory``: a list/deque-compatible sequence stored in lossless zlib chunks.
- ``SharedParameterPool``: one read-only copy of every distinct parameter array (and of
  every distinct plain-Python structure, as ``FrozenDict`` / ``FrozenList``).
- ``lower_precision``: float64 -> float32 only where every value survives the tolerance.
- ``bounded`` and ``BoundedCache``: a history that keeps its last N entries, a dict that
  keeps its N most recently used entries.

Importing this package imports numpy (the containers are numpy containers).
"""

from __future__ import annotations

from fa_memtool.containers.bounded import BoundedCache, bounded
from fa_memtool.containers.frozen import FrozenDict, FrozenList, freeze
from fa_memtool.containers.history import CompressedHistory
from fa_memtool.containers.lazy import LazyBeliefArray
from fa_memtool.containers.precision import lower_precision
from fa_memtool.containers.shared import SharedParameterPool, get_shared_pool

__all__ = [
    "BoundedCache",
    "CompressedHistory",
    "FrozenDict",
    "FrozenList",
    "LazyBeliefArray",
    "SharedParameterPool",
    "bounded",
    "freeze",
    "get_shared_pool",
    "lower_precision",
]
