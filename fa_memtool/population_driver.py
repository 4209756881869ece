"""One population, built, read and stepped the way docs/protocol.md says.

The measuring child, optimize's replay and the pytest plugin all step populations
through ``PopulationDriver``, so that per-agent or model stepping, an observation or
none, and an agent set that changes while stepping mean the same thing everywhere.

A population has one of two shapes:

- a list of agents, returned by the factory: every step, each agent's step method is
  called in list order;
- a model that owns its agents (``--agents-from PATH``): the agents are read from
  ``PATH`` on the model after building and again after every step, so agents born or
  removed while stepping are seen. Either each agent is stepped as above, or the
  model is (``--step-model``).
"""

from __future__ import annotations

import inspect
import numbers
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fa_memtool.errors import PopulationEmpty, StepError, WorkloadError
from fa_memtool.spec import RunSpec
from fa_memtool.workload import ObservationStream, check_agent_list, is_agent_object

MODEL_LABEL = "model"  # the key of a model step's action
ID_ATTRIBUTES = ("unique_id", "id")  # Mesa's agents have unique_id, agentpy's id
AGENTPY_SETUP, AGENTPY_STEP = "sim_setup", "sim_step"
DEFAULT_MODEL_STEP = "step"
CLI_METHOD_HINT = "name the method with --step-method"

Label = int | str
Action = tuple[Label, Any]  # (the agent's id, or MODEL_LABEL; what its step returned)


@dataclass(frozen=True)
class Stepping:
    """How a population is built and stepped: the workload options that concern it."""

    seed: int = 0
    steps: int | None = None  # told to models that want to know how long they run (agentpy)
    step_method: str = "step"
    agents_from: str | None = None
    step_model: bool = False
    model_step_method: str | None = None
    observations: str | None = None  # --observations FILE: recorded observations instead of a seeded stream
    method_hint: str = CLI_METHOD_HINT  # how the message for a missing step method says to fix it

    @classmethod
    def from_spec(cls, spec: RunSpec) -> Stepping:
        return cls(
            seed=spec.seed,
            steps=spec.steps,
            step_method=spec.step_method,
            agents_from=spec.agents_from,
            step_model=spec.step_model,
            model_step_method=spec.model_step_method,
            observations=spec.observations,
        )


@dataclass
class _Member:
    """An agent of the population as last read, with what stepping it needs."""

    label: Label  # its stable id in the report
    order: int  # creation order (first seen): the key of its observation generator
    call: Callable[..., Any] | None  # its bound step method (per-agent stepping only)
    observes: bool  # that method takes the observation


def takes_observation(method: Callable[..., Any]) -> bool:
    """Whether a step method has a named positional parameter: the observation.

    ``*args`` alone does not count: it is the mark of a pass-through wrapper (Mesa
    wraps every model's ``step`` in ``_wrapped_step(*args, **kwargs)``), not of a
    method that wants an observation.
    """
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return True  # no signature to read: call it the way the protocol always has
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(parameter.kind in positional for parameter in signature.parameters.values())


def own_id(agent: object) -> Label | None:
    """The id the agent carries (``unique_id``, else ``id``), when it is an int or a str."""
    for name in ID_ATTRIBUTES:
        try:
            value = getattr(agent, name, None)
        except Exception:  # a property that fails is not an id
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, numbers.Integral):
            return int(value)
        if isinstance(value, str):
            return value
    return None


def is_agentpy_model(model: object) -> bool:
    """agentpy's models are set up and stepped by ``sim_setup`` / ``sim_step``, not by ``step``."""
    return callable(getattr(model, AGENTPY_SETUP, None)) and callable(getattr(model, AGENTPY_STEP, None))


def model_is_running(model: object) -> bool:
    """Mesa and agentpy models say they are done by setting ``running`` to False."""
    try:
        return bool(getattr(model, "running", True))
    except Exception:
        return True


def agents_at(model: object, path: str) -> list[Any]:
    """The agents found at the dotted attribute ``path`` of the model, as a list."""
    value: Any = model
    walked: list[str] = []
    for part in path.split("."):
        where = f"the model ({type(model).__name__})" if not walked else f"{type(model).__name__}.{'.'.join(walked)} ({type(value).__name__})"
        try:
            value = getattr(value, part)
        except AttributeError:
            hint = "; the factory returned a list, so leave out --agents-from" if isinstance(model, (list, tuple)) else ""
            raise WorkloadError(f"--agents-from {path}: {where} has no attribute {part!r}{hint}") from None
        except Exception as error:
            raise WorkloadError(f"--agents-from {path}: reading .{part} of {where} raised {type(error).__name__}: {error}") from error
        walked.append(part)
    try:
        return list(value)
    except TypeError:
        raise WorkloadError(
            f"--agents-from {path}: {type(model).__name__}.{path} is a {type(value).__name__}, which is not iterable"
        ) from None
    except Exception as error:
        raise WorkloadError(f"--agents-from {path}: iterating {type(model).__name__}.{path} raised {type(error).__name__}: {error}") from error


def _first_duplicate(labels: list[Label]) -> Label | None:
    seen: set[Label] = set()
    for label in labels:
        if label in seen:
            return label
        seen.add(label)
    return None


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""


class PopulationDriver:
    """Builds one population and steps it; knows its agents and their stable ids.

    ``make`` calls the factory and returns how the call reads in messages and what it
    returned. Nothing is built until ``build()``.
    """

    def __init__(
        self,
        make: Callable[[], tuple[str, Any]],
        *,
        stepping: Stepping,
        observe: Callable[[Any, int, Any], Any] | None = None,
        requested: int = 0,
    ) -> None:
        self._make = make
        self.stepping = stepping
        self._observe = observe
        self._requested = requested
        self.call = ""  # the factory call as it reads in messages
        self.model: Any = None
        self.model_step_method: str | None = None
        self._stream: ObservationStream | None = None
        self.finished = False  # the model set running to False
        self.read_seconds = 0.0  # time spent reading the agent set after steps (fa-mem's, not the agents')
        self.initial_agents = 0
        self.appeared = 0
        self.removed = 0
        self._set_up: str | None = None
        self._agents: list[Any] = []
        self._members: list[_Member] = []
        self._members_by_id: dict[int, _Member] = {}
        self._next_order = 0
        self._observes_by_function: dict[Any, bool] = {}
        self._model_call: Callable[..., Any] | None = None
        self._model_observes = False
        self._duplicate_label: Label | None = None

    @classmethod
    def of_agents(
        cls, agents: Sequence[Any], *, stepping: Stepping, observe: Callable[[Any, int, Any], Any] | None = None
    ) -> PopulationDriver:
        """A driver for agents that are already built (the pytest plugin's tracked list)."""
        listed = list(agents)
        driver = cls(lambda: ("the tracked agents", listed), stepping=stepping, observe=observe, requested=len(listed))
        driver.build()
        return driver

    # -- building ----------------------------------------------------------------------

    def build(self) -> list[Any]:
        """Call the factory, set the model up if it needs it, read and check the agents."""
        self.call, built = self._make()
        if self.stepping.agents_from is None:
            agents = check_agent_list(self.call, built, requested=self._requested)
        else:
            agents = self._build_model(built)
        self._adopt(agents, step=None)
        self.initial_agents = len(agents)
        return self._agents

    @property
    def stream(self) -> ObservationStream:
        """The seeded observations, made on first use: they are not part of building."""
        if self._stream is None:
            count = 1 if self.stepping.step_model else self.initial_agents
            recorded = None
            if self.stepping.observations is not None:
                from fa_memtool.observations import load_observations

                recorded = load_observations(self.stepping.observations)
            self._stream = ObservationStream(self._observe, self.stepping.seed, count, recorded)
        return self._stream

    def _build_model(self, built: Any) -> list[Any]:
        path = self.stepping.agents_from or ""
        if not is_agent_object(built):
            raise WorkloadError(
                f"{self.call} returned {type(built).__name__} {built!r:.40}; with --agents-from the factory "
                "must return the model that holds the agents"
            )
        self.model = built
        self._set_up_model()
        agents = agents_at(built, path)
        if not agents:
            raise WorkloadError(f"--agents-from {path}: {type(built).__name__}.{path} is empty after building; expected {self._requested} agents")
        if self.stepping.step_model:
            self._find_model_step()
        return agents

    def _set_up_model(self) -> None:
        """agentpy builds its agents in ``setup``, which ``sim_setup`` calls, as ``run()`` would."""
        model = self.model
        if not is_agentpy_model(model) or model_is_running(model):
            return  # not agentpy, or the factory already set it up
        parameters = getattr(model, "p", None)
        # The parameters' own seed wins when they have one; otherwise --seed, never
        # agentpy's random default, so that every run builds the same population.
        seed = None if isinstance(parameters, Mapping) and "seed" in parameters else self.stepping.seed
        steps = self.stepping.steps
        try:
            getattr(model, AGENTPY_SETUP)(steps=steps, seed=seed)
        except (Exception, SystemExit) as error:
            raise WorkloadError(
                f"{self.call}.{AGENTPY_SETUP}(steps={steps}, seed={seed}) raised {type(error).__name__}: {error}{_where(error)}",
                detail="".join(traceback.format_exception(error)),
            ) from error
        self._set_up = f"{AGENTPY_SETUP}(steps={steps}, seed={'the seed in its parameters' if seed is None else seed})"

    def _find_model_step(self) -> None:
        model = self.model
        name = self.stepping.model_step_method or (AGENTPY_STEP if is_agentpy_model(model) else DEFAULT_MODEL_STEP)
        method = getattr(model, name, None)
        if not callable(method):
            raise WorkloadError(
                f"the model ({type(model).__name__}) has no callable .{name}(); name its step method with --model-step-method"
            )
        self.model_step_method = name
        self._model_call = method
        self._model_observes = takes_observation(method)

    # -- the agents --------------------------------------------------------------------

    def agents(self) -> list[Any]:
        """The agents as last read: after building, then after every step."""
        return self._agents

    def labels(self) -> list[Label]:
        """Each agent's stable id, in the order of ``agents()``."""
        return [member.label for member in self._members]

    def program_objects(self) -> list[object]:
        """What the sizer must treat as the program rather than as any agent's: the model."""
        return [self.model] if self.model is not None else []

    def _refuse(self, message: str, step: int | None) -> Exception:
        return WorkloadError(message) if step is None else StepError(f"{message} after step {step}", step=step)

    def _member(self, agent: Any, index: int, step: int | None) -> _Member:
        if not is_agent_object(agent):
            raise self._refuse(
                f"--agents-from {self.stepping.agents_from}: holds {type(agent).__name__} {agent!r:.40} at position {index}; "
                "agents must be objects",
                step,
            )
        order = self._next_order
        self._next_order += 1
        label = own_id(agent)
        member = _Member(label=order if label is None else label, order=order, call=None, observes=False)
        if not self.stepping.step_model:
            call = getattr(agent, self.stepping.step_method, None)
            if not callable(call):
                raise self._refuse(
                    f"agent {index} ({type(agent).__name__}) has no callable .{self.stepping.step_method}(observation); "
                    f"{self.stepping.method_hint}",
                    step,
                )
            member.call, member.observes = call, self._observes(call)
        return member

    def _observes(self, call: Callable[..., Any]) -> bool:
        # One signature per class method, not per agent: inspect is slow on large populations.
        function = getattr(call, "__func__", None)
        if function is None:
            return takes_observation(call)
        found = self._observes_by_function.get(function)
        if found is None:
            found = self._observes_by_function[function] = takes_observation(call)
        return found

    def _adopt(self, agents: list[Any], *, step: int | None) -> None:
        """Take ``agents`` as the population, keeping the ids of those already known.

        Known agents are found by ``id()``: the previous list still holds them, so no
        new object can have taken the id of one of them.
        """
        previous = self._members_by_id
        members: list[_Member] = []
        by_id: dict[int, _Member] = {}
        for index, agent in enumerate(agents):
            member = previous.get(id(agent))
            if member is None:
                member = self._member(agent, index, step)
                if step is not None:
                    self.appeared += 1
            members.append(member)
            by_id[id(agent)] = member
        if step is not None:
            self.removed += sum(1 for key in previous if key not in by_id)
        if self._duplicate_label is None:
            self._duplicate_label = _first_duplicate([member.label for member in members])
        self._agents, self._members, self._members_by_id = agents, members, by_id

    def _reread(self, step: int) -> None:
        started = time.perf_counter()
        try:
            try:
                agents = agents_at(self.model, self.stepping.agents_from or "")
            except WorkloadError as error:
                raise StepError(f"{error.message} after step {step}", step=step) from error
            self._adopt(agents, step=step)
        finally:
            self.read_seconds += time.perf_counter() - started
        if not agents:
            raise PopulationEmpty(
                f"the model ({type(self.model).__name__}) has no agents left at .{self.stepping.agents_from} "
                f"after step {step}; nothing is left to measure",
                step=step,
            )
        if self.stepping.step_model:
            self.finished = not model_is_running(self.model)

    def _settle(self) -> None:
        """After a step raised: the agent set as the model now has it, if it can be read."""
        try:
            self._adopt(agents_at(self.model, self.stepping.agents_from or ""), step=-1)
        except Exception:
            pass  # the failure being reported matters more than a second one

    # -- stepping ----------------------------------------------------------------------

    def step(self, step: int, *, latencies: list[float] | None = None) -> list[Action]:
        """One step of the population; returns what each step call returned.

        Raises StepError when a step method or ``observe`` raises, PopulationEmpty when
        the model has no agents left. ``latencies`` receives the duration of each step
        call (the observation excluded).
        """
        actions: list[Action]
        try:
            if self.stepping.step_model:
                actions = [(MODEL_LABEL, self._step_model(step, latencies))]
            else:
                actions = self._step_agents(step, latencies)
        except StepError:
            if self.model is not None:
                self._settle()
            raise
        if self.model is not None:
            self._reread(step)
        return actions

    def _step_agents(self, step: int, latencies: list[float] | None) -> list[Action]:
        perf = time.perf_counter
        stream = self.stream
        actions: list[Action] = []
        for index, (agent, member) in enumerate(zip(self._agents, self._members)):
            call = member.call
            assert call is not None  # set for every member when agents are stepped
            try:
                if member.observes:
                    observation = stream.next(agent, member.order, step)
                    started = perf()
                    action = call(observation)
                else:
                    started = perf()
                    action = call()
                if latencies is not None:
                    latencies.append(perf() - started)
            except (Exception, SystemExit) as error:  # sys.exit() in a step is a failure too
                named = "" if member.label == index else f", id {member.label!r}"
                raise StepError(
                    f"agent {index} ({type(agent).__name__}{named}) raised {type(error).__name__} at step {step}: {error}",
                    step=step,
                    agent=index,
                    detail="".join(traceback.format_exception(error)),
                ) from error
            actions.append((member.label, action))
        return actions

    def _step_model(self, step: int, latencies: list[float] | None) -> Any:
        call = self._model_call
        assert call is not None  # found when the model was built
        perf = time.perf_counter
        try:
            if self._model_observes:
                observation = self.stream.next(self.model, 0, step)
                started = perf()
                result = call(observation)
            else:
                started = perf()
                result = call()
            if latencies is not None:
                latencies.append(perf() - started)
        except (Exception, SystemExit) as error:
            raise StepError(
                f"the model ({type(self.model).__name__}) raised {type(error).__name__} at step {step} in "
                f".{self.model_step_method}(): {error}{_where(error)}",
                step=step,
                detail="".join(traceback.format_exception(error)),
            ) from error
        return result

    # -- what the report says about it ---------------------------------------------------

    def mode(self) -> dict[str, Any]:
        """The Workload fields of the report that describe how the population was stepped."""
        return {
            "agents_from": self.stepping.agents_from,
            "step_model": self.stepping.step_model,
            "model_step_method": self.model_step_method,
        }

    def notes(self) -> list[str]:
        found: list[str] = []
        if self.model is not None:
            found.append(
                f"the agents were read from .{self.stepping.agents_from} of the model ({type(self.model).__name__}) "
                "after building and after every step; what the model holds counts as the program (shared, module_global), "
                "never as one agent's"
            )
        if self.stepping.step_model:
            found.append(
                f"step latencies are of whole model steps (one .{self.model_step_method}() call steps the population), not of one agent's step"
            )
        if self._set_up is not None:
            found.append(f"the model was set up with {self._set_up} before the first step, as agentpy's run() does")
        if self.appeared or self.removed:
            found.append(
                f"the agent set changed while stepping: {self.initial_agents} agents after building, {self.appeared} appeared "
                f"and {self.removed} were removed, {len(self._agents)} at the end; agent_id follows each agent"
            )
        if self._duplicate_label is not None:
            found.append(f"two agents carry the same id {self._duplicate_label!r}: agent_id does not tell them apart")
        return found
