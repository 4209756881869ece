"""Candidate order in the optimizer's trials: paths by best estimate, then declared priority."""

from __future__ import annotations

from typing import Any

import pytest

from fa_memtool.hookspecs import Candidate
from fa_memtool.optimize import _order


def test_candidates_are_ordered_by_path_then_declared_priority() -> None:
    candidates = [
        Candidate("lazy-beliefs", "a", 90.0, ""),
        Candidate("third-party", "a", 10.0, ""),
        Candidate("lower-precision", "a", 50.0, ""),
        Candidate("shared-parameters", "b", 200.0, ""),
    ]
    priority = {"lower-precision": 10, "lazy-beliefs": 30, "third-party": 5}
    order = [(c.plugin, c.attribute) for c in _order(candidates, priority)]
    assert order == [("shared-parameters", "b"), ("third-party", "a"), ("lower-precision", "a"), ("lazy-beliefs", "a")]


def test_unknown_plugins_take_the_default_priority() -> None:
    candidates: list[Any] = [Candidate("x", "a", 1.0, ""), Candidate("lower-precision", "a", 1.0, "")]
    assert [c.plugin for c in _order(candidates, {"lower-precision": 10})] == ["lower-precision", "x"]


# -- batches: candidates on separate paths replayed together -------------------------------

import numpy as np  # noqa: E402

from fa_memtool.optimize import TrialSettings, run_trials  # noqa: E402
from fa_memtool.population_driver import PopulationDriver, Stepping  # noqa: E402

TABLE = 16384  # float64 values per table: 128 KiB, one per agent, identical across agents


class Tables:
    """Three identical tables per agent; ``writes`` names the one its step writes into."""

    def __init__(self, writes: str | None) -> None:
        self.a = np.linspace(0.0, 1.0, TABLE)
        self.b = np.linspace(0.0, 2.0, TABLE)
        self.c = np.linspace(0.0, 3.0, TABLE)
        self.writes = writes

    def step(self, observation: int) -> int:
        if self.writes is not None:
            getattr(self, self.writes)[0] = 0.0  # a shared read-only table refuses this
        return int(observation % 7)


class Progress:
    def send(self, *args: Any, **kwargs: Any) -> None:
        pass


def share_tables(writes: str | None, agents: int = 3) -> tuple[dict[str, Any], list[int]]:
    builds: list[int] = []

    def build(seed: int) -> PopulationDriver:
        builds.append(seed)
        driver = PopulationDriver(
            lambda: ("make()", [Tables(writes) for _ in range(agents)]), stepping=Stepping(seed=seed), requested=agents
        )
        driver.build()
        return driver

    settings = TrialSettings(
        target_bytes=0.0, plugins=["shared-parameters"], exclude=[], force=[], rtol=1e-5, atol=1e-8, growing={}
    )
    result = run_trials(build=build, steps=3, settings=settings, module_globals=[], progress=Progress())
    return result["trials"], builds


def test_candidates_on_separate_paths_pass_together_in_one_replay_per_seed() -> None:
    trials, builds = share_tables(writes=None)
    outcomes = {outcome["attribute"]: outcome for outcome in trials["outcomes"]}
    assert set(outcomes) == {"a", "b", "c"} and all(outcome["accepted"] for outcome in outcomes.values())
    assert all("together with 2 other transformation(s) on other paths" in outcome["reason"] for outcome in outcomes.values())
    # Each table: three copies become one shared copy, 2/3 of a copy saved per agent.
    copy = np.linspace(0.0, 1.0, TABLE).nbytes
    for outcome in outcomes.values():
        assert outcome["bytes_before"] - outcome["bytes_after"] == pytest.approx(copy * 2 / 3, rel=0.01)
    assert trials["final_bytes"] == pytest.approx(trials["baseline_bytes"] - 3 * copy * 2 / 3, rel=0.01)
    # Two recordings (seeds 0 and 1) and one batch replayed on both: four populations, not eight.
    assert builds == [0, 0, 1, 1]


def test_a_batch_that_fails_is_split_until_the_culprit_stands_alone() -> None:
    trials, _ = share_tables(writes="b")
    outcomes = {outcome["attribute"]: outcome for outcome in trials["outcomes"]}
    assert outcomes["a"]["accepted"] and outcomes["c"]["accepted"]
    assert not outcomes["b"]["accepted"] and outcomes["b"]["failure"] == "raised"
    assert outcomes["b"]["reason"].startswith("raised: agent 0 (Tables) raised ValueError at step 0: ")
    assert outcomes["b"]["reason"].endswith("(under shared-parameters on .b, seed 0)")
    assert [step["attribute"] for step in trials["steps"]] == ["a", "c"]
