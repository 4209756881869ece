"""``fa-mem gate`` and ``fa-mem baseline update`` through the installed console script.

The workload is tests/integration/gate_workloads/gate_agents.py, copied into a temporary
project as ``agents.py``. A test writes a baseline, then edits one line of the copy to
inject a real regression (or an improvement) and checks the verdict, the exit code and
the figures against ground truth computed here with numpy.

Covered: reliability on unchanged code; regressions (unbounded history, an array
duplicated per agent, a widened dtype); improvements; budgets; ``[tool.fa-mem]``;
output for CI (``$GITHUB_STEP_SUMMARY``, ``--markdown``, ``::error`` annotations,
``--json``); bad input (exit 2, one line, the baseline never clobbered); ``--report``;
a failing step (exit 4).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from fa_mem_cli import (
    ERROR_PREFIX,
    CliProcess,
    CliResult,
    assert_clean_success,
    assert_one_error_line,
    cli_environment,
    import_source,
)

pytestmark = pytest.mark.slow

WORKLOAD_SOURCE = Path(__file__).resolve().parent / "gate_workloads" / "gate_agents.py"
AGENTS = 3
STEPS = 10
RUN = ["agents.py", "-n", str(AGENTS), "--steps", str(STEPS)]  # seed 0, no scaling: the gate's default
FAST = [*RUN, "--no-trace"]
BASELINE = "fa-mem-baseline.json"
UPDATE_HINT = "fa-mem baseline update"
MIN_CHANGE = 1024  # the gate's default --min-change: byte changes smaller than this never fail
TRIPWIRE_VARIABLE = "FA_MEM_GATE_TRIPWIRE"

# The lines of gate_agents.py that the tests edit (each occurs exactly once).
HISTORY_LINE = "= deque(maxlen=HISTORY_LEN)"
TERRAIN_LINE = "self.terrain = world.terrain\n"
WEIGHTS_DTYPE = ".astype(np.float32)"
BIAS_LINE = "        self.bias = np.zeros(BIAS_SIZE)\n"
ACTION_LINE = "        action = int(observation % 3)\n"


def _load_constants() -> ModuleType:
    return import_source(WORKLOAD_SOURCE, "fa_mem_gate_test_agents")


W = _load_constants()
# Ground truth, from numpy in this process (the same numpy the measuring process uses).
ARRAY_HEADER = sys.getsizeof(np.zeros(W.FRAME_SIZE)) - np.zeros(W.FRAME_SIZE).nbytes
WEIGHTS_NBYTES = np.zeros(W.WEIGHTS_SIZE, dtype=np.float32).nbytes
TERRAIN_NBYTES = np.zeros(W.TERRAIN_SIZE).nbytes
FRAME_NBYTES = np.zeros(W.FRAME_SIZE).nbytes
BIAS_NBYTES = np.zeros(W.BIAS_SIZE).nbytes
# What one agent owns at least, counting array buffers only (the shared terrain amortized).
AGENT_FLOOR = WEIGHTS_NBYTES + TERRAIN_NBYTES / AGENTS + BIAS_NBYTES + W.HISTORY_LEN * FRAME_NBYTES
POPULATION_FLOOR = AGENTS * (WEIGHTS_NBYTES + BIAS_NBYTES + W.HISTORY_LEN * FRAME_NBYTES) + TERRAIN_NBYTES
# Python objects around the buffers (array headers, the deque, list, dict, the agent): small.
OVERHEAD_CEILING = 16_000


# --------------------------------------------------------------------------- helpers


@dataclass
class Project:
    root: Path  # the working directory of every command
    output: Path  # where the command's stdout/stderr are kept (outside root)

    @property
    def agents(self) -> Path:
        return self.root / "agents.py"

    @property
    def baseline(self) -> Path:
        return self.root / BASELINE

    @property
    def tripwire(self) -> Path:
        return self.root / "measured.txt"

    def run(self, *args: Any, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120.0) -> CliResult:
        """``fa-mem ARGS`` in the project; never inherits the CI variables of the outer run."""
        environment = cli_environment()
        for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
            environment.pop(name, None)
        environment[TRIPWIRE_VARIABLE] = str(self.tripwire)
        environment.update(env or {})
        return CliProcess([str(arg) for arg in args], cwd or self.root, self.output, env=environment).wait(timeout)

    def edit(self, old: str, new: str) -> None:
        """Replace the one occurrence of ``old`` in agents.py."""
        text = self.agents.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in agents.py"
        self.agents.write_text(text.replace(old, new), encoding="utf-8")

    def line_of(self, fragment: str) -> int:
        lines = self.agents.read_text(encoding="utf-8").splitlines()
        found = [number for number, line in enumerate(lines, 1) if fragment in line]
        assert len(found) == 1, f"{fragment!r} on lines {found}"
        return found[0]

    def write_baseline(self, *extra: Any) -> None:
        assert_clean_success(self.run("baseline", "update", *FAST, *extra))

    def measurements(self) -> int:
        """How many times a measuring process built the population since the last reset."""
        if not self.tripwire.exists():
            return 0
        return len(self.tripwire.read_text(encoding="utf-8").splitlines())

    def reset_tripwire(self) -> None:
        self.tripwire.unlink(missing_ok=True)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(WORKLOAD_SOURCE, root / "agents.py")
    return Project(root, tmp_path / "cli-output")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def gate_json(project: Project, *args: Any, env: dict[str, str] | None = None) -> tuple[CliResult, dict[str, Any]]:
    """Run ``fa-mem gate ARGS --json`` and return the result and the parsed gate result."""
    path = project.root / "gate-result.json"
    path.unlink(missing_ok=True)
    result = project.run("gate", *args, "--json", path, env=env)
    assert "Traceback" not in result.stderr, result.describe()
    assert path.exists(), f"--json was not written\n{result.describe()}"
    return result, json.loads(path.read_text(encoding="utf-8"))


def checks_by_metric(data: dict[str, Any], key: str = "checks") -> dict[str, dict[str, Any]]:
    return {check["metric"]: check for check in data[key]}


def regression_names(data: dict[str, Any]) -> set[str]:
    return {check["metric"] for check in data["regressions"]}


def assert_regressed(result: CliResult, data: dict[str, Any], *metrics: str) -> None:
    assert result.returncode == 1, result.describe()
    assert data["passed"] is False
    missing = set(metrics) - regression_names(data)
    assert not missing, f"{sorted(missing)} not among the regressions {sorted(regression_names(data))}"
    for check in data["regressions"]:
        assert check["status"] == "regressed"
        assert check["now"] > check["limit"], check


def assert_no_tempfiles(directory: Path) -> None:
    leftovers = sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))
    assert leftovers == [], f"temporary files left in {directory}: {leftovers}"


# --------------------------------------------------------------------------- 1. reliability


def test_unchanged_workload_passes_twenty_times(project: Project) -> None:
    """Byte metrics are deterministic: 20 gates on unchanged code all pass (tracing on, as by default)."""
    assert_clean_success(project.run("baseline", "update", *RUN))
    recorded = {metric["name"]: metric for metric in json.loads(project.baseline.read_text())["metrics"]}
    before = digest(project.baseline)
    seen: dict[str, set[float]] = {}
    for attempt in range(20):
        result, data = gate_json(project, *RUN)
        assert result.returncode == 0, f"run {attempt + 1} of 20 failed\n{result.describe()}"
        assert data["passed"] is True and data["regressions"] == [], data["regressions"]
        assert "fa-mem gate passed" in result.stdout
        for check in data["checks"]:
            seen.setdefault(check["metric"], set()).add(check["now"])
    assert digest(project.baseline) == before, "the gate must never write the baseline"
    # Not just within tolerance: every byte count is exactly what the baseline recorded.
    for name, metric in recorded.items():
        if metric["kind"] == "rss":
            continue
        assert seen[name] == {metric["value"]}, f"{name} varied across runs: {sorted(seen[name])} vs {metric['value']}"


# --------------------------------------------------------------------------- 2. regressions


def test_history_made_unbounded_is_a_regression(project: Project) -> None:
    project.write_baseline()
    project.edit(HISTORY_LINE, "= []")
    result, data = gate_json(project, *FAST)
    assert_regressed(result, data, "attribute:history", "growth:history", "per_agent_bytes", "growth_per_step")
    history = checks_by_metric(data)["attribute:history"]
    # The deque kept HISTORY_LEN frames; the list keeps all STEPS of them.
    assert history["baseline"] >= W.HISTORY_LEN * FRAME_NBYTES
    assert history["now"] >= STEPS * FRAME_NBYTES
    extra_frames = STEPS - W.HISTORY_LEN
    change = history["now"] - history["baseline"]
    assert abs(change - extra_frames * FRAME_NBYTES) <= extra_frames * ARRAY_HEADER + MIN_CHANGE, change
    # Once unbounded, history grows by about one frame per agent per step.
    growth = checks_by_metric(data)["growth:history"]
    assert FRAME_NBYTES <= growth["now"] <= FRAME_NBYTES + MIN_CHANGE, growth
    assert "agent.history" in result.stdout, result.describe()
    assert "regression(s)" in result.stdout


def test_shared_array_copied_per_agent_is_a_regression(project: Project) -> None:
    project.write_baseline()
    project.edit(TERRAIN_LINE, "self.terrain = world.terrain.copy()\n")
    result, data = gate_json(project, *FAST)
    assert_regressed(result, data, "attribute:terrain", "per_agent_bytes", "max_agent_bytes", "distinct_bytes")
    checks = checks_by_metric(data)
    terrain = checks["attribute:terrain"]
    # Shared by AGENTS agents, each was charged a third; copied, each owns a whole one.
    assert abs(terrain["baseline"] - (TERRAIN_NBYTES + ARRAY_HEADER) / AGENTS) <= MIN_CHANGE, terrain
    assert abs(terrain["now"] - (TERRAIN_NBYTES + ARRAY_HEADER)) <= MIN_CHANGE, terrain
    # The population now holds AGENTS terrains instead of one.
    distinct = checks["distinct_bytes"]
    assert abs(distinct["now"] - distinct["baseline"] - (AGENTS - 1) * TERRAIN_NBYTES) <= AGENTS * MIN_CHANGE, distinct
    assert "agent.terrain" in result.stdout, result.describe()


def test_widened_dtype_is_a_regression(project: Project) -> None:
    project.write_baseline()
    project.edit(WEIGHTS_DTYPE, ".astype(np.float64)")
    result, data = gate_json(project, *FAST)
    assert_regressed(result, data, "attribute:weights", "per_agent_bytes")
    weights = checks_by_metric(data)["attribute:weights"]
    # float32 -> float64 doubles the buffer: the attribute grows by its float32 size.
    assert abs(weights["now"] - weights["baseline"] - WEIGHTS_NBYTES) <= MIN_CHANGE, weights
    assert abs(weights["now"] - 2 * WEIGHTS_NBYTES) <= MIN_CHANGE, weights
    per_agent = checks_by_metric(data)["per_agent_bytes"]
    assert abs(per_agent["now"] - per_agent["baseline"] - WEIGHTS_NBYTES) <= MIN_CHANGE, per_agent
    # Nothing unrelated is blamed.
    assert "attribute:terrain" not in regression_names(data)
    assert "attribute:history" not in regression_names(data)
    assert "agent.weights" in result.stdout, result.describe()


@pytest.mark.parametrize(
    ("old", "new", "metric", "status", "saved"),
    [
        pytest.param(WEIGHTS_DTYPE, ".astype(np.float16)", "attribute:weights", "improved", WEIGHTS_NBYTES // 2, id="narrowed"),
        pytest.param(BIAS_LINE, "", "attribute:bias", "removed", BIAS_NBYTES, id="removed"),
    ],
)
def test_improvement_passes_and_prints_the_update_command(
    project: Project, old: str, new: str, metric: str, status: str, saved: int
) -> None:
    project.write_baseline()
    project.edit(old, new)
    result, data = gate_json(project, *FAST)
    assert_clean_success(result)
    assert data["passed"] is True and data["regressions"] == []
    improved = checks_by_metric(data, "improvements")
    assert improved[metric]["status"] == status
    assert abs(improved["per_agent_bytes"]["baseline"] - improved["per_agent_bytes"]["now"] - saved) <= MIN_CHANGE
    assert UPDATE_HINT in result.stdout, result.describe()
    assert data["update_command"].startswith(UPDATE_HINT)
    # The printed command works as printed, and afterwards nothing is left to improve.
    command = next(line.strip() for line in result.stdout.splitlines() if line.strip().startswith(UPDATE_HINT))
    assert command == data["update_command"]
    argv = shlex.split(command)
    assert argv[:3] == ["fa-mem", "baseline", "update"]
    assert_clean_success(project.run(*argv[1:], "--no-trace"))
    again, data = gate_json(project, *FAST)
    assert_clean_success(again)
    assert data["improvements"] == [] and UPDATE_HINT not in again.stdout


# --------------------------------------------------------------------------- 3. budgets


def test_budget_per_agent(project: Project) -> None:
    below = project.run("gate", *FAST, "--no-baseline", "--budget-per-agent", f"{int(AGENT_FLOOR)}B")
    assert below.returncode == 1, below.describe()
    assert "--budget-per-agent" in below.stdout
    result, data = gate_json(project, *FAST, "--no-baseline", "--budget-per-agent", f"{int(AGENT_FLOOR) + 64_000}B")
    assert_clean_success(result)
    budget = checks_by_metric(data)["budget:per_agent"]
    assert AGENT_FLOOR <= budget["now"] <= AGENT_FLOOR + OVERHEAD_CEILING, budget
    assert budget["limit"] == int(AGENT_FLOOR) + 64_000
    assert [check["metric"] for check in data["checks"]] == ["budget:per_agent"], "no baseline: budgets only"
    assert not project.baseline.exists()


def test_budget_total(project: Project) -> None:
    below = project.run("gate", *FAST, "--no-baseline", "--budget-total", f"{POPULATION_FLOOR}B")
    assert below.returncode == 1, below.describe()
    result, data = gate_json(project, *FAST, "--no-baseline", "--budget-total", f"{(POPULATION_FLOOR + 64_000) / 1e6}MB")
    assert_clean_success(result)
    total = checks_by_metric(data)["budget:total"]
    assert POPULATION_FLOOR <= total["now"] <= POPULATION_FLOOR + AGENTS * OVERHEAD_CEILING, total


def test_budgets_apply_on_top_of_the_baseline(project: Project) -> None:
    project.write_baseline()
    result, data = gate_json(project, *FAST, "--budget-per-agent", f"{int(AGENT_FLOOR)}B")
    assert result.returncode == 1, result.describe()
    assert regression_names(data) == {"budget:per_agent"}, "the baseline checks themselves hold"


def test_max_leak(project: Project) -> None:
    limit = f"{FRAME_NBYTES // 2}B"
    # The bounded history stops growing: under the limit.
    result, data = gate_json(project, *FAST, "--no-baseline", "--max-leak", limit)
    assert_clean_success(result)
    assert checks_by_metric(data)["budget:max_leak"]["now"] < FRAME_NBYTES // 2
    # Unbounded, every agent keeps one more frame per step: a leak.
    project.edit(HISTORY_LINE, "= []")
    result, data = gate_json(project, *FAST, "--no-baseline", "--max-leak", limit)
    assert result.returncode == 1, result.describe()
    assert regression_names(data) == {"budget:max_leak"}
    assert checks_by_metric(data)["budget:max_leak"]["now"] >= FRAME_NBYTES
    assert "--max-leak" in result.stdout


def test_no_baseline_without_a_budget_is_a_usage_error(project: Project) -> None:
    result = project.run("gate", *FAST, "--no-baseline")
    assert_one_error_line(result, 2, "--no-baseline", "budget")
    assert project.measurements() == 0, "nothing to judge: nothing should have been measured"
    assert not project.baseline.exists()


# --------------------------------------------------------------------------- 4. [tool.fa-mem]

PYPROJECT = """\
[project]
name = "gate-test-project"
version = "0"

[tool.fa-mem]
module = "agents.py"
agents = 3
steps = 8
seed = 5
baseline = "ci/memory-baseline.json"
budget-per-agent = "1MB"
tolerance = "2%"
trace = false
"""


def test_pyproject_settings_drive_baseline_and_gate(project: Project) -> None:
    (project.root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (project.root / "ci").mkdir()
    written = project.root / "ci" / "memory-baseline.json"

    assert_clean_success(project.run("baseline", "update"))
    assert written.exists() and not project.baseline.exists()
    fingerprint = json.loads(written.read_text())["fingerprint"]
    assert (fingerprint["agents"], fingerprint["steps"], fingerprint["seed"]) == (3, 8, 5)
    assert fingerprint["module"] == "agents"

    result, data = gate_json(project)
    assert_clean_success(result)
    assert data["baseline_path"] == str(written)
    assert data["fingerprint"]["seed"] == 5 and data["fingerprint"]["steps"] == 8
    assert data["tolerances"]["bytes_fraction"] == pytest.approx(0.02)
    assert checks_by_metric(data)["budget:per_agent"]["limit"] == 1_000_000

    # From a subfolder: paths in the file are relative to the file, not to the shell.
    subfolder = project.root / "src"
    subfolder.mkdir()
    assert_clean_success(project.run("gate", cwd=subfolder))

    # Flags win over the file.
    result, data = gate_json(project, "--tolerance", "5%", "--budget-per-agent", "2MB")
    assert_clean_success(result)
    assert data["tolerances"]["bytes_fraction"] == pytest.approx(0.05)
    assert checks_by_metric(data)["budget:per_agent"]["limit"] == 2_000_000
    result = project.run("gate", "--budget-per-agent", "1kB")
    assert result.returncode == 1, result.describe()

    other = project.root / "other-baseline.json"
    assert_clean_success(project.run("baseline", "update", "-n", "2", "--baseline", other))
    fingerprint = json.loads(other.read_text())["fingerprint"]
    assert (fingerprint["agents"], fingerprint["steps"], fingerprint["seed"]) == (2, 8, 5)

    before = digest(written)
    result = project.run("gate", "-n", "2")
    assert_one_error_line(result, 2, "agents 3 in the baseline, 2 now", UPDATE_HINT)
    assert digest(written) == before


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        pytest.param('tolerence = "2%"', ("tolerence",), id="unknown-key"),
        pytest.param('agents = "three"', ("agents",), id="string-for-integer"),
        pytest.param('seed = true', ("seed",), id="boolean-for-integer"),
        pytest.param('trace = "no"', ("trace",), id="string-for-boolean"),
        pytest.param('budget-per-agent = ["1MB"]', ("budget-per-agent",), id="list-for-size"),
        pytest.param('steps = ', (), id="not-toml"),
    ],
)
def test_bad_pyproject_is_one_error_naming_the_file(project: Project, line: str, fragments: tuple[str, ...]) -> None:
    (project.root / "pyproject.toml").write_text(f'[tool.fa-mem]\nmodule = "agents.py"\n{line}\n', encoding="utf-8")
    for command in (["gate", "--no-baseline", "--budget-total", "1GB"], ["baseline", "update"]):
        result = project.run(*command)
        assert_one_error_line(result, 2, "pyproject.toml", *fragments)
        assert project.measurements() == 0
    assert not project.baseline.exists()


@pytest.mark.parametrize(
    ("line", "key"),
    [
        pytest.param('tolerance = "lots"', "tolerance", id="tolerance"),
        pytest.param('budget-per-agent = "lots"', "budget-per-agent", id="budget-per-agent"),
    ],
)
def test_unreadable_pyproject_value_names_the_file(project: Project, line: str, key: str) -> None:
    (project.root / "pyproject.toml").write_text(f'[tool.fa-mem]\nmodule = "agents.py"\n{line}\n', encoding="utf-8")
    result = project.run("gate", "--no-baseline", "--budget-total", "1GB")
    assert_one_error_line(result, 2, "pyproject.toml", key)


# --------------------------------------------------------------------------- 5. output for CI


def test_step_summary_is_appended(project: Project) -> None:
    project.write_baseline()
    summary = project.root / "step-summary.md"
    summary.write_text("## an earlier step\n\n", encoding="utf-8")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}

    passed = project.run("gate", *FAST, env=env)
    assert_clean_success(passed)
    project.edit(WEIGHTS_DTYPE, ".astype(np.float64)")
    failed = project.run("gate", *FAST, env=env)
    assert failed.returncode == 1, failed.describe()

    text = summary.read_text(encoding="utf-8")
    assert text.startswith("## an earlier step\n\n"), "the earlier steps' summary must be kept"
    assert text.count("### fa-mem memory gate passed") == 1
    assert text.count("### fa-mem memory gate failed") == 1
    assert text.index("gate passed") < text.index("gate failed")
    assert "| metric | baseline | now | change | limit |" in text
    assert "| agent.weights (mean amortized bytes) |" in text
    assert f"{AGENTS} agents x {STEPS} steps" in text


def test_markdown_file_is_replaced_atomically(project: Project) -> None:
    project.write_baseline()
    project.edit(WEIGHTS_DTYPE, ".astype(np.float64)")
    reports = project.root / "reports"
    reports.mkdir()
    markdown = reports / "gate.md"
    markdown.write_text("stale content " * 1000, encoding="utf-8")
    stale_inode = markdown.stat().st_ino
    result = project.run("gate", *FAST, "--markdown", markdown)
    assert result.returncode == 1, result.describe()
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("### fa-mem memory gate failed"), text[:200]
    assert "stale content" not in text
    assert "agent.weights" in text
    assert markdown.stat().st_ino != stale_inode, "written in place instead of renamed over the old file"
    assert sorted(path.name for path in reports.iterdir()) == ["gate.md"]


def test_github_annotations_point_at_the_allocation(project: Project) -> None:
    assert_clean_success(project.run("baseline", "update", *RUN))  # tracing on: allocation sites recorded
    project.edit(WEIGHTS_DTYPE, ".astype(np.float64)")
    line = project.line_of("self.weights = ")
    result, data = gate_json(project, *RUN, env={"GITHUB_ACTIONS": "true"})
    assert result.returncode == 1, result.describe()
    errors = [text for text in result.stdout.splitlines() if text.startswith("::error")]
    assert errors, result.describe()
    weights = [text for text in errors if "agent.weights" in text]
    assert len(weights) == 1, errors
    assert weights[0].startswith(f"::error file=agents.py,line={line},title=fa-mem memory regression::"), weights[0]
    # Population metrics have no source line: a plain annotation.
    per_agent = next(text for text in errors if "mean amortized bytes per agent" in text)
    assert per_agent.startswith("::error title=fa-mem memory regression::")
    assert len(errors) == len(data["regressions"]), "one annotation per regression"
    assert checks_by_metric(data)["attribute:weights"]["site"].endswith(f"agents.py:{line}")

    plain = project.run("gate", *RUN)
    assert plain.returncode == 1
    assert "::error" not in plain.stdout, "annotations only on GitHub Actions"


def test_json_result_schema(project: Project) -> None:
    project.write_baseline()
    project.edit(WEIGHTS_DTYPE, ".astype(np.float64)")
    project.edit(BIAS_LINE, "")
    result, data = gate_json(project, *FAST)
    assert result.returncode == 1
    assert data["schema_version"] == 1
    assert data["passed"] is False
    assert isinstance(data["regressions"], list) and isinstance(data["improvements"], list)
    assert "attribute:weights" in regression_names(data)
    assert {check["metric"] for check in data["improvements"]} == {"attribute:bias"}
    assert data["baseline_path"] == BASELINE
    assert data["fingerprint"]["agents"] == AGENTS and data["fingerprint"]["steps"] == STEPS
    for check in data["checks"]:
        assert set(check) >= {"metric", "label", "kind", "source", "baseline", "now", "limit", "status", "site"}
        assert check["status"] in {"ok", "regressed", "improved", "new", "removed"}
    assert_no_tempfiles(project.root)


# --------------------------------------------------------------------------- 6. bad input


@dataclass(frozen=True)
class BadCase:
    id: str
    args: tuple[str, ...]
    fragments: tuple[str, ...]
    prepare: Callable[[Project], None] | None = None
    measures: bool = True  # False: must refuse before running the workload


def _corrupt_baseline(project: Project) -> None:
    project.baseline.write_text('{"fa_mem_baseline": 1, "fingerprint": {"module": ', encoding="utf-8")


def _future_baseline(project: Project) -> None:
    data = json.loads(project.baseline.read_text())
    data["fa_mem_baseline"] = 2
    project.baseline.write_text(json.dumps(data), encoding="utf-8")


def _corrupt_report(project: Project) -> None:
    (project.root / "saved.json").write_text("{ not json", encoding="utf-8")


BAD_CASES = [
    BadCase("corrupt-baseline", ("gate", *FAST), (BASELINE, "not valid JSON", UPDATE_HINT), _corrupt_baseline, measures=False),
    BadCase("baseline-format-2", ("gate", *FAST), (BASELINE, "format version 2", UPDATE_HINT), _future_baseline, measures=False),
    BadCase("other-agents", ("gate", *FAST, "-n", "2"), ("another workload", "agents 3 in the baseline, 2 now", UPDATE_HINT)),
    BadCase("other-seed", ("gate", *FAST, "--seed", "1"), ("another workload", "seed 0 in the baseline, 1 now")),
    BadCase("other-steps", ("gate", *FAST, "--steps", "6"), ("another workload", "steps 10 in the baseline, 6 now")),
    BadCase("missing-report", ("gate", "--report", "missing.json"), ("missing.json",), measures=False),
    BadCase("corrupt-report", ("gate", "--report", "saved.json"), ("saved.json",), _corrupt_report, measures=False),
    BadCase(
        "update-from-corrupt-report",
        ("baseline", "update", "--report", "saved.json", "--baseline", BASELINE),
        ("saved.json",),
        _corrupt_report,
        measures=False,
    ),
    BadCase("json-in-missing-dir", ("gate", *FAST, "--json", "no/such/dir/result.json"), ("--json",), measures=False),
    BadCase("markdown-in-missing-dir", ("gate", *FAST, "--markdown", "no/such/dir/gate.md"), ("--markdown",), measures=False),
    BadCase(
        "save-report-in-missing-dir", ("gate", *FAST, "--save-report", "no/such/dir/report.json"), ("--save-report",), measures=False
    ),
    BadCase(
        "update-baseline-in-missing-dir",
        ("baseline", "update", *FAST, "--baseline", "no/such/dir/baseline.json"),
        ("--baseline",),
        measures=False,
    ),
    BadCase("baseline-is-a-directory", ("baseline", "update", *FAST, "--baseline", "."), ("--baseline", "directory"), measures=False),
    BadCase("tolerance-abc", ("gate", *FAST, "--tolerance", "abc"), ("--tolerance", "abc"), measures=False),
    BadCase("budget-abc", ("gate", *FAST, "--budget-per-agent", "abc"), ("--budget-per-agent", "abc"), measures=False),
    BadCase("min-change-zero", ("gate", *FAST, "--min-change", "0"), ("--min-change",), measures=False),
    BadCase("unknown-option", ("gate", *FAST, "--no-such-flag"), ("--no-such-flag",), measures=False),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.id for case in BAD_CASES])
def test_bad_input_is_one_error_and_keeps_the_baseline(project: Project, case: BadCase) -> None:
    project.write_baseline()
    if case.prepare is not None:
        case.prepare(project)
    before = project.baseline.read_bytes()
    project.reset_tripwire()
    result = project.run(*case.args)
    assert_one_error_line(result, 2, *case.fragments)
    assert project.baseline.read_bytes() == before, "the baseline file was changed"
    if not case.measures:
        assert project.measurements() == 0, "measured although the command could not succeed"
    assert not (project.root / "no").exists()
    assert_no_tempfiles(project.root)


def test_missing_baseline_says_how_to_create_it(project: Project) -> None:
    result = project.run("gate", *FAST)
    line = assert_one_error_line(result, 2, BASELINE, UPDATE_HINT)
    assert project.measurements() == 0, "measured although there is nothing to compare with"
    assert not project.baseline.exists()
    # The suggested command creates it, and then the gate passes.
    command = shlex.split(line.split("create it with: ", 1)[1])
    assert command[:3] == ["fa-mem", "baseline", "update"]
    assert_clean_success(project.run(*command[1:], "--no-trace"))
    assert_clean_success(project.run("gate", *FAST))


def test_gate_on_a_saved_report_does_not_rerun(project: Project) -> None:
    project.write_baseline()
    assert_clean_success(project.run("profile", *FAST, "--scaling", "none", "--json", "saved.json"))
    project.edit(WEIGHTS_DTYPE, ".astype(np.float64)")
    assert_clean_success(project.run("profile", *FAST, "--scaling", "none", "--json", "widened.json"))
    project.agents.unlink()  # re-running the workload is now impossible
    project.reset_tripwire()

    result, data = gate_json(project, "--report", "saved.json")
    assert_clean_success(result)
    assert data["passed"] is True
    result, data = gate_json(project, "--report", "widened.json")
    assert result.returncode == 1, result.describe()
    assert "attribute:weights" in regression_names(data)
    assert data["update_command"] == f"fa-mem baseline update --report widened.json --baseline {BASELINE}"
    assert project.measurements() == 0


@pytest.mark.parametrize("command", ["baseline-update", "gate"])
def test_failing_step_exits_4_and_keeps_the_baseline(project: Project, command: str) -> None:
    project.write_baseline()
    before = project.baseline.read_bytes()
    project.edit(ACTION_LINE, ACTION_LINE + '        if len(self.visits) == 5:\n            raise RuntimeError("sensor lost")\n')
    args = ["baseline", "update"] if command == "baseline-update" else ["gate", "--json", "result.json"]
    result = project.run(*args, *FAST)
    assert_one_error_line(result, 4, "RuntimeError", "sensor lost")
    assert project.baseline.read_bytes() == before
    assert not (project.root / "result.json").exists()
    assert_no_tempfiles(project.root)


# --------------------------------------------------------------------------- known bugs


@pytest.mark.parametrize("damage", ["null-value", "string-value", "null-fingerprint"])
def test_hand_edited_baseline_is_one_error(project: Project, damage: str) -> None:
    project.write_baseline()
    data = json.loads(project.baseline.read_text())
    if damage == "null-value":
        data["metrics"][0]["value"] = None
    elif damage == "string-value":
        data["metrics"][0]["value"] = "307 kB"
    else:
        data["fingerprint"] = None
    project.baseline.write_text(json.dumps(data), encoding="utf-8")
    before = project.baseline.read_bytes()
    result = project.run("gate", *FAST)
    assert_one_error_line(result, 2, BASELINE)
    assert project.baseline.read_bytes() == before


def test_unwritable_step_summary_is_one_error(project: Project) -> None:
    project.write_baseline()
    project.reset_tripwire()
    result = project.run("gate", *FAST, env={"GITHUB_STEP_SUMMARY": str(project.root / "no" / "summary.md")})
    assert_one_error_line(result, 2, "summary.md")
    assert project.measurements() == 0


@pytest.mark.parametrize("command", ["baseline-update", "gate"])
def test_partial_report_is_refused(project: Project, command: str) -> None:
    project.write_baseline()
    before = project.baseline.read_bytes()
    project.edit(ACTION_LINE, ACTION_LINE + '        if len(self.visits) == 5:\n            raise RuntimeError("sensor lost")\n')
    profiled = project.run("profile", *FAST, "--scaling", "none", "--json", "partial.json")
    assert profiled.returncode == 4, profiled.describe()
    assert json.loads((project.root / "partial.json").read_text())["complete"] is False
    if command == "baseline-update":
        result = project.run("baseline", "update", "--report", "partial.json")
    else:
        result = project.run("gate", "--report", "partial.json")
    assert result.returncode in (2, 4), result.describe()
    assert "Traceback" not in result.stderr
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith(ERROR_PREFIX), result.describe()
    assert project.baseline.read_bytes() == before


@pytest.mark.parametrize("command", [["gate"], ["baseline", "update"]], ids=["gate", "baseline-update"])
def test_help_names_the_pyproject_table(project: Project, command: list[str]) -> None:
    result = project.run(*command, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.describe()
    assert "module in [tool.fa-mem]" in result.stdout, result.stdout
