"""Garbage-collector pauses, measured with ``gc.callbacks`` (never by forcing a collection)."""

from __future__ import annotations

import gc
import time
from typing import Any


class GCMonitor:
    """Counts collections per generation and times every pause while installed."""

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.pauses: list[float] = []
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        self.pauses.append(time.perf_counter() - self._started)
        self._started = None
        generation = int(info.get("generation", 0))
        if 0 <= generation < len(self.collections):
            self.collections[generation] += 1

    def __enter__(self) -> GCMonitor:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)

    @property
    def pause_seconds(self) -> float:
        return sum(self.pauses)

    @property
    def max_pause_ms(self) -> float:
        return max(self.pauses, default=0.0) * 1000.0
