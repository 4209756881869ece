"""What a default ``fa-mem profile`` costs next to just running the agents.

    python benchmarks/profile_cost.py [--repetitions 5] [--only NAME ...] [--quick]

For each workload, two commands run interleaved (plain, fa-mem, plain, fa-mem, ...),
each in a fresh process, after one untimed warm-up of each:

- plain: benchmarks/plain_step.py, which imports the module, builds the agents with
  the same factory call and steps them with the same observation stream, importing
  nothing from fa-mem;
- fa-mem: ``fa-mem profile`` with its defaults (allocation sites, the RSS fit, the
  release check), writing a JSON report.

With ``--compare FA_MEM`` a third command, the same profile run by another fa-mem
executable (an earlier version installed in its own virtual environment), runs in the same
interleaving, and its ratio to the same plain runs is shown beside.

The table gives the medians of the whole-process wall times and of their paired ratios
(each fa-mem run over the plain run just before it), and of the stepping phases
(``timing.stepping_wall_seconds`` of the report over the plain loop's
``stepping_seconds``). Every figure is measured in this run; nothing is typed in by hand.
The aims (issue: profile cost) are 1.5x whole-run on the 50-agent workloads and 2x on the
1,000 small agents and on pymdp; 1.10x on the stepping phase with allocation sites.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


@dataclass(frozen=True)
class Workload:
    name: str
    module: Path
    agents: int
    steps: int
    aim: float  # whole-run ratio


WORKLOADS = (
    Workload("array-heavy", BENCH / "workloads" / "array_heavy.py", 50, 100, 1.5),
    Workload("containers", BENCH / "workloads" / "containers.py", 50, 100, 1.5),
    Workload("leaky", ROOT / "sample_agents" / "leaky.py", 50, 100, 1.5),
    Workload("small", BENCH / "workloads" / "small.py", 1000, 10, 2.0),
    Workload("pymdp", ROOT / "tests" / "integration" / "optimize_workloads" / "pymdp_agents.py", 10, 30, 2.0),
    Workload("explorer (README)", ROOT / "sample_agents" / "explorer.py", 10, 100, 1.5),
)


def environment() -> dict[str, str]:
    return dict(os.environ, FA_MEM_NO_PROGRESS="1", NO_COLOR="1", PYTHONHASHSEED="0")


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    return elapsed, completed.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="workload names to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the steps, two repetitions: a smoke test")
    parser.add_argument("--output", type=Path, default=BENCH / "profile_cost_results.json")
    parser.add_argument("--compare", type=Path, metavar="FA_MEM",
                        help="another fa-mem executable (an earlier version's venv) run interleaved beside this one")
    options = parser.parse_args()
    repetitions = 2 if options.quick else options.repetitions
    scratch = Path(tempfile.mkdtemp(prefix="fa-mem-profile-cost-"))
    fa_mem = str(Path(sys.executable).parent / "fa-mem")
    rows = []
    for workload in WORKLOADS:
        if options.only and workload.name.split()[0] not in options.only:
            continue
        steps = max(1, workload.steps // 10) if options.quick else workload.steps
        report_file = scratch / "report.json"
        plain = [sys.executable, str(BENCH / "plain_step.py"), str(workload.module), "--agents", str(workload.agents), "--steps", str(steps)]
        profiled = [fa_mem, "profile", str(workload.module), "-n", str(workload.agents), "--steps", str(steps), "--json", str(report_file)]
        compared = [str(options.compare), *profiled[1:]] if options.compare else None
        timed(plain), timed(profiled)  # warm-up: page cache, bytecode
        if compared:
            timed(compared)
        walls: dict[str, list[float]] = {"plain": [], "fa-mem": [], "compared": []}
        ratios, stepping_ratios, compared_ratios = [], [], []
        for _ in range(repetitions):
            plain_wall, output = timed(plain)
            plain_stepping = json.loads(output.strip().splitlines()[-1])["stepping_seconds"]
            profiled_wall, _ = timed(profiled)
            timing = json.loads(report_file.read_text())["timing"]
            walls["plain"].append(plain_wall)
            walls["fa-mem"].append(profiled_wall)
            ratios.append(profiled_wall / plain_wall)
            stepping_ratios.append(timing["stepping_wall_seconds"] / plain_stepping)
            if compared:
                compared_wall, _ = timed(compared)
                walls["compared"].append(compared_wall)
                compared_ratios.append(compared_wall / plain_wall)
        row = {
            "workload": workload.name,
            "agents": workload.agents,
            "steps": steps,
            "plain_wall_s": statistics.median(walls["plain"]),
            "fa_mem_wall_s": statistics.median(walls["fa-mem"]),
            "ratio": statistics.median(ratios),
            "stepping_ratio": statistics.median(stepping_ratios),
            "aim": workload.aim,
            "compared_ratio": statistics.median(compared_ratios) if compared_ratios else None,
            "walls": walls,
        }
        rows.append(row)
        print(f"{workload.name}: plain {row['plain_wall_s']:.2f} s, fa-mem {row['fa_mem_wall_s']:.2f} s, "
              f"ratio {row['ratio']:.2f} (aim {workload.aim}), stepping {row['stepping_ratio']:.3f}", flush=True)
    print()
    print(f"{repetitions} interleaved repetitions each, medians")
    print()
    extra = " compared fa-mem / plain |" if options.compare else ""
    print(f"| workload | agents x steps | plain | fa-mem profile | paired ratio | aim | met | stepping phase ratio |{extra}")
    print("|---|---|---:|---:|---:|---:|---|---:|" + ("---:|" if options.compare else ""))
    for row in rows:
        met = "yes" if row["ratio"] <= row["aim"] else "no"
        also = f" {row['compared_ratio']:.2f}x |" if options.compare else ""
        print(f"| {row['workload']} | {row['agents']} x {row['steps']} | {row['plain_wall_s']:.2f} s | {row['fa_mem_wall_s']:.2f} s | "
              f"{row['ratio']:.2f}x | {row['aim']}x | {met} | {row['stepping_ratio']:.3f} |{also}")
    options.output.write_text(json.dumps({"repetitions": repetitions, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
