"""The parent side: one fresh child process per configuration, watched and bounded.

The child gets the RunSpec as a file, writes its result to a file through a rename
and reports progress on a pipe. The parent polls the child's resident memory
(children included) and stops it past the memory limit, stops it past the timeout,
and on Ctrl-C; none of these can take the parent down or leave a file half-written.
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from fa_memtool.errors import (
    FaMemError,
    InternalError,
    Interrupted,
    ResourceLimitExceeded,
    StepFailed,
    UsageError,
    WorkloadError,
)
from fa_memtool.report import Failure, Report, ScalingFit, ScalingPoint, from_dict
from fa_memtool.spec import RunSpec
from fa_memtool.units import format_bytes
from fa_memtool.workload import check_target

POLL_SECONDS = 0.05
ProgressCallback = Callable[[dict[str, Any]], None]

_ERROR_CLASSES: dict[str, type[FaMemError]] = {
    "UsageError": UsageError,
    "WorkloadError": WorkloadError,
    "ResourceLimitExceeded": ResourceLimitExceeded,
    "StepFailed": StepFailed,
}


@dataclasses.dataclass(frozen=True)
class Limits:
    max_memory: int | None = None  # bytes of RSS, the child and its children together
    timeout: float | None = None  # seconds of wall time


def default_max_memory() -> int:
    """Three quarters of physical memory: a runaway workload stops before the machine swaps."""
    return int(psutil.virtual_memory().total * 0.75)


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        total += process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return total


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        child.kill()
    child.wait()


def _read_progress(descriptor: int, callback: ProgressCallback | None) -> None:
    with os.fdopen(descriptor, "r", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            if callback is None:
                continue
            try:
                callback(json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue


def run_child(spec: RunSpec, *, limits: Limits, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter and return its decoded result."""
    with tempfile.TemporaryDirectory(prefix="fa-mem-") as scratch:
        spec_file = Path(scratch) / "spec.json"
        result_file = Path(scratch) / "result.json"
        log_file = Path(scratch) / "child.log"
        spec_file.write_text(spec.to_json(), encoding="utf-8")
        read_end, write_end = os.pipe()
        command = [sys.executable, "-m", "fa_memtool.child", str(spec_file), str(result_file), str(write_end)]
        environment = dict(os.environ)
        environment.setdefault("PYTHONHASHSEED", "0")
        with open(log_file, "wb") as log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_end,),
                start_new_session=True,
                env=environment,
            )
        os.close(write_end)
        reader = threading.Thread(target=_read_progress, args=(read_end, progress), daemon=True)
        reader.start()
        watched = psutil.Process(child.pid)
        started = time.monotonic()
        peak = 0
        try:
            while child.poll() is None:
                rss = _tree_rss(watched)
                peak = max(peak, rss)
                if limits.max_memory is not None and rss > limits.max_memory:
                    _kill_group(child)
                    raise ResourceLimitExceeded(
                        f"the workload used {format_bytes(rss)}, over --max-memory {format_bytes(limits.max_memory)}; "
                        "the measuring process was stopped"
                    )
                if limits.timeout is not None and time.monotonic() - started > limits.timeout:
                    _kill_group(child)
                    raise ResourceLimitExceeded(
                        f"the workload ran past --timeout {limits.timeout:g} s; the measuring process was stopped"
                    )
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            _kill_group(child)
            raise Interrupted("interrupted; the measuring process was stopped and nothing was written") from None
        finally:
            reader.join(timeout=1.0)
        log_tail = log_file.read_text(encoding="utf-8", errors="replace")[-4000:]
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
        error_class = _ERROR_CLASSES.get(error["class"])
        if error_class is None:  # a subclass the parent does not name: keep its exit code
            error_class = UsageError if error.get("exit_code") == 2 else InternalError
        raise error_class(error["message"], detail=error.get("detail") or log_tail)
    return outcome


def fit_scaling(points: Sequence[ScalingPoint]) -> ScalingFit | None:
    """Least squares ``memory = fixed + N x per_agent`` over the population sizes."""
    if len({point.agents for point in points}) < 2:
        return None

    def line(values: list[float]) -> tuple[float, float]:
        sizes = [float(point.agents) for point in points]
        mean_size = sum(sizes) / len(sizes)
        mean_value = sum(values) / len(values)
        spread = sum((size - mean_size) ** 2 for size in sizes)
        per_agent = sum((size - mean_size) * (value - mean_value) for size, value in zip(sizes, values)) / spread
        return mean_value - per_agent * mean_size, per_agent

    fixed, per_agent = line([float(point.rss_after_build) for point in points])
    fixed_steps, per_agent_steps = line([float(point.rss_after_steps) for point in points])
    uss_values = [point.uss_after_build for point in points]
    uss_per_agent = line([float(value) for value in uss_values])[1] if all(v is not None for v in uss_values) else None
    return ScalingFit(
        points=list(points),
        fixed_bytes=fixed,
        per_agent_bytes=per_agent,
        fixed_bytes_after_steps=fixed_steps,
        per_agent_bytes_after_steps=per_agent_steps,
        uss_per_agent_bytes=uss_per_agent,
    )


def default_scaling(agents: int) -> list[int]:
    return sorted({max(1, agents // 2), agents}) if agents > 1 else [1, 2]


def profile(
    spec: RunSpec,
    *,
    limits: Limits,
    scaling: Sequence[int] | None,
    progress: ProgressCallback | None = None,
) -> Report:
    """The whole profile: the measuring child, then one plain child per population size.

    Returns the report; a report whose ``error`` is set (a step raised) is still
    complete as far as it went, and the caller decides how to exit.
    """
    check_target(spec.target)
    if progress is not None:
        progress({"event": "configuration", "name": f"profile, {spec.agents} agents"})
    outcome = run_child(spec, limits=limits, progress=progress)
    report = from_dict(Report, outcome["report"])
    report.notes.append(f"peak RSS of the measuring process: {format_bytes(outcome['peak_rss_bytes'])}")
    if report.error is not None or not scaling:
        return report
    points: list[ScalingPoint] = []
    for agents in scaling:
        plain_spec = dataclasses.replace(spec, agents=agents, mode="plain", trace=False)
        if progress is not None:
            progress({"event": "configuration", "name": f"scaling, {agents} agents"})
        try:
            plain = run_child(plain_spec, limits=limits, progress=progress)["plain"]
        except StepFailed as failure:
            # The profile itself is whole; keep it and say which scaling run failed.
            report.error = Failure(kind="scaling", message=f"in the scaling run with {agents} agents, {failure.message}",
                                   traceback=failure.detail)
            report.notes.append("the RSS fit was skipped because a scaling run failed")
            return report
        points.append(ScalingPoint(**plain))
        if agents == spec.agents:
            report.timing.plain_stepping_seconds = plain["stepping_seconds"]
            report.timing.plain_create_ms_per_agent = plain["create_seconds"] * 1000.0 / agents
    report.scaling = fit_scaling(points)
    if report.scaling is not None:
        report.population.marginal_rss_per_agent = report.scaling.per_agent_bytes
        report.population.marginal_rss_per_agent_after_steps = report.scaling.per_agent_bytes_after_steps
        report.population.fixed_rss_bytes = report.scaling.fixed_bytes
    return report
