"""Tests for the sample agent modules in ``sample_agents``.

Every expected value is derived in the test from the agents themselves (ground
truth), not copied from the modules' docstrings.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sample_agents import explorer, leaky, shared_world  # noqa: E402

MODULES = [explorer, leaky, shared_world]


def run_population(module: ModuleType, n: int, seed: int, steps: int) -> tuple[list, list[list]]:
    """Create n agents and step them, with one Generator per agent seeded from (seed, i)."""
    agents = module.create_agents(n, seed)
    rngs = [np.random.default_rng([seed, i]) for i in range(n)]
    actions: list[list] = []
    for step in range(steps):
        actions.append(
            [agent.step(module.observe(agent, step, rngs[i])) for i, agent in enumerate(agents)]
        )
    return agents, actions


def distinct_buffer_bytes(root: object) -> int:
    """Sum of nbytes over distinct array buffers reachable from attributes, lists and object arrays."""
    seen: set[int] = set()
    buffers: dict[int, int] = {}
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                buffers[id(obj)] = obj.nbytes
                stack.extend(obj.ravel().tolist())
            else:
                base = obj
                while isinstance(base.base, np.ndarray):
                    base = base.base
                buffers[id(base)] = base.nbytes
        elif isinstance(obj, (list, tuple, deque)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and not isinstance(obj, (type, np.random.Generator)):
            stack.extend(vars(obj).values())
    return sum(buffers.values())


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
@pytest.mark.parametrize("n", [1, 3])
def test_create_agents_returns_n_agents(module: ModuleType, n: int) -> None:
    agents = module.create_agents(n, seed=11)
    assert isinstance(agents, list)
    assert len(agents) == n
    assert len({id(agent) for agent in agents}) == n


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_same_seed_gives_identical_actions(module: ModuleType) -> None:
    _, first = run_population(module, n=2, seed=5, steps=20)
    _, second = run_population(module, n=2, seed=5, steps=20)
    assert first == second
    for row in first:
        for action in row:
            assert type(action) is int


# ---------------------------------------------------------------- explorer


def test_explorer_model_matrices_equal_but_not_shared() -> None:
    a, b = explorer.create_agents(2, seed=3)
    for name in ("A", "B"):
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == object and right.dtype == object
        assert left is not right
        for x, y in zip(left, right):
            assert x.dtype == np.float64
            assert np.array_equal(x, y)
            assert x is not y
            assert not np.shares_memory(x, y)


def test_explorer_likelihoods_and_transitions_are_normalised() -> None:
    (agent,) = explorer.create_agents(1, seed=3)
    for a_m in agent.A:
        np.testing.assert_allclose(a_m.sum(axis=0), 1.0)
    for b_f in agent.B:
        np.testing.assert_allclose(b_f.sum(axis=0), 1.0)


def test_explorer_beliefs_mostly_zero() -> None:
    agents, _ = run_population(explorer, n=2, seed=9, steps=10)
    for agent in agents:
        for dense in (agent.beliefs, agent.predicted_states):
            zero_fraction = 1.0 - np.count_nonzero(dense) / dense.size
            assert zero_fraction >= 0.9
        np.testing.assert_allclose(agent.beliefs.sum(), 1.0)


def test_explorer_history_grows_by_one_belief_copy_per_step() -> None:
    (agent,) = explorer.create_agents(1, seed=4)
    rng = np.random.default_rng([4, 0])
    before = distinct_buffer_bytes(agent)
    steps = 5
    for step in range(steps):
        agent.step(explorer.observe(agent, step, rng))
    assert len(agent.belief_history) == steps
    for entry in agent.belief_history:
        assert entry.dtype == np.float64
        assert entry.base is None and not np.shares_memory(entry, agent.beliefs)
    assert distinct_buffer_bytes(agent) - before == steps * agent.beliefs.nbytes


# ---------------------------------------------------------------- leaky


def test_leaky_cache_grows_every_step_and_deque_is_bounded() -> None:
    (agent,) = leaky.create_agents(1, seed=2)
    rng = np.random.default_rng([2, 0])
    maxlen = agent.recent_features.maxlen
    assert maxlen is not None
    cache_sizes, trajectory_sizes, window_sizes = [], [], []
    for step in range(maxlen + 10):
        agent.step(leaky.observe(agent, step, rng))
        cache_sizes.append(len(agent.feature_cache))
        trajectory_sizes.append(len(agent.trajectory))
        window_sizes.append(len(agent.recent_features))
    assert all(later > earlier for earlier, later in zip(cache_sizes, cache_sizes[1:]))
    assert all(later > earlier for earlier, later in zip(trajectory_sizes, trajectory_sizes[1:]))
    assert window_sizes == [min(i + 1, maxlen) for i in range(len(window_sizes))]


def test_leaky_memory_keeps_growing_after_deque_is_full() -> None:
    (agent,) = leaky.create_agents(1, seed=2)
    rng = np.random.default_rng([2, 0])
    maxlen = agent.recent_features.maxlen
    sizes = []
    for step in range(maxlen + 6):
        agent.step(leaky.observe(agent, step, rng))
        if step >= maxlen:
            sizes.append(distinct_buffer_bytes(agent))
    assert all(later > earlier for earlier, later in zip(sizes, sizes[1:]))


# ---------------------------------------------------------------- shared_world


def test_shared_world_shares_transition_and_registers_all_agents() -> None:
    agents, _ = run_population(shared_world, n=4, seed=8, steps=3)
    world = agents[0].world
    for agent in agents:
        assert agent.world is world
        assert agent.transition is world.transition
        assert agent.kernel_table is shared_world.GAUSSIAN_KERNEL_TABLE
        assert any(member is agent for member in agent.world.agents)
    assert len(world.agents) == len(agents)


def test_shared_world_focus_is_view_of_belief() -> None:
    agents, _ = run_population(shared_world, n=2, seed=8, steps=5)
    for agent in agents:
        assert np.shares_memory(agent.focus, agent.belief)
        np.testing.assert_array_equal(agent.focus, agent.belief[: agent.focus.size])
        np.testing.assert_allclose(agent.belief.sum(), 1.0)
    assert not np.shares_memory(agents[0].belief, agents[1].belief)


def test_wrapped_forager_holds_a_pymdp_style_agent():
    from sample_agents import wrapped

    forager = wrapped.create_agents(2, 0)[0]
    b0 = forager.agent.B[0]
    assert b0.shape == (144, 144, 5) and b0.nbytes == 829_440
    assert 1 - np.count_nonzero(b0) / b0.size > 0.98
    np.testing.assert_allclose(b0.sum(axis=0), 1.0)  # every column of every action a distribution
    assert forager.matrix_cache["A"] is forager.agent.A[0]
    actions = [forager.step(wrapped.observe(forager, step, np.random.default_rng(step))) for step in range(5)]
    assert len(forager.agent.qs_hist) == len(forager.agent.prev_actions) == 5
    assert forager.agent.prev_actions == actions
    assert forager.agent.qs[0].sum() == pytest.approx(1.0)
