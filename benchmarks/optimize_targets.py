"""The optimize targets on sample_agents/explorer.py, measured in one run.

    python benchmarks/optimize_targets.py [--agents 10] [--steps 200] [--output FILE]

1. ``fa-mem optimize`` with every plugin, target 3.5 MB per agent: per-agent amortized
   bytes before and after, whether replay kept identical actions, the step-time ratio
   measured side by side in the replay; and the same with ``--max-slowdown 1.25``.
2. Each plugin alone (``--plugins NAME`` with an unreachable target, so it keeps
   everything that plugin can do): per-agent bytes after.
3. 50 agents with the plan from 1 applied (``fa-mem profile --plan``) and without it,
   each fitted over two population sizes: marginal RSS per agent after the steps, times
   50, against the 256 MB target; and the untraced step latency of both.

Every figure is read from fa-mem's own JSON output; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_benchmarks import fa_mem  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXPLORER = ROOT / "sample_agents" / "explorer.py"
PLUGINS = ["shared-parameters", "lazy-beliefs", "compressed-history", "lower-precision"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "optimize_results.json"))
    options = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="fa-mem-optimize-bench-"))
    workload = [str(EXPLORER), "-n", str(options.agents), "--steps", str(options.steps)]
    results: dict[str, object] = {"agents": options.agents, "steps": options.steps}

    plan = scratch / "plan.json"
    full = scratch / "optimize.json"
    code, seconds = fa_mem(["optimize", *workload, "--target", "3.5MB", "--scaling", "none", "--json", str(full), "--plan-out", str(plan)], OPENBLAS_NUM_THREADS="1")
    data = json.loads(full.read_text())
    after = data["after"] or data["before"]
    results["all_plugins"] = {
        "exit_code": code,
        "seconds": seconds,
        "per_agent_before": data["before"]["population"]["per_agent_bytes"],
        "per_agent_after": after["population"]["per_agent_bytes"],
        "target_met": data["target_met"],
        "verified": data["verified"],
        "replay_steps": data["replay_steps"],
        "step_time_ratio": data["step_time_ratio"],
        "kept": [f"{t['plugin']}:{t['attribute']}" for t in data["trials"] if t["accepted"]],
        "rolled_back": [f"{t['plugin']}:{t['attribute']} ({t['reason']})" for t in data["trials"] if not t["accepted"]],
    }
    print(json.dumps(results["all_plugins"], indent=1), flush=True)

    bounded = scratch / "optimize-bounded.json"
    code, seconds = fa_mem(["optimize", *workload, "--target", "3.5MB", "--max-slowdown", "1.25", "--scaling", "none", "--json", str(bounded)], OPENBLAS_NUM_THREADS="1")
    data = json.loads(bounded.read_text())
    after = data["after"] or data["before"]
    results["all_plugins_max_slowdown_1_25"] = {
        "exit_code": code,
        "seconds": seconds,
        "per_agent_after": after["population"]["per_agent_bytes"],
        "target_met": data["target_met"],
        "step_time_ratio": data["step_time_ratio"],
        "kept": [f"{t['plugin']}:{t['attribute']}" for t in data["trials"] if t["accepted"]],
        "rolled_back": [f"{t['plugin']}:{t['attribute']} ({t['reason']})" for t in data["trials"] if not t["accepted"]],
    }
    print(json.dumps(results["all_plugins_max_slowdown_1_25"], indent=1), flush=True)

    alone: dict[str, object] = {}
    for plugin in PLUGINS:
        output = scratch / f"{plugin}.json"
        code, seconds = fa_mem(["optimize", *workload, "--plugins", plugin, "--target", "1kB", "--scaling", "none", "--json", str(output)], OPENBLAS_NUM_THREADS="1")
        single = json.loads(output.read_text())
        final = single["after"] or single["before"]
        alone[plugin] = {
            "per_agent_after": final["population"]["per_agent_bytes"],
            "step_time_ratio": single["step_time_ratio"],
            "kept": [t["attribute"] for t in single["trials"] if t["accepted"]],
            "seconds": seconds,
        }
        print(plugin, json.dumps(alone[plugin]), flush=True)
    results["each_plugin_alone"] = alone

    population = options.population
    sizes = f"{population // 2},{population}"
    for label, extra in (("baseline", []), ("optimized", ["--plan", str(plan)])):
        output = scratch / f"population-{label}.json"
        fa_mem(["profile", str(EXPLORER), "-n", str(population), "--steps", str(options.steps), "--no-trace",
                "--scaling", sizes, "--json", str(output), *extra], OPENBLAS_NUM_THREADS="1")
        report = json.loads(output.read_text())
        marginal = report["population"]["marginal_rss_per_agent_after_steps"]
        results[f"population_{label}"] = {
            "agents": population,
            "per_agent_bytes": report["population"]["per_agent_bytes"],
            "marginal_rss_per_agent_after_steps": marginal,
            "marginal_rss_total": marginal * population if marginal is not None else None,
            "step_ms_p50": report["timing"]["step_ms_p50"],
            "fixed_rss_bytes": report["population"]["fixed_rss_bytes"],
        }
        print(label, json.dumps(results[f"population_{label}"]), flush=True)
    base = results["population_baseline"]
    optimized = results["population_optimized"]
    results["population_step_time_ratio"] = optimized["step_ms_p50"] / base["step_ms_p50"]  # type: ignore[index]
    Path(options.output).write_text(json.dumps(results, indent=1) + "\n")
    print(f"results written to {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
