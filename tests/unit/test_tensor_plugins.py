"""The built-in transformations and the replay on torch tensors and JAX arrays.

Ground truth comes from the tensors the tests build: storage bytes, dtypes and object
identity after a transformation."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from fa_memtool.containers import get_shared_pool
from fa_memtool.hookspecs import AnalysisContext
from fa_memtool.plugins import analyse, apply_candidate, plugin_manager
from fa_memtool.replay import RandomStream, compare_agents, same_action
from fa_memtool.sizing import measure_population

torch = pytest.importorskip("torch")


class TorchAgent:
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(7)
        self.encoder = torch.nn.Linear(64, 128)
        with torch.no_grad():
            self.encoder.weight.copy_(torch.rand(128, 64, generator=generator))
            self.encoder.bias.zero_()
        self.encoder.requires_grad_(False)  # frozen: shareable
        self.trained = torch.nn.Parameter(torch.ones(128, 64))  # learns: never shared
        self.table = torch.zeros(256, 64, dtype=torch.float64)  # survives float32 exactly


@pytest.fixture(autouse=True)
def empty_pool() -> Any:
    get_shared_pool().clear()
    yield
    get_shared_pool().clear()


def _candidates(agents: list[Any], plugin: str) -> dict[str, Any]:
    found, failures = analyse(plugin_manager(), agents, AnalysisContext(), [plugin])
    assert not failures
    return {candidate.attribute: candidate for candidate in found}


def test_identical_frozen_tensors_become_one_and_the_saving_is_their_storage() -> None:
    agents = [TorchAgent() for _ in range(3)]
    weight_bytes = agents[0].encoder.weight.untyped_storage().nbytes()
    before = measure_population(agents).agents[0].amortized_bytes
    found = _candidates(agents, "shared-parameters")
    assert "trained" not in found, "a parameter that requires a gradient is its optimizer's"
    weight = found["encoder.weight"]
    assert weight.estimated_bytes_saved_per_agent == pytest.approx(weight_bytes * 2 / 3)
    apply_candidate(plugin_manager(), agents, weight)
    assert agents[0].encoder.weight is agents[1].encoder.weight is agents[2].encoder.weight
    assert isinstance(agents[0].encoder.weight, torch.nn.Parameter) and not agents[0].encoder.weight.requires_grad
    after = measure_population(agents).agents[0].amortized_bytes
    assert before - after == pytest.approx(weight_bytes * 2 / 3, rel=0.02)
    assert torch.equal(agents[0].encoder(torch.ones(64)), TorchAgent().encoder(torch.ones(64)))


def test_float64_tensors_that_survive_float32_are_halved() -> None:
    agents = [TorchAgent() for _ in range(2)]
    found = _candidates(agents, "lower-precision")
    table = found["table"]
    assert table.parameters["dtype"] == "float32"
    assert table.estimated_bytes_saved_per_agent == pytest.approx(agents[0].table.nbytes / 2)
    assert "encoder.weight" not in found, "random float32 weights do not survive float16 within rtol 1e-5"
    apply_candidate(plugin_manager(), agents, table)
    assert agents[0].table.dtype == torch.float32 and torch.count_nonzero(agents[0].table) == 0
    adopted = plugin_manager().hook.fa_mem_adoption(candidate=table, expression="self.table")
    assert adopted == "self.table.to(torch.float32)"


def test_jax_arrays_are_shared_and_lowered() -> None:
    jnp = pytest.importorskip("jax.numpy")

    class JaxAgent:
        def __init__(self) -> None:
            self.prior = jnp.full((64, 256), 0.5, dtype=jnp.float32)  # 0.5 is exact in float16

    agents = [JaxAgent() for _ in range(2)]
    found = _candidates(agents, "shared-parameters")
    apply_candidate(plugin_manager(), agents, found["prior"])
    assert agents[0].prior is agents[1].prior
    lowered = _candidates(agents, "lower-precision")["prior"]
    assert lowered.parameters["dtype"] == "float16"
    apply_candidate(plugin_manager(), agents, lowered)
    assert str(agents[0].prior.dtype) == "float16" and float(agents[0].prior[0, 0]) == 0.5


def test_replay_compares_tensors_by_value() -> None:
    assert same_action(torch.tensor([1, 2]), torch.tensor([1, 2]))
    assert not same_action(torch.tensor([1, 2]), torch.tensor([1, 3]))
    assert same_action(torch.tensor(3), np.int64(3)) is True
    original, changed = TorchAgent(), TorchAgent()
    assert compare_agents([original], [changed], 1e-5, 1e-8) is None
    with torch.no_grad():
        changed.encoder.weight[0, 0] += 1.0
    found = compare_agents([original], [changed], 1e-5, 1e-8)
    assert found is not None and "encoder.weight" in found


def test_each_population_draws_the_same_numbers_from_its_own_stream() -> None:
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    first, second = RandomStream(), RandomStream()
    draws = []
    for stream in (first, second, first, second):
        with stream.active():
            draws.append((random.random(), float(np.random.random()), float(torch.rand(1))))
    assert draws[0] == draws[1] and draws[2] == draws[3] and draws[0] != draws[2]


class Learner:
    """A trained policy with Adam, a replay buffer and a window on it."""

    def __init__(self) -> None:
        torch.manual_seed(1)
        self.policy = torch.nn.Linear(8, 4)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=0.1)
        self.replay = torch.zeros(512, 8)
        self.recent = self.replay[-64:]

    def step(self) -> None:
        loss = self.policy(torch.ones(8)).sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def test_replay_pairs_an_optimizers_state_by_position() -> None:
    """Twins' optimizers key their state by their own parameters: entries are compared
    in order, and a moment that differs is found at its path."""
    original, twin = Learner(), Learner()
    original.step()
    twin.step()
    assert compare_agents([original], [twin], 1e-5, 1e-8) is None
    state = next(iter(twin.optimizer.state.values()))
    with torch.no_grad():
        state["exp_avg"].add_(1.0)
    found = compare_agents([original], [twin], 1e-5, 1e-8)
    assert found is not None and "optimizer.state" in found and "exp_avg" in found


def test_views_and_paths_through_object_keys_are_never_offered() -> None:
    agents = [Learner() for _ in range(2)]
    for agent in agents:
        agent.step()
    found = _candidates(agents, "shared-parameters")
    assert "recent" not in found, "a window on the replay buffer must keep seeing its writes"
    assert "replay" in found  # identical zeros, its own storage
    assert not any("<" in path for path in found), sorted(found)
