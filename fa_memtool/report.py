"""The profile report: plain dataclasses, versioned JSON, atomic save and load.

A report is measured once and then rendered, compared and gated many times.
The JSON only ever gains fields; ``schema_version`` changes when a field changes
meaning. Every field is documented in docs/report-schema.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import stat
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fa_memtool.errors import OutputError, ReportError, UsageError
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
    observe: str  # "module" (the module's observe()), "default" (fa-mem's seeded integers) or "file" (--observations)
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
    rss_after_steps: int | None  # None: a build-only run (source "build")
    uss_after_build: int | None
    uss_after_steps: int | None
    stepping_seconds: float
    create_seconds: float = 0.0
    # "plain": its own process, built and stepped with nothing measured; "build": its own
    # process, built only; "profile": the measuring process itself (RSS read before any
    # sample and right after the steps)
    source: str = "plain"


@dataclass
class ScalingFit:
    points: list[ScalingPoint]
    fixed_bytes: float  # RSS intercept after building (interpreter + imports + globals)
    per_agent_bytes: float  # marginal RSS per agent after building
    fixed_bytes_after_steps: float
    per_agent_bytes_after_steps: float
    uss_per_agent_bytes: float | None
    # "fit": a line over the points' RSS after the steps; "growth": the after-building
    # slope plus the measuring process's RSS growth over the steps per agent (when only
    # that process stepped), so fixed_bytes_after_steps is fixed_bytes
    after_steps_from: str = "fit"


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
    traced_agents: int = 0  # agents of the sample population traced (construction and steps are theirs)
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
class ReleasedRun:
    """One run of ``--runs K``: built, stepped and released in the same process."""

    run: int  # 1-based
    rss_bytes: int  # process RSS after the release and a full collection
    retained_agents: int
    model_retained: bool | None
    retained_bytes: int


@dataclass
class Retention:
    """What survived the release of the population after the run (fa_memtool.retention)."""

    agents: int  # agents watched
    retained_agents: list[Any] = field(default_factory=list)  # their ids (AgentReport.agent_id)
    model_retained: bool | None = None  # None: there was no model
    retained_bytes: int = 0  # everything the survivors reach, each object once
    paths: list[str] = field(default_factory=list)  # reference paths from a root to a survivor
    untracked: int = 0  # watched objects that take no weak reference (tracked by id)
    runs: list[ReleasedRun] = field(default_factory=list)  # with --runs K: every run's release
    runs_verdict: str | None = None  # what the runs leave behind, in one sentence

    @property
    def clean(self) -> bool:
        return not self.retained_agents and not self.model_retained


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
    retention: Retention | None = None  # what survived the release after the run (None: not checked)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, allow_nan=False)


T = TypeVar("T")


_SCALARS: dict[Any, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _convert(hint: Any, value: Any, where: str) -> Any:
    """``value`` (JSON data) as the type ``hint`` says, or TypeError naming ``where``:
    a report, baseline or plan with a field of the wrong type is refused, never
    rendered or compared as something it is not."""
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arguments = typing.get_args(hint)
        if value is None:
            if type(None) in arguments:
                return None
            raise TypeError(f"{where} is null")
        options = [option for option in arguments if option is not type(None)]
        if len(options) == 1:
            return _convert(options[0], value, where)
        for option in options:
            try:
                return _convert(option, value, where)
            except TypeError:
                continue
        raise TypeError(f"{where} has the wrong type ({type(value).__name__})")
    if value is None:
        raise TypeError(f"{where} is null")
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{where} should be a list, not {type(value).__name__}")
        (item,) = typing.get_args(hint)
        return [_convert(item, element, f"{where}[{position}]") for position, element in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{where} should be an object, not {type(value).__name__}")
        key_hint, value_hint = typing.get_args(hint)
        return {_convert(key_hint, key, where): _convert(value_hint, item, f"{where}[{key!r}]") for key, item in value.items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value, where=where)
    accepted = _SCALARS.get(hint)
    if accepted is not None:
        if not isinstance(value, accepted) or (type(value) is bool and hint is not bool):
            raise TypeError(f"{where} should be {_KIND_NAMES[hint]}, not {json.dumps(value)[:40]}")
        return float(value) if hint is float else value
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from JSON data, ignoring fields a newer fa-mem added;
    TypeError names the first field of the wrong type (``population.agents``)."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object for {where or cls.__name__}, found {type(data).__name__}")
    values = {}
    for name, hint in _field_hints(cls):
        if name in data:
            values[name] = _convert(hint, data[name], f"{where}.{name}" if where else name)
    return cls(**values)


@functools.lru_cache(maxsize=None)
def _field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field's name and resolved type, once per class (resolving the string
    annotations costs more than converting a whole agent's entry)."""
    hints = typing.get_type_hints(cls)
    return tuple((item.name, hints[item.name]) for item in dataclasses.fields(cls))


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written.

    A symlink is written through: the file it names is replaced, atomically, beside
    itself (the link stays a link). A character device or a FIFO (``/dev/null``,
    ``/dev/stdout``, a pipe someone reads) is written directly, never replaced by a
    regular file. Failing to write (no space, a quota, an I/O error) raises OutputError:
    the file that was there is kept and no temporary file is left.
    """
    target = Path(path)
    resolved = Path(os.path.realpath(target))
    try:
        found = os.stat(resolved)
    except FileNotFoundError:
        found = None
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from error
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise UsageError(f"cannot write {target}: it is a directory")
    if found is not None and not stat.S_ISREG(found.st_mode):
        _write_special(target, resolved, found, text)
        return
    directory = resolved.parent
    if not directory.is_dir():
        raise UsageError(f"cannot write {target}: directory {target.parent if str(target.parent) else '.'} does not exist")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{resolved.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise UsageError(f"cannot write {target}: {error.strerror}") from error
    try:
        # mkstemp creates the file 0600; give it the mode the user expects: the old
        # file's, or what the umask allows for a new one.
        if found is not None:
            mode = found.st_mode & 0o777
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(handle, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, resolved)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        if isinstance(error, OSError):
            raise OutputError(f"cannot write {target}: {error.strerror or error}; the file that was there is kept") from error
        raise


def _write_special(target: Path, resolved: Path, found: os.stat_result, text: str) -> None:
    """Write to a character device or a FIFO as it is (a rename would replace it)."""
    if not (stat.S_ISCHR(found.st_mode) or stat.S_ISFIFO(found.st_mode)):
        raise UsageError(f"cannot write {target}: it is not a regular file, a character device or a FIFO")
    try:
        with open(resolved, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as error:
        raise OutputError(f"cannot write {target}: {error.strerror or error}") from error


def save_report(report: Report, path: str | os.PathLike[str]) -> None:
    write_atomic(path, report.to_json() + "\n")


MAX_INPUT_BYTES = 256 * 1024 * 1024  # a report, baseline or plan larger than this is refused


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number fa-mem writes")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def parse_json(text: str, *, source: str, error: type[Exception] = ReportError, finite: bool = True) -> Any:
    """JSON as fa-mem writes it: NaN, Infinity and numbers too large for a float are
    refused (fa-mem never writes them), and so is nesting too deep to read. With
    ``finite`` off they are read (as nan and inf), for a caller that names the field
    that holds one (a baseline's metric)."""
    try:
        if not finite:
            return json.loads(text)
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as problem:
        raise error(f"{source} is not valid JSON (line {problem.lineno}: {problem.msg})") from problem
    except ValueError as problem:
        raise error(f"{source} holds a value fa-mem cannot use: {problem}") from problem
    except RecursionError:
        raise error(f"{source} is nested too deeply to be an fa-mem file") from None


def read_input(path: str | os.PathLike[str], *, what: str, error: type[Exception] = ReportError) -> str:
    """The text of an input file, at most MAX_INPUT_BYTES (``/dev/zero`` is refused
    rather than read forever)."""
    location = Path(path)
    try:
        with open(location, "rb") as stream:
            raw = stream.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise error(f"no {what} at {location}") from None
    except IsADirectoryError:
        raise error(f"cannot read {location}: it is a directory") from None
    except OSError as problem:
        raise error(f"cannot read {location}: {problem.strerror or problem}") from problem
    if len(raw) > MAX_INPUT_BYTES:
        raise error(f"{location} is larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB: not an fa-mem {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"cannot read {location}: not UTF-8 text ({problem.reason} at byte {problem.start})") from problem


def report_from_json(text: str, *, source: str = "report") -> Report:
    data = parse_json(text, source=source)
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ReportError(f"{source} is not an fa-mem report (no schema_version)")
    if data["schema_version"] not in READABLE_SCHEMA_VERSIONS or type(data["schema_version"]) is not int:
        readable = " and ".join(str(version) for version in READABLE_SCHEMA_VERSIONS)
        raise ReportError(f"{source} has schema_version {data['schema_version']!r}; this fa-mem reads {readable}")
    try:
        return from_dict(Report, data)
    except (TypeError, KeyError, ValueError) as error:
        raise ReportError(f"{source} is not a complete fa-mem report: {error}") from error
    except RecursionError:
        raise ReportError(f"{source} is nested too deeply to be an fa-mem report") from None


def load_report(path: str | os.PathLike[str]) -> Report:
    location = Path(path)
    return report_from_json(read_input(location, what="report"), source=str(location))
