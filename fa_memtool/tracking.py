"""Allocation sites from tracemalloc, charged to the user's source lines.

A trace's traceback often ends inside numpy or the standard library (``np.eye`` is
Python code); the site fa-mem reports is the most recent frame in the user's own
code, so a line like ``self.A = build_likelihood(...)`` is named, not numpy's
internals. Frames inside fa-mem itself are never a site.
"""

from __future__ import annotations

import linecache
import sysconfig
import tracemalloc
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from fa_memtool.report import AllocationSite

_FA_MEM_DIR = str(Path(__file__).resolve().parent)


def _library_directories() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {_FA_MEM_DIR}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if key in paths:
            found.add(str(Path(paths[key]).resolve()))
    return tuple(sorted(found))


_LIBRARY_DIRS = _library_directories()


def is_user_file(filename: str) -> bool:
    if filename.startswith("<"):
        return False
    return not filename.startswith(_LIBRARY_DIRS) and not str(Path(filename).resolve()).startswith(_LIBRARY_DIRS)


NO_USER_FRAME = "(libraries or imports; no user frame within the traced frames)"


def user_frame(traceback: tracemalloc.Traceback | None) -> tracemalloc.Frame | None:
    """The most recent frame in user code, or None when every frame is a library's."""
    if traceback is None or len(traceback) == 0:
        return None
    # Traceback frames are sorted from the oldest to the most recent.
    for frame in reversed(traceback):
        if is_user_file(frame.filename):
            return frame
    return None


def describe_frame(frame: tracemalloc.Frame) -> tuple[str, str]:
    """``file:line`` and the stripped source line."""
    return f"{frame.filename}:{frame.lineno}", linecache.getline(frame.filename, frame.lineno).strip()


def _function_name(filename: str, lineno: int) -> str:
    """The enclosing ``def`` of a line, found by reading upwards in the source."""
    for number in range(lineno, 0, -1):
        text = linecache.getline(filename, number).strip()
        if text.startswith(("def ", "async def ")):
            return text.split("def ", 1)[1].split("(", 1)[0]
        if text.startswith("class "):
            break
    return "<module>"


def sites_from_statistics(
    statistics: Iterable[tuple[tracemalloc.Traceback, int, int]], *, limit: int
) -> list[AllocationSite]:
    """Group ``(traceback, bytes, count)`` by user frame, largest first."""
    grouped: dict[tuple[str, int], list[int]] = {}
    for traceback, size, count in statistics:
        if size <= 0:
            continue
        frame = user_frame(traceback)
        key = (frame.filename, frame.lineno) if frame is not None else (NO_USER_FRAME, 0)
        totals = grouped.setdefault(key, [0, 0])
        totals[0] += size
        totals[1] += max(count, 0)
    ranked = sorted(grouped.items(), key=lambda item: item[1][0], reverse=True)[:limit]
    sites = []
    for (filename, lineno), (size, count) in ranked:
        if filename == NO_USER_FRAME:
            sites.append(AllocationSite(site=filename, function="", code="raise --trace-frames to see the caller", bytes=size, count=count))
            continue
        site = f"{filename}:{lineno}"
        code = linecache.getline(filename, lineno).strip()
        sites.append(AllocationSite(site=site, function=_function_name(filename, lineno), code=code, bytes=size, count=count))
    return sites


def _own_filters() -> list[tracemalloc.Filter]:
    return [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, f"{_FA_MEM_DIR}/*"),
    ]


def take_snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(_own_filters())


def growth_between(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, *, limit: int) -> list[AllocationSite]:
    """Sites of memory allocated between two snapshots and still alive at the second."""
    differences = after.compare_to(before, "traceback")
    return sites_from_statistics(((d.traceback, d.size_diff, d.count_diff) for d in differences), limit=limit)


class StepSites:
    """Accumulates the sites of memory retained by traced steps."""

    def __init__(self) -> None:
        self._totals: dict[tracemalloc.Traceback, list[int]] = {}
        self.traced_steps = 0

    def add(self, snapshot: tracemalloc.Snapshot) -> None:
        self.traced_steps += 1
        for statistic in snapshot.statistics("traceback"):
            totals = self._totals.setdefault(statistic.traceback, [0, 0])
            totals[0] += statistic.size
            totals[1] += statistic.count

    def sites(self, *, limit: int, agents: int = 1) -> list[AllocationSite]:
        """Bytes retained per traced step, by user line; per agent step with ``agents``
        (the agents stepped in each traced step)."""
        steps = max(self.traced_steps, 1) * max(agents, 1)
        return sites_from_statistics(
            ((traceback, size // steps, count // steps) for traceback, (size, count) in self._totals.items()),
            limit=limit,
        )


def object_site(candidates: Iterable[object]) -> tuple[str, str] | None:
    """The user line that allocated the first candidate tracemalloc knows about."""
    if not tracemalloc.is_tracing():
        return None
    for candidate in candidates:
        frame = user_frame(tracemalloc.get_object_traceback(candidate))
        if frame is not None:
            return describe_frame(frame)
    return None


PATH_SITE_MIN_BYTES = 1024  # arrays smaller than this are not worth a site of their own
PATH_SITES_MAX = 400  # objects of one agent looked up, at most


def path_sites(agent: object, *, stop: frozenset[int], newest: bool = False) -> dict[str, tuple[str, str]]:
    """The user line that allocated the objects at each path of one agent (arrays of
    at least PATH_SITE_MIN_BYTES, their buffers' owners, and containers), while
    tracemalloc traces. With ``newest``, a container's site is its newest entry's: the
    line that makes a growing history grow. A ``[*]`` row finds its site at its first
    item's path (``history[0]``), which is why item paths are kept."""
    if not tracemalloc.is_tracing():
        return {}
    import numpy

    from fa_memtool.paths import walk

    found: dict[str, tuple[str, str]] = {}
    looked = 0
    for path, obj, _ in walk(agent, max_depth=8, max_objects=20_000, stop=stop):
        if looked >= PATH_SITES_MAX:
            break
        candidates: list[object]
        if isinstance(obj, numpy.ndarray):
            owner = obj
            while isinstance(owner.base, numpy.ndarray):
                owner = owner.base
            if owner.nbytes < PATH_SITE_MIN_BYTES and obj.dtype != object:
                continue
            candidates = [owner, obj]
        elif isinstance(obj, (list, dict, deque, set, tuple)):
            if newest and isinstance(obj, (list, deque)) and obj:
                candidates = [obj[-1], obj]
            elif newest and isinstance(obj, dict) and obj:
                candidates = [next(reversed(obj.values())), obj]
            else:
                candidates = [obj]
        elif isinstance(obj, (str, bytes, int, float, complex, bool)):
            continue
        else:
            candidates = [obj]  # an object of its own: the line that created it
        looked += 1
        site = object_site(candidates)
        if site is not None:
            found[path] = site
    return found
