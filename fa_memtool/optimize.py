"""The optimizer: analyse, apply, prove by replay, keep or roll back, measure again.

1. A baseline profile in a fresh child (the report the user would get from ``profile``).
2. A trials child: builds the population, runs the replay steps, asks every enabled
   plugin for candidates on the agents as they are at the end of the run, and ranks
   them: paths by their best estimated saving, and within a path by the priority each
   plugin declares (lower precision before the transformations that change the
   container, so both can apply).
3. Greedily, candidate by candidate until the target is met: a fresh original
   population and a fresh trial population (the accepted plan plus this candidate) are
   stepped in lockstep with the same seeded observations. Actions must be identical at
   every step and the numeric values at every path within rtol/atol at checkpoints; the
   trial's memory is measured, and a candidate is kept only when it saves measured
   bytes. A candidate that raises, changes behaviour or saves nothing is rolled back
   (the next trial starts from freshly built agents) and reported with the reason. Once
   a plugin's candidate for a path is kept, that plugin's other candidates for the path
   (alternatives, such as larger history bounds) are not tried.
4. A final profile in a fresh child with the accepted plan applied after building.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fa_memtool.adoption import adoption_line, site_for
from fa_memtool.errors import EXIT_BEHAVIOUR_CHANGED, EXIT_LIMIT_EXCEEDED, EXIT_OK, StepFailed
from fa_memtool.hookspecs import DEFAULT_PRIORITY, AnalysisContext, Candidate
from fa_memtool.paths import PathError, walk
from fa_memtool.plan import Plan, PlanStep, PLAN_VERSION, step_for
from fa_memtool.population_driver import MODEL_LABEL, Action, PopulationDriver
from fa_memtool.replay import RandomStream, compare_agents, same_action, value_difference
from fa_memtool.report import Report, from_dict
from fa_memtool.sizing import agent_attributes, measure_population
from fa_memtool.units import format_bytes

__all__ = ["OptimizeResult", "TrialOutcome", "TrialSettings", "compare_agents", "optimize", "run_trials"]

CHECKPOINTS = 10  # numeric values are compared this many times over the replay
MIN_SAVING_BYTES = 256  # per agent: below this a kept transformation is noise, not a saving


@dataclass
class TrialSettings:
    target_bytes: float | None
    plugins: list[str] | None
    exclude: list[str]
    force: list[str]  # paths whose transformations (there and inside) are kept even if behaviour changes
    rtol: float
    atol: float
    growing: dict[str, float]  # from the baseline profile: path -> bytes per agent per step
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
    adoption: dict[str, str] = field(default_factory=dict)  # "plugin:path" -> the line to write (one per path)

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


# -- the trials ------------------------------------------------------------------------


def _drop_read_caches(agents: list[Any]) -> None:
    """Read caches filled by the comparison (a CompressedHistory's decoded chunk) are not
    the agents' cost: empty them before the trial is measured."""
    boundary = frozenset(id(agent) for agent in agents)
    for agent in agents:
        for _, value, _ in walk(agent, stop=boundary - {id(agent)}):
            drop_cache = getattr(type(value), "drop_cache", None)
            if callable(drop_cache):
                drop_cache(value)


def compare_populations(original: PopulationDriver, trial: PopulationDriver, rtol: float, atol: float) -> str | None:
    """How two populations differ in their state: agent set, agents' numbers at every
    path, and the model's own top-level numbers."""
    if original.labels() != trial.labels():
        return f"the agent set differs ({len(trial.labels())} agents instead of {len(original.labels())}, or other ids)"
    found = compare_agents(original.agents(), trial.agents(), rtol, atol)
    if found is None and original.model is not None:
        for name, value in agent_attributes(original.model):
            found = value_difference(value, getattr(trial.model, name, None), rtol, atol, f"the model .{name}")
            if found:
                break
    return found


def different_actions(original: list[Action], trial: list[Action], step: int) -> str | None:
    """The first difference between two steps' actions (agent ids included), or None."""
    if [label for label, _ in original] != [label for label, _ in trial]:
        return f"the agents stepped differ at step {step} ({len(trial)} instead of {len(original)}, or other ids)"
    for index, ((label, action), (_, trial_action)) in enumerate(zip(original, trial)):
        if not same_action(action, trial_action):
            who = "the model's step returned" if label == MODEL_LABEL else f"agent {index} chose"
            return f"{who} {trial_action!r} instead of {action!r} at step {step}"
    return None


def _order(candidates: list[Candidate], priority: dict[str, int]) -> list[Candidate]:
    """Paths by their best estimated saving; within a path, by plugin priority."""
    best: dict[str, float] = {}
    for candidate in candidates:
        best[candidate.attribute] = max(best.get(candidate.attribute, 0.0), candidate.estimated_bytes_saved_per_agent)
    return sorted(
        candidates,
        key=lambda c: (-best[c.attribute], c.attribute, priority.get(c.plugin, DEFAULT_PRIORITY), -c.estimated_bytes_saved_per_agent),
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
    from fa_memtool.plugins import TransformationFailed, analyse, apply_candidate, excluded, plugin_manager, priorities, select

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
    context = AnalysisContext(
        growing=dict(settings.growing),
        rtol=settings.rtol,
        atol=settings.atol,
        exclude=frozenset(settings.exclude),
        steps=steps,
        boundaries=tuple(probe.program_objects()),
    )
    candidates, failures = analyse(manager, probe.agents(), context, enabled)
    del probe
    candidates = _order(candidates, priorities(manager))

    accepted: list[tuple[Candidate, PlanStep]] = []
    outcomes: list[TrialOutcome] = []
    checkpoint = max(1, steps // CHECKPOINTS)

    def replay(
        originals: PopulationDriver, trials: PopulationDriver, streams: tuple[RandomStream, RandomStream]
    ) -> tuple[str | None, float, float]:
        """Lockstep replay, each population in its own random stream: how behaviour
        changed (or None), and both populations' step time."""
        seconds_original = seconds_trial = 0.0
        for step_number in range(steps):
            started = time.perf_counter()
            with streams[0].active():
                actions = originals.step(step_number)  # the original raising is the workload's failure
            middle = time.perf_counter()
            try:
                with streams[1].active():
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
        outcome.forced = excluded(candidate.attribute, settings.force)
        # Both populations are built and stepped from one random state, each in its
        # own stream: the same draws for agents that use the global generators.
        streams = (RandomStream(), RandomStream())
        with streams[0].active():
            originals = build()
        with streams[1].active():
            trials = build()
        trial_agents = trials.agents()
        try:
            for earlier, _ in accepted:
                apply_candidate(manager, trial_agents, earlier)
            step = step_for(trial_agents[0], candidate.plugin, candidate.attribute, candidate.parameters)
            apply_candidate(manager, trial_agents, candidate)
        except TransformationFailed as failure:
            outcome.reason = f"could not be applied: {failure}"
            return outcome, None, None
        except PathError as error:  # found after the steps, absent from freshly built agents
            outcome.reason = f"could not be applied: {error.message}"
            return outcome, None, None
        changed, seconds_original, seconds_trial = replay(originals, trials, streams)
        if changed is not None and not outcome.forced:
            outcome.reason = f"behaviour changed: {changed}"
            return outcome, None, None
        _drop_read_caches(trials.agents())
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
        outcome.reason = changed or f"identical actions over {steps} steps; numeric values within tolerance"
        step.before_bytes_per_agent, step.after_bytes_per_agent = current, after
        return outcome, step, step_ratio

    current = baseline_bytes
    ratio: float | None = None
    kept: set[tuple[str, str]] = set()
    for number, candidate in enumerate(candidates):
        if settings.target_bytes is not None and current <= settings.target_bytes:
            break
        if (candidate.plugin, candidate.attribute) in kept:
            continue  # an alternative to a kept candidate (another bound of one history)
        progress.send(
            "trials", stage="trial", done=number, total=len(candidates), name=f"{candidate.plugin} on .{candidate.attribute}"
        )
        outcome, step, step_ratio = trial(candidate, current)
        outcomes.append(outcome)
        if step is not None:
            accepted.append((candidate, step))
            kept.add((candidate.plugin, candidate.attribute))
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


def _adoption(report: Report, plan: Plan) -> dict[str, str]:
    """For each kept step, the line that adopts it: one line per path, composing every
    transformation kept for that path in plan order."""
    from fa_memtool.plugins import plugin_manager
    from fa_memtool.summary import attribute_summaries

    manager = plugin_manager()
    summaries = attribute_summaries(report)
    sites = {summary.name: summary.allocation_site for summary in summaries if summary.allocation_site}
    codes = {summary.name: summary.allocation_code for summary in summaries if summary.allocation_code}
    by_path: dict[str, list[PlanStep]] = {}
    for step in plan.steps:
        by_path.setdefault(step.attribute, []).append(step)
    lines: dict[str, str] = {}
    for path, steps in by_path.items():
        line = adoption_line(
            manager,
            path=path,
            transformations=[(step.plugin, step.parameters) for step in steps],
            code=codes.get(path),
        )
        if line is None:
            continue
        site = site_for(path, sites)
        for step in steps:
            lines[f"{step.plugin}:{path}"] = f"{site}: {line}" if site else line
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
    settings.growing = {item.name: item.bytes_per_step_per_agent for item in before.growth.paths or before.growth.attributes}
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
