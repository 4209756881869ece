"""RunSpec: everything a measuring child needs to know, frozen and JSON-serialisable."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from fa_memtool.errors import UsageError

BACKENDS = ("tracemalloc", "memray")
MODES = ("profile", "plain", "trials")


@dataclass(frozen=True)
class RunSpec:
    target: str
    agents: int = 10
    steps: int = 100
    seed: int = 0
    factory: str | None = None
    step_method: str = "step"
    sample_every: int = 0  # 0: about twenty samples over the run
    trace: bool = True
    trace_frames: int = 10
    backend: str = "tracemalloc"
    memray_output: str | None = None
    mode: str = "profile"  # "plain": no sampling, no tracing, phases and timing only; "trials": optimize
    working_directory: str = "."
    plan: tuple[dict[str, Any], ...] = ()  # plan steps applied right after building (optimize)
    trials: dict[str, Any] | None = None  # settings of an optimize trials run (fa_memtool.optimize)
    factory_args: dict[str, Any] | None = None  # keyword arguments (fa_memtool.factory_args); None: factory(n, seed)
    agents_from: str | None = None  # the factory returns a model; its agents are at this attribute path
    step_model: bool = False  # step the model instead of each agent
    model_step_method: str | None = None  # None: sim_step for agentpy models, else step
    check_release: bool = True  # after the run, release the population and report what survives
    runs: int = 1  # build, run and release the population this many times (the first one is profiled)
    observations: str | None = None  # --observations FILE (absolute): recorded observations per agent and step

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise UsageError(f"--agents must be at least 1 (got {self.agents})")
        if self.steps < 0:
            raise UsageError(f"--steps must be 0 or more (got {self.steps})")
        if self.sample_every < 0:
            raise UsageError(f"--sample-every must be 0 (about 20 samples per run) or more (got {self.sample_every})")
        if self.trace_frames < 1:
            raise UsageError(f"--trace-frames must be at least 1 (got {self.trace_frames})")
        if self.backend not in BACKENDS:
            raise UsageError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}")
        self._check_model_options()

    def _check_model_options(self) -> None:
        if self.agents_from is not None and not all(part.isidentifier() for part in self.agents_from.split(".")):
            raise UsageError(f"--agents-from {self.agents_from!r} is not an attribute path such as agents or schedule.agents")
        if self.step_model and self.agents_from is None:
            raise UsageError("--step-model steps a model: say where its agents are with --agents-from (for example --agents-from agents)")
        if self.model_step_method is not None:
            if not self.step_model:
                raise UsageError("--model-step-method names the model's step method: it needs --step-model")
            if not self.model_step_method.isidentifier():
                raise UsageError(f"--model-step-method {self.model_step_method!r} is not a method name")

    @property
    def sampling_interval(self) -> int:
        """Steps between two population samples (the first sample is after building)."""
        if self.sample_every:
            return self.sample_every
        return max(1, self.steps // 20)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data: dict[str, Any] = json.loads(text)
        data["plan"] = tuple(data.get("plan") or ())
        return cls(**data)
