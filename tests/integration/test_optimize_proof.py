"""What ``fa-mem optimize`` proves, and what it says when there is nothing to do.

Through the installed console script, on small workloads written into each test's
directory: a target already met (nothing tried, seconds), agents with nothing to
transform (no candidates, the paths examined), a transformation that only breaks the
agents built and observed on the second verification seed (rolled back as a raise,
kept with ``--verify-seeds 1``), and a trial that raises reported as a raise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fa_mem_cli import CliResult, assert_clean_success, load_json, run_cli, write_module

pytestmark = pytest.mark.slow

SMALL = """
    class Counter:
        def __init__(self, seed):
            self.count = seed

        def step(self, observation):
            self.count += 1
            return self.count % 3


    def create_agents(n, seed):
        return [Counter(seed + i) for i in range(n)]
"""

# Each agent holds its own copy of one table (shared-parameters offers one shared,
# read-only copy). The agents built with seed 1 write into it at step 2: sharing it
# breaks them, and only a replay on that seed shows it.
SEED_DEPENDENT = """
    import numpy as np


    class Reader:
        def __init__(self, seed, index):
            self.table = np.linspace(0.0, 1.0, 16384)
            self.writes = seed == 1 and index == 1

        def step(self, observation):
            if self.writes and observation is not None and self.steps_seen == 2:
                self.table[0] += 1.0
            self.steps_seen += 1
            return int(self.table[observation % 16384] * 10)

        steps_seen = 0


    def create_agents(n, seed):
        return [Reader(seed, i) for i in range(n)]
"""

# A belief that the agent checks is a plain ndarray: lazy-beliefs makes the check raise.
PICKY = """
    import numpy as np


    class Picky:
        def __init__(self, seed):
            self.belief = np.zeros((256, 64))
            self.belief[seed % 256, 0] = 1.0

        def step(self, observation):
            if type(self.belief) is not np.ndarray:
                raise TypeError(f"belief must be an ndarray, not {type(self.belief).__name__}")
            return int(self.belief.argmax())


    def create_agents(n, seed):
        return [Picky(seed + i) for i in range(n)]
"""


def optimize(tmp_path: Path, module: Path, *args: Any, timeout: float = 180) -> tuple[CliResult, dict[str, Any], dict[str, Any]]:
    result = run_cli(
        ["optimize", module, "--scaling", "none", "--json", tmp_path / "result.json", "--plan-out", tmp_path / "plan.json", *args],
        cwd=tmp_path,
        timeout=timeout,
    )
    assert (tmp_path / "result.json").exists(), result.describe()
    return result, load_json(tmp_path / "result.json"), json.loads((tmp_path / "plan.json").read_text())


def folded(text: str) -> str:
    return " ".join(text.split())


def test_a_target_already_met_tries_nothing_and_says_so(tmp_path: Path) -> None:
    module = write_module(tmp_path, "small_agents", SMALL)
    result, data, plan = optimize(tmp_path, module, "-n", 3, "--steps", 5, "--target", "1MB")
    assert_clean_success(result)
    per_agent = data["before"]["population"]["per_agent_bytes"]
    assert per_agent < 1_000_000
    assert data["summary"].startswith("already at ") and data["summary"].endswith("under the 1 MB target; nothing tried")
    assert data["verified"] is None and data["target_met"] is True and data["exit_code"] == 0
    assert data["trials"] == [] and data["after"] is None and data["verification"] == {}
    assert plan["steps"] == []
    assert "nothing tried" in folded(result.stdout)
    assert "Rolled back" not in result.stdout and "Transformations kept" not in result.stdout


def test_agents_with_nothing_to_transform_report_the_paths_examined(tmp_path: Path) -> None:
    module = write_module(tmp_path, "small_agents", SMALL)
    result, data, plan = optimize(tmp_path, module, "-n", 3, "--steps", 5, "--target", "1B")
    assert result.returncode == 1, result.describe()  # the target is missed
    summary = data["summary"]
    assert summary.startswith("no candidates: examined ") and "none proposed a transformation" in summary
    examined = int(summary.split("examined ")[1].split(" ")[0])
    assert examined >= 1  # at least .count
    assert data["verified"] is None and data["candidates"] == 0 and data["trials"] == []
    assert plan["steps"] == []
    text = folded(result.stdout)
    assert "no candidates" in text and "no candidate is left to try" in text and "see Rolled back" not in text


def test_a_transformation_that_breaks_only_the_second_seed_is_rolled_back(tmp_path: Path) -> None:
    module = write_module(tmp_path, "seed_dependent", SEED_DEPENDENT)
    args = ["-n", 3, "--steps", 4, "--plugins", "shared-parameters", "--target", "1kB"]
    result, data, plan = optimize(tmp_path, module, *args)
    assert result.returncode == 1, result.describe()
    (trial,) = data["trials"]
    assert (trial["plugin"], trial["attribute"], trial["accepted"]) == ("shared-parameters", "table", False)
    assert trial["failure"] == "raised"
    assert trial["reason"].startswith("raised: agent 1 (Reader) raised ValueError at step 2: ")
    assert trial["reason"].endswith("(under shared-parameters on .table, seed 1)")
    assert "behaviour changed" not in trial["reason"]
    assert plan["steps"] == [] and data["verified"] is None

    # One seed (the run's own) cannot see it: the same transformation is kept.
    one = tmp_path / "one-seed"
    one.mkdir()
    result, data, plan = optimize(one, module, *args, "--verify-seeds", 1)
    assert result.returncode == 1, result.describe()
    (trial,) = data["trials"]
    assert trial["accepted"] is True
    assert trial["reason"] == "identical actions on 3 agents x 4 steps x 1 seed (0); numeric values within tolerance"
    assert data["verification"]["seeds"] == [0]
    saved = trial["bytes_before"] - trial["bytes_after"]
    assert saved == pytest.approx(np.linspace(0.0, 1.0, 16384).nbytes * 2 / 3, rel=0.01)


def test_a_trial_that_raises_is_reported_as_a_raise(tmp_path: Path) -> None:
    module = write_module(tmp_path, "picky_agents", PICKY)
    result, data, _ = optimize(tmp_path, module, "-n", 2, "--steps", 3, "--plugins", "lazy-beliefs", "--target", "1kB")
    assert result.returncode == 1, result.describe()
    (trial,) = data["trials"]
    assert (trial["plugin"], trial["attribute"], trial["failure"]) == ("lazy-beliefs", "belief", "raised")
    assert trial["reason"] == (
        "raised: agent 0 (Picky) raised TypeError at step 0: belief must be an ndarray, not LazyBeliefArray "
        "(under lazy-beliefs on .belief, seed 0)"
    )
    assert "nothing kept" in data["summary"]


def test_verify_seeds_must_be_at_least_one(tmp_path: Path) -> None:
    module = write_module(tmp_path, "small_agents", SMALL)
    result = run_cli(["optimize", module, "--target", "1kB", "--verify-seeds", 0], cwd=tmp_path)
    assert result.returncode == 2, result.describe()
    assert "Traceback" not in result.stderr
    assert sys.executable  # the installed console script ran, not this interpreter


def test_verify_seeds_comes_from_the_project_settings(tmp_path: Path) -> None:
    module = write_module(tmp_path, "seed_dependent", SEED_DEPENDENT)
    (tmp_path / "pyproject.toml").write_text("[tool.fa-mem]\nverify-seeds = 1\n")
    result, data, _ = optimize(tmp_path, module, "-n", 3, "--steps", 4, "--plugins", "shared-parameters", "--target", "1kB")
    assert result.returncode == 1, result.describe()
    assert data["verification"]["seeds"] == [0]
    (tmp_path / "pyproject.toml").write_text("[tool.fa-mem]\nverify-seeds = 0\n")
    result = run_cli(["optimize", module, "--target", "1kB"], cwd=tmp_path)
    assert result.returncode == 2 and "--verify-seeds must be a whole number, 1 or more (got 0)" in result.stderr, result.describe()
