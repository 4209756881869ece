"""``--observations FILE``: profile and optimize on the user's own recorded observations.

Through the installed console script. The agents allocate from what they observe, so
the report's byte counts show which observations they got: the expected sizes are
computed here from the file's values and ``nbytes``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fa_mem_cli import assert_clean_success, assert_one_error_line, load_json, run_cli, write_module

pytestmark = pytest.mark.slow

SIZED = """
    import numpy as np


    class Sized:
        def __init__(self, seed):
            self.buffer = np.zeros(1)

        def step(self, observation):
            self.buffer = np.zeros(int(observation))
            return int(observation) % 5


    def create_agents(n, seed):
        return [Sized(seed) for _ in range(n)]
"""

# One table per agent, identical (shared-parameters offers to share it read-only); an
# agent that observes 7 writes into it, which a shared read-only table refuses.
WRITER = """
    import numpy as np


    class Writer:
        def __init__(self, seed):
            self.table = np.linspace(0.0, 1.0, 16384)

        def step(self, observation):
            if observation == 7:
                self.table[0] = 2.0
            return int(self.table[int(observation) % 16384] * 100)


    def create_agents(n, seed):
        return [Writer(seed) for _ in range(n)]
"""


def attribute_bytes(report: dict[str, Any], name: str) -> list[float]:
    return [next(item["deep_bytes"] for item in agent["attributes"] if item["name"] == name) for agent in report["agents"]]


def test_profile_feeds_each_agent_its_column_of_an_npz_file(tmp_path: Path) -> None:
    module = write_module(tmp_path, "sized", SIZED)
    observations = np.array([[100, 200, 300], [400, 500, 600], [1000, 2000, 3000]])
    np.savez(tmp_path / "recorded.npz", observations=observations)
    report = tmp_path / "report.json"
    result = run_cli(
        ["profile", module, "-n", 3, "--steps", 3, "--observations", "recorded.npz", "--scaling", "none", "--no-trace", "--json", report],
        cwd=tmp_path,
    )
    assert_clean_success(result)
    data = load_json(report)
    assert data["workload"]["observe"] == "file"
    empty = np.zeros(0)
    for agent, last in zip(attribute_bytes(data, "buffer"), observations[-1]):
        assert agent == np.zeros(int(last)).nbytes + empty.__sizeof__()  # the array object and its data


def test_profile_reads_a_jsonl_file_one_list_per_step(tmp_path: Path) -> None:
    module = write_module(tmp_path, "sized", SIZED)
    rows = [[10, 20], [30, 40], [50, 4096]]
    (tmp_path / "recorded.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    report = tmp_path / "report.json"
    result = run_cli(
        ["profile", module, "-n", 2, "--steps", 3, "--observations", "recorded.jsonl", "--scaling", "none", "--no-trace", "--json", report],
        cwd=tmp_path,
    )
    assert_clean_success(result)
    sizes = attribute_bytes(load_json(report), "buffer")
    assert sizes[1] - sizes[0] == np.zeros(4096).nbytes - np.zeros(50).nbytes


def test_optimize_proves_behaviour_on_the_recorded_observations(tmp_path: Path) -> None:
    module = write_module(tmp_path, "writer", WRITER)
    args = ["optimize", module, "-n", 3, "--steps", 4, "--plugins", "shared-parameters", "--target", "1kB", "--scaling", "none"]
    # The seeded stream (integers up to 65535) never gives 7 in these steps: sharing is kept.
    result = run_cli([*args, "--json", tmp_path / "seeded.json"], cwd=tmp_path, timeout=180)
    assert result.returncode == 1, result.describe()
    (trial,) = load_json(tmp_path / "seeded.json")["trials"]
    assert trial["accepted"] is True
    # The user's data has agent 2 observe 7 at step 3: the shared table breaks it.
    np.savez(tmp_path / "recorded.npz", observations=np.array([[1, 2, 3], [4, 5, 6], [8, 9, 10], [11, 12, 7]]))
    result = run_cli([*args, "--observations", "recorded.npz", "--json", tmp_path / "recorded.json"], cwd=tmp_path, timeout=180)
    assert result.returncode == 1, result.describe()
    data = load_json(tmp_path / "recorded.json")
    (trial,) = data["trials"]
    assert trial["accepted"] is False and trial["failure"] == "raised"
    assert trial["reason"].startswith("raised: agent 2 (Writer) raised ValueError at step 3: ")
    assert data["before"]["workload"]["observe"] == "file"


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("too-few-steps", "holds 2 steps; the run asks for 3 (--steps)"),
        ("too-few-agents", "holds observations for 2 agents; the run builds 3"),
        ("missing", "cannot read it"),
        ("suffix", "give a .npz file"),
        ("no-array", "has no array named observations"),
        ("not-json", "line 2 is not JSON"),
        ("not-a-list", "line 1 is a dict"),
    ],
)
def test_bad_observation_files_are_one_error_line(case: str, fragment: str, tmp_path: Path) -> None:
    module = write_module(tmp_path, "sized", SIZED)
    name = {"not-json": "bad.jsonl", "not-a-list": "bad.jsonl", "suffix": "data.csv"}.get(case, "recorded.npz")
    target = tmp_path / name
    if case == "too-few-steps":
        np.savez(target, observations=np.ones((2, 3)))
    elif case == "too-few-agents":
        np.savez(target, observations=np.ones((3, 2)))
    elif case == "no-array":
        np.savez(target, other=np.ones((3, 3)))
    elif case == "not-json":
        target.write_text("[1, 2, 3]\n[1, 2,\n")
    elif case == "not-a-list":
        target.write_text('{"a": 1}\n')
    elif case == "suffix":
        target.write_text("1,2,3\n")
    result = run_cli(["profile", module, "-n", 3, "--steps", 3, "--observations", name], cwd=tmp_path)
    assert_one_error_line(result, 2, "--observations", fragment)
