"""The sensitivity test of lossy transformations, through the optimizer's trials.

The agents hold a float64 weight vector large enough for lower-precision (64 KiB) and
choose their action from ``weights[0]``. How close that value sits to the decision
threshold is set per agent, so each test knows, from float32's own rounding, what the
transformation does to every action.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fa_memtool.optimize import TrialSettings, run_trials
from fa_memtool.population_driver import PopulationDriver, Stepping
from fa_memtool.sensitivity import MARGIN, perturb

WEIGHTS = 8192  # 64 KiB of float64: what lower-precision looks at
FLOAT32_ROUNDING = 2.0**-24


class Chooser:
    def __init__(self, seed: int, value: float, threshold: float) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.random(WEIGHTS)
        self.weights[0] = value
        self.threshold = threshold

    def step(self, observation: int) -> int:
        return int(self.weights[0] > self.threshold) + 2 * (observation % 2)


class Progress:
    def send(self, *args: Any, **kwargs: Any) -> None:
        pass


def trials(make: Any, *, agents: int = 50, steps: int = 5, seed: int = 0) -> dict[str, Any]:
    def build(run_seed: int) -> PopulationDriver:
        driver = PopulationDriver(lambda: ("make()", make(agents, run_seed)), stepping=Stepping(seed=run_seed), requested=agents)
        driver.build()
        return driver

    settings = TrialSettings(
        target_bytes=0.0, plugins=["lower-precision"], exclude=[], force=[], rtol=1e-5, atol=1e-8, growing={}
    )
    return run_trials(build=build, steps=steps, settings=settings, module_globals=[], progress=Progress(), seed=seed)["trials"]


def only_outcome(result: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = result["outcomes"]
    assert (outcome["plugin"], outcome["attribute"]) == ("lower-precision", "weights")
    return outcome


def test_an_agent_whose_action_float32_rounding_flips_is_rolled_back_by_the_replay() -> None:
    # 1 + 2**-30 rounds to 1.0 in float32: the agent with threshold 1.0 stops choosing 1.
    value = 1.0 + 2.0**-30
    assert np.float32(value) == np.float32(1.0)

    def make(n: int, seed: int) -> list[Chooser]:
        return [Chooser(seed * 1000 + i, value, 1.0 if i == 7 else 0.5) for i in range(n)]

    outcome = only_outcome(trials(make))
    assert not outcome["accepted"] and outcome["failure"] == "behaviour-changed"
    assert "agent 7 chose" in outcome["reason"]


def test_an_agent_on_a_knife_edge_that_this_rounding_spares_is_caught_by_the_sensitivity_test() -> None:
    # weights[0] = 1.0 is exact in float32, so the replay of the float32 agents shows
    # identical actions; but agent 7's threshold sits 3e-7 below it, inside ten times
    # float32's rounding: another value, rounded down, would flip it. One agent in 50.
    threshold = 1.0 - 3e-7
    assert threshold > 1.0 - MARGIN * FLOAT32_ROUNDING
    caught = 0
    runs = 20
    for seed in range(runs):

        def make(n: int, run_seed: int) -> list[Chooser]:
            return [Chooser(run_seed * 1000 + i, 1.0, threshold if i == 7 else 0.5) for i in range(n)]

        outcome = only_outcome(trials(make, seed=seed * 10))
        if not outcome["accepted"]:
            assert outcome["failure"] == "sensitive", outcome["reason"]
            assert outcome["reason"].startswith("sensitive at this precision: with .weights perturbed by 6.0e-07 relative")
            assert "agent 7 chose" in outcome["reason"]
            caught += 1
    assert caught >= 0.95 * runs


def test_a_stable_population_keeps_float32_after_the_sensitivity_test() -> None:
    def make(n: int, seed: int) -> list[Chooser]:
        return [Chooser(seed * 1000 + i, 1.0, 0.5) for i in range(n)]

    result = trials(make)
    outcome = only_outcome(result)
    assert outcome["accepted"], outcome["reason"]
    assert outcome["sensitivity_replays"] == 5
    assert "perturbed by 6.0e-07 relative" in outcome["reason"]
    assert result["verification"] == {"agents": 50, "steps": 5, "seeds": [0, 1], "sensitivity_replays": 5}


def test_perturb_moves_every_float_value_by_the_relative_size_once_per_array() -> None:
    shared = np.full(100, 2.0)

    class Holder:
        def __init__(self) -> None:
            self.values = np.arange(1.0, 101.0)
            self.shared = shared
            self.counts = np.arange(100)
            self.history = [np.ones(10), np.ones(10)]

    agents = [Holder(), Holder()]
    before = [agent.values.copy() for agent in agents]
    rng = np.random.default_rng(0)
    assert perturb(agents, "values", 1e-3, rng) == 2
    for agent, original in zip(agents, before):
        ratio = agent.values / original
        assert np.allclose(np.abs(ratio - 1), 1e-3)
        assert (ratio > 1).any() and (ratio < 1).any()
    assert perturb(agents, "shared", 1e-3, rng) == 1  # one array, held by both
    assert np.allclose(np.abs(shared / 2.0 - 1), 1e-3)
    assert perturb(agents, "counts", 1e-3, rng) == 0  # integers are not rounded by a float dtype
    assert (agents[0].counts == np.arange(100)).all()
    assert perturb(agents, "history[*]", 1e-3, rng) == 4
    assert np.allclose(np.abs(agents[1].history[1] - 1), 1e-3)


@pytest.mark.parametrize("path", ["missing", "values.nothing"])
def test_perturb_finds_nothing_at_a_path_the_agents_lack(path: str) -> None:
    class Holder:
        values = np.ones(3)

    assert perturb([Holder()], path, 1e-3, np.random.default_rng(0)) == 0
