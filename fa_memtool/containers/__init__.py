"""Runtime containers: drop-in, smaller replacements for what agents usually hold.

- ``LazyBeliefArray``: a mostly-zero array stored sparsely (nothing until first written),
  usable where a dense float ndarray was.
- ``CompressedHistory``: a list/deque-compatible sequence stored in lossless zlib chunks.
- ``SharedParameterPool``: one read-only copy of every distinct parameter array.
- ``lower_precision``: float64 -> float32 only where every value survives the tolerance.

Importing this package imports numpy (the containers are numpy containers).
"""

from __future__ import annotations

from fa_memtool.containers.history import CompressedHistory
from fa_memtool.containers.lazy import LazyBeliefArray
from fa_memtool.containers.precision import lower_precision
from fa_memtool.containers.shared import SharedParameterPool, get_shared_pool

__all__ = ["CompressedHistory", "LazyBeliefArray", "SharedParameterPool", "get_shared_pool", "lower_precision"]
