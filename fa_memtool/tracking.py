"""Allocation sites from tracemalloc, charged to the user's source lines.

A trace's traceback often ends inside numpy or the standard library (``np.eye`` is
Python code); the site fa-mem reports is the most recent frame in the user's own
code, so a line like ``self.A = build_likelihood(...)`` is named, not numpy's
internals. Frames inside fa-mem itself are never a site.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=4096)
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


def _ranked(grouped: dict[tuple[str, int], list[int]], *, limit: int, divide: int = 1) -> list[AllocationSite]:
    """AllocationSites from ``{(file, line): [bytes, count]}``, largest first."""
    ranked = sorted(grouped.items(), key=lambda item: item[1][0], reverse=True)
    sites = []
    for (filename, lineno), (size, count) in ranked:
        size, count = size // divide, count // divide
        if size <= 0:
            continue
        if len(sites) == limit:
            break
        if filename == NO_USER_FRAME:
            sites.append(AllocationSite(site=filename, function="", code="raise --trace-frames to see the caller", bytes=size, count=count))
            continue
        code = linecache.getline(filename, lineno).strip()
        sites.append(AllocationSite(site=f"{filename}:{lineno}", function=_function_name(filename, lineno), code=code, bytes=size, count=count))
    return sites


_OWN_FILES = (tracemalloc.__file__, _FA_MEM_DIR + "/")


class _Grouper:
    """Groups tracemalloc traces by the most recent frame in user code, in one pass.

    A trace whose most recent frame is fa-mem's or tracemalloc's own is left out (what
    ``Snapshot.filter_traces`` with exclude filters would drop, without building a
    filtered snapshot first); whether a file is the user's is decided once per file.
    """

    def __init__(self) -> None:
        self._user: dict[str, bool] = {}

    def _is_user(self, filename: str) -> bool:
        known = self._user.get(filename)
        if known is None:
            known = self._user[filename] = is_user_file(filename)
        return known

    def add(self, snapshot: tracemalloc.Snapshot, into: dict[tuple[str, int], list[int]]) -> None:
        for trace in snapshot.traces:
            frames = trace.traceback  # oldest first
            if len(frames) and frames[-1].filename.startswith(_OWN_FILES):
                continue
            key = (NO_USER_FRAME, 0)
            for frame in reversed(frames):
                if self._is_user(frame.filename):
                    key = (frame.filename, frame.lineno)
                    break
            totals = into.get(key)
            if totals is None:
                into[key] = [trace.size, 1]
            else:
                totals[0] += trace.size
                totals[1] += 1


def take_snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot()


def snapshot_sites(snapshot: tracemalloc.Snapshot, *, limit: int) -> list[AllocationSite]:
    """Sites of the memory a snapshot holds (all of it was allocated since tracing started)."""
    grouped: dict[tuple[str, int], list[int]] = {}
    _Grouper().add(snapshot, grouped)
    return _ranked(grouped, limit=limit)


class StepSites:
    """Accumulates the sites of memory retained by traced steps."""

    def __init__(self) -> None:
        self._totals: dict[tuple[str, int], list[int]] = {}
        self._grouper = _Grouper()
        self.traced_steps = 0

    def add(self, snapshot: tracemalloc.Snapshot) -> None:
        self.traced_steps += 1
        self._grouper.add(snapshot, self._totals)

    def sites(self, *, limit: int, agents: int = 1) -> list[AllocationSite]:
        """Bytes retained per traced step, by user line; per agent step with ``agents``
        (the agents stepped in each traced step)."""
        return _ranked(self._totals, limit=limit, divide=max(self.traced_steps, 1) * max(agents, 1))


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
# Objects walked, at most: the walk runs under the tracer, where each of its allocations is
# traced too; breadth first, so the shallow paths the report's tree shows come first.
PATH_SITES_WALK = 2000


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
    for path, obj, _ in walk(agent, max_depth=8, max_objects=PATH_SITES_WALK, stop=stop):
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
