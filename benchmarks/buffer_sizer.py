"""Sizing torch agents: fa-mem's sizer against the plain tensor walk and pympler.

Builds N agents, each with a small MLP policy (``Linear(64, 256)``, ``ReLU``,
``Linear(256, 4)``), an Adam optimizer after one backward pass and step (so it holds
``exp_avg``, ``exp_avg_sq`` and ``step`` for every parameter, and every parameter has a
``.grad``), a 1000 x 64 float32 replay buffer tensor and ``recent``, a view of its last
100 rows. Then, in this process, on the same live agents:

1. the plain walk a user would write: ``numel() * element_size()`` of every tensor of
   every agent (parameters, grads, optimizer state, the buffer and its view), counted
   once per storage (``untyped_storage().data_ptr()``). Its result is the ground truth
   for the tensor bytes;
2. ``fa_memtool.sizing.measure_population(agents)`` (with the tree of paths, as a
   profile sample that builds it) and ``measure_population(agents, paths=False)``;
3. ``pympler.asizeof.asizeof(*agents)``.

Every method runs once untimed (warm-up), then ROUNDS rounds each run every method
once, in an order rotated by one every round; ``gc.collect()`` runs before every timed
call (outside the timing). The script prints the median seconds of each, its ratio to
the plain walk's median and the bytes it reports against the ground truth, as Markdown
for docs/benchmarks.md (``--json``: the same results, every timing included, as JSON).

    python benchmarks/buffer_sizer.py [--agents 500] [--rounds 5] [--json]
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from pympler import asizeof  # noqa: E402
from torch import nn  # noqa: E402

import fa_memtool  # noqa: E402
from fa_memtool.sizing import deep_size, measure_population  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_benchmarks  # noqa: E402  (its machine record)

PLAIN = "plain tensor walk"
FA_MEM = "fa-mem measure_population"
FA_MEM_NO_PATHS = "fa-mem measure_population(paths=False)"
PYMPLER = "pympler asizeof(*agents)"


class TorchAgent:
    """A small reinforcement-learning agent: policy, optimizer, replay buffer."""

    def __init__(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.policy = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 4))
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=1e-3)
        observations = torch.randn(32, 64, generator=generator)
        self.policy(observations).pow(2).mean().backward()
        self.optimizer.step()  # Adam now holds exp_avg, exp_avg_sq and step per parameter
        self.replay = torch.randn(1000, 64, generator=generator)  # float32, 256,000 B
        self.recent = self.replay[-100:]  # a view: the same storage


def build(count: int) -> list[TorchAgent]:
    return [TorchAgent(seed) for seed in range(count)]


def agent_tensors(agent: TorchAgent) -> Iterator[torch.Tensor]:
    """Every tensor the agent holds, as a user would list them."""
    for parameter in agent.policy.parameters():
        yield parameter
        if parameter.grad is not None:
            yield parameter.grad
    for state in agent.optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor):
                yield value
    yield agent.replay
    yield agent.recent


def plain_walk(agents: list[TorchAgent]) -> int:
    """The tensor bytes, counted once per storage. A storage seen through several
    tensors (the buffer and its view) is charged the largest of their byte counts,
    so the result does not depend on which is listed first."""
    by_storage: dict[int, int] = {}
    for agent in agents:
        for tensor in agent_tensors(agent):
            pointer = tensor.untyped_storage().data_ptr()
            nbytes = tensor.numel() * tensor.element_size()
            if nbytes > by_storage.get(pointer, -1):
                by_storage[pointer] = nbytes
    return sum(by_storage.values())


def storage_bytes(agents: list[TorchAgent]) -> tuple[int, int]:
    """Cross-check of the ground truth: distinct storages and their ``nbytes()``."""
    storages: dict[int, int] = {}
    for agent in agents:
        for tensor in agent_tensors(agent):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return len(storages), sum(storages.values())


def machine() -> dict[str, Any]:
    """The machine, as the other benchmarks record it, and the torch build."""
    found = run_benchmarks.machine()
    found.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    return found


def run(agent_count: int, rounds: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = time.perf_counter()
    agents = build(agent_count)
    build_seconds = time.perf_counter() - started
    truth = plain_walk(agents)
    storage_count, storage_total = storage_bytes(agents)
    per_agent_truth = [plain_walk([agent]) for agent in agents]

    contenders: dict[str, Callable[[], Any]] = {
        PLAIN: lambda: plain_walk(agents),
        FA_MEM: lambda: measure_population(agents),
        FA_MEM_NO_PATHS: lambda: measure_population(agents, paths=False),
        PYMPLER: lambda: asizeof.asizeof(*agents),
    }
    names = list(contenders)

    def reported(result: Any) -> int:
        return int(result) if isinstance(result, int) else int(result.distinct_bytes)

    # Warm-up, in the listed order: fa-mem's first call is on agents no walk has touched.
    first: dict[str, int] = {}
    for name in names:
        gc.collect()
        first[name] = reported(contenders[name]())

    times: dict[str, list[float]] = {name: [] for name in names}
    last: dict[str, Any] = {}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            begun = time.perf_counter()
            result = contenders[name]()
            times[name].append(time.perf_counter() - begun)
            last[name] = result
    load_after = os.getloadavg()

    sized = last[FA_MEM]
    plain_median = statistics.median(times[PLAIN])
    methods = []
    for name in names:
        median = statistics.median(times[name])
        methods.append(
            {
                "method": name,
                "median_seconds": median,
                "ratio_to_plain": median / plain_median,
                "paired_ratio_to_plain": statistics.median(t / p for t, p in zip(times[name], times[PLAIN])),
                "bytes": reported(last[name]),
                "bytes_first_call": first[name],
                "bytes_over_truth": reported(last[name]) / truth,
                "seconds": times[name],
            }
        )
    margins = [agent.exclusive_bytes + agent.shared_bytes - own for agent, own in zip(sized.agents, per_agent_truth)]
    amortized_margins = [agent.amortized_bytes - own for agent, own in zip(sized.agents, per_agent_truth)]
    return {
        "machine": machine(),
        "load_average_before": load_before[0],
        "load_average_after": load_after[0],
        "agents": agent_count,
        "rounds": rounds,
        "build_seconds": build_seconds,
        "truth_tensor_bytes": truth,
        "truth_storages": storage_count,
        "truth_storage_nbytes": storage_total,
        "truth_per_agent": truth / agent_count,
        "fa_mem_objects": sized.objects,
        "fa_mem_unsized_objects": sized.unsized_objects,
        "fa_mem_exclusive_bytes": sized.exclusive_bytes,
        "fa_mem_shared_bytes": sized.shared_bytes,
        "fa_mem_device_bytes": sized.device_bytes,
        "fa_mem_min_agent_margin": min(margins),
        "fa_mem_min_agent_amortized_margin": min(amortized_margins),
        "deep_size_agent0": deep_size(agents[0]),
        "truth_agent0": per_agent_truth[0],
        "methods": methods,
    }


def megabytes(value: float) -> str:
    return f"{value / 1e6:,.3f} MB"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    truth = result["truth_tensor_bytes"]
    n = result["agents"]
    lines = [
        f"{n} torch agents, medians of {result['rounds']} interleaved rounds (order rotated every round) after a warm-up;",
        f"Python {m['python']}, torch {m['torch']} ({m['torch_threads']} threads), pympler {m['pympler']}, "
        f"fa-mem {m['fa_mem']} (fa_memtool source sha256 {m['fa_memtool_source_sha256']}); {m['cpu']}, {m['logical_cpus']} logical CPUs;",
        f"load average {result['load_average_before']:.2f} before, {result['load_average_after']:.2f} after; building took {result['build_seconds']:.1f} s.",
        "",
        "Ratio = the method's median time / the plain walk's median time (paired: median of the per-round ratios).",
        "",
        "| method | median time | ratio to plain walk | paired ratio | bytes reported | / tensor bytes (ground truth) | difference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["methods"]:
        lines.append(
            f"| {row['method']} | {row['median_seconds'] * 1000:,.1f} ms | {row['ratio_to_plain']:.1f} | {row['paired_ratio_to_plain']:.1f} | "
            f"{row['bytes']:,} | {row['bytes_over_truth']:.4f} | {row['bytes'] - truth:+,} |"
        )
    lines += [
        "",
        f"Ground truth: {truth:,} B of tensors ({megabytes(truth)}, {result['truth_per_agent']:,.0f} B per agent) in "
        f"{result['truth_storages']:,} distinct storages; the storages' own `nbytes()` sum to {result['truth_storage_nbytes']:,} B.",
    ]
    fa_mem = next(row for row in result["methods"] if row["method"] == FA_MEM)
    verdict = "at or above" if fa_mem["bytes"] >= truth else "BELOW"
    lines.append(
        f"fa-mem `distinct_bytes` {fa_mem['bytes']:,} B is {verdict} the tensor bytes: {fa_mem['bytes'] - truth:+,} B "
        f"({(fa_mem['bytes'] - truth) / n:+,.0f} B per agent of Python objects: modules, their registries, the optimizer's "
        f"dicts and lists, tensor headers), {result['fa_mem_objects']:,} objects, {result['fa_mem_unsized_objects']} unsized; "
        f"on accelerators: {result['fa_mem_device_bytes'] or 'none'}."
    )
    lines.append(
        f"Per agent, exclusive + shared bytes minus the agent's own tensor bytes: at least {result['fa_mem_min_agent_margin']:+,} B; "
        f"amortized: at least {result['fa_mem_min_agent_amortized_margin']:+,.0f} B. "
        f"`deep_size(agents[0])` = {result['deep_size_agent0']:,} B against {result['truth_agent0']:,} B of tensors."
    )
    changed = [row for row in result["methods"] if row["bytes_first_call"] != row["bytes"]]
    for row in changed:
        lines.append(
            f"{row['method']}: its first call (warm-up) reported {row['bytes_first_call']:,} B, the timed calls {row['bytes']:,} B "
            f"({row['bytes'] - row['bytes_first_call']:+,} B, {(row['bytes'] - row['bytes_first_call']) / n:+,.1f} B per agent)."
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=500, help="population size (default 500)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, each running every method once (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of Markdown")
    options = parser.parse_args()
    if options.agents < 1 or options.rounds < 1:
        parser.error("--agents and --rounds must be at least 1")
    result = run(options.agents, options.rounds)
    print(json.dumps(result, indent=2) if options.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
