"""The optimizer: analyse, apply, prove by replay, keep or roll back, measure again.

1. A baseline profile in a fresh child (the report the user would get from ``profile``).
   If the baseline already meets the target, nothing else runs.
2. A trials child: records the original population's run on the first verification
   seed (every action of every step, the step time, the population at the end), asks
   every enabled plugin for candidates on those agents as they are at the end of the
   run, and ranks them: paths by their best estimated saving, and within a path by the
   priority each plugin declares (lower precision before the transformations that
   change the container, so both can apply).
3. Greedily, a batch at a time until the target is met (candidates on separate paths
   together, split in halves when the batch fails, down to single candidates): on each verification seed
   (the run's seed, then the next ones; each seed's original run recorded once, when
   first needed), a fresh trial population (the accepted plan plus the batch) is
   stepped with that seed's observations and random streams and compared with the
   recording: actions identical at every step, numeric values at every path within
   rtol/atol after the last step. The first seed's trial population is measured before
   the others run; a candidate is kept only when it saves measured bytes. A lossy
   candidate then faces the sensitivity test (fa_memtool.sensitivity). A candidate
   that cannot be applied, raises, changes behaviour, is too slow, saves nothing or is
   sensitive is rolled back (the next trial starts from freshly built agents) and
   reported with the reason. Once a plugin's candidate for a path is kept, that
   plugin's other candidates for the path (alternatives, such as larger history
   bounds) are not tried.
4. A final profile in a fresh child with the accepted plan applied after building.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fa_memtool.adoption import adoption_line, site_for
from fa_memtool.errors import EXIT_BEHAVIOUR_CHANGED, EXIT_LIMIT_EXCEEDED, EXIT_OK, StepFailed
from fa_memtool.hookspecs import DEFAULT_PRIORITY, AnalysisContext, Candidate
from fa_memtool.paths import PathError, is_under, walk
from fa_memtool.plan import Plan, PlanStep, PLAN_VERSION, step_for
from fa_memtool.population_driver import MODEL_LABEL, Action, PopulationDriver
from fa_memtool.replay import RandomStream, compare_agents, same_action, value_difference
from fa_memtool.report import Report, from_dict
from fa_memtool.sizing import agent_attributes, measure_population
from fa_memtool.units import format_bytes, format_count

__all__ = ["OptimizeResult", "TrialOutcome", "TrialSettings", "compare_agents", "optimize", "run_trials"]

CHECKPOINTS = 10  # a sensitivity replay perturbs the values again this many times
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
    verify_seeds: int = 2  # every trial replays the run's population on this many seeds (the run's seed, +1, ...)


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
    # Why it was rolled back, as a word for machines: not-applicable, raised,
    # behaviour-changed, no-saving, slower, sensitive ("" when kept).
    failure: str = ""
    sensitivity_replays: int = 0  # perturbed replays it passed (lossy transformations)


@dataclass
class PluginProblem:
    plugin: str
    stage: str
    message: str


@dataclass
class OptimizeResult:
    target_bytes: float
    target_met: bool
    # Every kept transformation replayed with identical actions (True), one kept under
    # --force changed them (False), or nothing was kept, so nothing needed proof (None).
    verified: bool | None
    before: Report
    after: Report | None
    plan: Plan
    trials: list[TrialOutcome] = field(default_factory=list)
    plugin_failures: list[PluginProblem] = field(default_factory=list)
    replay_steps: int = 0
    step_time_ratio: float | None = None  # optimized / original step time in the last kept trial
    adoption: dict[str, str] = field(default_factory=dict)  # "plugin:path" -> the line to write (one per path)
    # What was proven, or why nothing was tried: the sentence the report leads with.
    summary: str = ""
    candidates: int = 0  # candidates the plugins proposed
    # How the trials were replayed: agents, steps, seeds, sensitivity_replays (empty: no trial ran).
    verification: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.verified is False:
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


@dataclass
class Recording:
    """The original population's run on one verification seed: its actions at every
    step, its step time, and the population itself at the end (the numbers every
    trial's final state is compared with)."""

    seed: int
    actions: list[list[Action]]
    seconds: list[float]  # each step's wall time
    population: PopulationDriver
    finished_after: int | None  # the step after which the model stopped itself, or None


def _snapshot(actions: list[Action]) -> list[Action]:
    """Actions kept for later comparison: copies, since an agent may return an object it
    changes at the next step (its belief array)."""
    import copy

    try:
        return copy.deepcopy(actions)
    except Exception:  # an action that cannot be copied is compared as it is then
        return list(actions)


def run_trials(
    *,
    build: Callable[[int], PopulationDriver],
    steps: int,
    settings: TrialSettings,
    module_globals: list[object],
    progress: Any,
    seed: int = 0,
) -> dict[str, Any]:
    """The child side of optimize (steps 2 and 3 of the module docstring).

    ``build(seed)`` returns a freshly built population for a verification seed (the
    factory's seed and the observations' seed), each time it is called.
    """
    from fa_memtool.plugins import (
        TransformationFailed,
        analyse,
        apply_candidate,
        excluded,
        lossy_plugins,
        plugin_manager,
        priorities,
        select,
    )
    from fa_memtool.sensitivity import MARGIN, REPLAYS, perturb, scope

    manager = plugin_manager()
    enabled = select(manager, settings.plugins)
    lossy = lossy_plugins(manager)
    seeds = [seed + offset for offset in range(max(1, settings.verify_seeds))]
    checkpoint = max(1, steps // CHECKPOINTS)

    def per_agent(population: PopulationDriver) -> float:
        sized = measure_population(population.agents(), module_globals=module_globals, boundaries=population.program_objects())
        return sum(agent.amortized_bytes for agent in sized.agents) / len(sized.agents)

    def record(run_seed: int) -> Recording:
        """The original population's run on one seed, in its own seeded random stream."""
        stream = RandomStream.seeded(run_seed)
        with stream.active():
            population = build(run_seed)
        actions: list[list[Action]] = []
        seconds: list[float] = []
        finished_after = None
        for step_number in range(steps):
            started = time.perf_counter()
            with stream.active():
                step_actions = population.step(step_number)  # the original raising is the workload's failure
            seconds.append(time.perf_counter() - started)
            actions.append(_snapshot(step_actions))
            if population.finished:
                finished_after = step_number + 1
                break
        return Recording(run_seed, actions, seconds, population, finished_after)

    progress.send("trials", stage="analyse", total=steps)
    recordings = {seeds[0]: record(seeds[0])}
    first = recordings[seeds[0]].population
    baseline_bytes = per_agent(first)
    context = AnalysisContext(
        growing=dict(settings.growing),
        rtol=settings.rtol,
        atol=settings.atol,
        exclude=frozenset(settings.exclude),
        steps=steps,
        boundaries=tuple(first.program_objects()),
    )
    candidates, failures = analyse(manager, first.agents(), context, enabled)
    candidates = _order(candidates, priorities(manager))
    examined = 0 if candidates else _examined_paths(first.agents(), first.program_objects())
    del first

    accepted: list[tuple[Candidate, PlanStep]] = []
    outcomes: list[TrialOutcome] = []

    def recording(run_seed: int) -> Recording:
        if run_seed not in recordings:
            progress.send("trials", stage="record", name=f"the original agents on seed {run_seed}")
            recordings[run_seed] = record(run_seed)
        return recordings[run_seed]

    def apply_plan_to(population: PopulationDriver, batch: list[Candidate]) -> list[PlanStep]:
        agents = population.agents()
        for earlier, _ in accepted:
            apply_candidate(manager, agents, earlier)
        steps_of_batch = []
        for candidate in batch:
            steps_of_batch.append(step_for(agents[0], candidate.plugin, candidate.attribute, candidate.parameters))
            apply_candidate(manager, agents, candidate)
        return steps_of_batch

    def replay(recorded: Recording, population: PopulationDriver, stream: RandomStream, *, compare_state: bool,
               disturb: Callable[[int], None] | None = None,
               reference: tuple[PopulationDriver, RandomStream] | None = None) -> tuple[str | None, list[float]]:
        """Step ``population`` as the recorded original was stepped: the first difference
        (actions at every step; numeric state at the end) or None, and each step's time
        against the original's: its recorded time, or with a ``reference`` (a fresh
        original population and its stream) the time of the reference's same step, taken
        right before or after (in turn), so both see the machine in the same state."""
        ratios: list[float] = []
        for step_number, expected in enumerate(recorded.actions):
            if disturb is not None and step_number % checkpoint == 0:
                disturb(step_number)
            if reference is not None and step_number % 2 == 0:
                original = _timed_step(*reference, step_number)
            started = time.perf_counter()
            with stream.active():
                actions = population.step(step_number)  # StepFailed: the trial raised
            trial = time.perf_counter() - started
            if reference is None:
                original = recorded.seconds[step_number]  # recorded with each step's actions
            elif step_number % 2 == 1:
                original = _timed_step(*reference, step_number)
            if original > 0:
                ratios.append(trial / original)
            changed = different_actions(expected, actions, step_number)
            if changed is None and (recorded.finished_after == step_number + 1) != population.finished:
                stopped = "the original" if recorded.finished_after == step_number + 1 else "the optimized"
                changed = f"only {stopped} model stopped itself after step {step_number + 1}"
            if changed is not None:
                return f"{changed} (seed {recorded.seed})", ratios
        if compare_state:
            found = compare_populations(recorded.population, population, settings.rtol, settings.atol)
            if found:
                return f"{found} after step {len(recorded.actions)} (seed {recorded.seed})", ratios
        return None, ratios

    def sensitive(batch: list[Candidate]) -> str | None:
        """The sensitivity test (fa_memtool.sensitivity) of the lossy candidates of a
        batch, their paths perturbed together: the first divergence of a perturbed
        replay of the original agents, or None."""
        import numpy

        names = ", ".join(f".{candidate.attribute}" for candidate in batch)
        for replay_number in range(REPLAYS):
            recorded = recording(seeds[replay_number % len(seeds)])
            progress.send("trials", stage="sensitivity", name=f"{names}: perturbed replay {replay_number + 1}/{REPLAYS}")
            stream = RandomStream.seeded(recorded.seed)
            with stream.active():
                population = build(recorded.seed)
            apply_plan_to(population, [])
            generator = numpy.random.default_rng([recorded.seed, replay_number, 0x5E45])
            moved = {candidate.attribute: 0 for candidate in batch}

            def disturb(_: int) -> None:
                for candidate in batch:
                    moved[candidate.attribute] += perturb(population.agents(), candidate.attribute, scope(candidate), generator)

            try:
                changed, _ = replay(recorded, population, stream, compare_state=False, disturb=disturb)
            except StepFailed as error:
                changed = f"a perturbed replay raised: {error.message}"
            unmoved = [path for path, count in moved.items() if not count]
            if unmoved:
                return f"its values could not be perturbed to test sensitivity (no float array at .{unmoved[0]})"
            if changed is not None:
                sizes = ", ".join(sorted({f"{scope(candidate):.1e}" for candidate in batch}))
                return (
                    f"sensitive at this precision: with {names} perturbed by {sizes} relative "
                    f"({MARGIN:g}x the change), {changed} (perturbed replay {replay_number + 1} of {REPLAYS})"
                )
        return None

    def path_bytes(population: PopulationDriver) -> tuple[float, dict[str, float]]:
        """Per-agent amortized bytes of the population, and of each path of its tree."""
        from fa_memtool.pathtree import flatten

        sized = measure_population(population.agents(), module_globals=module_globals, boundaries=population.program_objects())
        total = sum(agent.amortized_bytes for agent in sized.agents) / len(sized.agents)
        return total, {row.path: row.amortized_bytes for row in flatten(sized.paths)}

    def attempt(batch: list[Candidate], current: float, before_paths: dict[str, float] | None) -> dict[str, Any]:
        """``batch`` on top of the accepted candidates, on every verification seed.

        One candidate: its outcome, as the trial reports it. Several (on paths apart, none
        forced): ``{"failed": True}`` when anything fails, so the caller splits the batch;
        else each one's outcome, its saving measured at its own path."""
        single = len(batch) == 1
        outcomes_of_batch = [
            TrialOutcome(candidate.plugin, candidate.attribute, candidate.estimated_bytes_saved_per_agent, False, "")
            for candidate in batch
        ]
        for outcome in outcomes_of_batch:
            outcome.forced = excluded(outcome.attribute, settings.force)
        where = f"{batch[0].plugin} on .{batch[0].attribute}" if single else f"{len(batch)} transformations"

        def failed(reason: str, kind: str) -> dict[str, Any]:
            outcomes_of_batch[0].reason, outcomes_of_batch[0].failure = reason, kind
            return {"failed": True, "outcomes": outcomes_of_batch}

        steps_of_batch: list[PlanStep] = []
        changed: str | None = None
        step_ratios: list[float] = []  # trial / original, step by step, every seed
        after = 0.0
        after_paths: dict[str, float] = {}
        for number, run_seed in enumerate(seeds):
            recorded = recording(run_seed)
            stream = RandomStream.seeded(run_seed)
            with stream.active():
                population = build(run_seed)
            try:
                steps_of_batch = apply_plan_to(population, batch)
            except TransformationFailed as failure:
                return failed(f"could not be applied: {failure}", "not-applicable")
            except PathError as error:  # found after the steps, absent from freshly built agents
                return failed(f"could not be applied: {error.message}", "not-applicable")
            # Under --max-slowdown the first seed's steps are timed in pairs against a fresh
            # original population stepped alongside: a ratio against a run recorded minutes
            # earlier moves with the machine (a busy neighbour, page reclaim, BLAS threads)
            # by more than the limit allows.
            paired = settings.max_slowdown is not None and number == 0
            reference = None
            if paired:
                reference_stream = RandomStream.seeded(run_seed)
                with reference_stream.active():
                    reference = (build(run_seed), reference_stream)
            try:
                found, ratios = replay(recorded, population, stream, compare_state=True, reference=reference)
            except StepFailed as error:
                return failed(f"raised: {error.message} (under {where}, seed {run_seed})", "raised")
            del reference
            if paired or settings.max_slowdown is None:
                step_ratios.extend(ratios)
            if found is not None:
                if not (single and outcomes_of_batch[0].forced):
                    return failed(f"behaviour changed: {found}", "behaviour-changed")
                changed = changed or found
            if number == 0:
                # Memory first: what saves nothing is rolled back before the other seeds run.
                _drop_read_caches(population.agents())
                after, after_paths = path_bytes(population)
                if single:
                    outcome = outcomes_of_batch[0]
                    if current - after < MIN_SAVING_BYTES:  # forced or not: a transformation must pay
                        outcome.bytes_before, outcome.bytes_after = current, after
                        reason = (
                            f"no measured saving (only {format_bytes(current - after)} per agent, under {MIN_SAVING_BYTES} B)"
                            if after < current
                            else "no measured saving"
                        )
                        return failed(reason, "no-saving")
                else:
                    savings = [
                        (before_paths or {}).get(candidate.attribute, math.nan) - after_paths.get(candidate.attribute, math.nan)
                        for candidate in batch
                    ]
                    if not all(saving >= MIN_SAVING_BYTES for saving in savings) or current - after < MIN_SAVING_BYTES * len(batch):
                        return {"failed": True, "outcomes": outcomes_of_batch}
            del population
        # The median of the step-by-step ratios: a burst of other work on the machine
        # during either run moves a few steps, not the figure.
        step_ratio = statistics.median(step_ratios) if step_ratios else None
        if settings.max_slowdown is not None and step_ratio is not None and step_ratio > settings.max_slowdown:
            # Rounded up: a ratio just over the limit never reads as equal to it ("1.00x, over 1").
            shown = math.ceil(step_ratio * 100) / 100
            return failed(f"steps took {shown:.2f}x the original, over --max-slowdown {settings.max_slowdown:g}", "slower")
        recorded_first = recordings[seeds[0]]
        proven = f"identical actions on {_population_text(recorded_first)} x {len(recorded_first.actions)} steps x {_seeds_text(seeds)}"
        lossy_members = [candidate for candidate in batch if candidate.plugin in lossy]
        if lossy_members and changed is None:
            found = sensitive(lossy_members)
            if found is not None:
                if not (single and outcomes_of_batch[0].forced):
                    return failed(found, "sensitive")
                changed = found
        if not single:
            proven += f", together with {len(batch) - 1} other transformation(s) on other paths"
        # A batch's measured saving is split among its members in proportion to what each
        # saved at its own path, so the members' figures add up to the population's.
        at_paths = [
            current - after if single else (before_paths or {})[candidate.attribute] - after_paths[candidate.attribute]
            for candidate in batch
        ]
        running = current
        for candidate, outcome, step, at_path in zip(batch, outcomes_of_batch, steps_of_batch, at_paths):
            saved = (current - after) * at_path / sum(at_paths)
            outcome.bytes_before, outcome.bytes_after = running, running - saved
            running -= saved
            outcome.accepted = True
            outcome.behaviour_changed = changed is not None
            reason = proven
            if candidate.plugin in lossy:
                outcome.sensitivity_replays = REPLAYS
                reason += f"; and under {REPLAYS} replays with .{candidate.attribute} perturbed by {scope(candidate):.1e} relative"
            outcome.reason = changed or f"{reason}; numeric values within tolerance"
            step.before_bytes_per_agent, step.after_bytes_per_agent = outcome.bytes_before, outcome.bytes_after
        outcomes_of_batch[-1].bytes_after = steps_of_batch[-1].after_bytes_per_agent = after  # no rounding drift
        return {"failed": False, "outcomes": outcomes_of_batch, "steps": steps_of_batch, "after": after,
                "after_paths": after_paths, "ratio": step_ratio}

    state: dict[str, Any] = {"current": baseline_bytes, "ratio": None, "paths": None}
    kept: set[tuple[str, str]] = set()
    tried: set[int] = set()

    def take(batch: list[Candidate]) -> None:
        """Trial a batch; split it in halves when it fails (a single candidate's outcome stands)."""
        if settings.target_bytes is not None and state["current"] <= settings.target_bytes:
            return
        batch = [candidate for candidate in batch if (candidate.plugin, candidate.attribute) not in kept]
        if not batch:
            return
        if len(batch) > 1 and state["paths"] is None:
            state["paths"] = path_bytes(recordings[seeds[0]].population)[1]
        progress.send(
            "trials", stage="trial", done=len(tried), total=len(candidates),
            name=f"{batch[0].plugin} on .{batch[0].attribute}" if len(batch) == 1 else f"{len(batch)} transformations together",
        )
        result = attempt(batch, state["current"], state["paths"])
        if result["failed"] and len(batch) > 1:
            middle = len(batch) // 2
            take(batch[:middle])
            take(batch[middle:])
            return
        tried.update(id(candidate) for candidate in batch)
        outcomes.extend(result["outcomes"])
        if result["failed"]:
            return
        for candidate, step in zip(batch, result["steps"]):
            accepted.append((candidate, step))
            kept.add((candidate.plugin, candidate.attribute))
        state["current"], state["paths"], state["ratio"] = result["after"], result["after_paths"], result["ratio"]

    pending = list(candidates)
    while pending:
        if settings.target_bytes is not None and state["current"] <= settings.target_bytes:
            break
        batch = _next_batch(pending, state["current"] - (settings.target_bytes or 0.0), settings.force)
        for candidate in batch:
            pending.remove(candidate)
        take(batch)
    current, ratio = state["current"], state["ratio"]
    first_recording = recordings[seeds[0]]
    return {
        "trials": {
            "baseline_bytes": baseline_bytes,
            "final_bytes": current,
            "steps": [dataclasses.asdict(step) for _, step in accepted],
            "outcomes": [dataclasses.asdict(outcome) for outcome in outcomes],
            "failures": [dataclasses.asdict(failure) for failure in failures],
            "step_time_ratio": ratio,
            "candidates": len(candidates),
            "examined_paths": examined,
            "verification": {
                "agents": len(first_recording.population.labels()),
                "steps": len(first_recording.actions),
                "seeds": [run_seed for run_seed in seeds if run_seed in recordings],
                "sensitivity_replays": REPLAYS,
            },
        }
    }


def _timed_step(population: PopulationDriver, stream: RandomStream, step_number: int) -> float:
    """One step of a timing reference (an original population): its wall time."""
    started = time.perf_counter()
    with stream.active():
        population.step(step_number)
    return time.perf_counter() - started


def _next_batch(pending: list[Candidate], gap: float, force: list[str]) -> list[Candidate]:
    """The next candidates to replay together: the first pending one, then the first
    pending candidate of each later path that neither holds nor lies inside a path of
    the batch (so none acts on another's objects), none under --force, until their
    estimates together cover the gap to the target."""
    from fa_memtool.plugins import excluded

    first = pending[0]
    batch = [first]
    if excluded(first.attribute, force):
        return batch
    covered = first.estimated_bytes_saved_per_agent
    seen_paths = {first.attribute}
    for candidate in pending[1:]:
        if covered >= gap:
            break
        if candidate.attribute in seen_paths:
            continue
        seen_paths.add(candidate.attribute)
        if excluded(candidate.attribute, force) or any(
            is_under(candidate.attribute, other.attribute) or is_under(other.attribute, candidate.attribute) for other in batch
        ):
            continue
        batch.append(candidate)
        covered += candidate.estimated_bytes_saved_per_agent
    return batch


def _population_text(recorded: Recording) -> str:
    return format_count(len(recorded.population.labels()), "agent")


def _seeds_text(seeds: list[int]) -> str:
    return f"{format_count(len(seeds), 'seed')} ({', '.join(map(str, seeds))})"


def _examined_paths(agents: list[Any], boundaries: list[object]) -> int:
    """How many paths the plugins were shown on the agents: the groups of their holdings
    (objects at any depth), and every top-level attribute (numbers and strings too)."""
    from fa_memtool.holdings import PopulationHoldings

    paths = set(PopulationHoldings(agents, boundaries=boundaries).groups())
    paths.update(name for agent in agents for name, _ in agent_attributes(agent))
    return len(paths)


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
    scaling: Sequence[int] | str | None,
    progress: Any = None,
) -> OptimizeResult:
    from fa_memtool.plugins import plugin_manager, select
    from fa_memtool.runner import profile, run_child

    if progress is not None:
        progress({"event": "configuration", "name": "baseline profile"})
    before = profile(spec, limits=limits, scaling=scaling, progress=progress)
    if before.error is not None:
        raise StepFailed(f"the baseline run failed: {before.error.message}", detail=before.error.traceback)
    workload = {"module": before.workload.module, "factory": before.workload.factory, "agents": spec.agents, "seed": spec.seed}
    empty_plan = Plan(fa_mem_plan=PLAN_VERSION, steps=[], workload=workload)
    per_agent = before.population.per_agent_bytes
    if settings.target_bytes is not None and per_agent <= settings.target_bytes:
        return OptimizeResult(
            target_bytes=float(settings.target_bytes),
            target_met=True,
            verified=None,
            before=before,
            after=None,
            plan=empty_plan,
            replay_steps=spec.steps,
            summary=f"already at {format_bytes(per_agent)} per agent, under the {format_bytes(settings.target_bytes)} target; nothing tried",
        )
    settings.growing = {item.name: item.bytes_per_step_per_agent for item in before.growth.paths or before.growth.attributes}
    trials_spec = dataclasses.replace(spec, mode="trials", trace=False, trials=dataclasses.asdict(settings))
    if progress is not None:
        progress({"event": "configuration", "name": "trials"})
    outcome = run_child(trials_spec, limits=limits, progress=progress)["trials"]
    plan = dataclasses.replace(empty_plan, steps=[from_dict(PlanStep, step) for step in outcome["steps"]])
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
    kept = [trial for trial in trials if trial.accepted]
    verified: bool | None = None
    if kept:
        verified = not any(trial.behaviour_changed for trial in kept) and (after is None or after.error is None)
    verification = outcome.get("verification") or {}
    if not outcome.get("candidates"):
        enabled = select(plugin_manager(), settings.plugins)
        summary = (
            f"no candidates: examined {outcome.get('examined_paths', 0)} paths with {len(enabled)} plugin(s) "
            f"({', '.join(enabled)}); none proposed a transformation"
        )
    elif not kept:
        summary = f"nothing kept: all {len(trials)} tried transformation(s) were rolled back (see the reasons below)"
    elif verified:
        summary = _proof_text(verification, kept)
    else:
        summary = "behaviour changed under a forced transformation"
    result = OptimizeResult(
        target_bytes=float(settings.target_bytes or 0.0),
        target_met=settings.target_bytes is None or final.population.per_agent_bytes <= settings.target_bytes,
        verified=verified,
        before=before,
        after=after,
        plan=plan,
        trials=trials,
        plugin_failures=[from_dict(PluginProblem, item) for item in outcome["failures"]],
        replay_steps=spec.steps,
        step_time_ratio=outcome["step_time_ratio"],
        summary=summary,
        candidates=int(outcome.get("candidates") or 0),
        verification=verification,
    )
    result.adoption = _adoption(before, plan)
    return result


def _proof_text(verification: dict[str, Any], kept: list[TrialOutcome]) -> str:
    """What the replays proved, in one sentence."""
    agents, steps, seeds = verification.get("agents", 0), verification.get("steps", 0), verification.get("seeds", [])
    text = (
        f"identical actions on {format_count(agents, 'agent')} x {steps} steps x {_seeds_text(seeds)} "
        "for every kept transformation"
    )
    lossy = [trial for trial in kept if trial.sensitivity_replays]
    if lossy:
        names = (
            ", ".join(f"{trial.plugin} on .{trial.attribute}" for trial in lossy)
            if len(lossy) <= 3
            else f"the {len(lossy)} lossy ones"
        )
        text += f"; {names} also under {lossy[0].sensitivity_replays} replays with the values perturbed by 10x the change"
    return text
