"""Finding and loading the user's agent module, its factory and its observation stream.

The protocol (docs/protocol.md):

- the module defines ``create_agents(n, seed) -> list`` (or the factory named with
  ``--factory NAME`` or ``--factory package.module:function``);
- it may define ``observe(agent, step, rng)`` returning the next observation for one
  agent, where ``rng`` is that agent's ``numpy.random.Generator`` seeded with
  ``[seed, agent_index]``; without it, fa-mem feeds each agent
  ``int(rng.integers(0, 2**16))`` from the same per-agent generator;
- every agent has ``.step(observation)`` (or the method named with ``--step-method``).

The factory may instead return a model that owns its agents (``--agents-from``); how a
population is built, read and stepped is in ``fa_memtool.population_driver``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from fa_memtool.errors import UsageError, WorkloadError
from fa_memtool.factory_args import check_accepted, describe_call, substitute

DEFAULT_FACTORY = "create_agents"
OBSERVE_FUNCTION = "observe"
DEFAULT_OBSERVATION_HIGH = 2**16


def check_target(target: str) -> None:
    """Fail fast, in the parent, on a target that cannot be a module."""
    if target.endswith(".py") or "/" in target or "\\" in target or Path(target).exists():
        path = Path(target)
        if not path.exists():
            raise UsageError(f"no such file: {target}")
        if path.is_dir():
            raise UsageError(f"{target} is a directory; give a .py file or a dotted module name")
        if path.suffix != ".py":
            raise UsageError(f"{target} is not a Python file (expected a .py file or a dotted module name)")
        return
    if not all(part.isidentifier() for part in target.split(".")):
        raise UsageError(f"{target!r} is neither a .py file nor a dotted module name")


def _short_traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


def _user_frame(error: BaseException) -> str:
    """``file:line`` of the innermost frame of the error, for one-line messages."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" ({Path(last.filename).name}:{last.lineno})"


def load_module(target: str) -> ModuleType:
    """Import the user's module from a .py path or a dotted name, in this process."""
    check_target(target)
    try:
        if target.endswith(".py") or Path(target).is_file():
            path = Path(target).resolve()
            sys.path.insert(0, str(path.parent))
            name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else "fa_mem_workload"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise WorkloadError(f"cannot load {target} as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module
        sys.path.insert(0, str(Path.cwd()))
        return importlib.import_module(target)
    except SyntaxError as error:
        name = Path(error.filename or target).name
        # A file that is not Python text (a binary, NUL bytes) has no line to point at.
        where = f"{name}:{error.lineno}" if error.lineno is not None else f"{name} (no line number: the file is not Python source text)"
        raise WorkloadError(f"syntax error in {where}: {error.msg}", detail=_short_traceback(error)) from error
    except ModuleNotFoundError as error:
        if error.name == target:
            raise WorkloadError(f"no module named {target!r} (from {Path.cwd()})") from error
        raise WorkloadError(
            f"importing {target} failed: {type(error).__name__}: {error}{_user_frame(error)}",
            detail=_short_traceback(error),
        ) from error
    except WorkloadError:
        raise
    except SystemExit as error:
        raise WorkloadError(
            f"importing {target} called sys.exit({error.code!r}){_user_frame(error)}", detail=_short_traceback(error)
        ) from error
    except Exception as error:
        raise WorkloadError(
            f"importing {target} failed: {type(error).__name__}: {error}{_user_frame(error)}",
            detail=_short_traceback(error),
        ) from error


def find_factory(module: ModuleType, factory: str | None) -> tuple[str, Callable[..., Any]]:
    """The factory function: ``--factory NAME``, ``module:function`` or ``create_agents``."""
    if factory and ":" in factory:
        module_name, _, function_name = factory.partition(":")
        try:
            owner = importlib.import_module(module_name)
        except Exception as error:
            raise WorkloadError(f"cannot import {module_name!r} for --factory {factory}: {error}") from error
    else:
        owner, function_name = module, factory or DEFAULT_FACTORY
    candidate = getattr(owner, function_name, None)
    if candidate is None:
        if factory:
            raise WorkloadError(f"no factory {function_name!r} in {owner.__name__}")
        raise WorkloadError(
            f"no factory found in {owner.__name__}: looked for {DEFAULT_FACTORY}(n, seed); "
            "define it or name another function with --factory"
        )
    if not callable(candidate):
        raise WorkloadError(f"{owner.__name__}.{function_name} is a {type(candidate).__name__}, not a function")
    return f"{owner.__name__}.{function_name}", candidate


def call_factory(
    factory_name: str,
    factory: Callable[..., Any],
    *,
    agents: int,
    seed: int,
    factory_args: dict[str, Any] | None = None,
) -> tuple[str, Any]:
    """Call the factory: ``factory(n, seed)``, or with the keyword arguments when given.

    Returns how the call reads in messages (``make(10, 0)``) and what the factory returned.
    """
    if factory_args is None:
        positional: tuple[Any, ...] = (agents, seed)
        keywords: dict[str, Any] = {}
        call = f"{factory_name}({agents}, {seed})"
    else:
        check_accepted(factory, factory_args, factory_name=factory_name)
        positional = ()
        keywords = substitute(factory_args, agents=agents, seed=seed)
        call = describe_call(factory_name, keywords)
    try:
        built = factory(*positional, **keywords)
    except (Exception, SystemExit) as error:
        raise WorkloadError(
            f"{call} raised {type(error).__name__}: {error}{_user_frame(error)}", detail=_short_traceback(error)
        ) from error
    return call, built


def is_agent_object(value: object) -> bool:
    """Interpreter values that cannot be an agent (nor be sized as one) are refused."""
    return not (value is None or isinstance(value, (bool, int, float, complex, str, bytes, type, ModuleType)))


def check_agent_list(call: str, built: Any, *, requested: int) -> list[Any]:
    """What the factory returned must be a non-empty list or tuple of agent objects."""
    if not isinstance(built, (list, tuple)):
        raise WorkloadError(
            f"{call} returned a {type(built).__name__}; expected a non-empty list of agents "
            "(or name where a returned model keeps them with --agents-from)"
        )
    if not built:
        raise WorkloadError(f"{call} returned an empty list; expected {requested} agents")
    for index, agent in enumerate(built):
        if not is_agent_object(agent):
            raise WorkloadError(
                f"{call} returned {type(agent).__name__} {agent!r:.40} as agent {index}; "
                "agents must be objects with a step method"
            )
    return list(built)


@dataclass
class ObservationStream:
    """Per-agent seeded observations, the same for every run with the same seed.

    An agent's generator is keyed by its creation order (``index``): agents that
    appear while stepping get theirs when they first observe.
    """

    observe: Callable[[Any, int, Any], Any] | None
    seed: int
    agents: int
    recorded: Any = None  # fa_memtool.observations.RecordedObservations (--observations): replaces both

    def __post_init__(self) -> None:
        self._generators = {index: self._generator(index) for index in range(self.agents)}

    def _generator(self, index: int) -> Any:
        import numpy

        return numpy.random.default_rng([self.seed, index])

    @property
    def source(self) -> str:
        if self.recorded is not None:
            return "file"
        return "module" if self.observe is not None else "default"

    def next(self, agent: Any, index: int, step: int) -> Any:
        if self.recorded is not None:
            return self.recorded.at(step, index)
        rng = self._generators.get(index)
        if rng is None:
            rng = self._generators[index] = self._generator(index)
        if self.observe is None:
            return int(rng.integers(0, DEFAULT_OBSERVATION_HIGH))
        return self.observe(agent, step, rng)


def find_observe(module: ModuleType) -> Callable[[Any, int, Any], Any] | None:
    observe = getattr(module, OBSERVE_FUNCTION, None)
    return observe if callable(observe) else None


def observation_stream(module: ModuleType, *, seed: int, agents: int) -> ObservationStream:
    return ObservationStream(find_observe(module), seed, agents)


def program_globals(module: ModuleType) -> list[object]:
    """Objects owned by the program: the module's globals and its classes' attributes.

    Agents that reach them share them with the program; they are never exclusive.
    Modules loaded from the same directory as the user's module count as the program too.
    """
    owners = [module]
    module_file = getattr(module, "__file__", None)
    if module_file:
        folder = Path(module_file).resolve().parent
        for other in list(sys.modules.values()):
            other_file = getattr(other, "__file__", None)
            if other is not module and other_file and Path(other_file).resolve().parent == folder:
                owners.append(other)
    found: list[object] = []
    for owner in owners:
        for value in vars(owner).values():
            found.append(value)
            if isinstance(value, type) and value.__module__ == owner.__name__:
                found.extend(vars(value).values())
    return found
