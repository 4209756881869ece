"""``fa-mem profile``: measure a population of agents in a fresh child process."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from fa_memtool.cli._common import child_progress, int_list_option, size_option, stderr_console, stdout_console
from fa_memtool.errors import StepFailed
from fa_memtool.renderers import terminal
from fa_memtool.report import save_report
from fa_memtool.runner import Limits, default_max_memory, default_scaling, profile
from fa_memtool.spec import RunSpec

DEFAULT_TIMEOUT_SECONDS = 3600.0


def profile_command(
    path: Annotated[str, typer.Argument(help="The agent module: a .py file or a dotted module name.", show_default=False)],
    agents: Annotated[int, typer.Option("--agents", "-n", help="Number of agents to build.")] = 10,
    steps: Annotated[int, typer.Option("--steps", help="Steps to run every agent for.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed passed to the factory and the observation stream.")] = 0,
    factory: Annotated[
        str | None,
        typer.Option("--factory", help="Factory function: NAME in the module or package.module:function. [default: create_agents]"),
    ] = None,
    step_method: Annotated[str, typer.Option("--step-method", help="Method called with each observation.")] = "step",
    sample_every: Annotated[
        int, typer.Option("--sample-every", help="Size the population every K steps (0: about 20 samples per run).")
    ] = 0,
    scaling: Annotated[
        str | None,
        typer.Option(
            "--scaling",
            help="Population sizes for the fixed + per-agent RSS fit, e.g. 1,10,50, each run in its own process; "
            "'none' to skip. [default: N/2,N]",
        ),
    ] = None,
    trace: Annotated[bool, typer.Option("--trace/--no-trace", help="Record allocation sites with tracemalloc.")] = True,
    trace_frames: Annotated[int, typer.Option("--trace-frames", help="Frames kept per traced allocation.")] = 10,
    backend: Annotated[
        str, typer.Option("--backend", help="Allocation tracer: tracemalloc, or memray to also write a memray capture.")
    ] = "tracemalloc",
    memray_output: Annotated[
        str | None, typer.Option("--memray-output", help="Where --backend memray writes its capture. [default: fa-mem-<module>.bin]")
    ] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="Also write the report as JSON to FILE (atomically).")] = None,
    max_memory: Annotated[
        str | None, typer.Option("--max-memory", help="Stop the workload above this RSS, e.g. 4GB. [default: 75% of RAM]")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Stop each measuring process after SECONDS.")] = DEFAULT_TIMEOUT_SECONDS,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and the measuring process's output on errors.")] = False,
) -> None:
    """Measure what each agent really costs: exclusive, shared and amortized bytes per agent and
    per attribute, growth per step, allocation sites, GC and step latency, with suggestions.

    Exit codes: 0 ok; 2 usage or input error; 4 an agent raised while stepping (the partial
    report is still shown and written); 5 over --max-memory or --timeout; 130 interrupted.
    """
    limit = size_option(max_memory, "--max-memory")
    if timeout <= 0:
        from fa_memtool.errors import UsageError

        raise UsageError(f"--timeout must be more than 0 seconds (got {timeout:g})")
    sizes = int_list_option(scaling, "--scaling") if scaling is not None else default_scaling(agents)
    if backend == "memray" and memray_output is None:
        stem = os.path.splitext(os.path.basename(path))[0].split(".")[-1]
        memray_output = os.path.abspath(f"fa-mem-{stem}.bin")
    spec = RunSpec(
        target=path,
        agents=agents,
        steps=steps,
        seed=seed,
        factory=factory,
        step_method=step_method,
        sample_every=sample_every,
        trace=trace and backend == "tracemalloc",
        trace_frames=trace_frames,
        backend=backend,
        memray_output=memray_output,
        working_directory=os.getcwd(),
    )
    if json_path is not None:
        # Fail on an unwritable path before spending minutes measuring.
        directory = os.path.dirname(os.path.abspath(json_path))
        if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
            from fa_memtool.errors import UsageError

            raise UsageError(f"cannot write --json {json_path}: {directory} is not a writable directory")
    limits = Limits(max_memory=limit if limit is not None else default_max_memory(), timeout=timeout)
    with child_progress(progress) as on_event:
        report = profile(spec, limits=limits, scaling=sizes, progress=on_event)
    terminal.render(report, stdout_console())
    if json_path is not None:
        save_report(report, json_path)
        stderr_console().print(f"report written to {json_path}")
    if report.error is not None:
        raise StepFailed(report.error.message, detail=report.error.traceback)
