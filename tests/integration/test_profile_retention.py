"""What keeps released agents alive, through the installed console script: the
profile's release check, its report section, and the gate's retained metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fa_mem_cli import assert_clean_success, load_json, run_cli, write_module

pytestmark = pytest.mark.slow

RUN = ["-n", "4", "--steps", "3", "--scaling", "none", "--no-trace"]

WORKLOAD = """
    import numpy as np


    class Agent:
        registry = []

        def __init__(self, index):
            self.weights = np.ones(1000)
            KEEP

        def step(self, observation):
            return 0


    def create_agents(n, seed):
        return [Agent(index) for index in range(n)]
"""
LEAK = "if index % 2 == 0: Agent.registry.append(self)"


def _workload(directory: Path, leaking: bool) -> None:
    write_module(directory, "agents", WORKLOAD.replace("KEEP", LEAK if leaking else "pass"))


def test_a_class_registry_is_reported_with_its_path_and_bytes(tmp_path: Path) -> None:
    _workload(tmp_path, leaking=True)
    report_path = tmp_path / "report.json"
    result = run_cli(["profile", "agents.py", *RUN, "--json", report_path], cwd=tmp_path)
    assert_clean_success(result)
    retention = load_json(report_path)["retention"]
    assert retention["agents"] == 4 and retention["retained_agents"] == [0, 2]
    assert retention["retained_bytes"] >= 2 * np.ones(1000).nbytes
    assert retention["paths"] == ["agents.Agent.registry[0] -> agent 0", "agents.Agent.registry[1] -> agent 2"]
    assert "Retained after release" in result.stdout and "agents.Agent.registry[0] -> agent 0" in result.stdout


def test_a_clean_run_says_nothing_is_retained(tmp_path: Path) -> None:
    _workload(tmp_path, leaking=False)
    report_path = tmp_path / "report.json"
    result = run_cli(["profile", "agents.py", *RUN, "--json", report_path], cwd=tmp_path)
    assert_clean_success(result)
    retention = load_json(report_path)["retention"]
    assert retention["retained_agents"] == [] and retention["retained_bytes"] == 0
    assert "nothing retained: all 4 agents were freed" in result.stdout


def test_a_change_that_stops_freeing_the_population_fails_the_gate(tmp_path: Path) -> None:
    _workload(tmp_path, leaking=False)
    baseline = tmp_path / "baseline.json"
    assert_clean_success(run_cli(["baseline", "update", "agents.py", *RUN, "--baseline", baseline], cwd=tmp_path))
    _workload(tmp_path, leaking=True)
    out = tmp_path / "gate.json"
    result = run_cli(["gate", "agents.py", *RUN, "--baseline", baseline, "--json", out, "--max-retained", "0B"], cwd=tmp_path)
    assert result.returncode == 1, result.describe()
    regressed = {check["metric"] for check in load_json(out)["regressions"]}
    assert {"retained_bytes", "retained_agents", "budget:max_retained"} <= regressed


def test_a_mesa_model_kept_by_its_agent_class_is_named(tmp_path: Path) -> None:
    pytest.importorskip("mesa")
    write_module(
        tmp_path,
        "market",
        """
        from mesa import Agent, Model


        class Trader(Agent):
            def step(self):
                pass


        class Market(Model):
            def __init__(self, n=5, seed=None):
                super().__init__(seed=seed)
                Trader.create_agents(self, n)

            def step(self):
                self.agents.shuffle_do("step")


        def create_model(n, seed):
            return Market(n, seed)
        """,
    )
    report_path = tmp_path / "report.json"
    args = ["profile", "market.py", "--factory", "create_model", "--agents-from", "agents", "--step-model", *RUN, "--json", report_path]
    assert_clean_success(run_cli(args, cwd=tmp_path))
    retention = load_json(report_path)["retention"]
    assert retention["model_retained"] is True and len(retention["retained_agents"]) == 4
    assert retention["paths"][0] == "mesa.agent.Agent._ids[<Market>] -> the model"


def test_runs_in_one_process_report_what_each_release_leaves(tmp_path: Path) -> None:
    _workload(tmp_path, leaking=True)
    report_path = tmp_path / "report.json"
    result = run_cli(["profile", "agents.py", *RUN, "--runs", "3", "--json", report_path], cwd=tmp_path)
    assert_clean_success(result)
    retention = load_json(report_path)["retention"]
    assert [run["run"] for run in retention["runs"]] == [1, 2, 3]
    assert all(run["retained_agents"] == 2 and run["retained_bytes"] >= 2 * np.ones(1000).nbytes for run in retention["runs"])
    assert retention["runs_verdict"].startswith("every run leaves its population behind")
    assert "3 runs in one process" in result.stdout


def test_runs_of_a_clean_workload_leave_nothing(tmp_path: Path) -> None:
    _workload(tmp_path, leaking=False)
    report_path = tmp_path / "report.json"
    assert_clean_success(run_cli(["profile", "agents.py", *RUN, "--runs", "2", "--json", report_path], cwd=tmp_path))
    retention = load_json(report_path)["retention"]
    assert all(run["retained_agents"] == 0 for run in retention["runs"])
    assert retention["runs_verdict"].startswith("runs leave nothing behind")
