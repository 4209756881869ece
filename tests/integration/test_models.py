"""Models that own their agents (--agents-from, --step-model) through the installed ``fa-mem``.

The workloads are the real installed Mesa (its bundled boid_flockers and
sugarscape_g1mt examples) and agentpy, plus two small models in
tests/integration/model_workloads/ written the way those libraries' docs write models.
Every expected number is computed here: the same model is built and stepped in a
separate Python process started by the test (counts, surviving ids, sizes), and array
sizes come from ``sys.getsizeof`` / ``nbytes``. The models run in their own process so
that what they allocate and free does not change the allocator of the pytest process
that later tests measure in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from fa_mem_cli import (
    CliResult,
    assert_clean_success,
    assert_no_measuring_child_left,
    assert_one_error_line,
    import_source,
    load_json,
    run_cli,
    write_module,
)

pytestmark = pytest.mark.slow

WORKLOADS = Path(__file__).resolve().parent / "model_workloads"
QUICK = ["--scaling", "none", "--no-trace"]
BOIDS = [
    "mesa.examples.basic.boid_flockers.model",
    "--factory", "BoidFlockers",
    "--factory-arg", "population_size={n}",
    "--factory-arg", "seed={seed}",
    "--agents-from", "agents",
    "--step-model",
]  # fmt: skip


def load(name: str) -> ModuleType:
    return import_source(WORKLOADS / f"{name}.py", f"fa_mem_model_test_{name}")


def ground_truth(code: str) -> Any:
    """What ``code`` prints as JSON, run in a fresh interpreter with the workloads importable."""
    prelude = f"import json, sys\nsys.path.insert(0, {str(WORKLOADS)!r})\n"
    completed = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def profile(tmp_path: Path, *args: Any) -> dict[str, Any]:
    report = tmp_path / "report.json"
    result = run_cli(["profile", *args, "--json", report], cwd=tmp_path)
    assert_clean_success(result)
    return load_json(report)


def attribute(agent: dict[str, Any], name: str) -> dict[str, Any]:
    found = [item for item in agent["attributes"] if item["name"] == name]
    assert found, f"agent {agent['index']} has no attribute {name}: {[item['name'] for item in agent['attributes']]}"
    return found[0]


def test_mesa_boid_flockers_as_the_docs_write_it(tmp_path: Path) -> None:
    report = profile(tmp_path, *BOIDS, "-n", "6", "--steps", "4", *QUICK)
    assert report["complete"] is True
    assert report["population"]["agents"] == 6
    assert report["population"]["measured_after_steps"] == 4
    assert [agent["agent_id"] for agent in report["agents"]] == [1, 2, 3, 4, 5, 6]  # Mesa's unique_id
    workload = report["workload"]
    assert (workload["agents_from"], workload["step_model"], workload["model_step_method"]) == ("agents", True, "step")
    assert workload["factory_args"] == {"population_size": "{n}", "seed": "{seed}"}
    for agent in report["agents"]:
        for name in ("model", "space"):  # the model and what it holds are the program's
            held = attribute(agent, name)
            assert held["module_global"] is True and held["exclusive_bytes"] == 0, held
    assert not any("the agent set changed" in note for note in report["notes"])
    assert any("whole model steps" in note for note in report["notes"])


def test_a_mesa_agent_is_charged_its_own_array_not_the_models_grid(tmp_path: Path) -> None:
    meadow = load("meadow")
    grid_nbytes = int(np.zeros(meadow.GRID_SHAPE).nbytes)
    memory_bytes = sys.getsizeof(np.zeros(meadow.MEMORY))  # header and buffer: the array owns its data
    agents = 4
    report = profile(
        tmp_path, WORKLOADS / "meadow.py", "--factory", "Meadow", "--factory-arg", "grazers={n}",
        "--factory-arg", "seed={seed}", "--agents-from", "agents", "--step-model", "-n", agents, "--steps", "3", *QUICK,
    )  # fmt: skip
    population = report["population"]
    assert population["agents"] == agents
    # The model is a boundary: its grid is the program's, reported once, charged to no agent.
    assert population["model_bytes"] >= grid_nbytes + sys.getsizeof(np.zeros(0))
    assert population["distinct_bytes"] < grid_nbytes
    for agent in report["agents"]:
        assert attribute(agent, "memory")["exclusive_bytes"] == memory_bytes
        assert agent["amortized_bytes"] < grid_nbytes / agents
        model = attribute(agent, "model")
        assert model["deep_bytes"] == 0 and model["amortized_bytes"] == 0 and model["module_global"] is True
    assert sum(agent["amortized_bytes"] for agent in report["agents"]) == pytest.approx(population["distinct_bytes"])
    assert not [group for group in report["shared"] if group["largest"] == f"ndarray float64 {meadow.GRID_SHAPE}"]


def test_births_and_deaths_are_counted_and_every_agent_keeps_its_id(tmp_path: Path) -> None:
    agents, steps = 4, 5
    survivors = ground_truth(f"""
        import meadow
        model = meadow.Meadow(grazers={agents}, seed=0, churn=True)
        for _ in range({steps}):
            model.step()
        print(json.dumps([grazer.unique_id for grazer in model.agents]))
    """)
    report = profile(
        tmp_path, WORKLOADS / "meadow.py", "--factory", "Meadow", "--factory-arg", "grazers={n}",
        "--factory-arg", "seed={seed}", "--factory-arg", "churn=true", "--agents-from", "agents", "--step-model",
        "-n", agents, "--steps", steps, "--sample-every", "2", *QUICK,
    )  # fmt: skip
    assert [agent["agent_id"] for agent in report["agents"]] == survivors
    assert report["population"]["agents"] == len(survivors) == agents + steps
    born, died = 2 * steps, steps
    note = f"{agents} agents after building, {born} appeared and {died} were removed, {len(survivors)} at the end"
    assert any(note in text for text in report["notes"]), report["notes"]
    assert [sample["step"] for sample in report["growth"]["samples"]] == [0, 2, 4, 5]


def test_mesa_sugarscape_removes_starving_traders_and_the_report_measures_the_survivors(tmp_path: Path) -> None:
    agents, steps = 30, 12
    survivors = ground_truth(f"""
        from mesa.examples.advanced.sugarscape_g1mt.model import SugarscapeG1mt
        model = SugarscapeG1mt(initial_population={agents}, seed=0)
        for _ in range({steps}):
            model.step()
        print(json.dumps([trader.unique_id for trader in model.agents]))
    """)
    assert len(survivors) < agents, "the ground truth run must remove traders for this test to mean anything"
    report = profile(
        tmp_path, "mesa.examples.advanced.sugarscape_g1mt.model", "--factory", "SugarscapeG1mt",
        "--factory-arg", "initial_population={n}", "--factory-arg", "seed={seed}", "--agents-from", "agents",
        "--step-model", "-n", agents, "--steps", steps, "--sample-every", "4", *QUICK,
    )  # fmt: skip
    assert report["complete"] is True
    assert report["population"]["agents"] == len(survivors)
    assert [agent["agent_id"] for agent in report["agents"]] == survivors
    assert [agent["index"] for agent in report["agents"]] == list(range(len(survivors)))
    removed = agents - len(survivors)
    assert any(f"0 appeared and {removed} were removed, {len(survivors)} at the end" in note for note in report["notes"])


def test_an_agentpy_model_is_set_up_and_stepped_like_its_run(tmp_path: Path) -> None:
    market = load("market")
    agents, steps = 5, 6
    report = profile(
        tmp_path, WORKLOADS / "market.py", "--factory", "Market", "--factory-arg", 'parameters={"agents": "{n}"}',
        "--agents-from", "agents", "--step-model", "-n", agents, "--steps", steps, "--seed", "3", *QUICK,
    )  # fmt: skip
    assert report["complete"] is True and report["population"]["measured_after_steps"] == steps
    assert report["workload"]["model_step_method"] == "sim_step"
    assert [agent["agent_id"] for agent in report["agents"]] == [1, 2, 3, 4, 5]  # agentpy's ids (the model is 0)
    assert any(f"sim_setup(steps={steps}, seed=3)" in note for note in report["notes"]), report["notes"]
    prices_nbytes = int(np.zeros(market.PRICES_SHAPE).nbytes)
    for agent in report["agents"]:
        assert attribute(agent, "memory")["exclusive_bytes"] == sys.getsizeof(np.zeros(market.MEMORY))
        assert attribute(agent, "model")["module_global"] is True
        assert agent["exclusive_bytes"] < prices_nbytes
    # The model is a boundary: its prices are the program's, charged to no agent.
    assert report["population"]["model_bytes"] > prices_nbytes
    assert report["population"]["distinct_bytes"] < prices_nbytes


def test_an_agentpy_agents_own_log_is_its_own_and_named_as_it_grows(tmp_path: Path) -> None:
    """agentpy keeps each agent's log in the agent and in the model's list of logs: the
    log is the agent's (the model is a boundary), and its growth is named ``log``."""
    agents, steps = 6, 30
    report = profile(
        tmp_path, WORKLOADS / "recorders.py", "--factory", "Recorders", "--factory-arg", 'parameters={"agents": "{n}"}',
        "--agents-from", "agents", "--step-model", "-n", agents, "--steps", steps, *QUICK,
    )  # fmt: skip
    for agent in report["agents"]:
        log = attribute(agent, "log")
        assert log["sharers"] == 1 and log["module_global"] is True  # listed by the model too
        # All its own but the key strings every agent's log shares (amortized over 6 otherwise).
        assert log["amortized_bytes"] >= 0.9 * log["deep_bytes"]
    growing = {item["name"]: item for item in report["growth"]["paths"]}
    assert "log" in growing and not growing["log"]["bounded"]
    assert "model" not in growing
    # Each step records one float per agent: a list entry (8 bytes) and, every few steps, more list.
    assert growing["log"]["bytes_per_step_per_agent"] >= 8


def test_a_model_that_stops_itself_ends_the_run_early_and_cleanly(tmp_path: Path) -> None:
    report = profile(
        tmp_path, WORKLOADS / "meadow.py", "--factory", "Meadow", "--factory-arg", "grazers={n}",
        "--factory-arg", "stop_after=3", "--agents-from", "agents", "--step-model", "-n", "3", "--steps", "10",
        "--sample-every", "5", *QUICK,
    )  # fmt: skip
    assert report["complete"] is True and report["error"] is None
    assert report["population"]["measured_after_steps"] == 3
    assert [sample["step"] for sample in report["growth"]["samples"]] == [0, 3]
    assert any("the model stopped itself (running became False) after step 3: 3 of 10 steps ran" in note for note in report["notes"])


def test_mesa_agents_stepped_one_by_one_get_no_observation(tmp_path: Path) -> None:
    report = profile(
        tmp_path, WORKLOADS / "meadow.py", "--factory", "Meadow", "--factory-arg", "grazers={n}",
        "--agents-from", "agents", "-n", "3", "--steps", "4", *QUICK,
    )  # fmt: skip
    assert report["workload"]["step_model"] is False and report["workload"]["model_step_method"] is None
    assert report["population"]["measured_after_steps"] == 4


POND = """
    class Fish:
        def __init__(self, number):
            self.unique_id = number
            self.fins = [0.0] * 8

        def step(self):
            self.fins[0] += 1.0


    class Pond:
        def __init__(self, size, fail_at=None, empty_at=None):
            self.agents = [Fish(number) for number in range(1, size + 1)]
            self.steps = 0
            self.fail_at, self.empty_at = fail_at, empty_at

        def step(self):
            self.steps += 1
            for fish in self.agents:
                fish.step()
            if self.steps == self.fail_at:
                raise RuntimeError("the pond froze")
            if self.steps == self.empty_at:
                self.agents = []
"""


def assert_step_failure(result: CliResult, message: str) -> None:
    """Exit 4 and one error line, the last thing printed (the report is written first)."""
    assert result.returncode == 4, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.error_lines) == 1 and result.stderr_lines[-1] == result.error_lines[0], result.describe()
    assert message in result.error_lines[0], result.error_lines[0]
    assert_no_measuring_child_left(result)


def run_pond(tmp_path: Path, *extra: str) -> tuple[CliResult, dict[str, Any]]:
    write_module(tmp_path, "pond", POND)
    report = tmp_path / "report.json"
    args = ["profile", "pond.py", "--factory", "Pond", "--factory-arg", "size={n}", *extra, "--agents-from", "agents",
            "--step-model", "-n", "2", "--steps", "10", "--sample-every", "4", "--scaling", "none", "--json", report]
    result = run_cli(args, cwd=tmp_path)
    return result, load_json(report)


def test_a_model_step_that_raises_exits_4_and_keeps_the_partial_report(tmp_path: Path) -> None:
    result, report = run_pond(tmp_path, "--factory-arg", "fail_at=3")
    assert_step_failure(result, "the model (Pond) raised RuntimeError at step 2 in .step(): the pond froze")
    assert report["complete"] is False
    assert (report["error"]["kind"], report["error"]["step"], report["error"]["agent"]) == ("step", 2, None)
    assert report["population"]["measured_after_steps"] == 2
    assert [agent["agent_id"] for agent in report["agents"]] == [1, 2]


def test_an_agent_set_that_becomes_empty_exits_4_with_the_last_sample_kept(tmp_path: Path) -> None:
    result, report = run_pond(tmp_path, "--factory-arg", "empty_at=6")
    assert_step_failure(result, "the model (Pond) has no agents left at .agents after step 5")
    assert report["complete"] is False and report["error"]["step"] == 5
    # Samples at steps 0 and 4; the population vanished in step 5, so the report stands on step 4.
    assert report["population"]["measured_after_steps"] == 4
    assert [sample["step"] for sample in report["growth"]["samples"]] == [0, 4]
    assert report["population"]["agents"] == 2 and [agent["agent_id"] for agent in report["agents"]] == [1, 2]


def test_gate_takes_the_model_options(tmp_path: Path) -> None:
    result = run_cli(
        ["gate", *BOIDS, "-n", "4", "--steps", "3", *QUICK, "--no-baseline", "--budget-per-agent", "10MB"], cwd=tmp_path
    )
    assert_clean_success(result)


def test_optimize_shares_identical_parameters_of_mesa_agents_and_proves_it_by_replay(tmp_path: Path) -> None:
    meadow = load("meadow")
    agents, steps = 3, 6
    copy_nbytes = int(np.zeros(meadow.PARAMETERS_SHAPE).nbytes)  # 128 KiB per grazer before
    before = ground_truth(f"""
        import meadow
        from fa_memtool import measure_population
        model = meadow.Meadow(grazers={agents}, seed=0, copies=True)
        for _ in range({steps}):
            model.step()
        sized = measure_population(list(model.agents), boundaries=[model])
        print(json.dumps(sum(agent.amortized_bytes for agent in sized.agents) / {agents}))
    """)
    # Sharing the parameters keeps one copy for three grazers: 2/3 of a copy saved per
    # grazer. The target sits halfway, so only that saving meets it.
    target = int(before - copy_nbytes * 2 / 3 / 2)
    plan = tmp_path / "plan.json"
    result = run_cli(
        ["optimize", WORKLOADS / "meadow.py", "--factory", "Meadow", "--factory-arg", "grazers={n}",
         "--factory-arg", "seed={seed}", "--factory-arg", "copies=true", "--agents-from", "agents", "--step-model",
         "-n", agents, "--steps", steps, "--scaling", "none", "--plugins", "shared-parameters",
         "--target", target, "--plan-out", plan, "--json", tmp_path / "result.json"],
        cwd=tmp_path,
        timeout=180,
    )  # fmt: skip
    assert_clean_success(result)
    outcome = load_json(tmp_path / "result.json")
    assert outcome["verified"] is True and outcome["target_met"] is True
    kept = [trial for trial in outcome["trials"] if trial["accepted"]]
    assert [(trial["plugin"], trial["attribute"]) for trial in kept] == [("shared-parameters", "parameters")]
    assert kept[0]["reason"] == f"identical actions on {agents} agents x {steps} steps x 2 seeds (0, 1); numeric values within tolerance"
    saved = kept[0]["bytes_before"] - kept[0]["bytes_after"]
    assert saved == pytest.approx(copy_nbytes * 2 / 3, abs=1024)  # two of three copies gone, the one kept is shared
    assert kept[0]["bytes_before"] == pytest.approx(before, rel=0.02)
    assert outcome["after"]["workload"]["step_model"] is True


def test_a_baseline_of_agents_stepped_one_by_one_is_not_compared_with_a_stepped_model(tmp_path: Path) -> None:
    meadow = [WORKLOADS / "meadow.py", "--factory", "Meadow", "--factory-arg", "grazers={n}", "--agents-from", "agents",
              "-n", "3", "--steps", "2", *QUICK]  # fmt: skip
    assert_clean_success(run_cli(["baseline", "update", *meadow], cwd=tmp_path))
    result = run_cli(["gate", *meadow, "--step-model"], cwd=tmp_path)
    assert_one_error_line(
        result, 2, "stepping agents from .agents, each agent in the baseline, agents from .agents, model.step() now"
    )
