"""The unprofiled baseline: import an agent module, build agents, step them, print timings.

    python benchmarks/plain_step.py MODULE.py --agents N --steps S [--seed K]

It does what ``fa-mem profile`` does to the agents and nothing else: the same
factory call ``create_agents(n, seed)``, the same per-agent observation stream
(``numpy.random.default_rng([seed, agent_index])``, the module's
``observe(agent, step, rng)`` when it defines one, else
``int(rng.integers(0, 2**16))``), the same order (every agent once per step). It
imports nothing from fa-mem, so its numbers carry no profiler cost at all.

Prints one JSON line with ``create_seconds`` and ``stepping_seconds`` (the whole
stepping loop, observe() included); the wall-clock time of the whole process is
measured by the caller, from spawn to exit.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

DEFAULT_OBSERVATION_HIGH = 2**16


def load(path: str):  # type: ignore[no-untyped-def]
    file = Path(path).resolve()
    sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location(file.stem, file)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[file.stem] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module")
    parser.add_argument("--agents", "-n", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    import numpy

    module = load(arguments.module)
    started = time.perf_counter()
    agents = list(module.create_agents(arguments.agents, arguments.seed))
    create_seconds = time.perf_counter() - started
    generators = [numpy.random.default_rng([arguments.seed, index]) for index in range(len(agents))]
    observe = getattr(module, "observe", None)
    bound = [agent.step for agent in agents]

    perf = time.perf_counter
    loop_started = perf()
    if callable(observe):
        for step in range(arguments.steps):
            for index, agent in enumerate(agents):
                bound[index](observe(agent, step, generators[index]))
    else:
        for _step in range(arguments.steps):
            for index in range(len(agents)):
                bound[index](int(generators[index].integers(0, DEFAULT_OBSERVATION_HIGH)))
    stepping_seconds = perf() - loop_started

    print(
        json.dumps(
            {
                "agents": len(agents),
                "steps": arguments.steps,
                "create_seconds": create_seconds,
                "stepping_seconds": stepping_seconds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
