"""Step time of a belief update loop: dense ndarray against LazyBeliefArray (and storage
against scipy.sparse CSR).

    python benchmarks/lazy_beliefs_speed.py [--agents 20] [--steps 50] [--repetitions 9] [--quick]

A population of ``--agents`` agents each holds one mostly-zero float64 belief over
(position cell x target site), (448, 8) (a 28 x 16 grid, as sample_agents/explorer.py)
or (64, 64, 8) (a 64 x 64 grid). Every step an agent

1. predicts through the shared position transition (a scipy CSR matrix, cells x cells,
   each cell reaching itself and its 4 neighbours):
   ``belief[...] = (transition @ belief.reshape(-1, 8)).reshape(shape)``,
2. looks up the likelihood of its observation in a shared model table (nonzero on the
   cells within Manhattan distance 4 of the observed cell, all sites: 41 cells, 328
   values; the observed cell does a random walk along a path through the grid, so
   consecutive likelihoods overlap),
3. ``posterior = belief * likelihood``, normalises it (``posterior /= total``, or
   re-localises from the likelihood when the product is all zero) and writes it back
   with ``belief[...] = posterior``,
4. adds evidence at four (cell, site) pairs with ``belief[cells, sites] += bonus``,
5. applies a dense per-element decay in place, ``np.multiply(belief, decay, out=belief)``,
   renormalises with ``belief /= belief.sum()``,
6. acts on ``belief.argmax()``.

The "belief update" workload is steps 1-6: every operation touches the belief, the
worst case for the lazy array. The "agent step" workload adds a small planning
computation every agent also runs: scoring 125 policies, a dense (125, cells) table
times the position marginal ``belief.sum(axis=-1)``, and a softmax over the scores (a
real planner, such as the explorer's, costs far more than this).

A last row steps the bundled explorer (sample_agents/explorer.py; a fifth of
``--agents``, at least 2, for a fifth of ``--steps``) with its ``predicted_states`` in
float32, once dense and once as a LazyBeliefArray: the two transformations fa-mem
optimize keeps there, on a real agent's step.

Both contenders get identical observation streams and the script checks that their
actions are identical. Repetitions are interleaved (dense, lazy, dense, lazy, ...)
after one untimed warm-up round, via run_benchmarks.interleaved; the table gives the
median time per agent step of each and the median of the per-repetition ratios
(lazy / dense). Storage is measured after the run on every agent: dense ``nbytes``,
LazyBeliefArray ``stored_bytes`` and a CSR matrix of the same values (shape
``(shape[0], -1)``: data + indices + indptr).
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks  # noqa: E402  (interleaved timing, medians, machine record)

from fa_memtool.containers.lazy import LazyBeliefArray  # noqa: E402

SITES = 8
RADIUS = 4  # likelihood support: cells within this Manhattan distance of the observed cell
PATH_CELLS = 64  # observable cells, consecutive ones adjacent (a serpentine path)
BONUS_CELLS = 4
POLICIES = 125
WORKLOADS = {False: "belief update", True: "agent step"}


@dataclass(frozen=True)
class World:
    shape: tuple[int, ...]
    width: int
    height: int
    likelihood: np.ndarray  # (PATH_CELLS, *shape): the model table shared by all agents
    decay: np.ndarray  # shape, dense, in (0.5, 1]
    transition: scipy.sparse.csr_matrix  # (cells, cells), column-stochastic, 5 nonzeros per column
    policies: np.ndarray  # (POLICIES, cells), dense
    path: np.ndarray  # (PATH_CELLS,) cell index of each observable cell


def build_world(shape: tuple[int, ...], seed: int) -> World:
    rng = np.random.default_rng([seed, 7])
    if len(shape) == 2:
        cells = shape[0]
        width, height = 28, cells // 28
    else:
        width, height = shape[1], shape[0]
        cells = width * height
    xs, ys = np.arange(cells) % width, np.arange(cells) // width
    serpentine = [y * width + (x if y % 2 == 0 else width - 1 - x) for y in range(height) for x in range(width)]
    start = (len(serpentine) - PATH_CELLS) // 2
    path = np.array(serpentine[start : start + PATH_CELLS])
    likelihood = np.zeros((PATH_CELLS, cells, SITES))
    for index, cell in enumerate(path):
        near = np.abs(xs - xs[cell]) + np.abs(ys - ys[cell]) <= RADIUS
        likelihood[index, near] = rng.uniform(0.05, 1.0, size=(int(near.sum()), SITES))
    decay = rng.uniform(0.5, 1.0, size=shape)
    transition = rng.random((cells, cells)) * (np.abs(xs[:, None] - xs[None, :]) + np.abs(ys[:, None] - ys[None, :]) <= 1)
    transition /= transition.sum(axis=0, keepdims=True)
    policies = rng.random((POLICIES, cells))
    return World(shape, width, height, likelihood.reshape(PATH_CELLS, *shape), decay, scipy.sparse.csr_matrix(transition), policies, path)


class Agent:
    def __init__(self, world: World, belief: Any, seed: int) -> None:
        self.world = world
        self.belief = belief
        self.rng = np.random.default_rng(seed)
        self.position = PATH_CELLS // 2
        self.actions: list[int] = []

    def step(self, plan: bool) -> None:
        world = self.world
        self.position = int(np.clip(self.position + self.rng.integers(-1, 2), 0, PATH_CELLS - 1))
        belief = self.belief
        belief[...] = (world.transition @ belief.reshape(-1, SITES)).reshape(world.shape)
        likelihood = world.likelihood[self.position]
        posterior = belief * likelihood
        total = posterior.sum()
        if total > 0.0:
            posterior /= total
        else:
            posterior = likelihood / likelihood.sum()
        belief[...] = posterior
        cells = world.path[np.clip(self.position + self.rng.integers(-2, 3, size=BONUS_CELLS), 0, PATH_CELLS - 1)]
        sites = self.rng.integers(0, SITES, size=BONUS_CELLS)
        index = (cells, sites) if len(world.shape) == 2 else (cells // world.width, cells % world.width, sites)
        belief[index] += 0.05
        np.multiply(belief, world.decay, out=belief)
        belief /= belief.sum()
        if plan:
            scores = world.policies @ belief.sum(axis=-1).reshape(-1)
            weights = np.exp(scores - scores.max())
            self.actions.append(int((weights / weights.sum()).argmax()))
        self.actions.append(int(belief.argmax()))


def population(world: World, agents: int, seed: int, lazy: bool, threshold: float) -> list[Agent]:
    result = []
    for index in range(agents):
        start = np.zeros(world.shape)
        start.reshape(-1, SITES)[world.path[PATH_CELLS // 2]] = 1.0 / SITES
        belief = LazyBeliefArray.from_dense(start, sparsity_threshold=threshold) if lazy else start
        result.append(Agent(world, belief, seed * 1000 + index))
    return result


def csr_bytes(values: np.ndarray) -> int:
    matrix = scipy.sparse.csr_matrix(values.reshape(values.shape[0], -1))
    return int(matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)


def measure(shape: tuple[int, ...], plan: bool, arguments: argparse.Namespace) -> dict[str, Any]:
    world = build_world(shape, arguments.seed)
    dense_agents = population(world, arguments.agents, arguments.seed, lazy=False, threshold=arguments.threshold)
    lazy_agents = population(world, arguments.agents, arguments.seed, lazy=True, threshold=arguments.threshold)

    def rounds(agents: list[Agent]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(arguments.steps):
                for agent in agents:
                    agent.step(plan)

        return run

    label = f"{shape} {WORKLOADS[plan]}"
    run_benchmarks.log(f"  {label}")
    times, _ = run_benchmarks.interleaved([("dense", rounds(dense_agents)), ("lazy", rounds(lazy_agents))], arguments.repetitions)
    for dense_agent, lazy_agent in zip(dense_agents, lazy_agents):
        if dense_agent.actions != lazy_agent.actions:
            raise SystemExit(f"{label}: LazyBeliefArray agents acted differently from dense ones")
        if not np.array_equal(np.asarray(lazy_agent.belief), dense_agent.belief):
            raise SystemExit(f"{label}: LazyBeliefArray beliefs differ from dense ones")
    per_step = arguments.steps * arguments.agents
    lazy_bytes = [agent.belief.stored_bytes for agent in lazy_agents]
    return {
        "shape": list(shape),
        "workload": WORKLOADS[plan],
        "dense_step_us": run_benchmarks.median(times["dense"]) / per_step * 1e6,
        "lazy_step_us": run_benchmarks.median(times["lazy"]) / per_step * 1e6,
        "ratio": run_benchmarks.paired_median_ratio(times["lazy"], times["dense"]),
        "times": times,
        "nnz_mean": float(np.mean([agent.belief.nnz for agent in lazy_agents])),
        "sparse_agents": sum(agent.belief.is_sparse for agent in lazy_agents),
        "agents": len(lazy_agents),
        "dense_bytes": int(dense_agents[0].belief.nbytes),
        "lazy_bytes_mean": float(np.mean(lazy_bytes)),
        "csr_bytes_mean": float(np.mean([csr_bytes(agent.belief) for agent in dense_agents])),
    }


def measure_explorer(arguments: argparse.Namespace) -> dict[str, Any]:
    """The bundled explorer (sample_agents/explorer.py) whose ``predicted_states`` (125
    policies x 3 steps x 448 cells x 8 sites, written three blocks a step) is float32,
    dense against a LazyBeliefArray: what the two kept transformations cost a real step."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sample_agents"))
    import explorer

    agents = max(2, arguments.agents // 5)

    def population_of(lazy: bool) -> tuple[list[Any], list[Any]]:
        built = explorer.create_agents(agents, arguments.seed)
        for agent in built:
            lowered = agent.predicted_states.astype(np.float32)
            agent.predicted_states = LazyBeliefArray.from_dense(lowered) if lazy else lowered
        return built, [np.random.default_rng([arguments.seed, index]) for index in range(agents)]

    dense, lazy = population_of(False), population_of(True)
    actions: dict[str, list[Any]] = {"dense": [], "lazy": []}
    step_counter = {"dense": 0, "lazy": 0}

    def rounds(name: str, built: tuple[list[Any], list[Any]]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(max(1, arguments.steps // 5)):
                for agent, rng in zip(*built):
                    actions[name].append(agent.step(explorer.observe(agent, step_counter[name], rng)))
                step_counter[name] += 1

        return run

    run_benchmarks.log("  explorer")
    times, _ = run_benchmarks.interleaved([("dense", rounds("dense", dense)), ("lazy", rounds("lazy", lazy))], arguments.repetitions)
    if actions["dense"] != actions["lazy"]:
        raise SystemExit("explorer: LazyBeliefArray agents acted differently from dense ones")
    per_step = max(1, arguments.steps // 5) * agents
    stored = [agent.predicted_states.stored_bytes for agent in lazy[0]]
    return {
        "shape": list(lazy[0][0].predicted_states.shape),
        "workload": f"explorer.py step ({agents} agents)",
        "dense_step_us": run_benchmarks.median(times["dense"]) / per_step * 1e6,
        "lazy_step_us": run_benchmarks.median(times["lazy"]) / per_step * 1e6,
        "ratio": run_benchmarks.paired_median_ratio(times["lazy"], times["dense"]),
        "times": times,
        "nnz_mean": float(np.mean([agent.predicted_states.nnz for agent in lazy[0]])),
        "sparse_agents": sum(agent.predicted_states.is_sparse for agent in lazy[0]),
        "agents": agents,
        "dense_bytes": int(dense[0][0].predicted_states.nbytes),
        "lazy_bytes_mean": float(np.mean(stored)),
        "csr_bytes_mean": float(np.mean([csr_bytes(agent.predicted_states) for agent in dense[0]])),
    }


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"LazyBeliefArray step time, {results['config']['agents']} agents x {results['config']['steps']} steps, "
        f"{results['config']['repetitions']} interleaved repetitions, sparsity_threshold {results['config']['threshold']}; {m['cpu']}, Python {m['python']}, numpy {m['numpy']}, "
        f"scipy {m['scipy']}, fa-mem {m['fa_mem']}.",
        "",
        "| belief | workload | dense step | lazy step | lazy / dense (paired median) | nnz | sparse agents | dense bytes | lazy stored bytes | CSR bytes | lazy / CSR |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        shape = " x ".join(str(length) for length in row["shape"])
        lines.append(
            f"| {shape} | {row['workload']} | {row['dense_step_us']:.1f} µs | {row['lazy_step_us']:.1f} µs | {row['ratio']:.2f}x | "
            f"{row['nnz_mean']:.0f} | {row['sparse_agents']}/{row['agents']} | {row['dense_bytes']:,} | {row['lazy_bytes_mean']:,.0f} | {row['csr_bytes_mean']:,.0f} | "
            f"{row['lazy_bytes_mean'] / row['csr_bytes_mean']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50, help="steps per agent per timed repetition")
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threshold", type=float, default=0.8, help="LazyBeliefArray sparsity_threshold (0.9, the plugin's, puts a 448 x 8 belief with ~330 nonzeros at its capacity)"
    )
    parser.add_argument("--quick", action="store_true", help="5 agents, 10 steps, 3 repetitions")
    parser.add_argument("--json", action="store_true", help="print the results (every timing included) as JSON")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.agents, arguments.steps, arguments.repetitions = 5, 10, 3
    results: dict[str, Any] = {
        "machine": run_benchmarks.machine(),
        "config": {
            "agents": arguments.agents,
            "steps": arguments.steps,
            "repetitions": arguments.repetitions,
            "seed": arguments.seed,
            "threshold": arguments.threshold,
        },
        "rows": [measure(shape, plan, arguments) for shape in ((448, 8), (64, 64, 8)) for plan in (False, True)],
    }
    results["rows"].append(measure_explorer(arguments))
    print(json.dumps(results, indent=2, default=float) if arguments.json else render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
