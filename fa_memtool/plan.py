"""Plans: which paths to transform, by which plugin, with which parameters.

A plan is written atomically as JSON and applied inside the user's own program with
``fa_memtool.apply_plan(agents, "plan.json")``. A step names a path inside the agent
(``belief``, ``agent.B[0]``, ``history[*]``; a plan of earlier fa-mem versions names
top-level attributes, which are paths too) and records the type, shape and dtype of
the object there when the plan was made; a plan that no longer matches the agents (a
missing path, another shape) is refused before anything is changed, and a step that
fails puts back everything the agents held before the plan (every path it changed,
aliases included).
"""

from __future__ import annotations

import dataclasses
import json
import os
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
        data = json.loads(location.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"no plan at {location}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PlanError(f"cannot read plan {location}: {error}") from error
    except json.JSONDecodeError as error:
        raise PlanError(f"plan {location} is corrupt (line {error.lineno}: {error.msg})") from error
    if not isinstance(data, dict) or "fa_mem_plan" not in data:
        raise PlanError(f"{location} is not an fa-mem plan")
    if type(data["fa_mem_plan"]) is not int or data["fa_mem_plan"] != PLAN_VERSION:
        raise PlanError(f"plan {location} has format version {data['fa_mem_plan']!r}; this fa-mem reads {PLAN_VERSION}")
    try:
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
    return plan


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
    from fa_memtool.plugins import TransformationFailed, apply_unguarded, plugin_manager, select

    loaded = plan if isinstance(plan, Plan) else load_plan(plan)
    population = list(agents)
    if not population:
        raise PlanError("apply_plan needs at least one agent")
    _check(population, loaded)
    manager = manager if manager is not None else plugin_manager()
    try:
        select(manager, sorted({step.plugin for step in loaded.steps}))
    except UsageError as error:  # an unknown plugin: the plan cannot be applied here
        raise PlanError(f"the plan cannot be applied: {error.message}") from None
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
