"""The parent side: one fresh child process per configuration, watched and bounded.

The child gets the RunSpec as a file, writes its result to a file through a rename
and reports progress on a pipe. The parent polls the child's resident memory
(children included) and stops it past the memory limit, stops it past the timeout,
and on Ctrl-C, SIGTERM or SIGHUP; none of these can take the parent down or leave a
file half-written. Whatever way the child ends, the rest of its process group and every
descendant seen while it ran are stopped with it, and the child dies with the parent
even when the parent is SIGKILLed (fa_memtool.child asks the kernel for that). The
child's own output goes through a pipe of which only a bounded tail is kept, in memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from fa_memtool.errors import (
    EXIT_HANGUP,
    EXIT_TERMINATED,
    FaMemError,
    InternalError,
    Interrupted,
    ResourceLimitExceeded,
    StepFailed,
    error_from_record,
)
from fa_memtool.report import Failure, Report, ScalingFit, ScalingPoint, from_dict
from fa_memtool.spec import RunSpec
from fa_memtool.units import format_bytes, format_count
from fa_memtool.workload import check_target

POLL_SECONDS = 0.05
# The measuring process's stdout and stderr: only this many bytes of the end are kept,
# in memory, for the error detail and --debug. Nothing of it goes to disk, so a workload
# printing gigabytes fills neither the disk nor the CLI's memory.
LOG_TAIL_BYTES = 64 * 1024
LOG_TAIL_CHARS = 4000  # of that tail, what goes into an error's detail
# The environment variable that tells the child its parent's pid (fa_memtool.child
# exits at once if its parent is already another process).
PARENT_PID_VARIABLE = "FA_MEM_PARENT_PID"
ProgressCallback = Callable[[dict[str, Any]], None]

@dataclasses.dataclass(frozen=True)
class Limits:
    max_memory: int | None = None  # bytes of RSS, the child and its children together
    timeout: float | None = None  # seconds of wall time


def default_max_memory() -> int:
    """Three quarters of physical memory: a runaway workload stops before the machine swaps."""
    return int(psutil.virtual_memory().total * 0.75)


class _Family:
    """The measuring process and every descendant seen while it ran.

    Descendants are remembered as they are seen (each poll), because once the child
    ends its orphans are reparented and no longer found through it; ``stop`` then
    stops the child's process group and all of them, a process that left the group
    (``os.setsid``, ``start_new_session=True``) included.
    """

    PRUNE_ABOVE = 1000  # remembered processes before the dead ones are dropped

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self.child = child
        self._seen: set[psutil.Process] = set()
        try:
            self._process: psutil.Process | None = psutil.Process(child.pid)
        except psutil.Error:
            self._process = None

    def rss(self) -> int:
        """The resident memory of the child and its descendants, remembering them."""
        total = 0
        if self._process is None:
            return total
        try:
            total += self._process.memory_info().rss
            descendants = self._process.children(recursive=True)
        except psutil.Error:
            return total
        self._seen.update(descendants)
        if len(self._seen) > self.PRUNE_ABOVE:
            self._seen = {process for process in self._seen if _alive(process)}
        for descendant in descendants:
            try:
                total += descendant.memory_info().rss
            except psutil.Error:
                continue
        return total

    def stop(self) -> None:
        """SIGKILL the child's process group, the child, and every descendant seen."""
        try:
            os.killpg(self.child.pid, signal.SIGKILL)  # the child leads its own group
        except (ProcessLookupError, PermissionError):
            pass
        self.child.kill()  # a no-op once it was reaped
        self.child.wait()
        remaining = {process for process in self._seen if _alive(process)}
        for process in list(remaining):  # what they started since the last poll
            try:
                remaining.update(process.children(recursive=True))
            except psutil.Error:
                continue
        for process in remaining:
            try:
                process.kill()  # psutil checks the pid was not reused
            except psutil.Error:
                continue
        self._seen.clear()


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _read_progress(descriptor: int, callback: ProgressCallback | None) -> None:
    with os.fdopen(descriptor, "r", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if callback is None:
                continue
            try:
                callback(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue


class _OutputTail(threading.Thread):
    """Reads the child's stdout and stderr from a pipe and keeps only the last
    ``limit`` bytes."""

    def __init__(self, descriptor: int, limit: int = LOG_TAIL_BYTES) -> None:
        super().__init__(name="fa-mem-child-output", daemon=True)
        self._descriptor = descriptor
        self._limit = limit
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self.total = 0  # bytes read in all

    def run(self) -> None:
        try:
            while True:
                chunk = os.read(self._descriptor, 1 << 16)
                if not chunk:
                    break
                with self._lock:
                    self.total += len(chunk)
                    self._buffer += chunk
                    if len(self._buffer) > 2 * self._limit:
                        del self._buffer[: -self._limit]
        except OSError:
            pass
        finally:
            os.close(self._descriptor)

    def text(self, chars: int = LOG_TAIL_CHARS) -> str:
        with self._lock:
            kept = bytes(self._buffer[-self._limit :])
            total = self.total
        text = kept.decode("utf-8", errors="replace")
        if total > len(kept) or len(text) > chars:
            text = text[-chars:]
            return f"[... the measuring process printed {format_bytes(total)}; its last lines:]\n{text}"
        return text


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived while a measuring child ran (raised in the main thread)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_SIGNAL_EXITS = {signal.SIGTERM: (EXIT_TERMINATED, "terminated (SIGTERM)")}
if hasattr(signal, "SIGHUP"):
    _SIGNAL_EXITS[signal.SIGHUP] = (EXIT_HANGUP, "hung up (SIGHUP)")


def _interrupted(signum: int) -> Interrupted:
    exit_code, how = _SIGNAL_EXITS[signal.Signals(signum)]
    return Interrupted(f"{how}; the measuring process was stopped and nothing was written", exit_code=exit_code)


class _StopSignals:
    """SIGTERM and SIGHUP handled like Ctrl-C while a measuring child runs.

    The handlers are installed on entry (main thread only: elsewhere Python cannot
    install them) and the previous ones restored on exit; a signal the process
    ignores (``nohup``) stays ignored. Inside ``armed()`` a signal raises
    ``_Stopped``, which the caller turns into ``Interrupted`` after stopping the
    child; outside it (starting the child, reading its result, removing the
    temporary directory) the signal is only recorded, so that work is never cut in
    half, and ``Interrupted`` is raised at the next ``armed()`` or on exit. Only the
    first signal counts: a second one while stopping is already being done is ignored.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._armed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNAL_EXITS:
                previous = signal.getsignal(signum)
                if previous == signal.SIG_IGN:
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        if kind is None and self.received is not None:
            raise _interrupted(self.received)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signum
        if self._armed:
            self._armed = False
            raise _Stopped(signum)

    @contextmanager
    def armed(self) -> Iterator[None]:
        if self.received is not None:
            raise _Stopped(self.received)
        self._armed = True
        try:
            yield
        finally:
            self._armed = False


def run_child(spec: RunSpec, *, limits: Limits, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter and return its decoded result."""
    with _StopSignals() as stop, tempfile.TemporaryDirectory(prefix="fa-mem-") as scratch:
        spec_file = Path(scratch) / "spec.json"
        result_file = Path(scratch) / "result.json"
        spec_file.write_text(spec.to_json(), encoding="utf-8")
        if stop.received is not None:
            raise _interrupted(stop.received)
        read_end, write_end = os.pipe()
        output_read, output_write = os.pipe()
        command = [sys.executable, "-m", "fa_memtool.child", str(spec_file), str(result_file), str(write_end)]
        environment = dict(os.environ)
        environment.setdefault("PYTHONHASHSEED", "0")
        environment[PARENT_PID_VARIABLE] = str(os.getpid())
        try:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output_write,
                stderr=output_write,
                pass_fds=(write_end,),
                start_new_session=True,
                env=environment,
            )
        except BaseException:
            os.close(read_end)
            os.close(output_read)
            raise
        finally:
            os.close(write_end)
            os.close(output_write)
        reader = threading.Thread(target=_read_progress, args=(read_end, progress), daemon=True)
        reader.start()
        output = _OutputTail(output_read)
        output.start()
        family = _Family(child)
        started = time.monotonic()
        peak = 0
        try:
            with stop.armed():
                while child.poll() is None:
                    rss = family.rss()
                    peak = max(peak, rss)
                    if limits.max_memory is not None and rss > limits.max_memory:
                        raise ResourceLimitExceeded(
                            f"the workload used {format_bytes(rss)}, over --max-memory {format_bytes(limits.max_memory)}; "
                            "the measuring process was stopped"
                        )
                    if limits.timeout is not None and time.monotonic() - started > limits.timeout:
                        raise ResourceLimitExceeded(
                            f"the workload ran past --timeout {limits.timeout:g} s; the measuring process was stopped"
                        )
                    time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            raise Interrupted("interrupted; the measuring process was stopped and nothing was written") from None
        except _Stopped as stopped:
            raise _interrupted(stopped.signum) from None
        finally:
            # Past a limit, on a signal, and after a normal end too: nothing the workload
            # started outlives it (nor holds the output pipe open).
            family.stop()
            reader.join(timeout=1.0)
            output.join(timeout=1.0)
        log_tail = output.text()
        if not result_file.exists():
            how = f"signal {-child.returncode}" if child.returncode < 0 else f"exit code {child.returncode}"
            raise InternalError(
                f"the measuring process ended ({how}) without a result; rerun with --debug to see its output",
                detail=log_tail,
            )
        outcome: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
    outcome["peak_rss_bytes"] = peak
    outcome["log"] = log_tail
    error = outcome.get("error")
    if error is not None and "report" not in outcome:
        raise error_from_record(error, detail=log_tail)
    return outcome


AUTO_SCALING = "auto"  # the default: the measuring process at N, one build-only process at N/2
Scaling = Sequence[int] | str | None  # sizes (each a plain process), AUTO_SCALING, or None (no fit)


def _line(points: Sequence[ScalingPoint], values: Sequence[float]) -> tuple[float, float]:
    """Least squares ``value = fixed + N x per_agent``: (fixed, per_agent)."""
    sizes = [float(point.agents) for point in points]
    mean_size = sum(sizes) / len(sizes)
    mean_value = sum(values) / len(values)
    spread = sum((size - mean_size) ** 2 for size in sizes)
    per_agent = sum((size - mean_size) * (value - mean_value) for size, value in zip(sizes, values)) / spread
    return mean_value - per_agent * mean_size, per_agent


def fit_scaling(points: Sequence[ScalingPoint]) -> ScalingFit | None:
    """Least squares ``memory = fixed + N x per_agent`` over the population sizes.

    After building, the line goes through every point. After the steps, it goes
    through the points that stepped, when they cover two sizes; otherwise (the default:
    only the measuring process stepped) the per-agent figure after the steps is the
    after-building slope plus that process's RSS growth over the steps per agent.
    """
    if len({point.agents for point in points}) < 2:
        return None
    fixed, per_agent = _line(points, [float(point.rss_after_build) for point in points])
    uss_values = [point.uss_after_build for point in points]
    uss_per_agent = _line(points, [float(value) for value in uss_values])[1] if all(v is not None for v in uss_values) else None
    stepped = [point for point in points if point.rss_after_steps is not None]
    if len({point.agents for point in stepped}) >= 2:
        fixed_steps, per_agent_steps = _line(stepped, [float(point.rss_after_steps or 0) for point in stepped])
        after_steps_from = "fit"
    elif stepped:
        point = stepped[-1]
        fixed_steps = fixed
        per_agent_steps = per_agent + ((point.rss_after_steps or 0) - point.rss_after_build) / point.agents
        after_steps_from = "growth"
    else:
        return None
    return ScalingFit(
        points=list(points),
        fixed_bytes=fixed,
        per_agent_bytes=per_agent,
        fixed_bytes_after_steps=fixed_steps,
        per_agent_bytes_after_steps=per_agent_steps,
        uss_per_agent_bytes=uss_per_agent,
        after_steps_from=after_steps_from,
    )


def default_scaling(agents: int) -> list[int]:
    return sorted({max(1, agents // 2), agents}) if agents > 1 else [1, 2]


def _measured_point(report: Report) -> ScalingPoint | None:
    """The measuring process as a point of the fit: its RSS right after building
    (before the first sample) and right after the steps."""
    phases = {phase.phase: phase for phase in report.process}
    build, steps = phases.get("build"), phases.get("steps")
    if build is None or steps is None:
        return None
    return ScalingPoint(
        agents=report.population.agents,
        rss_after_build=build.rss_bytes,
        rss_after_steps=steps.rss_bytes,
        uss_after_build=build.uss_bytes,
        uss_after_steps=steps.uss_bytes,
        stepping_seconds=report.timing.stepping_seconds,
        create_seconds=report.timing.create_seconds,
        source="profile",
    )


def profile(
    spec: RunSpec,
    *,
    limits: Limits,
    scaling: Scaling,
    progress: ProgressCallback | None = None,
) -> Report:
    """The whole profile: the measuring child, then the processes of the RSS fit.

    ``scaling`` is AUTO_SCALING (the measuring process is the point at N and one
    process at N/2 only builds, so the agents are stepped once in all), a list of
    sizes (each a plain process that builds and steps), or None (no fit).

    Returns the report; a report whose ``error`` is set (a step raised) is still
    complete as far as it went, and the caller decides how to exit.
    """
    check_target(spec.target)
    # memray's buffers live in the measuring process: its RSS is then no point of the fit.
    reuse = scaling == AUTO_SCALING and spec.backend == "tracemalloc"
    runs: list[tuple[int, bool]]  # the scaling processes: (agents, build only)
    if scaling == AUTO_SCALING:
        sizes = default_scaling(spec.agents)
        runs = [(agents, True) for agents in sizes if agents != spec.agents] if reuse else [(agents, False) for agents in sizes]
    elif isinstance(scaling, str):
        raise ValueError(f"unknown scaling {scaling!r}")
    else:
        runs = [(agents, False) for agents in scaling or ()]
    capture = spec.backend == "memray"  # a process of its own: nothing of fa-mem's sizing in it
    processes = 1 + capture + len(runs)

    def announce(number: int, name: str) -> None:
        if progress is not None:
            counted = f"process {number} of {processes}: " if processes > 1 else ""
            progress({"event": "configuration", "name": f"{counted}{name}"})

    announce(1, f"profile, {format_count(spec.agents, 'agent')}")
    outcome = run_child(spec, limits=limits, progress=progress)
    report = from_dict(Report, outcome["report"])
    report.notes.append(f"peak RSS of the measuring process: {format_bytes(outcome['peak_rss_bytes'])}")
    if report.error is not None:
        return report
    if capture:
        announce(2, f"memray capture, {format_count(spec.agents, 'agent')}")
        try:
            run_child(dataclasses.replace(spec, mode="plain", trace=False), limits=limits, progress=progress)
        except StepFailed as failure:
            report.error = Failure(kind="scaling", message=f"in the memray capture run, {failure.message}", traceback=failure.detail)
            return report
        destination = str(Path(spec.working_directory, spec.memray_output or "fa-mem-capture.bin").resolve())
        report.allocations.memray_capture = destination
        report.allocations.memray_commands = [f"memray flamegraph {destination}", f"memray summary {destination}"]
    if not scaling:
        return report
    points: list[ScalingPoint] = []
    measured = _measured_point(report) if reuse else None
    if reuse:
        if measured is None or measured.agents != spec.agents:
            # No phases to read, or not the N agents asked for (a factory that returned
            # another number, a model whose agent set changed): plain processes for every size.
            runs = [(agents, False) for agents in default_scaling(spec.agents)]
            processes = 1 + capture + len(runs)
        else:
            points.append(measured)
    for number, (agents, build_only) in enumerate(runs, start=2 + capture):
        plain_spec = dataclasses.replace(
            spec, agents=agents, mode="plain", trace=False, backend="tracemalloc", steps=0 if build_only else spec.steps
        )
        announce(number, f"scaling, {format_count(agents, 'agent')}, {'built only' if build_only else 'built and stepped'}")
        try:
            plain = run_child(plain_spec, limits=limits, progress=progress)["plain"]
        except StepFailed as failure:
            # The profile itself is whole; keep it and say which scaling run failed.
            report.error = Failure(kind="scaling", message=f"in the scaling run with {agents} agents, {failure.message}",
                                   traceback=failure.detail)
            report.notes.append("the RSS fit was skipped because a scaling run failed")
            return report
        if build_only:
            plain.update(rss_after_steps=None, uss_after_steps=None, source="build")
        points.append(ScalingPoint(**plain))
        if agents == spec.agents and not build_only:
            report.timing.plain_stepping_seconds = plain["stepping_seconds"]
            report.timing.plain_create_ms_per_agent = plain["create_seconds"] * 1000.0 / agents
    points.sort(key=lambda point: point.agents)
    report.scaling = fit_scaling(points)
    if report.scaling is not None:
        report.population.marginal_rss_per_agent = report.scaling.per_agent_bytes
        report.population.marginal_rss_per_agent_after_steps = report.scaling.per_agent_bytes_after_steps
        report.population.fixed_rss_bytes = report.scaling.fixed_bytes
    return report
