"""``fa-mem optimize`` through the installed console script.

The workload is tests/integration/optimize_workloads/simple_agents.py: every agent holds
a per-agent copy of one identical float64 matrix (shared-parameters), a mostly-zero
float64 belief written every step (lazy-beliefs, and lower-precision since its values
are exact in float32) and a list history that gains a 4 KiB frame every step
(compressed-history). The target of the main run is computed here: the test builds the
same population in this process, applies the three container transformations by hand,
runs the same steps with fa-mem's default observation stream and measures it with
``fa_memtool.measure_population``; the target sits just above that, well below what any
two of the three transformations reach.

Covered: a run that meets the target and verifies it (JSON, measured savings against
numpy ground truth, the plan applied in this process, history bounds rolled back by the
replay); a target out of reach (exit 1);
test plugins installed through a real ``fa_mem`` entry point (a ``*.dist-info`` on
PYTHONPATH, no pip) that change behaviour, raise while analysing and raise while
applying; ``--force``; ``--plugins``; ``--exclude``; ``--max-slowdown``; bad input
(exit 2, one line, nothing written); ``apply_plan`` refusing corrupt or mismatched plans;
pymdp Agents held inside wrapper agents (optimized at their nested paths); the explorer
sample agent.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from fa_mem_cli import (
    ERROR_PREFIX,
    SAMPLE_AGENTS,
    CliProcess,
    CliResult,
    assert_no_measuring_child_left,
    assert_one_error_line,
    cli_environment,
    import_source,
)

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).resolve().parent / "optimize_workloads" / "simple_agents.py"
AGENTS = 3
STEPS = 30
SEED = 0
RUN = [str(WORKLOAD), "-n", str(AGENTS), "--steps", str(STEPS), "--scaling", "none"]
BUILT_INS = (
    "bounded-cache",
    "bounded-history",
    "compressed-history",
    "lazy-beliefs",
    "lower-precision",
    "shared-parameters",
    "shared-structures",
)
DEFAULT_OBSERVATION_HIGH = 2**16  # docs/protocol.md: the stream without observe()
SLOWDOWN_REASON = re.compile(r"^steps took (\d+\.\d\d)x the original, over --max-slowdown 1$")


def _load_workload() -> ModuleType:
    return import_source(WORKLOAD, "fa_mem_optimize_test_agents")


W = _load_workload()
MATRIX_NBYTES = int(np.zeros(W.MATRIX_SHAPE).nbytes)  # 512 KiB
BELIEF_NBYTES = int(np.zeros(W.BELIEF_SHAPE).nbytes)  # 78 KiB
FRAME_NBYTES = int(np.zeros(W.FRAME_SIZE).nbytes)  # 4 KiB
SLACK = 1024  # array headers, views and the like: far below every saving asserted


# -- running fa-mem --------------------------------------------------------------------


@dataclass
class OptimizeRun:
    result: CliResult
    directory: Path  # where --json and --plan-out went

    @property
    def json_path(self) -> Path:
        return self.directory / "out.json"

    @property
    def plan_path(self) -> Path:
        return self.directory / "plan.json"

    @property
    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.json_path.read_text(encoding="utf-8"))
        return loaded

    def trials(self, **match: Any) -> list[dict[str, Any]]:
        return [trial for trial in self.data["trials"] if all(trial[key] == value for key, value in match.items())]

    def trial(self, plugin: str, attribute: str) -> dict[str, Any]:
        found = self.trials(plugin=plugin, attribute=attribute)
        assert len(found) == 1, f"expected one {plugin} trial on .{attribute}: {self.data['trials']}\n{self.result.describe()}"
        return found[0]

    def kept(self) -> list[tuple[str, str]]:
        return [(trial["plugin"], trial["attribute"]) for trial in self.data["trials"] if trial["accepted"]]


def project(directory: Path) -> Path:
    """A folder with a pyproject.toml without [tool.fa-mem]: no stray configuration applies."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pyproject.toml").write_text('[project]\nname = "optimize-test"\nversion = "0"\n', encoding="utf-8")
    return directory


def run_fa_mem(args: list[Any], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 120.0) -> CliResult:
    process = CliProcess([str(arg) for arg in args], cwd, cwd / ".cli-output", env=env)
    return process.wait(timeout)


def optimize(directory: Path, *extra: Any, env: dict[str, str] | None = None, run: list[str] = RUN, timeout: float = 120.0) -> OptimizeRun:
    project(directory)
    outputs = directory / "out"
    outputs.mkdir()
    args = ["optimize", *run, *extra, "--json", outputs / "out.json", "--plan-out", outputs / "plan.json"]
    result = run_fa_mem(args, directory, env=env, timeout=timeout)
    assert "Traceback" not in result.stderr, result.describe()
    assert_no_measuring_child_left(result)
    return OptimizeRun(result, outputs)


def size_arg(value: float) -> str:
    return f"{int(value)}B"


# -- ground truth in this process --------------------------------------------------------


def observations(agents: int = AGENTS, seed: int = SEED) -> list[np.random.Generator]:
    """fa-mem's default observation stream: agent i draws from default_rng([seed, i])."""
    return [np.random.default_rng([seed, index]) for index in range(agents)]


def run_steps(agents: list[Any], steps: int = STEPS) -> list[list[int]]:
    streams = observations(len(agents))
    actions: list[list[int]] = [[] for _ in agents]
    for _ in range(steps):
        for index, agent in enumerate(agents):
            actions[index].append(agent.step(int(streams[index].integers(0, DEFAULT_OBSERVATION_HIGH))))
    return actions


def per_agent_after_steps(*, share: bool, belief: str, compress: bool) -> float:
    """Mean amortized bytes per agent after STEPS steps, with the transformations applied
    by hand right after building (as fa-mem applies a plan). belief: dense64, dense32 or lazy."""
    from fa_memtool import CompressedHistory, LazyBeliefArray, SharedParameterPool, measure_population

    agents = W.create_agents(AGENTS, SEED)
    pool = SharedParameterPool()
    for agent in agents:
        if share:
            agent.matrix = pool.share(agent.matrix)
        if belief == "dense32":
            agent.belief = agent.belief.astype(np.float32)
        elif belief == "lazy":
            agent.belief = LazyBeliefArray.from_dense(agent.belief.astype(np.float32))
        if compress:
            agent.history = CompressedHistory(agent.history)
    run_steps(agents)
    sized = measure_population(agents)
    return float(sum(agent.amortized_bytes for agent in sized.agents) / len(sized.agents))


@dataclass(frozen=True)
class GroundTruth:
    everything: float  # all three transformations
    without_sharing: float
    without_lazy: float  # the belief only lowered to float32 (what lower-precision alone reaches)
    without_compression: float
    sharing_only: float

    @property
    def target(self) -> float:
        """Reachable with all three, out of reach with any two."""
        smallest_saving = min(self.without_sharing, self.without_lazy, self.without_compression) - self.everything
        return self.everything + smallest_saving / 4


@pytest.fixture(scope="module")
def truth() -> GroundTruth:
    found = GroundTruth(
        everything=per_agent_after_steps(share=True, belief="lazy", compress=True),
        without_sharing=per_agent_after_steps(share=False, belief="lazy", compress=True),
        without_lazy=per_agent_after_steps(share=True, belief="dense32", compress=True),
        without_compression=per_agent_after_steps(share=True, belief="lazy", compress=False),
        sharing_only=per_agent_after_steps(share=True, belief="dense64", compress=False),
    )
    # The workload is built so that each transformation saves tens of kB per agent.
    assert found.without_lazy - found.everything > 30_000
    assert found.without_compression - found.everything > 30_000
    assert found.without_sharing - found.everything > MATRIX_NBYTES / 2
    return found


@pytest.fixture(scope="module")
def main_run(tmp_path_factory: pytest.TempPathFactory, truth: GroundTruth) -> OptimizeRun:
    return optimize(tmp_path_factory.mktemp("main"), "--target", size_arg(truth.target))


def attribute(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The attribute ``name`` of every agent in a report."""
    found = []
    for agent in report["agents"]:
        matches = [item for item in agent["attributes"] if item["name"] == name]
        assert len(matches) == 1, f"agent {agent['index']} has no single .{name}"
        found.append(matches[0])
    return found


# -- 1. a target that is met ----------------------------------------------------------------


def test_meets_a_reachable_target_and_verifies_it(main_run: OptimizeRun, truth: GroundTruth) -> None:
    result = main_run.result
    assert result.returncode == 0, result.describe()
    assert not result.error_lines, result.describe()
    data = main_run.data
    assert data["schema_version"] == 1
    assert data["exit_code"] == 0
    assert data["target_met"] is True
    assert data["verified"] is True
    assert data["replay_steps"] == STEPS
    assert data["target_bytes"] == pytest.approx(int(truth.target))
    before = data["before"]["population"]["per_agent_bytes"]
    after = data["after"]["population"]["per_agent_bytes"]
    assert after < before
    assert after <= data["target_bytes"]
    # The final profile measures exactly what this process measured by hand.
    assert after == pytest.approx(truth.everything, rel=0.02)
    assert data["after"]["error"] is None
    assert any("plan of" in note for note in data["after"]["notes"]), data["after"]["notes"]
    # The terminal report.
    assert "per agent (amortized)" in result.stdout
    assert "met" in result.stdout and "missed" not in result.stdout
    proof = f"identical actions on {AGENTS} agents x {STEPS} steps x 2 seeds ({SEED}, {SEED + 1}) for every kept transformation"
    assert " ".join(result.stdout.split()).count(proof) == 1, result.stdout  # folded at the panel's width
    assert data["summary"].startswith(proof)
    assert data["verification"] == {"agents": AGENTS, "steps": STEPS, "seeds": [SEED, SEED + 1], "sensitivity_replays": 5}
    assert "Transformations kept (measured)" in result.stdout
    assert "plan written to" in result.stderr


def test_keeps_the_expected_transformations(main_run: OptimizeRun) -> None:
    kept = main_run.kept()
    for expected in (("shared-parameters", "matrix"), ("lazy-beliefs", "belief"), ("compressed-history", "history")):
        assert expected in kept, f"{expected} not kept: {main_run.data['trials']}"
    # The matrix holds 1e300, which float32 cannot: lower-precision never touches it.
    assert not main_run.trials(plugin="lower-precision", attribute="matrix")
    # Within the belief, lower precision is tried before the container.
    belief = [trial["plugin"] for trial in main_run.trials(attribute="belief")]
    assert belief.index("lower-precision") < belief.index("lazy-beliefs")
    for trial in main_run.data["trials"]:
        if trial["accepted"]:
            assert trial["behaviour_changed"] is False and trial["forced"] is False
            proof = re.escape(f"identical actions on {AGENTS} agents x {STEPS} steps x 2 seeds ({SEED}, {SEED + 1})")
            # Candidates on separate paths may be replayed together, and then say so.
            proof += r"(, together with \d+ other transformation\(s\) on other paths)?"
            if trial["plugin"] == "lower-precision":  # lossy: the sensitivity test too
                proof += re.escape(f"; and under 5 replays with .{trial['attribute']} perturbed by 6.0e-07 relative")
                assert trial["sensitivity_replays"] == 5
            assert re.fullmatch(proof + re.escape("; numeric values within tolerance"), trial["reason"]), trial["reason"]
            assert trial["bytes_after"] < trial["bytes_before"]
    # Each kept trial starts where the previous one ended.
    accepted = [trial for trial in main_run.data["trials"] if trial["accepted"]]
    assert accepted[0]["bytes_before"] == pytest.approx(main_run.data["trials"][0]["bytes_before"])
    for earlier, later in zip(accepted, accepted[1:]):
        assert later["bytes_before"] == pytest.approx(earlier["bytes_after"])
    assert set(main_run.data["adoption"]) == {f"{plugin}:{name}" for plugin, name in kept}
    assert "self.matrix = get_shared_pool().share(matrix.copy())" in main_run.data["adoption"]["shared-parameters:matrix"]
    # Two transformations of one path: one line, nested in the order they were kept.
    composed = 'self.belief = LazyBeliefArray.from_dense(np.zeros(BELIEF_SHAPE).astype("float32"))'
    assert main_run.data["adoption"]["lazy-beliefs:belief"].endswith(composed)
    assert main_run.data["adoption"]["lower-precision:belief"] == main_run.data["adoption"]["lazy-beliefs:belief"]
    # The agent reads its first frame: every bound of its history changed the actions.
    bounds = main_run.trials(plugin="bounded-history", attribute="history")
    assert all(not trial["accepted"] and trial["reason"].startswith("behaviour changed: ") for trial in bounds), bounds


def test_measured_savings_match_numpy(main_run: OptimizeRun) -> None:
    data = main_run.data
    # Sharing the matrix saves (N - 1) of the N copies, measured in the replay.
    shared = main_run.trial("shared-parameters", "matrix")
    assert shared["bytes_before"] - shared["bytes_after"] == pytest.approx(MATRIX_NBYTES * (AGENTS - 1) / AGENTS, abs=SLACK)
    assert shared["estimated_bytes_saved_per_agent"] == pytest.approx(MATRIX_NBYTES * (AGENTS - 1) / AGENTS)
    # Per attribute, before and after: the matrix is one buffer amortized over N agents.
    for item in attribute(data["before"], "matrix"):
        assert item["amortized_bytes"] == pytest.approx(MATRIX_NBYTES, abs=SLACK)
        assert item["sharers"] == 1
    for item in attribute(data["after"], "matrix"):
        assert item["amortized_bytes"] == pytest.approx(MATRIX_NBYTES / AGENTS, abs=SLACK)
        assert item["sharers"] == AGENTS and item["shared"] is True
    # The belief: 78 KiB dense before, a few dozen stored values after.
    for item in attribute(data["before"], "belief"):
        assert item["amortized_bytes"] == pytest.approx(BELIEF_NBYTES, abs=SLACK)
    for item in attribute(data["after"], "belief"):
        assert item["type_name"] == "LazyBeliefArray"
        assert item["amortized_bytes"] < 2 * 1024
    # The history: STEPS frames of 4 KiB before; compressed chunks plus a short tail after.
    for item in attribute(data["before"], "history"):
        assert item["amortized_bytes"] == pytest.approx(STEPS * FRAME_NBYTES, rel=0.05)
        assert item["length"] == STEPS
    for item in attribute(data["after"], "history"):
        assert item["type_name"] == "CompressedHistory"
        assert item["amortized_bytes"] < STEPS * FRAME_NBYTES / 3


def test_plan_file_applies_in_process_with_identical_actions(main_run: OptimizeRun) -> None:
    import fa_memtool
    from fa_memtool import CompressedHistory, LazyBeliefArray

    plan = json.loads(main_run.plan_path.read_text(encoding="utf-8"))
    assert plan["fa_mem_plan"] == 1
    assert plan["workload"]["agents"] == AGENTS and plan["workload"]["seed"] == SEED
    assert [(step["plugin"], step["attribute"]) for step in plan["steps"]] == main_run.kept()
    first = next(step for step in plan["steps"] if step["attribute"] == "matrix")
    assert (first["type_name"], first["shape"], first["dtype"]) == ("ndarray", list(W.MATRIX_SHAPE), "float64")
    assert plan["steps"] == main_run.data["plan"]["steps"]

    originals = W.create_agents(AGENTS, SEED)
    optimized = W.create_agents(AGENTS, SEED)
    applied = fa_memtool.apply_plan(optimized, main_run.plan_path)
    assert len(applied.steps) == len(plan["steps"])
    for agent in optimized:
        assert type(agent.matrix) is np.ndarray and not agent.matrix.flags.writeable
        assert np.shares_memory(agent.matrix, optimized[0].matrix)
        assert isinstance(agent.belief, LazyBeliefArray)
        assert isinstance(agent.history, CompressedHistory)
    assert np.array_equal(optimized[0].matrix, originals[0].matrix)

    assert run_steps(optimized) == run_steps(originals)
    for original, agent in zip(originals, optimized):
        np.testing.assert_allclose(np.asarray(agent.belief), original.belief, rtol=1e-5, atol=1e-8)
        assert len(agent.history) == len(original.history) == STEPS
        for left, right in zip(original.history, agent.history):
            assert np.array_equal(left, right)
    # A plan that was applied already no longer matches: refused, nothing changed.
    from fa_memtool.plan import PlanError

    belief_before = optimized[0].belief
    with pytest.raises(PlanError, match="the plan was made for"):
        fa_memtool.apply_plan(optimized, main_run.plan_path)
    assert optimized[0].belief is belief_before


def test_adoption_line_is_valid_python(main_run: OptimizeRun) -> None:
    line = main_run.data["adoption"]["shared-parameters:matrix"]
    statement = line[line.index("self.matrix = ") :]
    compile(statement, "<adoption>", "exec")


def test_trial_measurements_agree_with_the_final_profile(main_run: OptimizeRun) -> None:
    data = main_run.data
    last_step = data["plan"]["steps"][-1]
    assert last_step["after_bytes_per_agent"] == pytest.approx(data["after"]["population"]["per_agent_bytes"], rel=0.02)


# -- 2. a target out of reach -------------------------------------------------------------------


def test_target_out_of_reach_exits_1_with_the_best_result(tmp_path: Path) -> None:
    run = optimize(tmp_path, "--target", "1kB")
    result = run.result
    assert result.returncode == 1, result.describe()
    assert not result.error_lines, result.describe()
    assert "per agent (amortized)" in result.stdout
    assert "missed" in result.stdout
    assert "target missed by" in result.stdout
    data = run.data
    assert data["target_met"] is False
    assert data["verified"] is True
    assert data["exit_code"] == 1
    assert data["target_bytes"] == 1000
    assert data["after"]["population"]["per_agent_bytes"] < data["before"]["population"]["per_agent_bytes"]
    # The best result: every candidate was tried, the plan holds what was kept.
    plan = json.loads(run.plan_path.read_text(encoding="utf-8"))
    assert plan["steps"] and [(s["plugin"], s["attribute"]) for s in plan["steps"]] == run.kept()
    assert ("shared-parameters", "matrix") in run.kept()


# -- 3. plugins installed through a real entry point ---------------------------------------------

BREAKER = '''
"""breaker: replaces the belief by a float32 copy with a huge value in its last cell."""
from fa_memtool.hookspecs import Candidate, PluginInfo, hookimpl

NAME = "breaker"


@hookimpl
def fa_mem_plugin_info():
    # Before lazy-beliefs (30) on the same path, so its trial comes before the target is met.
    return PluginInfo(NAME, "beliefs -> a perturbed float32 copy (deliberately wrong)", priority=20)


@hookimpl
def fa_mem_analyse(agents, context):
    if all(hasattr(agent, "belief") for agent in agents):
        return [Candidate(NAME, "belief", 50e6, "claims a huge saving")]
    return []


@hookimpl
def fa_mem_apply(agents, candidate):
    if candidate.plugin != NAME:
        return None
    import numpy as np

    for agent in agents:
        value = getattr(agent, candidate.attribute)
        broken = np.zeros(value.shape, dtype=np.float32)
        broken[-1, -1] = 1e6  # argmax is now always the last cell: the actions change
        setattr(agent, candidate.attribute, broken)
    return True
'''

ANALYSE_FAILS = '''
from fa_memtool.hookspecs import PluginInfo, hookimpl


@hookimpl
def fa_mem_plugin_info():
    return PluginInfo("analyse-fails", "nothing: its analysis raises")


@hookimpl
def fa_mem_analyse(agents, context):
    raise RuntimeError("analysis exploded on purpose")
'''

APPLY_FAILS = '''
from fa_memtool.hookspecs import Candidate, PluginInfo, hookimpl


@hookimpl
def fa_mem_plugin_info():
    return PluginInfo("apply-fails", "cells -> nothing: applying raises")


@hookimpl
def fa_mem_analyse(agents, context):
    return [Candidate("apply-fails", "cells", 20e6, "claims a large saving")]


@hookimpl
def fa_mem_apply(agents, candidate):
    if candidate.plugin != "apply-fails":
        return None
    agents[0].cells = None  # half-done when it fails: fa-mem must restore it
    raise RuntimeError("apply exploded on purpose")
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Three test plugins in one distribution, found through the fa_mem entry-point group."""
    site = tmp_path_factory.mktemp("site")
    for name, source in (("famem_breaker", BREAKER), ("famem_analyse_fails", ANALYSE_FAILS), ("famem_apply_fails", APPLY_FAILS)):
        (site / f"{name}.py").write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    dist_info = site / "famem_breaker-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: famem-breaker\nVersion: 0.1\n", encoding="utf-8")
    (dist_info / "entry_points.txt").write_text(
        "[fa_mem]\nbreaker = famem_breaker\nanalyse-fails = famem_analyse_fails\napply-fails = famem_apply_fails\n",
        encoding="utf-8",
    )
    existing = os.environ.get("PYTHONPATH")
    return cli_environment(PYTHONPATH=os.pathsep.join([str(site), *([existing] if existing else [])]))


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str], truth: GroundTruth) -> OptimizeRun:
    return optimize(tmp_path_factory.mktemp("plugins"), "--target", size_arg(truth.target), env=plugin_env)


def test_test_plugins_are_installed_through_the_entry_point(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    result = run_fa_mem(["plugins", "--json"], project(tmp_path), env=plugin_env)
    assert result.returncode == 0, result.describe()
    listed = {item["name"]: item for item in json.loads(result.stdout)}
    assert set(listed) == {*BUILT_INS, "breaker", "analyse-fails", "apply-fails"}
    assert (listed["breaker"]["distribution"], listed["breaker"]["version"]) == ("famem-breaker", "0.1")


def test_behaviour_change_is_rolled_back_and_the_others_still_succeed(plugin_run: OptimizeRun) -> None:
    result = plugin_run.result
    assert result.returncode == 0, result.describe()
    data = plugin_run.data
    assert data["target_met"] is True and data["verified"] is True
    breaker = plugin_run.trial("breaker", "belief")
    assert breaker["accepted"] is False
    assert breaker["reason"].startswith("behaviour changed: "), breaker
    # The breaker's belief peaks in its last cell: the agent then chooses that cell plus
    # the frames it holds (step + 1), modulo ACTIONS.
    chose = re.search(r"agent \d+ chose (\d) instead of [0-6] at step (\d+)", breaker["reason"])
    last_cell = int(np.prod(W.BELIEF_SHAPE)) - 1
    assert (chose and int(chose.group(1)) == (last_cell + int(chose.group(2)) + 1) % W.ACTIONS) or "differs" in breaker["reason"], breaker
    assert ("breaker", "belief") not in plugin_run.kept()
    for expected in (("shared-parameters", "matrix"), ("lazy-beliefs", "belief"), ("compressed-history", "history")):
        assert expected in plugin_run.kept()
    assert all(step["plugin"] != "breaker" for step in json.loads(plugin_run.plan_path.read_text())["steps"])
    assert "Rolled back" in result.stdout and "behaviour changed" in result.stdout


def test_plugin_that_raises_while_applying_is_rolled_back(plugin_run: OptimizeRun) -> None:
    trial = plugin_run.trial("apply-fails", "cells")
    assert trial["accepted"] is False
    assert trial["reason"].startswith("could not be applied: "), trial
    assert "apply exploded on purpose" in trial["reason"]
    assert "could not be applied" in plugin_run.result.stdout
    # The half-done change was undone: the later trials and the final profile ran on intact agents.
    assert plugin_run.data["verified"] is True
    assert attribute(plugin_run.data["after"], "cells")[0]["type_name"] == "list"


def test_plugin_that_raises_while_analysing_is_skipped_and_reported(plugin_run: OptimizeRun) -> None:
    failures = plugin_run.data["plugin_failures"]
    assert failures == [{"plugin": "analyse-fails", "stage": "analyse", "message": "RuntimeError: analysis exploded on purpose"}]
    assert not plugin_run.trials(plugin="analyse-fails")
    stdout = " ".join(plugin_run.result.stdout.split())
    assert "plugin analyse-fails failed" in stdout and "skipped" in stdout
    assert "analysis exploded on purpose" in stdout
    assert plugin_run.result.returncode != 2


def test_analyse_failure_is_reported_in_plain_english(plugin_run: OptimizeRun) -> None:
    assert "failed while analysing" in " ".join(plugin_run.result.stdout.split())


def test_force_keeps_a_behaviour_change_and_exits_3(tmp_path: Path, plugin_env: dict[str, str], truth: GroundTruth) -> None:
    # Without lower-precision and lazy-beliefs the breaker replaces a dense float64 belief
    # by a float32 one: a measured saving, but different actions.
    run = optimize(
        tmp_path,
        "--target", size_arg(truth.target),
        "--plugins", "breaker,shared-parameters,compressed-history",
        "--force", "belief",
        env=plugin_env,
    )  # fmt: skip
    result = run.result
    assert result.returncode == 3, result.describe()
    assert not result.error_lines, result.describe()
    data = run.data
    assert data["verified"] is False
    assert data["exit_code"] == 3
    breaker = run.trial("breaker", "belief")
    assert breaker["accepted"] is True and breaker["forced"] is True and breaker["behaviour_changed"] is True
    assert breaker["bytes_after"] < breaker["bytes_before"]
    assert "instead of" in breaker["reason"] or "differs" in breaker["reason"]
    assert "behaviour changed under a forced transformation" in result.stdout
    assert any(step["plugin"] == "breaker" for step in json.loads(run.plan_path.read_text())["steps"])
    # Only the three plugins asked for were tried.
    assert {trial["plugin"] for trial in data["trials"]} <= {"breaker", "shared-parameters", "compressed-history"}


def test_force_still_requires_a_measured_saving(tmp_path: Path, plugin_env: dict[str, str], truth: GroundTruth) -> None:
    # --force keeps a transformation whose replay differs, but never one that saves no
    # memory: every kept trial, forced or not, measured less after than before.
    run = optimize(tmp_path, "--target", size_arg(truth.target), "--force", "belief", env=plugin_env)
    kept = [trial for trial in run.data["trials"] if trial["accepted"]]
    assert kept
    for trial in kept:
        assert trial["bytes_after"] < trial["bytes_before"], trial
    breaker = run.trial("breaker", "belief")
    if breaker["accepted"]:
        assert breaker["forced"] is True and breaker["behaviour_changed"] is True
    else:
        assert breaker["reason"].startswith("no measured saving"), breaker


# -- 4. --plugins, --exclude, --max-slowdown ------------------------------------------------------


def test_plugins_restricts_the_transformations(tmp_path: Path, truth: GroundTruth) -> None:
    target = truth.sharing_only + (truth.without_sharing - truth.everything) / 4
    run = optimize(tmp_path, "--target", size_arg(target), "--plugins", "shared-parameters")
    assert run.result.returncode == 0, run.result.describe()
    data = run.data
    assert data["trials"] and {trial["plugin"] for trial in data["trials"]} == {"shared-parameters"}
    assert run.kept() == [("shared-parameters", "matrix")]
    assert data["after"]["population"]["per_agent_bytes"] == pytest.approx(truth.sharing_only, rel=0.02)
    assert {item["type_name"] for item in attribute(data["after"], "belief")} == {"ndarray"}
    assert {item["type_name"] for item in attribute(data["after"], "history")} == {"list"}


def test_exclude_leaves_an_attribute_untouched(tmp_path: Path, truth: GroundTruth) -> None:
    run = optimize(tmp_path, "--target", size_arg(truth.target), "--exclude", "belief")
    # The target needs the belief transformed: out of reach without it.
    assert run.result.returncode == 1, run.result.describe()
    data = run.data
    assert not run.trials(attribute="belief")
    assert all(step["attribute"] != "belief" for step in data["plan"]["steps"])
    assert ("shared-parameters", "matrix") in run.kept() and ("compressed-history", "history") in run.kept()
    for before, after in zip(attribute(data["before"], "belief"), attribute(data["after"], "belief")):
        assert (after["type_name"], after["dtype"], after["shape"]) == ("ndarray", "float64", list(W.BELIEF_SHAPE))
        assert after["amortized_bytes"] == before["amortized_bytes"]


def test_max_slowdown_rolls_back_slower_transformations(tmp_path: Path) -> None:
    # LazyBeliefArray writes cost Python calls: this workload writes 12 cells every step,
    # which makes its steps many times slower (about 20x measured) than with a dense array.
    run = optimize(
        tmp_path, "--target", "1kB", "--plugins", "lazy-beliefs,shared-parameters", "--max-slowdown", "1.0", run=[*RUN[:3], "--steps", "60", *RUN[5:]]
    )
    assert run.result.returncode == 1, run.result.describe()
    data = run.data
    lazy = run.trial("lazy-beliefs", "belief")
    assert lazy["accepted"] is False
    match = SLOWDOWN_REASON.match(lazy["reason"])
    assert match, lazy["reason"]
    assert float(match.group(1)) > 1.0
    for trial in data["trials"]:
        if not trial["accepted"] and "--max-slowdown" in trial["reason"]:
            ratio = SLOWDOWN_REASON.match(trial["reason"])
            assert ratio and float(ratio.group(1)) > 1.0, trial["reason"]
    # The step-time ratio shown is the last kept trial's, which passed the limit.
    if data["step_time_ratio"] is not None:
        assert data["step_time_ratio"] <= 1.0
    assert "--max-slowdown" in " ".join(run.result.stdout.split())


LATER_BUILDS_SLOW = textwrap.dedent(
    """
    import time
    import weakref

    import numpy as np

    BUILDS = [0]  # populations this process has built
    PAUSE = weakref.WeakKeyDictionary()  # agent -> seconds each step sleeps (not agent state)


    class Agent:
        def __init__(self, matrix, pause):
            self.matrix = matrix.copy()  # identical on every agent: shared-parameters
            PAUSE[self] = pause

        def step(self, observation):
            if PAUSE[self]:
                time.sleep(PAUSE[self])
            return int(observation) % 3


    def create_agents(n, seed):
        BUILDS[0] += 1
        # The first population a process builds steps fast, every later one slowly:
        # a machine that turned busy after the original was recorded.
        pause = 0.0 if BUILDS[0] == 1 else 0.004
        matrix = np.random.default_rng(seed).random((128, 128))
        return [Agent(matrix, pause) for _ in range(n)]
    """
)


def test_max_slowdown_times_the_trial_beside_the_original(tmp_path: Path) -> None:
    # In the trials process the original is recorded by the first population built
    # (fast steps) and every trial population steps 4 ms slower: against the recording
    # sharing the matrix would measure many times slower; against an original built and
    # stepped alongside (as slow), about 1x. Sharing costs no time, so it must be kept.
    workload = project(tmp_path) / "later_slow.py"
    workload.write_text(LATER_BUILDS_SLOW, encoding="utf-8")
    run = optimize(
        tmp_path, "--target", "1kB", "--plugins", "shared-parameters", "--max-slowdown", "1.5",
        run=[str(workload), "-n", "3", "--steps", "12", "--scaling", "none"],
    )
    assert run.result.returncode == 1, run.result.describe()  # 1 kB is out of reach
    trial = run.trial("shared-parameters", "matrix")
    assert trial["accepted"] is True, trial["reason"]
    assert run.data["step_time_ratio"] == pytest.approx(1.0, abs=0.4)


# -- 5. bad input ----------------------------------------------------------------------------------

BAD_INPUT = {
    "unknown plugin": (["--target", "1MB", "--plugins", "shared-parameters,nosuch"], ["'nosuch'", *BUILT_INS]),
    "target missing": ([], ["--target"]),
    "target not a size": (["--target", "abc"], ["--target", "abc"]),
    "negative target": (["--target", "-5MB"], ["--target", "-5MB"]),
    "max-slowdown below 1": (["--target", "1MB", "--max-slowdown", "0.5"], ["--max-slowdown", "0.5"]),
    "negative atol": (["--target", "1MB", "--atol", "-1"], ["--atol"]),
    "negative rtol": (["--target", "1MB", "--rtol", "-0.1"], ["--rtol"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
def test_bad_input_is_one_error_line(case: str, tmp_path: Path) -> None:
    args, fragments = BAD_INPUT[case]
    outputs = tmp_path / "out"
    outputs.mkdir()
    result = run_fa_mem(["optimize", *RUN, *args, "--json", outputs / "o.json", "--plan-out", outputs / "p.json"], project(tmp_path))
    assert_one_error_line(result, 2, *fragments)
    assert result.stdout == ""
    assert list(outputs.iterdir()) == []
    assert not result.children, "nothing may be measured before the input is checked"


def test_missing_agent_module(tmp_path: Path) -> None:
    outputs = tmp_path / "out"
    outputs.mkdir()
    missing = tmp_path / "no_such_agents.py"
    args = ["optimize", missing, "--target", "1MB", "--json", outputs / "o.json", "--plan-out", outputs / "p.json"]
    result = run_fa_mem(args, project(tmp_path))
    assert_one_error_line(result, 2, "no such file", str(missing))
    assert list(outputs.iterdir()) == []


@pytest.mark.parametrize("flag", ["--plan-out", "--json"])
def test_output_into_a_missing_directory(flag: str, tmp_path: Path) -> None:
    outputs = tmp_path / "out"
    outputs.mkdir()
    other = "--json" if flag == "--plan-out" else "--plan-out"
    args = ["optimize", *RUN, "--target", "1MB", flag, tmp_path / "missing" / "file.json", other, outputs / "other.json"]
    result = run_fa_mem(args, project(tmp_path))
    assert_one_error_line(result, 2, flag, "missing")
    assert list(outputs.iterdir()) == [] and not (tmp_path / "missing").exists()
    assert not result.children


def test_zero_replay_steps_is_refused(tmp_path: Path) -> None:
    outputs = tmp_path / "out"
    outputs.mkdir()
    args = ["optimize", str(WORKLOAD), "-n", "2", "--steps", "0", "--scaling", "none", "--target", "1kB", "--json", outputs / "o.json"]
    result = run_fa_mem(args, project(tmp_path))
    assert_one_error_line(result, 2, "--steps")
    assert list(outputs.iterdir()) == []


# -- apply_plan refusing a plan that does not fit ------------------------------------------------


def _fresh_agents() -> list[Any]:
    agents: list[Any] = W.create_agents(AGENTS, SEED)
    return agents


def _snapshot(agents: list[Any]) -> list[dict[str, Any]]:
    return [dict(vars(agent)) for agent in agents]


def _assert_unchanged(agents: list[Any], snapshot: list[dict[str, Any]]) -> None:
    for agent, attributes in zip(agents, snapshot):
        for name, value in attributes.items():
            assert getattr(agent, name) is value, f".{name} was changed"
        assert agent.matrix.flags.writeable


def _expect_plan_error(agents: list[Any], plan: Any, *fragments: str) -> str:
    import fa_memtool
    from fa_memtool.plan import PlanError

    snapshot = _snapshot(agents)
    with pytest.raises(PlanError) as caught:
        fa_memtool.apply_plan(agents, plan)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message
    _assert_unchanged(agents, snapshot)
    return message


def test_apply_plan_refuses_a_corrupt_file(tmp_path: Path, main_run: OptimizeRun) -> None:
    corrupt = tmp_path / "plan.json"
    corrupt.write_text(main_run.plan_path.read_text(encoding="utf-8")[:40], encoding="utf-8")  # cut short
    _expect_plan_error(_fresh_agents(), corrupt, "corrupt", str(corrupt))
    not_a_plan = tmp_path / "report.json"
    not_a_plan.write_text('{"schema_version": 1}', encoding="utf-8")
    _expect_plan_error(_fresh_agents(), not_a_plan, "not an fa-mem plan")
    _expect_plan_error(_fresh_agents(), tmp_path / "absent.json", "no plan at")


def test_apply_plan_refuses_a_missing_attribute(tmp_path: Path, main_run: OptimizeRun) -> None:
    plan = json.loads(main_run.plan_path.read_text(encoding="utf-8"))
    for step in plan["steps"]:
        if step["attribute"] == "history":
            step["attribute"] = "trajectory"
    edited = tmp_path / "plan.json"
    edited.write_text(json.dumps(plan), encoding="utf-8")
    _expect_plan_error(_fresh_agents(), edited, ".trajectory", "agent 0", "SimpleAgent", "does not have")


def test_apply_plan_refuses_another_shape(main_run: OptimizeRun) -> None:
    agents = _fresh_agents()
    agents[1].belief = np.zeros((50, 50))
    message = _expect_plan_error(agents, main_run.plan_path, ".belief", "agent 1", "shape=[100, 100]", "shape=[50, 50]")
    assert "float64" in message


def test_apply_plan_refuses_another_dtype(main_run: OptimizeRun) -> None:
    agents = _fresh_agents()
    for agent in agents:
        agent.matrix = np.zeros(W.MATRIX_SHAPE, dtype=np.float32)
    _expect_plan_error(agents, main_run.plan_path, ".matrix", "dtype=float64", "dtype=float32")


# -- 6. pymdp agents held inside wrappers ---------------------------------------------------------

PYMDP_WORKLOAD = Path(__file__).resolve().parent / "optimize_workloads" / "pymdp_agents.py"
PYMDP_AGENTS, PYMDP_STEPS = 4, 8


def _pymdp_module() -> ModuleType:
    return import_source(PYMDP_WORKLOAD, "fa_mem_optimize_pymdp_agents")


def test_pymdp_models_inside_wrappers_shrink_five_times_with_identical_actions(tmp_path: Path) -> None:
    """Every byte of size sits one level down (.agent.A[0], .agent.B[0]): only paths reach it."""
    import fa_memtool
    from fa_memtool import measure_population

    module = _pymdp_module()
    built = module.create_agents(PYMDP_AGENTS, SEED)
    run_steps(built, PYMDP_STEPS)
    sized = measure_population(built)
    before = sum(agent.amortized_bytes for agent in sized.agents) / PYMDP_AGENTS
    matrices = built[0].agent.A[0].nbytes + built[0].agent.B[0].nbytes
    assert matrices > 0.95 * before, "the model's matrices are what an agent costs"
    target = before / 5
    run = optimize(
        tmp_path, "--target", size_arg(target),
        run=[str(PYMDP_WORKLOAD), "-n", str(PYMDP_AGENTS), "--steps", str(PYMDP_STEPS), "--scaling", "none"],
    )  # fmt: skip
    assert run.result.returncode == 0, run.result.describe()
    data = run.data
    assert data["verified"] is True and data["target_met"] is True
    assert data["before"]["population"]["per_agent_bytes"] == pytest.approx(before, rel=0.02)
    after = data["after"]["population"]["per_agent_bytes"]
    assert after <= before / 5
    kept_paths = {path for _, path in run.kept()}
    assert "agent.B[0]" in kept_paths
    line = data["adoption"][next(f"{plugin}:{path}" for plugin, path in run.kept() if path == "agent.B[0]")]
    statement = line[line.index("self.agent.B[0] = ") :]
    compile(statement, "<adoption>", "exec")
    assert statement.endswith("# after self.agent is built")

    originals = module.create_agents(PYMDP_AGENTS, SEED)
    optimized = module.create_agents(PYMDP_AGENTS, SEED)
    fa_memtool.apply_plan(optimized, run.plan_path)
    assert all(agent.agent.B[0] is optimized[0].agent.B[0] for agent in optimized), "one shared B[0]"
    # pymdp breaks ties between equally good actions with numpy's global generator:
    # both runs start from one state, as fa-mem's replay gives each population.
    np.random.seed(SEED)
    optimized_actions = run_steps(optimized, PYMDP_STEPS)
    np.random.seed(SEED)
    assert optimized_actions == run_steps(originals, PYMDP_STEPS)


# -- 7. the explorer sample agent -----------------------------------------------------------------


def test_explorer_reaches_3_5_mb_per_agent(tmp_path: Path) -> None:
    # Four agents: the shared A and B (float32) alone cost 5.25 MB per agent when only two
    # agents share them, so 3.5 MB needs at least four.
    explorer = SAMPLE_AGENTS / "explorer.py"
    run = optimize(
        tmp_path, "--target", "3.5MB", run=[str(explorer), "-n", "4", "--steps", "10", "--scaling", "none"], timeout=300.0
    )
    result = run.result
    assert result.returncode == 0, result.describe()
    assert not result.error_lines and ERROR_PREFIX not in result.stderr
    data = run.data
    assert data["target_met"] is True and data["verified"] is True
    assert data["after"]["population"]["per_agent_bytes"] <= 3.5e6
    assert data["before"]["population"]["per_agent_bytes"] > 3.5e6
    assert run.plan_path.exists() and json.loads(run.plan_path.read_text())["steps"]
