"""``fa-mem optimize``: smaller agents, proven to behave the same by replay."""

from __future__ import annotations

import math
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
    ScalingOption,
    SeedOption,
    StepMethodOption,
    FactoryArgOption,
    AgentsFromOption,
    StepModelOption,
    ModelStepMethodOption,
    ObservationsOption,
    TimeoutOption,
    WorkloadFlags,
    check_writable,
    config_size,
    resolve_workload,
)
from fa_memtool.config import load_config
from fa_memtool.errors import UsageError
from fa_memtool.optimize import TrialSettings, optimize
from fa_memtool.plan import save_plan
from fa_memtool.plugins import plugin_manager, select
from fa_memtool.renderers import optimize as optimize_renderer
from fa_memtool.report import write_atomic

DEFAULT_REPLAY_STEPS = 200
DEFAULT_VERIFY_SEEDS = 2


def _names(values: list[str] | None) -> list[str]:
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def optimize_command(
    path: PathArgument = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Per-agent amortized size to reach, e.g. 10MB. [default: target in [tool.fa-mem]]", show_default=False)
    ] = None,
    plugins: Annotated[
        str | None, typer.Option("--plugins", help="Comma-separated plugins to use. [default: every installed plugin]", show_default=False)
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Attribute never to transform (repeat, or comma-separated).", show_default=False)
    ] = None,
    force: Annotated[
        list[str] | None,
        typer.Option("--force", help="Keep transformations of this attribute even if replay shows changed behaviour (exit 3).", show_default=False),
    ] = None,
    max_slowdown: Annotated[
        float | None,
        typer.Option("--max-slowdown", help="Roll back a transformation whose replay steps are more than FACTOR times slower, e.g. 1.25.", show_default=False),
    ] = None,
    verify_seeds: Annotated[
        int | None,
        typer.Option(
            "--verify-seeds",
            metavar="K",
            help="Replay every trial on K seeds (the run's --seed, then the next ones): each builds and observes anew. [default: verify-seeds in [tool.fa-mem], else 2]",
            show_default=False,
        ),
    ] = None,
    atol: Annotated[float, typer.Option("--atol", help="Absolute tolerance for numeric attributes in replay.")] = 1e-8,
    rtol: Annotated[float, typer.Option("--rtol", help="Relative tolerance for numeric attributes in replay.")] = 1e-5,
    agents: AgentsOption = None,
    steps: Annotated[int | None, typer.Option("--steps", help=f"Replay steps (the profile runs as many). [default: {DEFAULT_REPLAY_STEPS}]", show_default=False)] = None,
    seed: SeedOption = None,
    factory: FactoryOption = None,
    step_method: StepMethodOption = None,
    factory_arg: FactoryArgOption = None,
    agents_from: AgentsFromOption = None,
    step_model: StepModelOption = None,
    model_step_method: ModelStepMethodOption = None,
    observations: ObservationsOption = None,
    scaling: ScalingOption = None,
    plan_out: Annotated[str | None, typer.Option("--plan-out", help="Write the plan of kept transformations to FILE (atomically).", show_default=False)] = None,
    json_path: Annotated[str | None, typer.Option("--json", help="Write the before/after result as JSON to FILE.", show_default=False)] = None,
    max_memory: MaxMemoryOption = None,
    timeout: TimeoutOption = None,
    progress: ProgressOption = True,
    debug: DebugOption = False,
) -> None:
    """Make agents smaller, keeping only transformations proven by replay.

    Every installed plugin proposes transformations; each is tried on fresh agents and
    kept only when replays of the run's population and steps, on --verify-seeds seeds,
    give the original's actions at every step and its numeric state within
    --rtol/--atol, and the measured memory went down. A lossy transformation (lower
    precision) must also survive replays with its values perturbed by ten times the
    change it makes.

    Exit codes: 0 target met and behaviour verified; 1 target missed (the best result is
    shown and the plan written); 2 usage or input error; 3 behaviour changed under --force;
    4 an agent raised; 5 over --max-memory or --timeout; 130 interrupted.
    """
    config = load_config()
    target_bytes = config_size(target, config, "target")
    if target_bytes is None:
        raise UsageError("give --target SIZE (e.g. --target 10MB), or set target in [tool.fa-mem]")
    for flag, value in (("--atol", atol), ("--rtol", rtol), ("--max-slowdown", max_slowdown)):
        if value is not None and not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number (got {value:g})")
    if not (0 <= atol <= 1 and 0 <= rtol <= 1):
        raise UsageError(f"--atol and --rtol must be between 0 and 1 (got --atol {atol:g}, --rtol {rtol:g})")
    seeds = verify_seeds if verify_seeds is not None else config.get("verify-seeds", DEFAULT_VERIFY_SEEDS)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise UsageError(f"--verify-seeds must be a whole number, 1 or more (got {seeds!r})")
    if max_slowdown is not None and max_slowdown < 1:
        raise UsageError(f"--max-slowdown must be 1 or more (got {max_slowdown:g})")
    plugin_names = _names([plugins]) if plugins is not None else config.get("plugins")
    if plugin_names is not None and not plugin_names:
        raise UsageError("--plugins names no plugin; leave it out to use every installed plugin")
    select(plugin_manager(), plugin_names)  # unknown names fail before anything runs
    flags = WorkloadFlags(
        path=path, agents=agents, steps=steps if steps is not None else config.get("steps", DEFAULT_REPLAY_STEPS),
        seed=seed, factory=factory, step_method=step_method, scaling=scaling, trace=True, max_memory=max_memory,
        timeout=timeout, factory_args=factory_arg, agents_from=agents_from, step_model=step_model, model_step_method=model_step_method,
        observations=observations,
    )
    workload = resolve_workload(flags, config, scaling_by_default=True)
    if workload.spec.steps < 1:
        raise UsageError("optimize needs at least one replay step (--steps 1 or more) to prove behaviour")
    check_writable(plan_out, "--plan-out")
    check_writable(json_path, "--json")
    settings = TrialSettings(
        target_bytes=float(target_bytes or 0),
        plugins=plugin_names,
        exclude=_names(exclude),
        force=_names(force),
        rtol=rtol,
        atol=atol,
        growing={},
        max_slowdown=max_slowdown,
        verify_seeds=seeds,
    )
    with child_progress(progress) as on_event:
        result = optimize(workload.spec, settings=settings, limits=workload.limits, scaling=workload.scaling, progress=on_event)
    optimize_renderer.render(result, stdout_console())
    if plan_out:
        save_plan(result.plan, plan_out)
        stderr_console().print(SafeText(f"plan written to {plan_out}; apply it with fa_memtool.apply_plan(agents, {plan_out!r})"))
    if json_path:
        write_atomic(json_path, result.to_json())
    if result.exit_code:
        raise typer.Exit(result.exit_code)
