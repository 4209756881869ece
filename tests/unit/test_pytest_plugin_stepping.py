"""The pytest plugin's fa_mem.run() steps through the population driver."""

from __future__ import annotations

from typing import Any

import numpy
import pytest

from fa_memtool.errors import StepError, WorkloadError
from fa_memtool.pytest_plugin import AgentTracker


class Counter:
    def __init__(self) -> None:
        self.steps = 0
        self.buffer = numpy.zeros(8)

    def step(self) -> None:  # Mesa style: no observation
        self.steps += 1


class Listener:
    def __init__(self) -> None:
        self.heard: list[Any] = []

    def act(self, observation: Any) -> None:
        self.heard.append(observation)


def test_run_steps_agents_whose_step_takes_no_observation() -> None:
    tracker = AgentTracker()
    agents = tracker.track([Counter(), Counter()])
    tracker.run(4, sample_every=2)
    assert [agent.steps for agent in agents] == [4, 4]
    assert [step for step, _ in tracker.samples] == [0, 2, 4]


def test_run_feeds_the_seeded_stream_to_the_named_method() -> None:
    tracker = AgentTracker()
    agents = tracker.track([Listener(), Listener()])
    tracker.run(2, seed=3, step_method="act")
    expected = numpy.random.default_rng([3, 1])
    assert agents[1].heard == [int(expected.integers(0, 2**16)), int(expected.integers(0, 2**16))]


def test_run_names_the_keyword_for_a_missing_method_and_the_failing_agent() -> None:
    tracker = AgentTracker()
    tracker.track([Listener()])
    with pytest.raises(WorkloadError, match=r"fa_mem.run\(step_method=...\)"):
        tracker.run(1)

    class Broken:
        def step(self) -> None:
            raise ValueError("no")

    tracker.track([Counter(), Broken()])
    with pytest.raises(StepError, match="agent 1 \\(Broken\\) raised ValueError at step 0: no"):
        tracker.run(1)
