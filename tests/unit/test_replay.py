"""The replay comparison of numeric state: at every path, through other containers."""

from __future__ import annotations

from collections import deque

import numpy as np

from fa_memtool.containers import BoundedCache, CompressedHistory, LazyBeliefArray
from fa_memtool.replay import compare_agents


class Inner:
    def __init__(self) -> None:
        self.B = np.empty(1, dtype=object)
        self.B[0] = np.linspace(0.0, 1.0, 50)
        self.qs_hist = [np.full(3, float(step)) for step in range(10)]
        self.rate = 0.5


class Agent:
    def __init__(self) -> None:
        self.agent = Inner()
        self.belief = np.zeros((20, 20))
        self.cache = {key: np.full(2, float(key)) for key in range(6)}
        self.label = "a"


def test_identical_twins_compare_equal_through_other_containers() -> None:
    original, twin = Agent(), Agent()
    assert compare_agents([original], [twin], 1e-5, 1e-8) is None
    twin.belief = LazyBeliefArray.from_dense(twin.belief)  # type: ignore[assignment]
    twin.agent.qs_hist = CompressedHistory(twin.agent.qs_hist)  # type: ignore[assignment]
    assert compare_agents([original], [twin], 1e-5, 1e-8) is None


def test_a_difference_deep_inside_is_found_and_named_by_its_path() -> None:
    original, twin = Agent(), Agent()
    twin.agent.B[0] = twin.agent.B[0] + 1e-3
    assert compare_agents([original], [twin], 1e-5, 1e-8) == "agent 0 .agent.B[0] differs by up to 0.001 (rtol=1e-05, atol=1e-08)"
    twin = Agent()
    twin.agent.rate = 0.6
    assert compare_agents([original], [twin], 1e-5, 1e-8) == "agent 0 .agent.rate differs"
    twin = Agent()
    twin.agent.qs_hist.pop()
    assert compare_agents([original], [twin], 1e-5, 1e-8) == "agent 0 .agent.qs_hist holds 9 entries instead of 10"
    twin = Agent()
    del twin.cache[3]
    assert compare_agents([original], [twin], 1e-5, 1e-8) == 'agent 0 .cache[3] is missing'


def test_bounded_containers_are_compared_on_what_they_keep() -> None:
    original, twin = Agent(), Agent()
    twin.agent.qs_hist = deque(twin.agent.qs_hist, maxlen=4)  # type: ignore[assignment]
    twin.cache = BoundedCache(twin.cache, maxsize=2)
    assert compare_agents([original], [twin], 1e-5, 1e-8) is None
    twin.agent.qs_hist[-1] = np.full(3, -1.0)
    assert compare_agents([original], [twin], 1e-5, 1e-8) == "agent 0 .agent.qs_hist[9] differs by up to 10 (rtol=1e-05, atol=1e-08)"
