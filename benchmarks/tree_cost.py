"""What the tree of paths costs a sample: ``measure_population`` with and without it.

Both variants run interleaved on the same live population (one warm-up round, then
REPETITIONS rounds alternating which goes first), and the script prints the median
time of each and the median of the paired ratios, as a Markdown table for
docs/benchmarks.md. A profile builds the tree at 6 samples (first, last and four
between), so the table also gives the extra time of those samples over a default
run's 21 samples, from the same medians.

    python benchmarks/tree_cost.py [--repetitions 9] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "sample_agents"))

import population  # noqa: E402

from fa_memtool.child import TREE_SAMPLES  # noqa: E402
from fa_memtool.pathtree import flatten  # noqa: E402
from fa_memtool.sizing import measure_population  # noqa: E402

DEFAULT_SAMPLES = 21  # a default profile: one after building and twenty over the steps


def _time(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def compare(agents: list[Any], repetitions: int) -> dict[str, Any]:
    contenders = {
        "without": lambda: measure_population(agents, paths=False),
        "with": lambda: measure_population(agents, paths=True),
    }
    for call in contenders.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_number in range(repetitions):
        order = list(contenders) if round_number % 2 == 0 else list(reversed(contenders))
        for name in order:
            gc.collect()
            times[name].append(_time(contenders[name]))
    sized = measure_population(agents, paths=True)
    ratios = [with_ / without for with_, without in zip(times["with"], times["without"])]
    return {
        "objects": sized.objects,
        "rows": len(flatten(sized.paths)),
        "without": statistics.median(times["without"]),
        "with": statistics.median(times["with"]),
        "paired_ratio": statistics.median(ratios),
    }


def populations(quick: bool) -> list[tuple[str, Callable[[], list[Any]]]]:
    import explorer
    import wrapped

    sizes = (50, 500) if quick else (50, 500, 4000)
    found: list[tuple[str, Callable[[], list[Any]]]] = [
        (f"population.py, {count} agents", lambda count=count: population.build(count, seed=0)[0]) for count in sizes
    ]
    found.append(("wrapped.py, 50 agents", lambda: wrapped.create_agents(50, 0)))
    found.append(("explorer.py, 10 agents", lambda: explorer.create_agents(10, 0)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="fewer populations and repetitions (a smoke test)")
    options = parser.parse_args()
    repetitions = 3 if options.quick else options.repetitions
    print(f"Medians of {repetitions} interleaved repetitions; Python {sys.version.split()[0]}.\n")
    print("| population | objects | tree rows | sample without tree | with tree | paired ratio | default run: extra sampling time |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, build in populations(options.quick):
        agents = build()
        result = compare(agents, repetitions)
        extra = TREE_SAMPLES * (result["with"] - result["without"]) / (DEFAULT_SAMPLES * result["without"])
        print(
            f"| {name} | {result['objects']:,} | {result['rows']} | {result['without'] * 1000:.1f} ms | "
            f"{result['with'] * 1000:.1f} ms | {result['paired_ratio']:.2f} | +{extra:.0%} |"
        )
        del agents
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
