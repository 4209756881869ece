"""``fa-mem gate`` and ``fa-mem baseline update``: memory regressions fail the build."""

from __future__ import annotations

import io
import os
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
    Workload,
    WorkloadFlags,
    check_writable,
    config_fraction,
    config_size,
    resolve_workload,
)
from fa_memtool.config import Config, load_config
from fa_memtool.errors import EXIT_LIMIT_EXCEEDED, OutputError, StepFailed, UsageError
from fa_memtool.gate import (
    DEFAULT_BASELINE,
    Budgets,
    Tolerances,
    annotation_lines,
    baseline_from_report,
    compare,
    load_baseline,
    save_baseline,
)
from fa_memtool.renderers import gate as gate_renderer
from fa_memtool.report import Report, load_report, save_report, write_atomic
from fa_memtool.runner import profile

BaselineOption = Annotated[
    str | None, typer.Option("--baseline", help=f"Baseline file. [default: {DEFAULT_BASELINE}]", show_default=False)
]
ReportOption = Annotated[
    str | None,
    typer.Option("--report", help="Use a report saved by fa-mem profile --json instead of running the workload.", show_default=False),
]


def _measure(workload: Workload | None, saved: str | None, progress: bool) -> Report:
    if saved is not None:
        report = load_report(saved)
        if report.error is not None or not report.complete:
            reason = report.error.message if report.error is not None else "the run did not complete"
            raise UsageError(f"report {saved} is incomplete ({reason}); fix the workload and profile it again")
        return report
    if workload is None:
        raise UsageError("give the agent module or --report FILE")
    with child_progress(progress) as on_event:
        report = profile(workload.spec, limits=workload.limits, scaling=workload.scaling, progress=on_event)
    if report.error is not None:
        raise StepFailed(report.error.message, detail=report.error.traceback)
    return report


def _workload(flags: WorkloadFlags, config: Config, saved: str | None) -> Workload | None:
    if saved is not None and flags.path is None and not config.get("module"):
        return None
    return resolve_workload(flags, config, scaling_by_default=False)


def _baseline_path(flag: str | None, config: Config) -> str:
    return flag or config.get("baseline") or DEFAULT_BASELINE


def _update_command(workload: Workload | None, baseline: str, saved: str | None) -> str:
    if workload is None:
        return f"fa-mem baseline update --report {saved} --baseline {baseline}"
    return workload.command("baseline update", "--baseline", baseline)


def gate_command(
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
    max_memory: MaxMemoryOption = None,
    timeout: TimeoutOption = None,
    baseline: BaselineOption = None,
    no_baseline: Annotated[bool, typer.Option("--no-baseline", help="Gate on the budgets alone.")] = False,
    budget_per_agent: Annotated[
        str | None, typer.Option("--budget-per-agent", help="Fail if any agent's amortized bytes exceed SIZE, e.g. 10MB.", show_default=False)
    ] = None,
    budget_total: Annotated[
        str | None, typer.Option("--budget-total", help="Fail if the population's distinct bytes exceed SIZE.", show_default=False)
    ] = None,
    max_leak: Annotated[
        str | None, typer.Option("--max-leak", help="Fail if growth per agent per step exceeds SIZE, e.g. 1KB.", show_default=False)
    ] = None,
    max_retained: Annotated[
        str | None,
        typer.Option("--max-retained", help="Fail if more than SIZE stays alive after the run releases the population, e.g. 0B.", show_default=False),
    ] = None,
    tolerance: Annotated[
        str | None, typer.Option("--tolerance", help="Allowed growth of byte metrics over the baseline. [default: 1%]", show_default=False)
    ] = None,
    rss_tolerance: Annotated[
        str | None, typer.Option("--rss-tolerance", help="Allowed growth of RSS metrics over the baseline. [default: 25%]", show_default=False)
    ] = None,
    min_change: Annotated[
        str | None, typer.Option("--min-change", help="Byte changes smaller than SIZE never fail. [default: 1KiB]", show_default=False)
    ] = None,
    report_path: ReportOption = None,
    json_path: Annotated[str | None, typer.Option("--json", help="Write the gate result as JSON to FILE.", show_default=False)] = None,
    save_report_path: Annotated[
        str | None, typer.Option("--save-report", help="Also write the profile report JSON to FILE.", show_default=False)
    ] = None,
    markdown: Annotated[
        str | None,
        typer.Option("--markdown", help="Write a Markdown summary to FILE. [default: $GITHUB_STEP_SUMMARY when set]", show_default=False),
    ] = None,
    progress: ProgressOption = True,
    debug: DebugOption = False,
) -> None:
    """Fail when agent memory regresses or exceeds a budget.

    Compares deterministic byte counts (amortized bytes per agent and per attribute,
    distinct population bytes, growth per step) with --tolerance, and RSS figures with
    the looser --rss-tolerance. Flags override [tool.fa-mem] in pyproject.toml.

    Exit codes: 0 all checks hold; 1 a regression or a budget exceeded; 2 usage error,
    missing/corrupt baseline or a baseline of another workload; 4 an agent raised; 5 over
    --max-memory or --timeout; 130 interrupted.
    """
    config = load_config()
    flags = WorkloadFlags(
        path=path, agents=agents, steps=steps, seed=seed, factory=factory, step_method=step_method,
        sample_every=sample_every, scaling=scaling, trace=trace, trace_frames=trace_frames, max_memory=max_memory,
        timeout=timeout, factory_args=factory_arg, agents_from=agents_from, step_model=step_model, model_step_method=model_step_method,
        observations=observations,
    )
    workload = _workload(flags, config, report_path)
    baseline_file = _baseline_path(baseline, config)
    update = _update_command(workload, baseline_file, report_path)
    budgets = Budgets(
        per_agent=config_size(budget_per_agent, config, "budget-per-agent"),
        total=config_size(budget_total, config, "budget-total"),
        max_leak=config_size(max_leak, config, "max-leak"),
        max_retained=config_size(max_retained, config, "max-retained", zero=True),
    )
    defaults = Tolerances()
    tolerances = Tolerances(
        bytes_fraction=config_fraction(tolerance, config, "tolerance", defaults.bytes_fraction),
        rss_fraction=config_fraction(rss_tolerance, config, "rss-tolerance", defaults.rss_fraction),
        min_change_bytes=config_size(min_change, config, "min-change") or defaults.min_change_bytes,
    )
    summary_path = markdown or os.environ.get("GITHUB_STEP_SUMMARY") or None
    for output, flag in ((json_path, "--json"), (save_report_path, "--save-report"), (summary_path, "--markdown" if markdown else "$GITHUB_STEP_SUMMARY")):
        check_writable(output, flag)
    recorded = None if no_baseline else load_baseline(baseline_file, create_hint=update)
    if no_baseline and budgets == Budgets():
        raise UsageError("--no-baseline needs at least one budget (--budget-per-agent, --budget-total, --max-leak or --max-retained)")
    report = _measure(workload, report_path, progress)
    if save_report_path:
        save_report(report, save_report_path)
    result = compare(report, recorded, budgets=budgets, tolerances=tolerances, baseline_path=baseline_file, update_command=update)
    gate_renderer.render(result, stdout_console())
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in annotation_lines(result):
            print(line)
    if json_path:
        write_atomic(json_path, result.to_json())
    if summary_path:
        buffer = io.StringIO()
        gate_renderer.render_markdown(result, buffer)
        if markdown:
            write_atomic(markdown, buffer.getvalue())
        else:  # $GITHUB_STEP_SUMMARY collects every step's summary: append
            try:
                with open(summary_path, "a", encoding="utf-8") as summary:
                    summary.write(buffer.getvalue())
            except OSError as error:
                raise OutputError(f"cannot append to {summary_path} ($GITHUB_STEP_SUMMARY): {error.strerror or error}") from error
    if not result.passed:
        raise typer.Exit(EXIT_LIMIT_EXCEEDED)


def baseline_update_command(
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
    max_memory: MaxMemoryOption = None,
    timeout: TimeoutOption = None,
    baseline: BaselineOption = None,
    report_path: ReportOption = None,
    progress: ProgressOption = True,
    debug: DebugOption = False,
) -> None:
    """Measure the workload and write the baseline the gate compares with (atomically).

    The baseline records the workload's fingerprint (module, factory, agents, steps,
    seed, fa-mem and Python versions) so it is never compared with another workload.

    Exit codes: 0 written; 2 usage error or unwritable path; 4 an agent raised (nothing
    written); 5 over --max-memory or --timeout; 130 interrupted.
    """
    config = load_config()
    flags = WorkloadFlags(
        path=path, agents=agents, steps=steps, seed=seed, factory=factory, step_method=step_method,
        sample_every=sample_every, scaling=scaling, trace=trace, trace_frames=trace_frames, max_memory=max_memory,
        timeout=timeout, factory_args=factory_arg, agents_from=agents_from, step_model=step_model, model_step_method=model_step_method,
        observations=observations,
    )
    workload = _workload(flags, config, report_path)
    baseline_file = _baseline_path(baseline, config)
    check_writable(baseline_file, "--baseline")
    report = _measure(workload, report_path, progress)
    recorded = baseline_from_report(report, update_command=_update_command(workload, baseline_file, report_path))
    save_baseline(recorded, baseline_file)
    population = report.population
    stderr_console().print(
        SafeText(
            f"baseline written to {baseline_file}: {len(recorded.metrics)} metrics, "
            f"{population.agents} agents x {report.workload.steps} steps"
        )
    )
