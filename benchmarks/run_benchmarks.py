"""fa-mem benchmarks: the sizer against pympler, and what profiling adds to stepping.

    python benchmarks/run_benchmarks.py            # full run, several minutes
    python benchmarks/run_benchmarks.py --quick    # smoke test, under a minute

Prints a markdown summary and writes benchmarks/results.json (``--output`` to change).

1. Sizer vs pympler, in this process, on populations built by benchmarks/population.py
   (which keeps a ledger of every object it creates, the ground truth for bytes) and on
   sample_agents/explorer.py (timing; its bytes are shown beside each other, with no
   ledger). Timed: ``fa_memtool.sizing.measure_population(agents)``,
   ``pympler.asizeof.asizeof(*agents)`` and ``[asizeof.asizeof(a) for a in agents]``
   (plus, for information, ``measure_population(agents, attribute_detail=False)``).
2. Profile overhead on sample_agents/explorer.py: a plain stepping script
   (benchmarks/plain_step.py), ``fa-mem profile --no-trace --scaling none`` and
   ``fa-mem profile --scaling none`` (tracing on), each a fresh subprocess.

Repetitions are interleaved (A B C A B C ...) after one untimed warm-up round, so
machine noise hits every contender alike; figures are medians.
"""

from __future__ import annotations

import os

# Before numpy is imported here, and for every child: one BLAS thread, stable timing.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from pympler import asizeof  # noqa: E402

import fa_memtool  # noqa: E402
import population  # noqa: E402  (benchmarks/population.py)
from fa_memtool.sizing import measure_population  # noqa: E402

EXPLORER = ROOT / "sample_agents" / "explorer.py"
AIM_NO_TRACE = 0.05  # sampling without tracing adds at most 5 % to the stepping phase
AIM_TRACE = 0.10  # with allocation sites, at most 10 %


@dataclass(frozen=True)
class Config:
    quick: bool
    repetitions: int
    population_sizes: tuple[int, ...]
    explorer_agents: int
    overhead_agents: int
    overhead_steps: int
    overhead_repetitions: int


FULL = Config(False, 7, (50, 500), 50, 10, 100, 7)
QUICK = Config(True, 3, (20, 100), 5, 4, 20, 3)


# ---------------------------------------------------------------------- helpers


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    digest = hashlib.sha256()
    for source in sorted((ROOT / "fa_memtool").rglob("*.py")):
        digest.update(source.relative_to(ROOT).as_posix().encode())
        digest.update(source.read_bytes())
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_bytes": memory,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pympler": getattr(sys.modules["pympler"], "__version__", "unknown"),
        "fa_mem": fa_memtool.__version__,
        "fa_memtool_source_sha256": digest.hexdigest()[:16],
        "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def fa_mem(arguments: list[str], **environment: str) -> tuple[int, float]:
    """Run the installed ``fa-mem`` command (no progress bar, no colour, plus ``environment``);
    its exit code (0 or 1, the verdict) and wall seconds. Any other exit stops the benchmark."""
    command = [str(Path(sys.executable).parent / "fa-mem"), *arguments]
    started = time.perf_counter()
    completed = subprocess.run(command, env=dict(os.environ, FA_MEM_NO_PROGRESS="1", NO_COLOR="1", **environment), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        sys.stderr.write(completed.stdout[-2000:] + completed.stderr[-2000:])
        raise SystemExit(f"fa-mem {' '.join(arguments[:2])} exited {completed.returncode}")
    return completed.returncode, elapsed


def interleaved(contenders: list[tuple[str, Callable[[], Any]]], repetitions: int) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """One untimed warm-up call each (its result is kept), then A B C A B C ... timed."""
    results: dict[str, Any] = {}
    for name, call in contenders:
        gc.collect()
        results[name] = call()
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for repetition in range(repetitions):
        for name, call in contenders:
            gc.collect()
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
        log(f"    repetition {repetition + 1}/{repetitions}: " + ", ".join(f"{n} {t[-1]:.4f}s" for n, t in times.items()))
    return times, results


def paired_median_ratio(numerator: list[float], denominator: list[float]) -> float:
    return median([a / b for a, b in zip(numerator, denominator) if b > 0])


# ---------------------------------------------------------------- 1. the sizer

FA = "fa-mem measure_population"
FA_FLAT = "fa-mem measure_population(attribute_detail=False)"
PY_WHOLE = "pympler asizeof(*agents)"
PY_EACH = "pympler [asizeof(a) for a in agents]"


def sizer_contenders(agents: list[Any]) -> list[tuple[str, Callable[[], Any]]]:
    return [
        (FA, lambda: measure_population(agents)),
        (PY_WHOLE, lambda: asizeof.asizeof(*agents)),
        (PY_EACH, lambda: [asizeof.asizeof(agent) for agent in agents]),
        (FA_FLAT, lambda: measure_population(agents, attribute_detail=False)),
    ]


def timing_summary(times: dict[str, list[float]]) -> dict[str, Any]:
    fa = times[FA]
    return {
        "seconds": {name: values for name, values in times.items()},
        "median_seconds": {name: median(values) for name, values in times.items()},
        # > 1: the other tool is slower than fa-mem; < 1: faster.
        "ratio_of_medians_vs_fa_mem": {name: median(values) / median(fa) for name, values in times.items()},
        "median_paired_ratio_vs_fa_mem": {name: paired_median_ratio(values, fa) for name, values in times.items()},
    }


def pympler_share_of(agents: list[Any], shared: object) -> list[int]:
    """Bytes of ``shared`` inside each per-agent asizeof: asizeof(a) minus asizeof(a) with it excluded."""
    charged = []
    for agent in agents:
        sizer = asizeof.Asizer()
        sizer.exclude_objs(shared)
        charged.append(asizeof.asizeof(agent) - sizer.asizeof(agent))
    return charged


def bytes_for_population(agents: list[Any], world: population.World, ledger: population.Ledger, results: dict[str, Any]) -> dict[str, Any]:
    sized = results[FA]
    count = len(agents)
    owner_bytes = ledger.sizes()
    truth = sum(owner_bytes.values())
    truth_shared = owner_bytes.get(population.SHARED, 0)
    truth_agent = [owner_bytes.get(index, 0) for index in range(count)]

    # What fa-mem counts that the construction did not create: the dict keys (interned
    # attribute names owned by the classes' code), one object each, shared by all agents.
    keys: dict[int, object] = {}
    for obj in ledger.objects.values():
        if type(obj) is dict:
            for key in obj:
                if id(key) not in ledger.objects:
                    keys[id(key)] = key
    key_bytes = sum(sys.getsizeof(key) for key in keys.values())
    distinct_difference = sized.distinct_bytes - truth
    amortized = [agent.amortized_bytes for agent in sized.agents]
    exclusive = [agent.exclusive_bytes for agent in sized.agents]
    expected_amortized = [own + (truth_shared + key_bytes) / count for own in truth_agent]

    # pympler counts a view's data again (header + nbytes, and then its base too).
    view_bytes = sum(
        int(obj.nbytes) for obj in ledger.objects.values() if isinstance(obj, np.ndarray) and obj.base is not None
    )
    whole = results[PY_WHOLE]
    each = results[PY_EACH]
    transition = world.transition
    transition_group = next(
        (g for g in sized.shared_groups if g.objects == 1 and g.largest_bytes == sys.getsizeof(transition)), None
    )
    pympler_transition = pympler_share_of(agents, transition)
    pympler_transition_alone = asizeof.asizeof(transition)
    return {
        "agents": count,
        "objects_in_ledger": len(ledger.objects),
        "objects_walked_by_fa_mem": sized.objects,
        "ground_truth_bytes": truth,
        "ground_truth_shared_bytes": truth_shared,
        "ground_truth_per_agent_mean_bytes": sum(truth_agent) / count,
        "transition_bytes": sys.getsizeof(transition),
        "fa_mem": {
            "distinct_bytes": sized.distinct_bytes,
            "distinct_minus_truth": distinct_difference,
            "dict_key_strings": len(keys),
            "dict_key_string_bytes": key_bytes,
            "unexplained_bytes": distinct_difference - key_bytes,
            "sum_amortized_bytes": sum(amortized),
            "sum_amortized_over_truth": sum(amortized) / truth,
            "sum_amortized_minus_distinct": sum(amortized) - sized.distinct_bytes,
            "max_abs_exclusive_minus_ledger": max(abs(e - t) for e, t in zip(exclusive, truth_agent)),
            "max_abs_amortized_minus_expected": max(abs(a - e) for a, e in zip(amortized, expected_amortized)),
            "shared_bytes": sized.shared_bytes,
            "transition_sharers": transition_group.sharers if transition_group else None,
            "transition_charge_per_agent": (transition_group.bytes / transition_group.sharers) if transition_group else None,
            "transition_factor": (
                transition_group.bytes / sys.getsizeof(transition) if transition_group else None
            ),  # the group's bytes are split over its sharers, so the charges add up to this
        },
        "pympler": {
            "whole_bytes": whole,
            "whole_over_truth": whole / truth,
            "whole_minus_truth": whole - truth,
            "view_buffer_bytes": view_bytes,
            "whole_minus_truth_minus_views": whole - truth - view_bytes,
            "per_agent_sum_bytes": sum(each),
            "per_agent_mean_bytes": sum(each) / count,
            "per_agent_sum_over_truth": sum(each) / truth,
            "per_agent_first_equals_whole": each[0] == whole,
            "transition_alone_bytes": pympler_transition_alone,
            "transition_charged_sum_bytes": sum(pympler_transition),
            "transition_charged_in_agents": sum(1 for value in pympler_transition if value > 0),
            "transition_factor": sum(pympler_transition) / sys.getsizeof(transition),
        },
    }


def load_explorer() -> Any:
    spec = importlib.util.spec_from_file_location("explorer", EXPLORER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["explorer"] = module
    spec.loader.exec_module(module)
    return module


def bench_sizer(config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {"populations": []}
    for count in config.population_sizes:
        log(f"sizer: benchmark population, {count} agents")
        agents, world, ledger = population.build(count, seed=0)
        times, results = interleaved(sizer_contenders(agents), config.repetitions)
        entry = {"population": "benchmarks/population.py", "agents": count, **timing_summary(times)}
        entry["bytes"] = bytes_for_population(agents, world, ledger, results)
        out["populations"].append(entry)
        del agents, world, ledger, results
        gc.collect()

    log(f"sizer: sample_agents/explorer.py, {config.explorer_agents} agents")
    explorer = load_explorer()
    agents = explorer.create_agents(config.explorer_agents, 0)
    times, results = interleaved(sizer_contenders(agents), config.repetitions)
    sized = results[FA]
    entry = {"population": "sample_agents/explorer.py", "agents": len(agents), **timing_summary(times)}
    entry["bytes"] = {
        "agents": len(agents),
        "objects_walked_by_fa_mem": sized.objects,
        "fa_mem": {
            "distinct_bytes": sized.distinct_bytes,
            "sum_amortized_bytes": sum(a.amortized_bytes for a in sized.agents),
            "shared_bytes": sized.shared_bytes,
        },
        "pympler": {
            "whole_bytes": results[PY_WHOLE],
            "whole_over_fa_mem_distinct": results[PY_WHOLE] / sized.distinct_bytes,
            "per_agent_sum_bytes": sum(results[PY_EACH]),
            "per_agent_sum_over_fa_mem_distinct": sum(results[PY_EACH]) / sized.distinct_bytes,
        },
    }
    out["populations"].append(entry)
    del agents, results, sized
    gc.collect()
    return out


# ------------------------------------------------------- 2. profile overhead


def child_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        FA_MEM_NO_PROGRESS="1",
        PYTHONHASHSEED="0",  # what fa-mem's runner gives its measuring child
    )
    return environment


def fa_mem_command() -> list[str]:
    script = Path(sys.executable).parent / "fa-mem"
    if script.exists():
        return [str(script)]
    found = shutil.which("fa-mem")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from fa_memtool.cli import main; sys.exit(main())"]


def timed_process(command: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds from spawn to exit, CPU seconds (user + system) of the process and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=ROOT, env=child_environment(), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, completed


PLAIN, NO_TRACE, TRACE = "plain", "fa-mem --no-trace", "fa-mem (tracing)"
TIMING_FIELDS = (
    "stepping_wall_seconds",
    "stepping_seconds",
    "sampling_seconds",
    "create_seconds",
    "step_ms_p50",
    "traced_step_ms_p50",
    "untraced_step_ms_p50",
    "profiling_overhead_fraction",
)


def bench_overhead(config: Config) -> dict[str, Any]:
    n, steps = str(config.overhead_agents), str(config.overhead_steps)
    target = str(EXPLORER.relative_to(ROOT))
    scratch = Path(tempfile.mkdtemp(prefix="fa-mem-bench-"))
    commands = {
        PLAIN: [sys.executable, str(BENCH_DIR / "plain_step.py"), target, "--agents", n, "--steps", steps],
        NO_TRACE: [*fa_mem_command(), "profile", target, "-n", n, "--steps", steps, "--no-trace", "--scaling", "none", "--json", str(scratch / "no-trace.json")],
        TRACE: [*fa_mem_command(), "profile", target, "-n", n, "--steps", steps, "--scaling", "none", "--json", str(scratch / "trace.json")],
    }
    json_of = {NO_TRACE: scratch / "no-trace.json", TRACE: scratch / "trace.json"}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in commands}

    def run(name: str) -> dict[str, Any]:
        if name in json_of and json_of[name].exists():
            json_of[name].unlink()
        wall, cpu, completed = timed_process(commands[name])
        if name == PLAIN:
            plain = json.loads(completed.stdout.strip().splitlines()[-1])
            return {
                "process_seconds": wall,
                "process_cpu_seconds": cpu,
                "stepping_wall_seconds": plain["stepping_seconds"],
                "create_seconds": plain["create_seconds"],
            }
        report = json.loads(json_of[name].read_text())
        timing = report["timing"]
        row = {"process_seconds": wall, "process_cpu_seconds": cpu, **{field: timing.get(field) for field in TIMING_FIELDS}}
        row["traced_steps"] = report["allocations"]["traced_steps"]
        row["samples"] = len(report["growth"]["samples"])
        return row

    load_before = os.getloadavg()
    log(f"overhead: {target} -n {n} --steps {steps}; warm-up round")
    for name in commands:
        run(name)
    for repetition in range(config.overhead_repetitions):
        for name in commands:
            runs[name].append(run(name))
        log(
            f"    repetition {repetition + 1}/{config.overhead_repetitions}: "
            + ", ".join(f"{name} stepping {rows[-1]['stepping_wall_seconds']:.3f}s / process {rows[-1]['process_seconds']:.3f}s" for name, rows in runs.items())
        )
    shutil.rmtree(scratch, ignore_errors=True)
    load_after = os.getloadavg()

    def med(name: str, field: str) -> float | None:
        values = [row[field] for row in runs[name] if row.get(field) is not None]
        return median(values) if values else None

    def least(name: str, field: str) -> float:
        return min(row[field] for row in runs[name])

    plain_stepping = med(PLAIN, "stepping_wall_seconds")
    plain_process = med(PLAIN, "process_seconds")
    summary: dict[str, Any] = {
        "command": {name: " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command)) for name, command in commands.items()},
        "agents": config.overhead_agents,
        "steps": config.overhead_steps,
        "runs": runs,
        "plain": {
            "stepping_seconds": plain_stepping,
            "process_seconds": plain_process,
            "process_cpu_seconds": med(PLAIN, "process_cpu_seconds"),
            "create_seconds": med(PLAIN, "create_seconds"),
            "min_stepping_seconds": least(PLAIN, "stepping_wall_seconds"),
        },
        "load_average_1min": {"before": load_before[0], "after": load_after[0]},
    }
    for name, aim in ((NO_TRACE, AIM_NO_TRACE), (TRACE, AIM_TRACE)):
        medians = {field: med(name, field) for field in (*TIMING_FIELDS, "process_seconds", "process_cpu_seconds")}
        stepping_ratio = medians["stepping_wall_seconds"] / plain_stepping
        paired = paired_median_ratio(
            [row["stepping_wall_seconds"] for row in runs[name]], [row["stepping_wall_seconds"] for row in runs[PLAIN]]
        )
        # Where the extra stepping time goes (medians, so the parts need not add up exactly).
        loop_excess = medians["stepping_seconds"] - plain_stepping  # inside the step loop: bookkeeping + traced steps
        between = medians["stepping_wall_seconds"] - medians["stepping_seconds"] - medians["sampling_seconds"]
        summary[name] = {
            "aim_fraction": aim,
            "medians": medians,
            "stepping_ratio": stepping_ratio,
            "stepping_ratio_paired_median": paired,
            "process_ratio": medians["process_seconds"] / plain_process,
            "process_ratio_paired_median": paired_median_ratio(
                [row["process_seconds"] for row in runs[name]], [row["process_seconds"] for row in runs[PLAIN]]
            ),
            "process_cpu_ratio": medians["process_cpu_seconds"] / summary["plain"]["process_cpu_seconds"],
            # The least of each series: the run least disturbed by anything else on the machine.
            "stepping_ratio_of_minimums": least(name, "stepping_wall_seconds") / least(PLAIN, "stepping_wall_seconds"),
            "added_fraction": stepping_ratio - 1.0,
            "aim_met": stepping_ratio - 1.0 <= aim,
            "breakdown_seconds": {
                "extra_stepping_phase": medians["stepping_wall_seconds"] - plain_stepping,
                "sampling": medians["sampling_seconds"],
                "step_loop_excess_over_plain": loop_excess,
                "between_steps_other": between,  # tracemalloc snapshots / start / stop, progress
            },
            "traced_steps": med(name, "traced_steps"),
            "samples": med(name, "samples"),
        }
    return summary


# ------------------------------------------------------------------ rendering


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 0.1:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds:.3f} s"


def fmt_b(value: float) -> str:
    value = float(value)
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.3f} {unit}"
    return f"{value:.0f} B"


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    config = results["config"]
    lines = [
        "# fa-mem benchmarks" + (" (--quick: smoke test, too few repetitions to quote)" if config["quick"] else ""),
        "",
        f"Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {fmt_b(m['memory_bytes'])} RAM; "
        f"Python {m['python']}, numpy {m['numpy']}, scipy {m['scipy']}, pympler {m['pympler']}, fa-mem {m['fa_mem']} "
        f"(fa_memtool source sha256 {m['fa_memtool_source_sha256']}); OPENBLAS_NUM_THREADS={m['blas_threads']}.",
        f"Medians of {config['repetitions']} interleaved repetitions (sizer) and "
        f"{config['overhead_repetitions']} (profile overhead), after one untimed warm-up round.",
        "",
        "## 1. Sizer vs pympler: time",
        "",
        "Ratios are the other tool's median time over fa-mem's (> 1: fa-mem is faster).",
        "",
        "| population | agents | objects | fa-mem measure_population | pympler asizeof(*agents) | ratio | "
        "pympler per-agent asizeof | ratio | fa-mem attribute_detail=False (info) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in results["sizer"]["populations"]:
        med, ratio = entry["median_seconds"], entry["ratio_of_medians_vs_fa_mem"]
        lines.append(
            f"| {Path(entry['population']).name} | {entry['agents']} | {entry['bytes']['objects_walked_by_fa_mem']} | "
            f"{fmt_s(med[FA])} | {fmt_s(med[PY_WHOLE])} | {ratio[PY_WHOLE]:.2f} | {fmt_s(med[PY_EACH])} | "
            f"{ratio[PY_EACH]:.2f} | {fmt_s(med[FA_FLAT])} |"
        )
    lines += [
        "",
        "## 1. Sizer vs pympler: bytes (benchmark population, ground truth from the construction ledger)",
        "",
        "| agents | ground truth | fa-mem distinct | difference | of which dict-key strings | unexplained | "
        "fa-mem Σ amortized / truth | max \\|amortized − expected\\| | max \\|exclusive − ledger\\| |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    pops = [e for e in results["sizer"]["populations"] if "ground_truth_bytes" in e["bytes"]]
    for entry in pops:
        b = entry["bytes"]
        f = b["fa_mem"]
        lines.append(
            f"| {b['agents']} | {b['ground_truth_bytes']:,} | {f['distinct_bytes']:,} | {f['distinct_minus_truth']:+,} | "
            f"{f['dict_key_string_bytes']:,} ({f['dict_key_strings']} str) | {f['unexplained_bytes']:+,} | "
            f"{f['sum_amortized_over_truth']:.5f} | {f['max_abs_amortized_minus_expected']:.3g} B | "
            f"{f['max_abs_exclusive_minus_ledger']:,} B |"
        )
    lines += [
        "",
        "| agents | pympler asizeof(*agents) | / truth | excess | of which view buffers counted again | rest | "
        "Σ per-agent asizeof | / truth | shared transition matrix: pympler factor | fa-mem factor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in pops:
        b = entry["bytes"]
        p, f = b["pympler"], b["fa_mem"]
        fa_factor = f"{f['transition_factor']:.2f} ({f['transition_sharers']} sharers)" if f["transition_factor"] is not None else "n/a"
        lines.append(
            f"| {b['agents']} | {p['whole_bytes']:,} | {p['whole_over_truth']:.3f} | {p['whole_minus_truth']:+,} | "
            f"{p['view_buffer_bytes']:,} | {p['whole_minus_truth_minus_views']:+,} | {fmt_b(p['per_agent_sum_bytes'])} | "
            f"{p['per_agent_sum_over_truth']:.1f} | {p['transition_factor']:.2f} ({p['transition_charged_in_agents']} agents) | {fa_factor} |"
        )
    explorer = [e for e in results["sizer"]["populations"] if "ground_truth_bytes" not in e["bytes"]]
    for entry in explorer:
        b = entry["bytes"]
        lines += [
            "",
            f"explorer.py, {b['agents']} agents (no ledger): fa-mem distinct {fmt_b(b['fa_mem']['distinct_bytes'])}, "
            f"Σ amortized {fmt_b(b['fa_mem']['sum_amortized_bytes'])}; pympler asizeof(*agents) "
            f"{fmt_b(b['pympler']['whole_bytes'])} ({b['pympler']['whole_over_fa_mem_distinct']:.4f} × fa-mem), "
            f"Σ per-agent {fmt_b(b['pympler']['per_agent_sum_bytes'])} ({b['pympler']['per_agent_sum_over_fa_mem_distinct']:.4f} × fa-mem).",
        ]

    o = results.get("overhead")
    if not o:
        lines.append("")
        return "\n".join(lines)
    load = o["load_average_1min"]
    lines += [
        "",
        f"## 2. Profile overhead: explorer.py, {o['agents']} agents, {o['steps']} steps",
        "",
        f"Plain stepping loop: {fmt_s(o['plain']['stepping_seconds'])} (least {fmt_s(o['plain']['min_stepping_seconds'])}); "
        f"plain process: {fmt_s(o['plain']['process_seconds'])} wall, {fmt_s(o['plain']['process_cpu_seconds'])} CPU. "
        f"1-minute load average {load['before']:.2f} before, {load['after']:.2f} after "
        f"({results['machine']['usable_cpus']} CPUs; this benchmark itself adds about 1).",
        "",
        "Stepping phase = `timing.stepping_wall_seconds` (fa-mem: step loop + sampling + tracing) vs the plain loop.",
        "",
        "| run | stepping phase | ratio to plain | paired median | ratio of minimums | aim | met (median) | "
        "whole process | ratio | process CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name in (NO_TRACE, TRACE):
        r = o[name]
        med = r["medians"]
        lines.append(
            f"| {name} | {fmt_s(med['stepping_wall_seconds'])} | {r['stepping_ratio']:.3f} | "
            f"{r['stepping_ratio_paired_median']:.3f} | {r['stepping_ratio_of_minimums']:.3f} | "
            f"≤ {1 + r['aim_fraction']:.2f} | {'yes' if r['aim_met'] else 'NO'} | {fmt_s(med['process_seconds'])} | "
            f"{r['process_ratio']:.2f} | {r['process_cpu_ratio']:.2f} |"
        )
    lines += [
        "",
        "Where the stepping phase's time goes (medians; the parts need not add up exactly):",
        "",
        "| run | extra over plain | sampling_seconds | samples | step loop − plain loop | between steps (snapshots, tracemalloc start/stop) | "
        "traced steps | traced / untraced step p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (NO_TRACE, TRACE):
        r = o[name]
        med = r["medians"]
        br = r["breakdown_seconds"]
        traced = (
            f"{med['traced_step_ms_p50']:.2f} / {med['untraced_step_ms_p50']:.2f} ms"
            if med.get("traced_step_ms_p50") is not None
            else f"– / {med['untraced_step_ms_p50']:.2f} ms"
        )
        lines.append(
            f"| {name} | {br['extra_stepping_phase']:+.3f} s | {fmt_s(br['sampling'])} | {r['samples']:.0f} | "
            f"{br['step_loop_excess_over_plain']:+.3f} s | {br['between_steps_other'] * 1000:+.1f} ms | "
            f"{r['traced_steps']:.0f} | {traced} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="fa-mem benchmarks: sizer vs pympler, and profile overhead")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller populations (< 1 min)")
    parser.add_argument("--output", default=str(BENCH_DIR / "results.json"), help="where to write the JSON results")
    parser.add_argument("--skip-overhead", action="store_true", help="only the sizer benchmark")
    arguments = parser.parse_args()
    config = QUICK if arguments.quick else FULL
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "quick": config.quick,
            "repetitions": config.repetitions,
            "population_sizes": list(config.population_sizes),
            "explorer_agents": config.explorer_agents,
            "overhead_agents": config.overhead_agents,
            "overhead_steps": config.overhead_steps,
            "overhead_repetitions": config.overhead_repetitions,
        },
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    results["sizer"] = bench_sizer(config)
    if not arguments.skip_overhead:
        results["overhead"] = bench_overhead(config)
    results["total_seconds"] = time.perf_counter() - started
    Path(arguments.output).write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    print(render(results))
    log(f"wrote {arguments.output} in {results['total_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
