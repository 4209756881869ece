"""``fa-mem profile``: measure a population of agents in a fresh child process."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from fa_memtool.cli._common import child_progress, stderr_console, stdout_console
from fa_memtool.renderers import SafeText
from fa_memtool.cli._workload import (
    AgentsOption,
    DebugOption,
    FactoryOption,
    MaxMemoryOption,
    PathArgument,
    ProgressOption,
    SampleEveryOption,
    ScalingOption,
    SeedOption,
    StepMethodOption,
    FactoryArgOption,
    AgentsFromOption,
    StepModelOption,
    ModelStepMethodOption,
    ObservationsOption,
    StepsOption,
    TimeoutOption,
    TraceFramesOption,
    TraceOption,
    WorkloadFlags,
    check_writable,
    resolve_workload,
)
from fa_memtool.config import load_config
from fa_memtool.errors import StepFailed, UsageError
from fa_memtool.plan import load_plan
from fa_memtool.renderers import terminal
from fa_memtool.report import save_report
from fa_memtool.runner import profile


def profile_command(
    path: PathArgument = None,
    agents: AgentsOption = None,
    steps: StepsOption = None,
    seed: SeedOption = None,
    factory: FactoryOption = None,
    step_method: StepMethodOption = None,
    factory_arg: FactoryArgOption = None,
    agents_from: AgentsFromOption = None,
    step_model: StepModelOption = None,
    model_step_method: ModelStepMethodOption = None,
    observations: ObservationsOption = None,
    sample_every: SampleEveryOption = None,
    scaling: ScalingOption = None,
    trace: TraceOption = None,
    trace_frames: TraceFramesOption = 10,
    backend: Annotated[
        str, typer.Option("--backend", help="Allocation tracer: tracemalloc, or memray to also write a memray capture.")
    ] = "tracemalloc",
    memray_output: Annotated[
        str | None,
        typer.Option("--memray-output", help="Where --backend memray writes its capture. [default: fa-mem-<module>.bin]", show_default=False),
    ] = None,
    json_path: Annotated[
        str | None, typer.Option("--json", help="Also write the report as JSON to FILE (atomically).", show_default=False)
    ] = None,
    plan: Annotated[
        str | None,
        typer.Option("--plan", help="Apply this plan (from fa-mem optimize --plan-out) right after building.", show_default=False),
    ] = None,
    runs: Annotated[
        int,
        typer.Option(
            "--runs",
            help="Build, run and release the population K times in one process (a parameter sweep) and report "
            "what each release leaves behind.",
        ),
    ] = 1,
    release_check: Annotated[
        bool,
        typer.Option(
            "--release-check/--no-release-check",
            help="After the run, release the population and report what stays alive (and why).",
        ),
    ] = True,
    max_memory: MaxMemoryOption = None,
    timeout: TimeoutOption = None,
    progress: ProgressOption = True,
    debug: DebugOption = False,
) -> None:
    """Measure what each agent really costs, what is shared and what grows.

    Exclusive, shared and amortized bytes per agent and per attribute, growth per step,
    allocation sites, GC and step latency, with measured suggestions.

    Flags override [tool.fa-mem] in pyproject.toml. [default scaling: auto]

    Exit codes: 0 ok; 2 usage or input error; 4 an agent raised while stepping (the partial
    report is still shown and written); 5 over --max-memory or --timeout; 130 interrupted.
    """
    flags = WorkloadFlags(
        path=path, agents=agents, steps=steps, seed=seed, factory=factory, step_method=step_method,
        sample_every=sample_every, scaling=scaling, trace=trace, trace_frames=trace_frames, max_memory=max_memory,
        timeout=timeout, factory_args=factory_arg, agents_from=agents_from, step_model=step_model, model_step_method=model_step_method,
        observations=observations,
    )
    workload = resolve_workload(flags, load_config(), scaling_by_default=True, backend=backend, memray_output=memray_output)
    check_writable(json_path, "--json")
    if runs < 1:
        raise UsageError(f"--runs must be at least 1 (got {runs})")
    if runs > 1 and not release_check:
        raise UsageError("--runs needs the release check: leave out --no-release-check")
    workload.spec = dataclasses.replace(workload.spec, runs=runs, check_release=release_check)
    if plan is not None:
        plan_steps = load_plan(plan).steps
        workload.spec = dataclasses.replace(workload.spec, plan=tuple(dataclasses.asdict(step) for step in plan_steps))
    with child_progress(progress) as on_event:
        report = profile(workload.spec, limits=workload.limits, scaling=workload.scaling, progress=on_event)
    terminal.render(report, stdout_console())
    if json_path is not None:
        save_report(report, json_path)
        stderr_console().print(SafeText(f"report written to {json_path}"))
    if report.error is not None:
        raise StepFailed(report.error.message, detail=report.error.traceback)
