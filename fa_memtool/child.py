"""The measuring child process: ``python -m fa_memtool.child SPEC RESULT [PROGRESS_FD]``.

It runs in a fresh interpreter, so nothing of the CLI (typer, rich) and nothing of
an earlier run enters a number. It imports only what it measures with, then the
user's module, builds the agents, steps them, samples the population, attributes
memory to agents and writes one JSON result to RESULT through a rename. Progress
goes out as JSON lines on PROGRESS_FD, so the user's own prints cannot garble it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import signal
import sys
import time
import traceback
import tracemalloc
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO


def _die_with_parent() -> None:
    """Never outlive the fa-mem process that started this one, even a SIGKILLed one.

    On Linux the kernel is asked (PR_SET_PDEATHSIG) to SIGKILL this process when its
    parent ends; if the parent ended before that request, this process was already
    reparented, so it compares its parent with the pid fa-mem passed and exits if they
    differ. It also becomes a subreaper (PR_SET_CHILD_SUBREAPER), so the workload's
    orphaned processes (a double fork) stay below it, where fa-mem finds and stops them.
    Done first, before the heavier imports; elsewhere only the parent check is made.
    """
    parent = os.environ.pop("FA_MEM_PARENT_PID", None)  # fa_memtool.runner.PARENT_PID_VARIABLE
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            prctl = ctypes.CDLL(None, use_errno=True).prctl
            ulong = ctypes.c_ulong
            prctl(1, ulong(signal.SIGKILL), ulong(0), ulong(0), ulong(0))  # PR_SET_PDEATHSIG
            prctl(36, ulong(1), ulong(0), ulong(0), ulong(0))  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass
    if parent is not None and parent.isdigit() and os.getppid() != int(parent):
        os._exit(129)  # the parent is gone (128 + SIGHUP): nothing would read a result


if __name__ == "__main__":
    _die_with_parent()

import psutil

from fa_memtool import __version__
from fa_memtool import analysis, tracking
from fa_memtool.errors import FaMemError, InternalError, ResourceLimitExceeded, StepError, StepFailed, error_record
from fa_memtool.assemble import attach_path_sites, attribute_agents, fill_zero_fractions, timing_report
from fa_memtool.buffers import prepare_libraries
from fa_memtool.report import ReleasedRun
from fa_memtool.retention import ReleaseWatch, runs_verdict
from fa_memtool.gcstats import GCMonitor
from fa_memtool.hookspecs import AnalysisContext
from fa_memtool.growth import analyse_growth, deepest_growth, growth_paths, name_deepest
from fa_memtool.pathtree import flatten
from fa_memtool.paths import PathError, resolve
from fa_memtool.population_driver import PopulationDriver, Stepping
from fa_memtool.report import (
    SCHEMA_VERSION,
    Allocations,
    Failure,
    GCReport,
    PhaseMemory,
    Population,
    Report,
    TimelineSample,
    Workload,
    write_atomic,
)
from fa_memtool.sizing import PopulationSize, agent_attributes, measure_population
from fa_memtool.spec import RunSpec
from fa_memtool.units import format_count
from fa_memtool.workload import call_factory, find_factory, find_observe, load_module, program_globals

SITES_SHOWN = 10
TREE_SAMPLES = 6  # samples (first and last included) that build the tree of paths
SAMPLING_BUDGET = 0.05  # by default, samples beyond the tree's are skipped while sampling costs more than this share of step time
SAMPLE_AGENTS = 2  # agents of the small population traced for allocation sites
SAMPLE_STEPS = 4  # steps of it traced (at most the steps the population completed)


@dataclasses.dataclass
class SampleSites:
    """What the traced sample population showed (Measurement._trace_sample)."""

    agents: int = 0
    construction: list[Any] = dataclasses.field(default_factory=list)
    attribute_sites: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    path_sites: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    newest_path_sites: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    newest_attribute_sites: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    step_sites: tracking.StepSites = dataclasses.field(default_factory=tracking.StepSites)
    latencies: list[float] = dataclasses.field(default_factory=list)


class Progress:
    """JSON lines to the parent; silent when there is no parent listening."""

    def __init__(self, descriptor: int | None) -> None:
        self._stream: TextIO | None = os.fdopen(descriptor, "w", buffering=1) if descriptor is not None else None
        self._last = 0.0

    def send(self, event: str, *, force: bool = True, **fields: Any) -> None:
        if self._stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        try:
            self._stream.write(json.dumps({"event": event, **fields}) + "\n")
        except (BrokenPipeError, ValueError):
            self._stream = None


class Measurement:
    """One run of the workload, phase by phase."""

    def __init__(self, spec: RunSpec, progress: Progress) -> None:
        self.spec = spec
        self.progress = progress
        self.process = psutil.Process()
        self.phases: list[PhaseMemory] = []
        self.tracing = spec.mode == "profile" and spec.trace and spec.backend == "tracemalloc"
        self.notes: list[str] = []
        self.measured_labels: list[Any] = []  # the stable ids of the agents of the latest sample

    def record_phase(self, name: str) -> PhaseMemory:
        try:
            full = self.process.memory_full_info()
            rss, uss = int(full.rss), int(getattr(full, "uss", 0)) or None
        except (psutil.AccessDenied, AttributeError):
            rss, uss = int(self.process.memory_info().rss), None
        tracer = tracemalloc.get_tracemalloc_memory() if tracemalloc.is_tracing() else 0
        phase = PhaseMemory(phase=name, rss_bytes=rss, uss_bytes=uss, tracer_bytes=tracer)
        self.phases.append(phase)
        self.progress.send("phase", name=name, rss_bytes=rss)
        return phase

    # -- the run ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        spec = self.spec
        os.chdir(spec.working_directory)
        self.record_phase("interpreter")
        module = load_module(spec.target)
        # What the program's libraries import lazily while agents are built is imported
        # here, before the build is traced (fa_memtool.buffers.BufferHandler.prepare).
        prepare_libraries()
        self.record_phase("import")
        factory_name, factory = find_factory(module, spec.factory)
        if spec.mode == "trials":
            return self._run_trials(module, factory_name, factory)
        memray_tracker = self._start_memray()

        self.progress.send("build", total=spec.agents)
        driver = self._driver(module, factory_name, factory)
        # The population is built and stepped untraced: allocation sites come from a
        # small sample population traced after the steps (_trace_sample).
        with GCMonitor() as build_gc:
            started = time.perf_counter()
            agents = list(driver.build())
            create_seconds = time.perf_counter() - started
        if spec.plan:
            self._apply_plan(agents)
        self.record_phase("build")
        if len(agents) != spec.agents:
            if driver.model is None:
                self.notes.append(f"{factory_name} returned {len(agents)} agents when asked for {spec.agents}")
            else:
                self.notes.append(f"the model from {factory_name} holds {len(agents)} agents at .{spec.agents_from} when asked for {spec.agents}")
        self.measured_labels = driver.labels()

        if spec.mode == "plain":
            return self._run_plain(agents, driver, create_seconds, memray_tracker)
        # The model is the program's, like the module's globals: what it holds is shared,
        # never one agent's, and the walk stops at its agents as at every agent.
        globals_ = program_globals(module)
        outcome = self._run_profile(
            agents=agents,
            stream=driver.stream,
            driver=driver,
            globals_=globals_,
            factory_name=factory_name,
            module_name=module.__name__,
            create_seconds=create_seconds,
            build_gc=build_gc,
            sample_driver=lambda agents: self._driver(module, factory_name, factory, agents=agents),
        )
        self._describe_population(outcome["report"], driver)
        if spec.check_release:
            # Let go of everything this process holds of the population, then see what
            # survives: what the user's program (or a library) keeps after the run.
            watch = ReleaseWatch(agents, ids=list(self.measured_labels), model=driver.model)
            del agents, driver, globals_
            retention = watch.check()
            if spec.runs > 1:
                retention.runs = [self._released_run(1, retention)]
                for run in range(2, spec.runs + 1):
                    retention.runs.append(self._run_and_release(run, module, factory_name, factory))
                retention.runs_verdict = runs_verdict(retention.runs)
            outcome["report"]["retention"] = dataclasses.asdict(retention)
        return outcome

    def _released_run(self, run: int, retention: Any) -> ReleasedRun:
        return ReleasedRun(
            run=run,
            rss_bytes=int(self.process.memory_info().rss),
            retained_agents=len(retention.retained_agents),
            model_retained=retention.model_retained,
            retained_bytes=retention.retained_bytes,
        )

    def _run_and_release(self, run: int, module: Any, factory_name: str, factory: Any) -> ReleasedRun:
        """One more run of ``--runs K``: build, step, let go, check (no sampling)."""
        self.progress.send("phase", name=f"run {run} of {self.spec.runs}", rss_bytes=int(self.process.memory_info().rss))
        driver = self._driver(module, factory_name, factory)
        agents = list(driver.build())
        if self.spec.plan:
            self._apply_plan(agents)  # every run as the profiled one: with the plan applied
        for step in range(self.spec.steps):
            driver.step(step)
            if driver.finished:
                break
        watch = ReleaseWatch(driver.agents() or agents, model=driver.model)
        del agents, driver
        return self._released_run(run, watch.check(paths=False))

    def _driver(
        self, module: Any, factory_name: str, factory: Any, *, seed: int | None = None, agents: int | None = None
    ) -> PopulationDriver:
        """A driver that builds the population with this run's factory call (with
        ``seed`` in place of the run's seed, for the factory and the observations, and
        ``agents`` in place of its population size)."""
        spec = self.spec
        if seed is not None:
            spec = dataclasses.replace(spec, seed=seed)
        if agents is not None:
            spec = dataclasses.replace(spec, agents=agents)
        return PopulationDriver(
            lambda: call_factory(factory_name, factory, agents=spec.agents, seed=spec.seed, factory_args=spec.factory_args),
            stepping=Stepping.from_spec(spec),
            observe=find_observe(module),
            requested=spec.agents,
        )

    def _describe_population(self, report: dict[str, Any], driver: PopulationDriver) -> None:
        """The stable ids and the stepping mode, which only the driver knows, into the report."""
        for entry, label in zip(report["agents"], self.measured_labels):
            entry["agent_id"] = label
        report["workload"].update(driver.mode(), factory_args=self.spec.factory_args)

    def _apply_plan(self, agents: list[Any], *, note: bool = True) -> None:
        from fa_memtool.plan import PLAN_VERSION, Plan, PlanStep, apply_plan
        from fa_memtool.report import from_dict

        plan = Plan(fa_mem_plan=PLAN_VERSION, steps=[from_dict(PlanStep, step) for step in self.spec.plan])
        apply_plan(agents, plan)
        if note:
            self.notes.append(f"a plan of {len(plan.steps)} transformation(s) was applied right after building")

    def _run_trials(self, module: Any, factory_name: str, factory: Any) -> dict[str, Any]:
        from fa_memtool.optimize import TrialSettings, run_trials

        spec = self.spec
        settings = TrialSettings(**(spec.trials or {}))

        def build(seed: int) -> PopulationDriver:
            driver = self._driver(module, factory_name, factory, seed=seed)
            driver.build()
            return driver

        return run_trials(
            build=build,
            steps=spec.steps,
            settings=settings,
            module_globals=program_globals(module),
            progress=self.progress,
            seed=spec.seed,
        )

    def _start_memray(self) -> Any:
        """The memray capture of a plain run (``--backend memray``): the build and the
        steps with nothing of fa-mem's own sizing or analysis in it."""
        if self.spec.backend != "memray" or self.spec.mode != "plain":
            return None
        import memray

        destination = Path(self.spec.memray_output or "fa-mem-capture.bin")
        if destination.exists():
            destination.unlink()
        tracker = memray.Tracker(str(destination))
        tracker.__enter__()
        return tracker

    def _attribute_sites(self, agent: Any, names: set[str] | None = None) -> dict[str, tuple[str, str]]:
        """The user line that allocated each attribute's largest buffer (one agent)."""
        sites: dict[str, tuple[str, str]] = {}
        for name, value in agent_attributes(agent):
            if names is not None and name not in names:
                continue
            arrays = analysis.numeric_arrays(value)
            # Newest entries first (histories), largest buffers first otherwise.
            candidates: list[Any] = sorted(arrays, key=lambda array: -int(array.nbytes)) if names is None else arrays[::-1]
            candidates = [analysis.buffer_owner(array) for array in candidates] + [value]
            found = tracking.object_site(candidates)
            if found is not None:
                sites[name] = found
        return sites

    def _step_loop(
        self,
        agents: list[Any],
        driver: PopulationDriver,
        on_sample: Callable[[int, float], bool] | None,
    ) -> tuple[dict[str, Any], Failure | None]:
        """Step the population, untraced; ``agents`` (the list the samples size) is
        brought up to date with the driver's agent set right before each sample."""
        spec = self.spec
        latencies: list[float] = []
        stepping = 0.0
        failure: Failure | None = None
        perf = time.perf_counter
        completed = sampled = 0
        phase_started = perf()
        for step in range(spec.steps):
            loop_started = perf()
            reading = driver.read_seconds
            try:
                driver.step(step, latencies=latencies)
            except StepError as error:
                failure = Failure(kind="step", message=error.message, agent=error.agent, step=step, traceback=error.detail)
            # Reading the model's agent set is fa-mem's work, not the agents'.
            stepping += perf() - loop_started - (driver.read_seconds - reading)
            if failure is not None:
                if driver.agents():
                    self._bring_up_to_date(agents, driver)
                else:
                    # Nothing is left to size: the report stands on the last sample.
                    completed = sampled
                break
            completed = step + 1
            stopping = driver.finished and completed < spec.steps
            if on_sample is not None and (completed % spec.sampling_interval == 0 or completed == spec.steps or stopping):
                self._bring_up_to_date(agents, driver)
                if on_sample(completed, stepping):
                    sampled = completed
            self.progress.send("steps", force=completed == spec.steps or stopping, done=completed, total=spec.steps)
            if stopping:
                self.notes.append(
                    f"the model stopped itself (running became False) after step {completed}: {completed} of {spec.steps} steps ran"
                )
                break
        self.notes.extend(driver.notes())
        return (
            {
                "completed": completed,
                "stepping_seconds": stepping,
                "wall_seconds": perf() - phase_started,
                "latencies": latencies,
            },
            failure,
        )

    def _trace_sample(self, make_driver: Callable[[int], PopulationDriver], steps: int) -> SampleSites:
        """Allocation sites from a small population traced with tracemalloc.

        The measured population is built and stepped untraced: tracing every agent costs
        up to a hundred times an untraced step for small agents. Instead SAMPLE_AGENTS
        agents are built by the same factory call (same seed, so they are the first
        agents of the population, with the same observations) and stepped for up to
        SAMPLE_STEPS of the steps the population completed, all traced. The lines that
        allocated each path of the first one, what building and each step allocated, and
        where each container's newest entries came from, are read from it. Whatever it
        raises is noted, never the profile's failure: the sites found so far are kept.
        """
        spec = self.spec
        found = SampleSites(agents=min(spec.agents, SAMPLE_AGENTS))
        self.progress.send("phase", name=f"allocation sites ({format_count(found.agents, 'agent')} traced)",
                           rss_bytes=int(self.process.memory_info().rss))
        tracemalloc.start(spec.trace_frames)
        try:
            driver = make_driver(found.agents)
            agents = list(driver.build())
            if spec.plan:
                self._apply_plan(agents, note=False)
            found.agents = len(agents)
            # Tracing started right before the factory call: what it holds now is what
            # building allocated and kept. Snapshots are read once tracing stopped (reading
            # one under the tracer costs many times more).
            built = tracking.take_snapshot()
            found.attribute_sites = self._attribute_sites(agents[0])
            found.path_sites = tracking.path_sites(agents[0], stop=frozenset(map(id, agents)))
            tracemalloc.stop()
            found.construction = tracking.snapshot_sites(built, limit=SITES_SHOWN)
            del built
            traced = min(steps, SAMPLE_STEPS)
            for step in range(traced):
                tracemalloc.start(spec.trace_frames)
                driver.step(step, latencies=found.latencies)
                snapshot = tracking.take_snapshot()
                if step == traced - 1 or driver.finished:
                    # Objects allocated by the last step still carry their traceback:
                    # note, newest first, where each attribute's recent entries came from.
                    current = driver.agents()
                    first = current[0]
                    found.newest_attribute_sites = self._attribute_sites(first, {name for name, _ in agent_attributes(first)})
                    found.newest_path_sites = tracking.path_sites(first, stop=frozenset(map(id, current)), newest=True)
                tracemalloc.stop()
                found.step_sites.add(snapshot)
                del snapshot
                if driver.finished:
                    break
        except (Exception, SystemExit) as error:  # the user's code, in a population of its own
            what = error.message if isinstance(error, FaMemError) else f"{type(error).__name__}: {error}"
            self.notes.append(f"allocation sites: the traced sample of {found.agents} agent(s) stopped ({what}); sites found before are shown")
        finally:
            tracemalloc.stop()
        return found

    def _bring_up_to_date(self, agents: list[Any], driver: PopulationDriver) -> None:
        agents[:] = driver.agents()
        self.measured_labels = driver.labels()

    def _run_plain(self, agents: list[Any], driver: PopulationDriver, create_seconds: float, memray_tracker: Any) -> dict[str, Any]:
        build_phase = self.phases[-1]
        stepped, failure = self._step_loop(agents, driver, None)
        if memray_tracker is not None:
            memray_tracker.__exit__(None, None, None)
        steps_phase = self.record_phase("steps")
        if failure is not None:
            raise StepFailed(failure.message, detail=failure.traceback)
        return {
            "plain": {
                "agents": len(agents),
                "rss_after_build": build_phase.rss_bytes,
                "rss_after_steps": steps_phase.rss_bytes,
                "uss_after_build": build_phase.uss_bytes,
                "uss_after_steps": steps_phase.uss_bytes,
                "stepping_seconds": stepped["stepping_seconds"],
                "create_seconds": create_seconds,
            }
        }

    def _run_profile(
        self,
        *,
        agents: list[Any],
        stream: Any,
        driver: PopulationDriver,
        globals_: list[object],
        factory_name: str,
        module_name: str,
        create_seconds: float,
        build_gc: GCMonitor,
        sample_driver: Callable[[int], PopulationDriver],
    ) -> dict[str, Any]:
        spec = self.spec
        samples: list[TimelineSample] = []
        series: dict[str, list[float]] = defaultdict(list)
        sampling = [0.0]
        latest: list[PopulationSize] = []

        tree_steps = _tree_sample_steps(spec.steps, spec.sampling_interval)
        budgeted = spec.sample_every == 0  # --sample-every K samples every K steps, whatever it costs
        tree_samples: list[TimelineSample] = []
        path_series: dict[str, list[float]] = defaultdict(list)

        skipped = [0]

        def sample(step: int, stepping: float = 0.0, *, final: bool = False) -> bool:
            final = final or step == spec.steps
            with_tree = final or step in tree_steps
            if budgeted and not with_tree and sampling[0] > SAMPLING_BUDGET * stepping:
                skipped[0] += 1  # over budget: only the samples of the tree of paths are taken
                return False
            started = time.perf_counter()
            # measure_population pauses the collector: its walk never triggers a
            # collection that would be counted as the agents' GC cost.
            # Zero fractions of the tree's arrays are counted later (fill_zero_fractions):
            # reading the arrays here would map untouched pages before residency is read.
            sized = measure_population(agents, module_globals=globals_, boundaries=driver.program_objects(), paths=with_tree)
            count = len(sized.agents)
            totals: dict[str, float] = defaultdict(float)
            for agent in sized.agents:
                for attribute in agent.attributes:
                    totals[attribute.name] += attribute.amortized_bytes
            for name in set(series) | set(totals):
                values = series[name]
                values.extend([0.0] * (len(samples) - len(values)))  # attributes that appeared late
                values.append(totals.get(name, 0.0) / count)
            samples.append(
                TimelineSample(
                    step=step,
                    per_agent_bytes=sum(agent.amortized_bytes for agent in sized.agents) / count,
                    distinct_bytes=sized.distinct_bytes,
                    rss_bytes=int(self.process.memory_info().rss),
                )
            )
            if with_tree:
                rows = {row.path: row for row in flatten(sized.paths)}
                for path in set(path_series) | set(growth_paths(list(rows.values()))):
                    values = path_series[path]
                    values.extend([0.0] * (len(tree_samples) - len(values)))  # paths that appeared late
                    row = rows.get(path)
                    values.append(row.amortized_bytes * row.agents / count if row is not None else 0.0)
                tree_samples.append(samples[-1])
            latest[:] = [sized]
            sampling[0] += time.perf_counter() - started
            return True

        self.progress.send("sample", step=0)
        sample(0)
        created_per_agent = samples[0].per_agent_bytes
        with GCMonitor() as step_gc:
            stepped, failure = self._step_loop(agents, driver, sample)
        completed = stepped["completed"]
        if failure is not None and (not samples or samples[-1].step != completed):
            sample(completed, final=True)
        self.record_phase("steps")
        if skipped[0]:
            self.notes.append(
                f"sampling was held to {SAMPLING_BUDGET:.0%} of the time inside the steps: {len(samples)} samples taken, "
                f"{skipped[0]} skipped (the {len(tree_steps)} that build the tree of paths are always taken); "
                "--sample-every K samples every K steps whatever it costs"
            )
        sites = SampleSites()
        if self.tracing:
            sites = self._trace_sample(sample_driver, completed)
        attribute_sites = sites.attribute_sites

        self.progress.send("analyse")
        final = latest[0]
        values_by_name: dict[str, list[Any]] = defaultdict(list)
        per_agent_values = []
        for agent in agents:
            named = dict(agent_attributes(agent))
            per_agent_values.append(named)
            for name, value in named.items():
                values_by_name[name].append(value)
        growth = analyse_growth(samples, dict(series), values_by_name)
        # Live values only where a path's bytes changed: the fit reads them for growing paths alone.
        changed = [path for path, values in path_series.items() if min(values) != max(values)]
        growth.paths = deepest_growth(tree_samples, dict(path_series), _values_at_paths(agents, changed))
        name_deepest(growth)
        attach_path_sites(final.paths, growth.paths, built=sites.path_sites, newest=sites.newest_path_sites)
        growing = {item.name for item in growth.attributes}
        growth_sites = {name: site for name, site in sites.newest_attribute_sites.items() if name in growing}
        for item in growth.attributes:
            if item.name in growth_sites:
                item.growth_site, item.growth_code = growth_sites[item.name]

        attributed = attribute_agents(final, per_agent_values, attribute_sites, growth_sites)
        fill_zero_fractions(final.paths, agents)  # after residency: it reads every array
        agent_reports = attributed.agents
        # Sites by path: nested paths from the tree's walk, top-level ones as the attributes found them.
        located = {**sites.newest_path_sites, **sites.path_sites, **growth_sites, **attribute_sites}
        suggestions, plugin_failures = analysis.suggest(
            agents,
            AnalysisContext(
                growing={item.name: item.bytes_per_step_per_agent for item in growth.paths or growth.attributes},
                steps=completed,
                boundaries=tuple(driver.program_objects()),
            ),
            agents=len(agents),
            steps=completed,
            sites={path: site for path, (site, _) in located.items()},
            codes={path: code for path, (_, code) in located.items()},
        )
        self.notes.extend(f"plugin {failure.plugin} failed ({failure.stage}): {failure.message}" for failure in plugin_failures)
        if final.unsized_objects:
            self.notes.append(f"{final.unsized_objects} objects raised in __sizeof__; counted at their header size")
        self.notes.append(
            "per-agent bytes are allocated bytes (deep size); compare resident figures before judging a budget"
        )

        stepping_seconds = stepped["stepping_seconds"]
        agent_steps = len(stepped["latencies"])
        timing = timing_report(
            stepped, traced=sites.latencies, sampling_seconds=sampling[0], create_seconds=create_seconds, agents=len(agents)
        )
        gc_report = GCReport(
            collections=step_gc.collections,
            pause_seconds=step_gc.pause_seconds,
            max_pause_ms=step_gc.max_pause_ms,
            overhead_fraction=step_gc.pause_seconds / stepping_seconds if stepping_seconds > 0 else 0.0,
            build_collections=build_gc.collections,
            build_pause_seconds=build_gc.pause_seconds,
        )
        allocations = Allocations(
            backend="tracemalloc" if self.tracing else (spec.backend if spec.backend == "memray" else "none"),
            frames=spec.trace_frames if self.tracing else 0,
            construction=sites.construction,
            steps=sites.step_sites.sites(limit=SITES_SHOWN, agents=sites.agents) if self.tracing else [],
            traced_steps=sites.step_sites.traced_steps,
            traced_agents=sites.agents if self.tracing else 0,
        )
        population = Population(
            agents=len(agents),
            measured_after_steps=completed,
            distinct_bytes=final.distinct_bytes,
            per_agent_bytes=sum(agent.amortized_bytes for agent in final.agents) / len(agents),
            per_agent_bytes_at_creation=created_per_agent,
            exclusive_bytes=final.exclusive_bytes,
            shared_bytes=final.shared_bytes,
            file_backed_bytes=final.file_backed_bytes,
            objects=final.objects,
            resident_array_bytes=attributed.resident_array_bytes,
            allocated_array_bytes=attributed.allocated_array_bytes,
            model_bytes=final.boundary_bytes,
            device_bytes=dict(final.device_bytes),
        )
        profile_report = Report(
            schema_version=SCHEMA_VERSION,
            fa_mem_version=__version__,
            complete=failure is None,
            workload=Workload(
                target=spec.target,
                module=module_name,
                factory=factory_name,
                step_method=spec.step_method,
                observe=stream.source,
                agents_requested=spec.agents,
                steps=spec.steps,
                seed=spec.seed,
                sample_every=spec.sampling_interval,
                trace=self.tracing,
                backend=allocations.backend,
                python=platform.python_version(),
                platform=platform.platform(terse=True),
            ),
            population=population,
            agents=agent_reports,
            shared=final.shared_groups,
            growth=growth,
            allocations=allocations,
            gc=gc_report,
            timing=timing,
            process=self.phases,
            suggestions=suggestions,
            error=failure,
            notes=self.notes,
            paths=final.paths,
        )
        if agent_steps == 0 and spec.steps:
            self.notes.append("no step completed")
        import dataclasses

        return {"report": dataclasses.asdict(profile_report)}


def _tree_sample_steps(steps: int, interval: int) -> set[int]:
    """The sample steps that also build the tree of paths: the first, the last and
    evenly spaced ones between, TREE_SAMPLES in all. The tree costs about as much again
    as the walk, so building it at every sample would double the sampling time; the
    growth of each path is fitted over these samples."""
    planned = sorted({0, *range(interval, steps + 1, interval), steps})
    if len(planned) <= TREE_SAMPLES:
        return set(planned)
    last = len(planned) - 1
    return {planned[round(index * last / (TREE_SAMPLES - 1))] for index in range(TREE_SAMPLES)}


def _values_at_paths(agents: list[Any], paths: list[str]) -> dict[str, list[Any]]:
    """The live value at each of ``paths`` on every agent that has it (a path of one
    agent may be missing on another)."""
    found: dict[str, list[Any]] = {}
    for path in paths:
        values = []
        for agent in agents:
            try:
                values.append(resolve(agent, path))
            except PathError:
                continue
        found[path] = values
    return found


def main(argv: list[str]) -> int:
    spec_path, result_path = argv[0], argv[1]
    progress = Progress(int(argv[2]) if len(argv) > 2 else None)
    try:
        spec = RunSpec.from_json(Path(spec_path).read_text(encoding="utf-8"))
        outcome = Measurement(spec, progress).run()
    except FaMemError as error:
        outcome = {"error": error_record(error)}
    except MemoryError:
        outcome = {"error": error_record(ResourceLimitExceeded("the workload ran out of memory (MemoryError)", detail=traceback.format_exc()))}
    except Exception as error:  # a bug in fa-mem itself: report it with its traceback
        failure = InternalError(f"fa-mem failed while measuring: {type(error).__name__}: {error}", detail=traceback.format_exc())
        outcome = {"error": error_record(failure)}
    write_atomic(result_path, json.dumps(outcome, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
