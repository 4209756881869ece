"""Workload flags shared by profile, gate and baseline, merged with [tool.fa-mem].

Every option defaults to None so that "not given" can fall back to the config file
and then to fa-mem's default.
"""

from __future__ import annotations

import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from fa_memtool.cli._common import int_list_option, size_option
from fa_memtool.units import parse_size
from fa_memtool.config import Config, parse_fraction
from fa_memtool.errors import UsageError
from fa_memtool.factory_args import command_line_value, factory_args_from_config, parse_factory_args
from fa_memtool.runner import AUTO_SCALING, Limits, Scaling, default_max_memory
from fa_memtool.spec import RunSpec

DEFAULT_TIMEOUT_SECONDS = 3600.0

PathArgument = Annotated[
    str | None,
    typer.Argument(help="The agent module: a .py file or a dotted module name. [default: module in [tool.fa-mem]]", show_default=False),
]
AgentsOption = Annotated[int | None, typer.Option("--agents", "-n", help="Number of agents to build. [default: 10]", show_default=False)]
StepsOption = Annotated[int | None, typer.Option("--steps", help="Steps to run every agent for. [default: 100]", show_default=False)]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Seed for the factory and the observation stream. [default: 0]", show_default=False)]
FactoryOption = Annotated[
    str | None,
    typer.Option("--factory", help="Factory: NAME in the module or package.module:function. [default: create_agents]", show_default=False),
]
StepMethodOption = Annotated[str | None, typer.Option("--step-method", help="Method called with each observation. [default: step]", show_default=False)]
FactoryArgOption = Annotated[
    list[str] | None,
    typer.Option(
        "--factory-arg",
        metavar="NAME=VALUE",
        help="A keyword argument for the factory (repeat); VALUE is JSON, or {n} / {seed}. [default: factory(n, seed)]",
        show_default=False,
    ),
]
AgentsFromOption = Annotated[
    str | None,
    typer.Option(
        "--agents-from",
        metavar="PATH",
        help="The factory returns a model: PATH is where its agents are, e.g. agents or schedule.agents (read after every step).",
        show_default=False,
    ),
]
StepModelOption = Annotated[
    bool | None,
    typer.Option("--step-model/--step-agents", help="Step the model (needs --agents-from), or each agent. [default: step agents]", show_default=False),
]
ObservationsOption = Annotated[
    str | None,
    typer.Option(
        "--observations",
        metavar="FILE",
        help="Recorded observations (.npz array 'observations' of shape (steps, agents, ...), or .jsonl: a list per step) instead of the seeded stream.",
        show_default=False,
    ),
]
ModelStepMethodOption = Annotated[
    str | None,
    typer.Option("--model-step-method", help="The model's method called each step. [default: sim_step for agentpy, else step]", show_default=False),
]
SampleEveryOption = Annotated[
    int | None, typer.Option("--sample-every", help="Size the population every K steps. [default: about 20 samples per run]", show_default=False)
]
ScalingOption = Annotated[
    str | None,
    typer.Option(
        "--scaling",
        help=(
            "Population sizes for the fixed + N x per-agent RSS fit, e.g. 1,10,50, each built and stepped in its own "
            "process; 'auto': the measuring process at N and one build-only process at N/2; 'none' to skip."
        ),
        show_default=False,
    ),
]
TraceOption = Annotated[
    bool | None, typer.Option("--trace/--no-trace", help="Record allocation sites with tracemalloc. [default: trace]", show_default=False)
]
TraceFramesOption = Annotated[int, typer.Option("--trace-frames", help="Frames kept per traced allocation.")]
MaxMemoryOption = Annotated[
    str | None, typer.Option("--max-memory", help="Stop the workload above this RSS, e.g. 4GB. [default: 75% of RAM]", show_default=False)
]
TimeoutOption = Annotated[
    float | None, typer.Option("--timeout", help="Stop each measuring process after SECONDS. [default: 3600]", show_default=False)
]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks and the measuring process's output on errors.")]


@dataclass
class WorkloadFlags:
    path: str | None = None
    agents: int | None = None
    steps: int | None = None
    seed: int | None = None
    factory: str | None = None
    step_method: str | None = None
    sample_every: int | None = None
    scaling: str | None = None
    trace: bool | None = None
    trace_frames: int = 10
    max_memory: str | None = None
    timeout: float | None = None
    factory_args: list[str] | None = None
    agents_from: str | None = None
    step_model: bool | None = None
    model_step_method: str | None = None
    observations: str | None = None


def _pick(flag: Any, config: Config, key: str, default: Any) -> Any:
    return flag if flag is not None else config.get(key, default)


@dataclass
class Workload:
    spec: RunSpec
    limits: Limits
    scaling: Scaling

    def command(self, verb: str, *extra: str) -> str:
        """The command line that reruns this workload with another verb."""
        spec = self.spec
        parts = ["fa-mem", *verb.split(), spec.target, "-n", str(spec.agents), "--steps", str(spec.steps), "--seed", str(spec.seed)]
        if spec.factory:
            parts += ["--factory", spec.factory]
        if spec.step_method != "step":
            parts += ["--step-method", spec.step_method]
        for name, value in (spec.factory_args or {}).items():
            parts += ["--factory-arg", f"{name}={command_line_value(value)}"]
        if spec.agents_from is not None:
            parts += ["--agents-from", spec.agents_from]
        if spec.step_model:
            parts += ["--step-model"]
        if spec.model_step_method is not None:
            parts += ["--model-step-method", spec.model_step_method]
        if spec.observations is not None:
            parts += ["--observations", spec.observations]
        parts += list(extra)
        return shlex.join(parts)


def resolve_workload(
    flags: WorkloadFlags,
    config: Config,
    *,
    scaling_by_default: bool,
    backend: str = "tracemalloc",
    memray_output: str | None = None,
) -> Workload:
    target = flags.path or config.get("module")
    if not target:
        raise UsageError("give the agent module (a .py file or a dotted module name), or set module in [tool.fa-mem]")
    if flags.path is None and config.source is not None:
        target = os.path.relpath(target) if Path(target).exists() else target
    agents = int(_pick(flags.agents, config, "agents", 10))
    scaling_text = _pick(flags.scaling, config, "scaling", None)
    if isinstance(scaling_text, list):
        scaling_text = ",".join(str(item) for item in scaling_text)
    scaling: Scaling
    if scaling_text is not None and str(scaling_text).strip().lower() == AUTO_SCALING:
        scaling = AUTO_SCALING
    elif scaling_text is not None:
        scaling = int_list_option(str(scaling_text), "--scaling")
    else:
        scaling = AUTO_SCALING if scaling_by_default else None
    timeout = float(_pick(flags.timeout, config, "timeout", DEFAULT_TIMEOUT_SECONDS))
    if not math.isfinite(timeout):
        raise UsageError(f"--timeout must be a finite number of seconds (got {timeout:g})")
    if timeout <= 0:
        raise UsageError(f"--timeout must be more than 0 seconds (got {timeout:g})")
    limit = config_size(flags.max_memory, config, "max-memory")
    trace = bool(_pick(flags.trace, config, "trace", True))
    step_model = bool(_pick(flags.step_model, config, "step-model", False))
    if backend == "memray" and memray_output is None:
        stem = os.path.splitext(os.path.basename(target))[0].split(".")[-1]
        memray_output = os.path.abspath(f"fa-mem-{stem}.bin")
    spec = RunSpec(
        target=target,
        agents=agents,
        steps=int(_pick(flags.steps, config, "steps", 100)),
        seed=int(_pick(flags.seed, config, "seed", 0)),
        factory=_pick(flags.factory, config, "factory", None),
        step_method=str(_pick(flags.step_method, config, "step-method", "step")),
        factory_args=_factory_args(flags.factory_args, config),
        agents_from=_pick(flags.agents_from, config, "agents-from", None),
        step_model=step_model,
        # The file's model step method only matters when the model is stepped: --step-agents
        # on the command line overrides a file written for --step-model.
        model_step_method=flags.model_step_method or (config.get("model-step-method") if step_model else None),
        sample_every=int(_pick(flags.sample_every, config, "sample-every", 0)),
        trace=trace and backend == "tracemalloc",
        trace_frames=flags.trace_frames,
        backend=backend,
        memray_output=memray_output,
        working_directory=os.getcwd(),
        observations=_observations(flags.observations, config, steps=int(_pick(flags.steps, config, "steps", 100)),
                                   agents=1 if step_model else agents),
    )
    return Workload(spec, Limits(max_memory=limit if limit is not None else default_max_memory(), timeout=timeout), scaling)


def _observations(flag: str | None, config: Config, *, steps: int, agents: int) -> str | None:
    """``--observations FILE`` (or ``observations`` in [tool.fa-mem]), read and checked
    against the run before anything is built; its absolute path."""
    path = _pick(flag, config, "observations", None)
    if path is None:
        return None
    from fa_memtool.observations import load_observations

    load_observations(str(path)).check(steps=steps, agents=agents)
    return os.path.abspath(str(path))


def _factory_args(flags: list[str] | None, config: Config) -> dict[str, Any] | None:
    """``--factory-arg`` values, else ``factory-args`` in [tool.fa-mem]; None: call factory(n, seed)."""
    if flags:
        return parse_factory_args(flags)
    configured = config.get("factory-args")
    if configured is None:
        return None
    return factory_args_from_config(configured, label=f"factory-args in [tool.fa-mem] of {config.source}")


def check_writable(path: str | None, flag: str) -> None:
    """Refuse an output path that cannot be written before spending minutes measuring."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise UsageError(f"cannot write {flag} {path}: {directory} is not a writable directory")
    if os.path.isdir(path):
        raise UsageError(f"cannot write {flag} {path}: it is a directory")


def config_value(flag: str | None, config: Config, key: str) -> tuple[object, str]:
    """The value (flag first, then [tool.fa-mem]) and how to name it in an error."""
    if flag is not None:
        return flag, f"--{key}"
    return config.get(key), f"{key} in [tool.fa-mem] of {config.source}"


def config_size(flag: str | None, config: Config, key: str, *, zero: bool = False) -> int | None:
    """A size from the flag or [tool.fa-mem]; with ``zero``, 0 is a size too (a budget
    of nothing at all)."""
    value, label = config_value(flag, config, key)
    if value is None:
        return None
    if zero:
        try:
            if parse_size(str(value)) == 0:
                return 0
        except ValueError:
            pass  # size_option names the problem
    return size_option(str(value), label)


def config_fraction(flag: str | None, config: Config, key: str, default: float) -> float:
    value, label = config_value(flag, config, key)
    return default if value is None else parse_fraction(value, label)  # type: ignore[arg-type]
