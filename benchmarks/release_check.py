"""What the release check adds to a default profile: paired ``fa-mem profile`` runs with
and without it (``--no-release-check``) on 1,000 small agents, clean and leaking.

    python benchmarks/release_check.py [--pairs 5] [--agents 1000] [--steps 10]

Each pair runs both variants back to back in an order that alternates between pairs;
the script prints the median wall time of each and the median of the paired ratios, as
a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKLOAD = '''
import numpy as np


class Agent:
    registry = []

    def __init__(self, index):
        self.belief = np.zeros(16)
        self.history = []
        self.table = {"seen": 0, "name": f"agent-{index}"}
        if LEAK:
            Agent.registry.append(self)

    def step(self, observation):
        self.belief[observation % 16] += 1.0
        self.history.append(observation)
        return int(self.belief.argmax())


def create_agents(n, seed):
    return [Agent(index) for index in range(n)]
'''


def _profile(directory: Path, module: str, agents: int, steps: int, check: bool) -> float:
    command = [
        str(Path(sys.executable).parent / "fa-mem"), "profile", module, "-n", str(agents), "--steps", str(steps),
        "--no-progress", "--json", os.devnull, "--release-check" if check else "--no-release-check",
    ]
    started = time.perf_counter()
    subprocess.run(command, cwd=directory, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "clean.py").write_text(WORKLOAD.replace("LEAK", "False"))
        (directory / "leaking.py").write_text(WORKLOAD.replace("LEAK", "True"))
        print(f"{options.agents} agents x {options.steps} steps, default profile (tracing, N/2,N scaling), {options.pairs} pairs")
        print(f"load average before: {os.getloadavg()[0]:.2f}\n")
        print("| workload | with the check (median) | without (median) | paired ratio |")
        print("|---|---:|---:|---:|")
        for module in ("clean.py", "leaking.py"):
            with_check, without, ratios = [], [], []
            for pair in range(options.pairs):
                order = (True, False) if pair % 2 == 0 else (False, True)
                times = {check: _profile(directory, module, options.agents, options.steps, check) for check in order}
                with_check.append(times[True])
                without.append(times[False])
                ratios.append(times[True] / times[False])
            print(
                f"| {module.removesuffix('.py')} | {statistics.median(with_check):.2f} s | {statistics.median(without):.2f} s "
                f"| {statistics.median(ratios):.3f} |"
            )
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
