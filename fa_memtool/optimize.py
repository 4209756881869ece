"""The optimizer: analyse, apply, prove by replay, keep or roll back, measure again.

1. A baseline profile in a fresh child (the report the user would get from ``profile``).
2. A trials child: builds the population, runs the replay steps, asks every enabled
   plugin for candidates on the agents as they are at the end of the run, and ranks
   them by estimated saving (per attribute, lower precision before the transformations
   that change the container, so both can apply).
3. Greedily, candidate by candidate until the target is met: a fresh original
   population and a fresh trial population (the accepted plan plus this candidate) are
   stepped in lockstep with the same seeded observations. Actions must be identical at
   every step and every numeric attribute within rtol/atol at checkpoints; the trial's
   memory is measured, and a candidate is kept only when it saves measured bytes. A
   candidate that raises, changes behaviour or saves nothing is rolled back (the next
   trial starts from freshly built agents) and reported with the reason.
4. A final profile in a fresh child with the accepted plan applied after building.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fa_memtool.errors import EXIT_BEHAVIOUR_CHANGED, EXIT_LIMIT_EXCEEDED, EXIT_OK, StepFailed
from fa_memtool.hookspecs import AnalysisContext, Candidate
from fa_memtool.plan import Plan, PlanStep, PLAN_VERSION, step_for
from fa_memtool.population_driver import MODEL_LABEL, Action, PopulationDriver
from fa_memtool.report import Report, from_dict
from fa_memtool.sizing import agent_attributes, measure_population
from fa_memtool.units import format_bytes

CHECKPOINTS = 10  # numeric attributes are compared this many times over the replay
MIN_SAVING_BYTES = 256  # per agent: below this a kept transformation is noise, not a saving
# Within one attribute: precision first, then the containers (which keep the dtype).
PLUGIN_ORDER = {"lower-precision": 0, "shared-parameters": 1, "lazy-beliefs": 2, "compressed-history": 3}


@dataclass
class TrialSettings:
    target_bytes: float | None
    plugins: list[str] | None
    exclude: list[str]
    force: list[str]  # attributes whose transformations are kept even if behaviour changes
    rtol: float
    atol: float
    growing: dict[str, float]  # from the baseline profile: attribute -> bytes per agent per step
    max_slowdown: float | None = None  # reject a candidate whose replay steps are slower than this factor


@dataclass
class TrialOutcome:
    plugin: str
    attribute: str
    estimated_bytes_saved_per_agent: float
    accepted: bool
    reason: str  # why rejected, or what the replay showed
    bytes_before: float | None = None  # per agent (amortized), the trial population before this candidate
    bytes_after: float | None = None
    forced: bool = False
    behaviour_changed: bool = False


@dataclass
class PluginProblem:
    plugin: str
    stage: str
    message: str


@dataclass
class OptimizeResult:
    target_bytes: float
    target_met: bool
    verified: bool  # every kept transformation replayed with identical actions
    before: Report
    after: Report | None
    plan: Plan
    trials: list[TrialOutcome] = field(default_factory=list)
    plugin_failures: list[PluginProblem] = field(default_factory=list)
    replay_steps: int = 0
    step_time_ratio: float | None = None  # optimized / original step time in the last kept trial
    adoption: dict[str, str] = field(default_factory=dict)  # "plugin:attribute" -> the line to write

    @property
    def exit_code(self) -> int:
        if not self.verified:
            return EXIT_BEHAVIOUR_CHANGED
        return EXIT_OK if self.target_met else EXIT_LIMIT_EXCEEDED

    def to_json(self) -> str:
        import json

        data = dataclasses.asdict(self)
        data["schema_version"] = 1
        data["exit_code"] = self.exit_code
        return json.dumps(data, indent=1, allow_nan=False) + "\n"


# -- replay ---------------------------------------------------------------------------


def _same_action(left: Any, right: Any) -> bool:
    if left is right:
        return True
    try:
        import numpy

        if isinstance(left, numpy.ndarray) or isinstance(right, numpy.ndarray):
            return bool(numpy.array_equal(left, right))
        return bool(left == right) and type(left) is type(right)
    except Exception:
        return False


def _numeric(value: Any) -> Any | None:
    """A dense float/int array for values that stand for one (arrays and their containers)."""
    import numpy

    if isinstance(value, numpy.ndarray):
        return value if value.dtype != object else None
    if hasattr(value, "__array__") and hasattr(value, "shape") and hasattr(value, "dtype"):
        dense = numpy.asarray(value)  # array-likes such as LazyBeliefArray
        return dense if dense.dtype != object else None
    return None


def _difference(original: Any, optimized: Any, rtol: float, atol: float, where: str) -> str | None:
    """How two attribute values differ beyond the tolerance, or None."""
    import numpy

    dense_original, dense_optimized = _numeric(original), _numeric(optimized)
    if dense_original is not None:
        if dense_optimized is None or dense_original.shape != dense_optimized.shape:
            return f"{where} changed shape or type"
        if dense_original.dtype.kind in "fc" or dense_optimized.dtype.kind in "fc":
            if not numpy.allclose(dense_optimized, dense_original, rtol=rtol, atol=atol, equal_nan=True):
                gap = float(numpy.nanmax(numpy.abs(dense_optimized.astype(complex) - dense_original.astype(complex))))
                return f"{where} differs by up to {gap:.3g} (rtol={rtol:g}, atol={atol:g})"
            return None
        return None if numpy.array_equal(dense_original, dense_optimized) else f"{where} differs"
    if isinstance(original, numpy.ndarray) and original.dtype == object:
        if not isinstance(optimized, numpy.ndarray) or optimized.shape != original.shape:
            return f"{where} changed shape or type"
        for index, element in numpy.ndenumerate(original):
            found = _difference(element, optimized[index], rtol, atol, f"{where}[{index}]")
            if found:
                return found
        return None
    if isinstance(original, (list, tuple, deque)):
        try:
            items = list(optimized)
        except TypeError:
            return f"{where} is no longer a sequence"
        if len(items) != len(original):
            return f"{where} holds {len(items)} entries instead of {len(original)}"
        for position, (left, right) in enumerate(zip(original, items)):
            found = _difference(left, right, rtol, atol, f"{where}[{position}]")
            if found:
                return found
        return None
    if isinstance(original, float) and isinstance(optimized, (int, float)):
        return None if math.isclose(optimized, original, rel_tol=rtol, abs_tol=atol) or (math.isnan(original) and math.isnan(optimized)) else f"{where} differs"
    return None  # other objects: their behaviour shows in the actions


def compare_agents(originals: list[Any], optimized: list[Any], rtol: float, atol: float) -> str | None:
    for index, (original, trial) in enumerate(zip(originals, optimized)):
        found = _compare_attributes(original, trial, rtol, atol, f"agent {index}")
        if found:
            return found
    return None


def _compare_attributes(original: Any, trial: Any, rtol: float, atol: float, who: str) -> str | None:
    for name, value in agent_attributes(original):
        found = _difference(value, getattr(trial, name, None), rtol, atol, f"{who} .{name}")
        if found:
            return found
    return None


def compare_populations(original: PopulationDriver, trial: PopulationDriver, rtol: float, atol: float) -> str | None:
    """How two populations differ in their state: agent set, agents' and model's numbers."""
    if original.labels() != trial.labels():
        return f"the agent set differs ({len(trial.labels())} agents instead of {len(original.labels())}, or other ids)"
    found = compare_agents(original.agents(), trial.agents(), rtol, atol)
    if found is None and original.model is not None:
        found = _compare_attributes(original.model, trial.model, rtol, atol, "the model")
    return found


def different_actions(original: list[Action], trial: list[Action], step: int) -> str | None:
    """The first difference between two steps' actions (agent ids included), or None."""
    if [label for label, _ in original] != [label for label, _ in trial]:
        return f"the agents stepped differ at step {step} ({len(trial)} instead of {len(original)}, or other ids)"
    for index, ((label, action), (_, trial_action)) in enumerate(zip(original, trial)):
        if not _same_action(action, trial_action):
            who = "the model's step returned" if label == MODEL_LABEL else f"agent {index} chose"
            return f"{who} {trial_action!r} instead of {action!r} at step {step}"
    return None


def _order(candidates: list[Candidate]) -> list[Candidate]:
    best: dict[str, float] = {}
    for candidate in candidates:
        best[candidate.attribute] = max(best.get(candidate.attribute, 0.0), candidate.estimated_bytes_saved_per_agent)
    return sorted(
        candidates,
        key=lambda c: (-best[c.attribute], c.attribute, PLUGIN_ORDER.get(c.plugin, len(PLUGIN_ORDER)), -c.estimated_bytes_saved_per_agent),
    )


def run_trials(
    *,
    build: Callable[[], PopulationDriver],
    steps: int,
    settings: TrialSettings,
    module_globals: list[object],
    progress: Any,
) -> dict[str, Any]:
    """The child side of optimize (steps 2 and 3 of the module docstring).

    ``build`` returns a freshly built population each time it is called.
    """
    from fa_memtool.plugins import TransformationFailed, analyse, apply_candidate, plugin_manager, select

    manager = plugin_manager()
    enabled = select(manager, settings.plugins)

    def run(population: PopulationDriver, count: int) -> None:
        for step in range(count):
            population.step(step)
            if population.finished:
                break

    def per_agent(population: PopulationDriver) -> float:
        sized = measure_population(population.agents(), module_globals=module_globals, boundaries=population.program_objects())
        return sum(agent.amortized_bytes for agent in sized.agents) / len(sized.agents)

    progress.send("trials", stage="analyse", total=steps)
    probe = build()
    run(probe, steps)
    baseline_bytes = per_agent(probe)
    context = AnalysisContext(growing=dict(settings.growing), rtol=settings.rtol, atol=settings.atol, exclude=frozenset(settings.exclude))
    candidates, failures = analyse(manager, probe.agents(), context, enabled)
    del probe
    candidates = _order(candidates)

    accepted: list[tuple[Candidate, PlanStep]] = []
    outcomes: list[TrialOutcome] = []
    checkpoint = max(1, steps // CHECKPOINTS)

    def replay(originals: PopulationDriver, trials: PopulationDriver) -> tuple[str | None, float, float]:
        """Lockstep replay: how behaviour changed (or None), and both populations' step time."""
        seconds_original = seconds_trial = 0.0
        for step_number in range(steps):
            started = time.perf_counter()
            actions = originals.step(step_number)  # the original raising is the workload's failure
            middle = time.perf_counter()
            try:
                trial_actions = trials.step(step_number)
            except StepFailed as error:
                return error.message, seconds_original, seconds_trial
            seconds_original += middle - started
            seconds_trial += time.perf_counter() - middle
            changed = different_actions(actions, trial_actions, step_number)
            if changed is None and originals.finished != trials.finished:
                stopped = "the original" if originals.finished else "the optimized"
                changed = f"only {stopped} model stopped itself after step {step_number + 1}"
            last = step_number + 1 == steps or originals.finished
            if changed is None and ((step_number + 1) % checkpoint == 0 or last):
                found = compare_populations(originals, trials, settings.rtol, settings.atol)
                if found:
                    changed = f"{found} after step {step_number + 1}"
            if changed is not None or last:
                return changed, seconds_original, seconds_trial
        return None, seconds_original, seconds_trial

    def trial(candidate: Candidate, current: float) -> tuple[TrialOutcome, PlanStep | None, float | None]:
        """One candidate on top of the accepted ones; its populations die with this call."""
        outcome = TrialOutcome(candidate.plugin, candidate.attribute, candidate.estimated_bytes_saved_per_agent, False, "")
        outcome.forced = candidate.attribute in settings.force
        originals, trials = build(), build()
        trial_agents = trials.agents()
        try:
            for earlier, _ in accepted:
                apply_candidate(manager, trial_agents, earlier)
            step = step_for(trial_agents[0], candidate.plugin, candidate.attribute, candidate.parameters)
            apply_candidate(manager, trial_agents, candidate)
        except TransformationFailed as failure:
            outcome.reason = f"could not be applied: {failure}"
            return outcome, None, None
        changed, seconds_original, seconds_trial = replay(originals, trials)
        if changed is not None and not outcome.forced:
            outcome.reason = f"behaviour changed: {changed}"
            return outcome, None, None
        for agent in trials.agents():  # read caches filled by the comparison are not the agents' cost
            for _, value in agent_attributes(agent):
                drop_cache = getattr(value, "drop_cache", None)
                if callable(drop_cache):
                    drop_cache()
        step_ratio = seconds_trial / seconds_original if seconds_original > 0 else None
        if settings.max_slowdown is not None and step_ratio is not None and step_ratio > settings.max_slowdown:
            outcome.reason = f"steps took {step_ratio:.2f}x the original, over --max-slowdown {settings.max_slowdown:g}"
            return outcome, None, None
        after = per_agent(trials)
        outcome.bytes_before, outcome.bytes_after = current, after
        if current - after < MIN_SAVING_BYTES:  # forced or not: a transformation must pay
            outcome.reason = (
                f"no measured saving (only {format_bytes(current - after)} per agent, under {MIN_SAVING_BYTES} B)"
                if after < current
                else "no measured saving"
            )
            return outcome, None, None
        outcome.accepted = True
        outcome.behaviour_changed = changed is not None
        outcome.reason = changed or f"identical actions over {steps} steps; numeric attributes within tolerance"
        step.before_bytes_per_agent, step.after_bytes_per_agent = current, after
        return outcome, step, step_ratio

    current = baseline_bytes
    ratio: float | None = None
    for number, candidate in enumerate(candidates):
        if settings.target_bytes is not None and current <= settings.target_bytes:
            break
        progress.send(
            "trials", stage="trial", done=number, total=len(candidates), name=f"{candidate.plugin} on .{candidate.attribute}"
        )
        outcome, step, step_ratio = trial(candidate, current)
        outcomes.append(outcome)
        if step is not None:
            accepted.append((candidate, step))
            current = outcome.bytes_after if outcome.bytes_after is not None else current
            ratio = step_ratio
    return {
        "trials": {
            "baseline_bytes": baseline_bytes,
            "final_bytes": current,
            "steps": [dataclasses.asdict(step) for _, step in accepted],
            "outcomes": [dataclasses.asdict(outcome) for outcome in outcomes],
            "failures": [dataclasses.asdict(failure) for failure in failures],
            "step_time_ratio": ratio,
        }
    }


# -- the parent side -------------------------------------------------------------------


def _without_comment(line: str) -> str:
    """The line with a trailing ``# comment`` removed (strings keep their ``#``)."""
    import io
    import tokenize

    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                return line[: token.start[1]].rstrip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return line


def _assigned_expression(attribute: str, code: str | None) -> str | None:
    """The right-hand side of ``self.<attribute> = <expression>`` in a source line."""
    for statement in _without_comment(code or "").split(";"):
        target, equals, value = statement.partition("=")
        if not equals or value.startswith("="):
            continue
        name = target.strip().split(":")[0].strip()
        if name.endswith(f".{attribute}") or name == attribute:
            return value.strip()
    return None


def adoption_line(manager: Any, plugin: str, attribute: str, parameters: dict[str, Any], code: str | None) -> str | None:
    """The one line that adopts a transformation where the user assigns the attribute."""
    expression = _assigned_expression(attribute, code) or f"<value of .{attribute}>"
    if plugin == "bounded-history":
        return f"self.{attribute} = collections.deque({expression}, maxlen=<entries to keep>)"
    if plugin == "bounded-cache":
        return f"self.{attribute} = <a dict bounded to the entries you need, e.g. an LRU> (was {expression})"
    candidate = Candidate(plugin, attribute, 0.0, "", parameters)
    adopted = manager.hook.fa_mem_adoption(candidate=candidate, expression=expression)
    return f"self.{attribute} = {adopted}" if adopted else None


def _adoption(report: Report, plan: Plan) -> dict[str, str]:
    """For each kept step, the line that adopts it where the attribute is assigned."""
    from fa_memtool.plugins import plugin_manager
    from fa_memtool.summary import attribute_summaries

    manager = plugin_manager()
    sites = {summary.name: (summary.allocation_site, summary.allocation_code) for summary in attribute_summaries(report)}
    lines: dict[str, str] = {}
    for step in plan.steps:
        site, code = sites.get(step.attribute, (None, None))
        line = adoption_line(manager, step.plugin, step.attribute, step.parameters, code)
        if line:
            lines[f"{step.plugin}:{step.attribute}"] = f"{site}: {line}" if site else line
    return lines


def optimize(
    spec: Any,
    *,
    settings: TrialSettings,
    limits: Any,
    scaling: list[int] | None,
    progress: Any = None,
) -> OptimizeResult:
    from fa_memtool.runner import profile, run_child

    if progress is not None:
        progress({"event": "configuration", "name": "baseline profile"})
    before = profile(spec, limits=limits, scaling=scaling, progress=progress)
    if before.error is not None:
        raise StepFailed(f"the baseline run failed: {before.error.message}", detail=before.error.traceback)
    settings.growing = {item.name: item.bytes_per_step_per_agent for item in before.growth.attributes}
    trials_spec = dataclasses.replace(spec, mode="trials", trace=False, trials=dataclasses.asdict(settings))
    if progress is not None:
        progress({"event": "configuration", "name": "trials"})
    outcome = run_child(trials_spec, limits=limits, progress=progress)["trials"]
    plan = Plan(
        fa_mem_plan=PLAN_VERSION,
        steps=[from_dict(PlanStep, step) for step in outcome["steps"]],
        workload={"module": before.workload.module, "factory": before.workload.factory, "agents": spec.agents, "seed": spec.seed},
    )
    after = None
    if plan.steps:
        if progress is not None:
            progress({"event": "configuration", "name": "final profile"})
        after = profile(
            dataclasses.replace(spec, plan=tuple(dataclasses.asdict(step) for step in plan.steps)),
            limits=limits,
            scaling=scaling,
            progress=progress,
        )
    trials = [from_dict(TrialOutcome, item) for item in outcome["outcomes"]]
    final = after if after is not None else before
    result = OptimizeResult(
        target_bytes=float(settings.target_bytes or 0.0),
        target_met=settings.target_bytes is None or final.population.per_agent_bytes <= settings.target_bytes,
        verified=not any(trial.accepted and trial.behaviour_changed for trial in trials) and (after is None or after.error is None),
        before=before,
        after=after,
        plan=plan,
        trials=trials,
        plugin_failures=[from_dict(PluginProblem, item) for item in outcome["failures"]],
        replay_steps=spec.steps,
        step_time_ratio=outcome["step_time_ratio"],
    )
    result.adoption = _adoption(before, plan)
    return result
