"""The profile report: plain dataclasses, versioned JSON, atomic save and load.

A report is measured once and then rendered, compared and gated many times.
The JSON only ever gains fields; ``schema_version`` changes when a field changes
meaning. Every field is documented in docs/report-schema.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fa_memtool.errors import ReportError, UsageError
from fa_memtool.pathtree import PathNode
from fa_memtool.sizing import SharedGroup

SCHEMA_VERSION = 2
# Versions this fa-mem reads: version 2 only added fields (the path tree), so a
# version 1 report reads with those fields empty.
READABLE_SCHEMA_VERSIONS = (1, 2)


@dataclass
class Workload:
    target: str  # what the user passed: a .py path or a dotted module name
    module: str
    factory: str
    step_method: str
    observe: str  # "module" (the module's observe()) or "default" (fa-mem's seeded integers)
    agents_requested: int
    steps: int
    seed: int
    sample_every: int
    trace: bool
    backend: str
    python: str
    platform: str
    agents_from: str | None = None  # --agents-from: the factory returned a model holding the agents there
    step_model: bool = False  # the model was stepped, not each agent
    model_step_method: str | None = None  # the model's method called each step (with --step-model)
    factory_args: dict[str, Any] | None = None  # --factory-arg values as given; None: factory(n, seed)


@dataclass
class PhaseMemory:
    phase: str  # interpreter, import, build, steps
    rss_bytes: int
    uss_bytes: int | None
    tracer_bytes: int  # tracemalloc's own memory at that moment (already inside rss_bytes)


@dataclass
class ScalingPoint:
    agents: int
    rss_after_build: int
    rss_after_steps: int
    uss_after_build: int | None
    uss_after_steps: int | None
    stepping_seconds: float
    create_seconds: float = 0.0


@dataclass
class ScalingFit:
    points: list[ScalingPoint]
    fixed_bytes: float  # RSS intercept after building (interpreter + imports + globals)
    per_agent_bytes: float  # marginal RSS per agent after building
    fixed_bytes_after_steps: float
    per_agent_bytes_after_steps: float
    uss_per_agent_bytes: float | None


@dataclass
class AttributeReport:
    name: str
    type_name: str
    deep_bytes: int
    exclusive_bytes: int
    amortized_bytes: float
    sharers: int
    shared: bool
    module_global: bool
    file_backed_bytes: int = 0
    shape: list[int] | None = None
    dtype: str | None = None
    length: int | None = None
    zero_fraction: float | None = None
    array_bytes: int | None = None  # allocated bytes of the numeric array buffers it holds
    resident_bytes: int | None = None  # of those, bytes resident in RAM (Linux pagemap)
    allocation_site: str | None = None  # file:line that allocated its largest buffer
    allocation_code: str | None = None


@dataclass
class AgentReport:
    index: int
    type_name: str
    exclusive_bytes: int
    shared_bytes: int
    amortized_bytes: float
    file_backed_bytes: int
    attributes: list[AttributeReport] = field(default_factory=list)
    agent_id: int | str | None = None  # unique_id or id where the agent has one, else its creation order
    device_bytes: dict[str, float] = field(default_factory=dict)  # amortized, per accelerator


@dataclass
class Population:
    agents: int
    measured_after_steps: int
    distinct_bytes: int
    per_agent_bytes: float  # mean amortized bytes per agent
    per_agent_bytes_at_creation: float | None
    exclusive_bytes: int
    shared_bytes: int
    file_backed_bytes: int
    objects: int
    resident_array_bytes: int | None
    allocated_array_bytes: int
    marginal_rss_per_agent: float | None = None
    marginal_rss_per_agent_after_steps: float | None = None
    fixed_rss_bytes: float | None = None
    model_bytes: int | None = None  # what the model reaches, agents excluded (charged to no agent)
    device_bytes: dict[str, int] = field(default_factory=dict)  # distinct bytes per accelerator


@dataclass
class TimelineSample:
    step: int
    per_agent_bytes: float
    distinct_bytes: int
    rss_bytes: int


@dataclass
class AttributeGrowth:
    name: str
    start_bytes: float  # mean per agent at the first sample
    end_bytes: float
    bytes_per_step_per_agent: float
    bounded: bool
    reason: str
    growth_site: str | None = None
    growth_code: str | None = None


@dataclass
class Growth:
    samples: list[TimelineSample]
    bytes_per_step_per_agent: float  # least-squares slope over every sample after the first step
    late_bytes_per_step_per_agent: float  # slope over the second half of the run
    rss_bytes_per_step: float
    leaking: bool
    verdict: str
    attributes: list[AttributeGrowth] = field(default_factory=list)
    paths: list[AttributeGrowth] = field(default_factory=list)  # the deepest paths that grow (name: a path)


@dataclass
class AllocationSite:
    site: str  # file:line
    function: str
    code: str
    bytes: int
    count: int


@dataclass
class Allocations:
    backend: str  # tracemalloc, memray or none
    frames: int
    construction: list[AllocationSite] = field(default_factory=list)
    steps: list[AllocationSite] = field(default_factory=list)
    traced_steps: int = 0
    memray_capture: str | None = None
    memray_commands: list[str] = field(default_factory=list)


@dataclass
class GCReport:
    collections: list[int]  # per generation, while stepping
    pause_seconds: float  # total time inside the collector while stepping
    max_pause_ms: float
    overhead_fraction: float  # pause_seconds / stepping_seconds (the agents' own step time)
    build_collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    build_pause_seconds: float = 0.0


@dataclass
class Timing:
    create_seconds: float
    create_ms_per_agent: float
    step_ms_p50: float
    step_ms_p95: float
    step_ms_max: float
    stepping_seconds: float  # time inside the agents' step calls and observe(), measurement excluded
    stepping_wall_seconds: float  # the whole stepping phase, sampling and tracing included
    sampling_seconds: float  # time spent sizing the population between steps
    traced_step_ms_p50: float | None
    untraced_step_ms_p50: float | None
    profiling_overhead_fraction: float | None  # extra time the profile added to the stepping phase
    plain_stepping_seconds: float | None = None  # the same steps in an unprofiled child, when scaling ran
    plain_create_ms_per_agent: float | None = None  # building in that unprofiled child (no tracing)
    target_create_ms_per_agent: float = 100.0
    target_step_ms: float = 50.0


@dataclass
class Suggestion:
    kind: str  # mostly-zeros, identical-across-agents, float32-safe, float16-safe, unbounded-history, growing-cache
    attribute: str
    message: str
    estimated_bytes_saved_per_agent: float
    estimated_bytes_saved_total: float
    transformation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    site: str | None = None
    adoption: str | None = None  # the one-line change in the user's code that adopts it


@dataclass
class Failure:
    kind: str
    message: str
    agent: int | None = None
    step: int | None = None
    traceback: str | None = None


@dataclass
class Report:
    schema_version: int
    fa_mem_version: str
    complete: bool
    workload: Workload
    population: Population
    agents: list[AgentReport]
    shared: list[SharedGroup]
    growth: Growth
    allocations: Allocations
    gc: GCReport
    timing: Timing
    process: list[PhaseMemory]
    scaling: ScalingFit | None = None
    suggestions: list[Suggestion] = field(default_factory=list)
    error: Failure | None = None
    notes: list[str] = field(default_factory=list)
    paths: list[PathNode] = field(default_factory=list)  # where the memory sits: the tree of paths

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, allow_nan=False)


T = TypeVar("T")


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        return _convert(options[0], value) if len(options) == 1 else value
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_convert(item, element) for element in value]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build dataclass ``cls`` from JSON data, ignoring fields a newer fa-mem added."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object for {cls.__name__}, found {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.name in data:
            values[item.name] = _convert(hints[item.name], data[item.name])
    return cls(**values)


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"cannot write {target}: directory {directory} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from error
    try:
        # mkstemp creates the file 0600; give it the mode the user expects: the old
        # file's, or what the umask allows for a new one.
        try:
            mode = target.stat().st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def save_report(report: Report, path: str | os.PathLike[str]) -> None:
    write_atomic(path, report.to_json() + "\n")


def report_from_json(text: str, *, source: str = "report") -> Report:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(f"{source} is not valid JSON (line {error.lineno}: {error.msg})") from error
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ReportError(f"{source} is not an fa-mem report (no schema_version)")
    if data["schema_version"] not in READABLE_SCHEMA_VERSIONS or type(data["schema_version"]) is not int:
        readable = " and ".join(str(version) for version in READABLE_SCHEMA_VERSIONS)
        raise ReportError(f"{source} has schema_version {data['schema_version']!r}; this fa-mem reads {readable}")
    try:
        return from_dict(Report, data)
    except (TypeError, KeyError, ValueError) as error:
        raise ReportError(f"{source} is not a complete fa-mem report: {error}") from error


def load_report(path: str | os.PathLike[str]) -> Report:
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"no report at {location}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"cannot read {location}: {error}") from error
    return report_from_json(text, source=str(location))
