"""What ``fa-mem optimize`` costs next to one default ``fa-mem profile``, and what it gives.

    python benchmarks/optimize_cost.py [--agents 10] [--steps 100] [--repetitions 3]

For each bundled workload (sample_agents/explorer.py, and sample_agents/wrapped.py, the
user's class around a pymdp-style library agent), the two commands run interleaved,
``--repetitions`` times each, in fresh processes: a default profile, and an optimize with
every plugin and a target (2 MB per agent for the explorer, a fifth of the baseline for
the wrapped agent). The table gives the medians of the wall times and of their paired
ratios, and from the optimize JSON: per-agent bytes before and after, the step-time
ratio, what the replays proved, and how many candidates were tried, kept and rolled back.
Every figure is read from fa-mem's own output; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_benchmarks import fa_mem, machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"explorer.py": "2MB", "wrapped.py": None}  # None: a fifth of the baseline


def megabytes(value: float) -> str:
    return f"{value / 1e6:.2f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repetitions", type=int, default=3)
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fa-mem-optimize-cost-"))
    rows = []
    for name, target in WORKLOADS.items():
        workload = [str(ROOT / "sample_agents" / name), "-n", str(options.agents), "--steps", str(options.steps)]
        report = scratch / f"{name}.profile.json"
        if target is None:
            fa_mem(["profile", *workload, "--scaling", "none", "--no-trace", "--json", str(report)])
            baseline = json.loads(report.read_text())["population"]["per_agent_bytes"]
            target = f"{int(baseline / 5)}B"
        profile_times, optimize_times, ratios = [], [], []
        result: dict = {}
        for repetition in range(options.repetitions):
            _, profiled = fa_mem(["profile", *workload, "--json", str(report)])
            output = scratch / f"{name}.optimize.{repetition}.json"
            _, optimized = fa_mem(["optimize", *workload, "--target", target, "--json", str(output)])
            profile_times.append(profiled)
            optimize_times.append(optimized)
            ratios.append(optimized / profiled)
            result = json.loads(output.read_text())
            print(f"{name} #{repetition + 1}: profile {profiled:.1f} s, optimize {optimized:.1f} s", file=sys.stderr, flush=True)
        after = result["after"] or result["before"]
        trials = result["trials"]
        rows.append(
            {
                "workload": name,
                "target": target,
                "profile_s": statistics.median(profile_times),
                "optimize_s": statistics.median(optimize_times),
                "ratio": statistics.median(ratios),
                "before": result["before"]["population"]["per_agent_bytes"],
                "after": after["population"]["per_agent_bytes"],
                "target_met": result["target_met"],
                "step_time_ratio": result["step_time_ratio"],
                "summary": result["summary"],
                "tried": len(trials),
                "kept": sum(trial["accepted"] for trial in trials),
                "rolled_back": [f"{t['plugin']} on .{t['attribute']}: {t['failure']}" for t in trials if not t["accepted"]],
            }
        )
    info = machine()
    print(f"{options.agents} agents x {options.steps} steps, {options.repetitions} interleaved repetitions (medians); "
          f"{info['cpu']}, {info['usable_cpus']} usable CPUs, load average {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}.\n")
    print("| workload | profile | optimize | optimize / profile (paired) | per agent before | after | target | step time | tried / kept |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
    for row in rows:
        step = f"{row['step_time_ratio']:.2f} x" if row["step_time_ratio"] is not None else "-"
        print(
            f"| {row['workload']} | {row['profile_s']:.1f} s | {row['optimize_s']:.1f} s | {row['ratio']:.1f} x | "
            f"{megabytes(row['before'])} | {megabytes(row['after'])} | {row['target']} {'met' if row['target_met'] else 'missed'} | "
            f"{step} | {row['tried']} / {row['kept']} |"
        )
    print()
    for row in rows:
        print(f"- {row['workload']}: {row['summary']}." + (f" Rolled back: {'; '.join(row['rolled_back'])}." if row["rolled_back"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
