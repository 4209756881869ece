"""A gymnasium tabular agent through the installed ``fa-mem``: its ``P`` table is shared.

Each agent of tests/integration/gym_workloads/taxi_agents.py makes its own Taxi
environment, as gymnasium's Q-learning tutorial does, so each holds its own copy of the
environment's transition table ``P`` (500 dicts of lists of tuples, 30 times the
Q-table). The expected saving is computed here from ``sys.getsizeof`` over the tables'
objects: every copy's objects, each object once, less one copy's.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from fa_mem_cli import assert_clean_success, import_source, load_json, run_cli

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).resolve().parent / "gym_workloads" / "taxi_agents.py"
P_PATH = "env.env.env.env.P"  # TimeLimit -> OrderEnforcing -> PassiveEnvChecker -> TaxiEnv
AGENTS = 3


def _load() -> ModuleType:
    return import_source(WORKLOAD, "fa_mem_gym_taxi_agents")


def _objects(obj: Any, sizes: dict[int, int]) -> None:
    if id(obj) in sizes:
        return
    sizes[id(obj)] = sys.getsizeof(obj)
    if isinstance(obj, dict):
        for key, value in obj.items():
            _objects(key, sizes)
            _objects(value, sizes)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _objects(value, sizes)


@pytest.fixture(scope="module")
def table_truth() -> dict[str, int]:
    agents = _load().create_agents(AGENTS, 0)
    tables = [agent.env.unwrapped.P for agent in agents]
    assert tables[0] == tables[1] and tables[0] is not tables[1], "each agent builds its own, identical table"
    one: dict[int, int] = {}
    _objects(tables[0], one)
    every: dict[int, int] = {}
    for table in tables:
        _objects(table, every)
    return {"one": sum(one.values()), "saved_total": sum(every.values()) - sum(one.values())}


def test_profile_finds_the_transition_table_identical_and_does_not_call_it_growing(
    tmp_path: Path, table_truth: dict[str, int]
) -> None:
    report = tmp_path / "report.json"
    result = run_cli(
        ["profile", WORKLOAD, "-n", AGENTS, "--steps", 8, "--scaling", "none", "--no-trace", "--json", report], cwd=tmp_path
    )
    assert_clean_success(result)
    data = load_json(report)
    found = {(item["transformation"], item["attribute"]): item for item in data["suggestions"]}
    shared = found[("shared-structures", P_PATH)]
    assert shared["kind"] == "identical-structures"
    assert shared["estimated_bytes_saved_total"] == table_truth["saved_total"]
    # The table does not change while the agents learn: no growth of it, no cache bound for it.
    assert P_PATH not in {item["name"] for item in data["growth"]["paths"] or []}
    assert ("bounded-cache", P_PATH) not in found


def test_optimize_shares_the_table_with_identical_actions(tmp_path: Path, table_truth: dict[str, int]) -> None:
    steps = 8
    result = run_cli(
        ["optimize", WORKLOAD, "-n", AGENTS, "--steps", steps, "--scaling", "none", "--plugins", "shared-structures",
         "--target", "1kB", "--json", tmp_path / "result.json", "--plan-out", tmp_path / "plan.json"],
        cwd=tmp_path,
        timeout=240,
    )  # fmt: skip
    # 1 kB per agent is out of reach (the Q-table alone is 24 kB): exit 1 with the best result.
    assert result.returncode == 1, result.describe()
    outcome = load_json(tmp_path / "result.json")
    kept = [trial for trial in outcome["trials"] if trial["accepted"]]
    assert [(trial["plugin"], trial["attribute"]) for trial in kept] == [("shared-structures", P_PATH)]
    assert kept[0]["reason"].startswith(f"identical actions on {AGENTS} agents x {steps} steps x 2 seeds (0, 1)")
    # Every agent then holds the one frozen copy: each keeps 1/N of it instead of a whole one.
    saved = kept[0]["bytes_before"] - kept[0]["bytes_after"]
    assert saved == pytest.approx(table_truth["saved_total"] / AGENTS, rel=0.01)

    import fa_memtool

    module = _load()
    agents = module.create_agents(AGENTS, 0)
    fa_memtool.apply_plan(agents, tmp_path / "plan.json")
    assert all(agent.env.unwrapped.P is agents[0].env.unwrapped.P for agent in agents)
    with pytest.raises(TypeError):
        agents[0].env.unwrapped.P[0][0].append((1.0, 0, 0, False))
