"""Plans: which paths to transform, by which plugin, with which parameters.

A plan is written atomically as JSON and applied inside the user's own program with
``fa_memtool.apply_plan(agents, "plan.json")``. A step names a path inside the agent
(``belief``, ``agent.B[0]``, ``history[*]``; a plan of earlier fa-mem versions names
top-level attributes, which are paths too) and records the type, shape and dtype of
the object there when the plan was made; a plan that no longer matches the agents (a
missing path, another shape) is refused before anything is changed, and a step that
fails puts back everything the agents held before the plan (every path it changed,
aliases included).

A plan is input, like any file a user can edit: before anything is changed every step
is validated (``check_plan_steps``: a path that parses and never names an object's
internals such as ``__dict__``, a shape that is a list of integers; ``check_plan_parameters``:
an installed plugin, and for the built-ins only the parameters their ``fa_mem_apply``
reads, of the type and range it accepts). The first problem is raised as PlanError
(a UsageError, exit 2) naming the step, its path and the parameter.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fa_memtool.errors import UsageError
from fa_memtool.report import from_dict, write_atomic

PLAN_VERSION = 1


class PlanError(UsageError):
    """A plan that cannot be read or does not match the agents (exit 2)."""


@dataclass
class PlanStep:
    plugin: str
    attribute: str  # the path (fa_memtool.paths syntax; a top-level path is the attribute name)
    parameters: dict[str, Any]
    # The type of the object at the path when the plan was made (the first item's for a
    # [*] path; "" when the container was empty then).
    type_name: str
    shape: list[int] | None = None
    dtype: str | None = None
    before_bytes_per_agent: float | None = None
    after_bytes_per_agent: float | None = None


@dataclass
class Plan:
    fa_mem_plan: int
    steps: list[PlanStep] = field(default_factory=list)
    workload: dict[str, Any] = field(default_factory=dict)  # what it was made on, for people

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, allow_nan=False) + "\n"


def describe(value: Any) -> tuple[str, list[int] | None, str | None]:
    """Type name, shape and dtype of a value, as a plan records them."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    return (
        type(value).__name__,
        [int(extent) for extent in shape] if isinstance(shape, tuple) else None,
        str(dtype) if dtype is not None else None,
    )


def step_for(agent: Any, plugin: str, attribute: str, parameters: dict[str, Any]) -> PlanStep:
    """A step transforming the path ``attribute``, recording what ``agent`` holds there
    now. Raises ``fa_memtool.paths.PathError`` when the agent has no such path."""
    from fa_memtool.holdings import occurrences

    found = occurrences(agent, attribute)
    type_name, shape, dtype = describe(found[0][1]) if found else ("", None, None)
    return PlanStep(plugin=plugin, attribute=attribute, parameters=dict(parameters), type_name=type_name, shape=shape, dtype=dtype)


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    write_atomic(path, plan.to_json())


def load_plan(path: str | os.PathLike[str]) -> Plan:
    location = Path(path)
    try:
        data = json.loads(location.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise PlanError(f"no plan at {location}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"cannot read plan {location}: {error}") from error
    except json.JSONDecodeError as error:
        raise PlanError(f"plan {location} is corrupt (line {error.lineno}: {error.msg})") from error
    except ValueError as error:  # NaN / Infinity, which fa-mem never writes
        raise PlanError(f"plan {location} holds a value fa-mem cannot use: {error}") from error
    except RecursionError:
        raise PlanError(f"plan {location} is nested too deeply to be an fa-mem plan") from None
    if not isinstance(data, dict) or "fa_mem_plan" not in data:
        raise PlanError(f"{location} is not an fa-mem plan")
    if type(data["fa_mem_plan"]) is not int or data["fa_mem_plan"] != PLAN_VERSION:
        raise PlanError(f"plan {location} has format version {data['fa_mem_plan']!r}; this fa-mem reads {PLAN_VERSION}")
    try:
        _check_raw_steps(data.get("steps", []))
        plan = from_dict(Plan, data)
        for step in plan.steps:
            if (
                not isinstance(step, PlanStep)
                or not all(isinstance(text, str) for text in (step.plugin, step.attribute, step.type_name))
                or not isinstance(step.parameters, dict)
            ):
                raise TypeError("a step is malformed (plugin, attribute and type_name must be strings, parameters an object)")
    except (TypeError, KeyError, ValueError) as error:
        raise PlanError(f"plan {location} is incomplete: {error}") from error
    try:
        check_plan_steps(plan)
    except PlanError as error:
        raise PlanError(f"plan {location}: {error.message}") from None
    return plan


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number fa-mem writes")


def _check_raw_steps(steps: Any) -> None:
    """The JSON of the steps before it is converted: a conversion would turn a shape
    written as the text "20000" into a list of characters, or an object into its keys."""
    if not isinstance(steps, list):
        raise TypeError(f"steps should be a list, not {type(steps).__name__}")
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise TypeError(f"steps[{index}] should be an object, not {type(step).__name__}")
        shape = step.get("shape")
        if shape is not None and not isinstance(shape, list):
            raise TypeError(f"steps[{index}].shape should be a list of integers or null, not {json.dumps(shape)[:40]}")


# --------------------------------------------------------------------------- validation
#
# A plan is input: a hand-edited (or corrupted) plan must not apply settings that no
# replay proved. Every step is checked before anything is changed: its path (never an
# object's internals), what it recorded, and its parameters against what its plugin
# accepts (the built-ins below; a third-party plugin's parameters need only be JSON
# values, since only the plugin knows them).

ParameterCheck = Callable[[Any], "str | None"]  # None when the value is accepted, else why not


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fraction(value: Any) -> str | None:
    if not _is_number(value):
        return "must be a number"
    if not math.isfinite(value) or not 0 <= value <= 1:
        return "must be a finite number within [0, 1]"
    return None


def _positive_int(value: Any) -> str | None:
    if type(value) is not int:
        return "must be a whole number (not true/false, not a fraction, not text)"
    if not 1 <= value <= sys.maxsize:
        return f"must be a whole number from 1 to {sys.maxsize}"
    return None


def _zlib_level(value: Any) -> str | None:
    if type(value) is not int or not -1 <= value <= 9:
        return "must be a whole number from -1 to 9 (a zlib level)"
    return None


def _one_of(*accepted: str) -> ParameterCheck:
    def check(value: Any) -> str | None:
        if value not in accepted or not isinstance(value, str):
            return "must be " + " or ".join(json.dumps(option) for option in accepted)
        return None

    return check


@dataclass(frozen=True)
class _Parameters:
    """What a built-in plugin's ``fa_mem_apply`` reads from a step's parameters."""

    checks: dict[str, ParameterCheck]
    required: tuple[str, ...] = ()


# lower-precision lowers a numpy float64 array to float32 (all its analysis proves), a
# torch tensor or JAX array to the next narrower float (float64 -> float32 -> float16).
_NUMPY_LOWERED = {"float64": "float32"}
_TENSOR_LOWERED = {"float64": "float32", "float32": "float16"}

BUILT_IN_PARAMETERS: dict[str, _Parameters] = {
    "lower-precision": _Parameters(
        {
            "dtype": _one_of("float32", "float16"),
            "rtol": _fraction,
            "atol": _fraction,
            "values": _one_of("tensors"),
            "library": _one_of("torch", "jax"),
        }
    ),
    "lazy-beliefs": _Parameters({"sparsity_threshold": _fraction}),
    "compressed-history": _Parameters({"compression_level": _zlib_level}),
    "bounded-history": _Parameters({"maxlen": _positive_int}, required=("maxlen",)),
    "bounded-cache": _Parameters({"maxsize": _positive_int}, required=("maxsize",)),
    "shared-parameters": _Parameters({"values": _one_of("tensors")}),
    "shared-structures": _Parameters({}),
}


def _where(index: int, step: Any) -> str:
    plugin = step.plugin if isinstance(step.plugin, str) else repr(step.plugin)
    path = f".{step.attribute.lstrip('.')}" if isinstance(step.attribute, str) else repr(step.attribute)
    return f"steps[{index}] ({plugin} at {path})"


def _json_value(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what a plan file cannot hold (the parameters go into plans as JSON)."""
    if depth > 32:
        raise PlanError(f"{where} is nested too deeply")
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PlanError(f"{where} is {value!r}: a plan holds finite numbers only")
        return
    if isinstance(value, list):
        for position, item in enumerate(value):
            _json_value(item, f"{where}[{position}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PlanError(f"{where} has the key {key!r}: keys must be strings")
            _json_value(item, f"{where}[{key!r}]", depth + 1)
        return
    raise PlanError(f"{where} is a {type(value).__name__}: a plan holds JSON values only")


def _check_path(where: str, path: str) -> None:
    from fa_memtool.paths import PathError, parse_path

    try:
        steps = parse_path(path)
    except PathError as error:
        raise PlanError(f"{where}: {error.message}") from None
    for step in steps:
        if step.kind == "attr" and step.value.startswith("__") and step.value.endswith("__"):
            raise PlanError(
                f"{where}: the path names {step.value!r}, an object's internals, not data it holds; "
                "a plan may not transform it"
            )


def check_plan_steps(plan: Plan) -> None:
    """Refuse a step that is not well formed, without the agents or the plugins: its
    plugin name, its path (parsed; no dunder step such as ``__dict__`` or ``__class__``
    anywhere in it), the type, shape, dtype and bytes it recorded, and parameters that
    a plan file can hold. Raises PlanError naming the step."""
    if not isinstance(plan.steps, list):
        raise PlanError(f"the plan's steps must be a list, not {type(plan.steps).__name__}")
    if not isinstance(plan.workload, dict):
        raise PlanError(f"the plan's workload must be an object, not {type(plan.workload).__name__}")
    for index, step in enumerate(plan.steps):
        if not isinstance(step, PlanStep):
            raise PlanError(f"steps[{index}] is a {type(step).__name__}, not a PlanStep")
        where = _where(index, step)
        if not isinstance(step.plugin, str) or not step.plugin or step.plugin != step.plugin.strip():
            raise PlanError(f"{where}: plugin must be a plugin's name, not {step.plugin!r}")
        if not isinstance(step.attribute, str):
            raise PlanError(f"{where}: the path must be a string")
        _check_path(where, step.attribute)
        if not isinstance(step.type_name, str):
            raise PlanError(f"{where}: type_name must be a string, not {step.type_name!r}")
        if step.shape is not None and (
            not isinstance(step.shape, list) or not all(type(extent) is int and extent >= 0 for extent in step.shape)
        ):
            raise PlanError(f"{where}: shape must be a list of non-negative integers or null, not {step.shape!r}")
        if step.dtype is not None and not isinstance(step.dtype, str):
            raise PlanError(f"{where}: dtype must be a string or null, not {step.dtype!r}")
        for name in ("before_bytes_per_agent", "after_bytes_per_agent"):
            value = getattr(step, name)
            if value is not None and (not _is_number(value) or not math.isfinite(value) or value < 0):
                raise PlanError(f"{where}: {name} must be a non-negative number or null, not {value!r}")
        if not isinstance(step.parameters, dict):
            raise PlanError(f"{where}: parameters must be an object, not {type(step.parameters).__name__}")
        _json_value(step.parameters, f"{where}: parameters")


def _check_lower_precision(where: str, step: PlanStep) -> None:
    """dtype as lower-precision applies it to the kind of value the step recorded; a
    dtype the plugin would skip (or that no analysis proposes) is refused."""
    parameters = step.parameters
    recorded = step.dtype.removeprefix("torch.") if step.dtype else None
    dtype = parameters.get("dtype")
    if parameters.get("values") == "tensors":
        if "dtype" not in parameters:
            raise PlanError(f"{where}: parameter 'dtype' is missing (the float dtype the tensors are lowered to)")
        if recorded is not None and _TENSOR_LOWERED.get(recorded) != dtype:
            expected = _TENSOR_LOWERED.get(recorded)
            because = f"it lowers {recorded} tensors to {expected}" if expected else f"it does not lower {recorded} tensors"
            raise PlanError(f"{where}: parameter 'dtype' is {json.dumps(dtype)}, which lower-precision does not apply here: {because}")
        return
    if "library" in parameters:
        raise PlanError(f"{where}: parameter 'library' applies to tensors only (with \"values\": \"tensors\")")
    if dtype is not None and dtype not in _NUMPY_LOWERED.values():
        raise PlanError(
            f"{where}: parameter 'dtype' is {json.dumps(dtype)}; lower-precision lowers numpy arrays to float32 only"
        )
    if step.type_name and step.type_name != "ndarray":
        raise PlanError(f"{where}: lower-precision lowers numpy arrays (or tensors, with \"values\": \"tensors\"), not {step.type_name}")
    if recorded is not None and recorded not in _NUMPY_LOWERED:
        raise PlanError(f"{where}: lower-precision lowers float64 arrays only; the step records dtype {recorded}")


def check_plan_parameters(plan: Plan, manager: Any) -> None:
    """Refuse a step whose plugin ``manager`` does not have, or whose parameters that
    plugin does not accept (a built-in's: names, types and ranges). Raises PlanError
    naming the step, its path and the parameter."""
    from fa_memtool.plugins import select

    for index, step in enumerate(plan.steps):
        where = _where(index, step)
        try:
            select(manager, [step.plugin])
        except UsageError as error:  # an unknown plugin: the plan cannot be applied here
            raise PlanError(f"the plan cannot be applied: {where}: {error.message}") from None
        accepted = BUILT_IN_PARAMETERS.get(step.plugin)
        if accepted is None:
            continue  # a third-party plugin: only it knows its parameters
        for name in sorted(set(step.parameters) - set(accepted.checks)):
            takes = ", ".join(accepted.checks) or "no parameters"
            raise PlanError(f"{where}: unknown parameter {name!r}; {step.plugin} takes {takes}")
        for name in accepted.required:
            if name not in step.parameters:
                raise PlanError(f"{where}: parameter {name!r} is missing")
        for name, check in accepted.checks.items():
            if name in step.parameters:
                problem = check(step.parameters[name])
                if problem is not None:
                    shown = json.dumps(step.parameters[name])
                    raise PlanError(f"{where}: parameter {name!r} is {shown[:60]}: {problem}")
        if step.plugin == "lower-precision":
            _check_lower_precision(where, step)


def _check(agents: list[Any], plan: Plan) -> None:
    """Refuse a plan that does not match the agents, before changing anything.

    Only a path's first step is checked: later steps on the same path recorded its state
    after the earlier ones. For a ``[*]`` path every item must have the recorded type and
    dtype (items of one history may differ in shape); a container that was empty when the
    plan was made accepts any item."""
    from fa_memtool.holdings import occurrences
    from fa_memtool.paths import PathError

    checked: set[str] = set()
    for step in plan.steps:
        if step.attribute in checked:
            continue
        checked.add(step.attribute)
        grouped = "[*]" in step.attribute
        for index, agent in enumerate(agents):
            try:
                found = occurrences(agent, step.attribute)
            except PathError:
                found = None
            if found is None or (not found and not grouped):
                raise PlanError(f"the plan transforms .{step.attribute}, which agent {index} ({type(agent).__name__}) does not have")
            if not step.type_name:
                continue
            for _, value in found:
                type_name, shape, dtype = describe(value)
                if (type_name, dtype) != (step.type_name, step.dtype) or (not grouped and shape != step.shape):
                    raise PlanError(
                        f"the plan was made for .{step.attribute} as {step.type_name} shape={step.shape} dtype={step.dtype}; "
                        f"agent {index} has {type_name} shape={shape} dtype={dtype}"
                    )


class AgentOptimizer:
    """Applies a verified plan to agents one at a time, as they are created.

    ``get_agent_optimizer(plan="plan.json").optimize_agent(agent)`` transforms one agent
    the way ``fa-mem optimize`` proved safe; shared parameters go through the
    process-wide pool, so agents optimized one by one still share one copy.
    """

    def __init__(self, plan: Plan | str | os.PathLike[str] | None = None) -> None:
        self.plan = plan if plan is None or isinstance(plan, Plan) else load_plan(plan)

    def optimize_agent(self, agent: Any) -> Any:
        if self.plan is None:
            raise PlanError(
                "no plan: run `fa-mem optimize agents.py --target SIZE --plan-out plan.json` and "
                "pass it as get_agent_optimizer(plan='plan.json'); fa-mem applies only transformations "
                "that replay proved safe"
            )
        apply_plan([agent], self.plan)
        return agent


def get_agent_optimizer(plan: Plan | str | os.PathLike[str] | None = None) -> AgentOptimizer:
    """The seed document's entry point: ``get_agent_optimizer(plan=...).optimize_agent(agent)``."""
    return AgentOptimizer(plan)


def apply_plan(agents: list[Any], plan: Plan | str | os.PathLike[str], *, manager: Any = None) -> Plan:
    """Apply a plan to live agents, all or nothing; returns the plan applied."""
    from fa_memtool.hookspecs import Candidate
    from fa_memtool.holdings import Snapshot
    from fa_memtool.plugins import TransformationFailed, apply_unguarded, plugin_manager

    if not isinstance(plan, (Plan, str, os.PathLike)):
        raise PlanError(f"apply_plan takes a Plan or the path of a plan file, not {type(plan).__name__}")
    loaded = plan if isinstance(plan, Plan) else load_plan(plan)
    # Errors name the step as ``steps[i]``: of the plan file, or of the Plan given.
    source = "the plan's " if isinstance(plan, Plan) else f"plan {Path(plan)}: "
    try:
        check_plan_steps(loaded)  # a Plan made in Python is input too
    except PlanError as error:
        message = error.message
        raise PlanError(message if message.startswith("the plan") else source + message) from None
    try:
        population = list(agents)
    except TypeError:
        raise PlanError(f"apply_plan takes a list of agents, not {type(agents).__name__}") from None
    if not population:
        raise PlanError("apply_plan needs at least one agent")
    manager = manager if manager is not None else plugin_manager()
    try:
        check_plan_parameters(loaded, manager)
    except PlanError as error:
        message = error.message
        raise PlanError(message if message.startswith("the plan") else source + message) from None
    _check(population, loaded)
    if not loaded.steps:
        return loaded
    snapshot = Snapshot(population)
    try:
        for step in loaded.steps:
            apply_unguarded(
                manager,
                population,
                Candidate(plugin=step.plugin, attribute=step.attribute, estimated_bytes_saved_per_agent=0.0, reason="plan", parameters=step.parameters),
            )
    except TransformationFailed as failure:
        snapshot.restore()
        raise PlanError(f"the plan could not be applied, nothing was changed: {failure}") from failure
    del snapshot
    release_freed_memory()
    return loaded


def release_freed_memory() -> bool:
    """Ask the C allocator to return freed memory to the operating system.

    The arrays a plan replaces are freed, but glibc keeps large freed blocks in the
    process (its mmap threshold rises after such frees), so without this the RSS would
    not show the saving. ``malloc_trim(0)`` is glibc's documented way to give them back;
    elsewhere this does nothing and returns False.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))
