"""The transformation plugin system: loading, analysing, applying, rolling back.

Every built-in plugin is exercised on a small population built here, with its
estimated saving checked against ground truth computed from the test's own arrays,
and its transformation checked for unchanged values, the new types and a measured
(deep-size) decrease. The plugin machinery is checked with test plugins registered
through ``plugin_manager(extra=...)``: a plugin that raises while analysing is
isolated, and one that raises while applying leaves every agent exactly as it was.
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fa_memtool import hookspecs
from fa_memtool.containers import CompressedHistory, LazyBeliefArray
from fa_memtool.containers.history import encode_entry
from fa_memtool.errors import EXIT_USAGE, UsageError
from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl
from fa_memtool.plugins import (
    InstalledPlugin,
    PluginFailure,
    TransformationFailed,
    analyse,
    apply_candidate,
    installed,
    plugin_manager,
    select,
)
from fa_memtool.sizing import measure_population

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BUILT_INS = ["compressed-history", "lazy-beliefs", "lower-precision", "shared-parameters"]
N_AGENTS = 4
HISTORY_STEPS = 40
HISTORY_ENTRY = 512  # float64 elements per history entry (4 KiB)
BELIEF_SHAPE = (128, 80)  # 81920 bytes: above the 64 KiB lazy-beliefs minimum
TRANSITION_SHAPE = (64, 64)  # 32 KiB: identical on every agent
WEIGHTS_SIZE = 10_000  # 80000 bytes of float64 that survive float32


class Agent:
    """A plain agent; the population is built by ``make_population``."""


def make_population(n: int = N_AGENTS, seed: int = 1234) -> list[Agent]:
    """Agents with one attribute per built-in plugin (and one no plugin may touch).

    - ``transition``: the same float64 matrix, copied into every agent (shared-parameters);
    - ``belief``: a mostly-zero float64 array, agent i holds 10*(i+1) nonzeros (lazy-beliefs);
    - ``history``: a list of distinct, mostly-zero float64 entries (compressed-history);
    - ``weights``: dense random float64 values, different per agent (lower-precision);
    - ``huge``: float64 values near 1e300, which overflow float32 (nothing applies);
    - ``label``: a string.
    """
    rng = np.random.default_rng(seed)
    template = rng.standard_normal(TRANSITION_SHAPE)
    agents = []
    for index in range(n):
        agent = Agent()
        agent.transition = template.copy()
        belief = np.zeros(BELIEF_SHAPE)
        positions = rng.choice(belief.size, size=10 * (index + 1), replace=False)
        belief.flat[positions] = rng.random(positions.size) + 0.5
        agent.belief = belief
        history = []
        for step in range(HISTORY_STEPS):
            entry = np.zeros(HISTORY_ENTRY)
            entry[(step * 7 + index) % HISTORY_ENTRY] = step + 1 + index * 1000  # unique per agent and step
            history.append(entry)
        agent.history = history
        agent.weights = rng.random(WEIGHTS_SIZE)
        agent.huge = rng.random(WEIGHTS_SIZE) * 1e300 + 1e299
        agent.label = f"agent-{index}"
        agents.append(agent)
    return agents


@pytest.fixture(scope="module")
def manager() -> Any:
    return plugin_manager()


@pytest.fixture
def agents() -> list[Agent]:
    return make_population()


def context(**overrides: Any) -> AnalysisContext:
    values: dict[str, Any] = {"growing": {"history": float(HISTORY_ENTRY * 8)}}
    values.update(overrides)
    return AnalysisContext(**values)


def candidates_of(manager: Any, agents: list[Agent], plugin: str, ctx: AnalysisContext | None = None) -> dict[str, Candidate]:
    found, failures = analyse(manager, agents, ctx or context(), [plugin])
    assert failures == []
    assert all(candidate.plugin == plugin for candidate in found)
    by_attribute = {candidate.attribute: candidate for candidate in found}
    assert len(by_attribute) == len(found), "one candidate per attribute"
    return by_attribute


def distinct_bytes(agents: list[Agent]) -> int:
    return measure_population(agents, attribute_detail=False).distinct_bytes


def assert_measured_saving(before: int, after: int, candidate: Candidate, n: int = N_AGENTS, tolerance: float = 0.05) -> None:
    """The deep size fell, by about what the candidate estimated for the population."""
    measured = before - after
    estimated = candidate.estimated_bytes_saved_per_agent * n
    assert measured > 0, f"deep size did not decrease ({before} -> {after})"
    assert abs(measured - estimated) <= tolerance * estimated, f"measured saving {measured} vs estimated {estimated}"


# --------------------------------------------------------------------------- installation


def test_the_four_built_ins_are_installed_through_the_fa_mem_entry_point_group(manager: Any) -> None:
    found = installed(manager)
    assert all(isinstance(item, InstalledPlugin) for item in found)
    by_name = {item.name: item for item in found}
    assert sorted(by_name) == BUILT_INS
    assert [item.name for item in found] == sorted(item.name for item in found)
    for item in by_name.values():
        assert item.distribution == "fa-mem"
        assert item.version
        assert item.transforms.strip()
    assert select(manager, None) == BUILT_INS


def test_plugin_manager_returns_a_fresh_manager_each_time() -> None:
    first, second = plugin_manager(), plugin_manager()
    assert first is not second
    extra = _Recorder("only-in-first")
    with_extra = plugin_manager(extra=[extra])
    assert "only-in-first" in select(with_extra, None)
    assert "only-in-first" not in select(plugin_manager(), None)


def test_select_checks_and_strips_the_names_asked_for(manager: Any) -> None:
    assert select(manager, [" lazy-beliefs ", "shared-parameters", ""]) == ["lazy-beliefs", "shared-parameters"]
    assert select(manager, []) == []


def test_select_with_an_unknown_name_raises_usage_error_naming_the_installed_plugins(manager: Any) -> None:
    with pytest.raises(UsageError) as raised:
        select(manager, ["lazy-beliefs", "no-such-plugin"])
    message = str(raised.value)
    assert "'no-such-plugin'" in message
    assert "'lazy-beliefs'" not in message.split(";")[0], "only the unknown name is reported as unknown"
    for name in BUILT_INS:
        assert name in message
    assert raised.value.exit_code == EXIT_USAGE


# --------------------------------------------------------------------------- shared-parameters


def test_shared_parameters_finds_identical_matrices_and_estimates_n_minus_1_copies(manager: Any, agents: list[Agent]) -> None:
    found = candidates_of(manager, agents, "shared-parameters")
    assert sorted(found) == ["transition"], "only the transition matrices are identical across agents"
    nbytes = agents[0].transition.nbytes
    assert found["transition"].estimated_bytes_saved_per_agent == pytest.approx((N_AGENTS - 1) * nbytes / N_AGENTS)
    assert found["transition"].reason


def test_shared_parameters_counts_only_the_agents_that_share(manager: Any) -> None:
    """Three of five agents hold the same matrix; two hold matrices of their own."""
    rng = np.random.default_rng(7)
    common = rng.random((32, 32))
    agents = [Agent() for _ in range(5)]
    for index, agent in enumerate(agents):
        agent.matrix = common.copy() if index < 3 else rng.random((32, 32))
    found = candidates_of(manager, agents, "shared-parameters")
    assert found["matrix"].estimated_bytes_saved_per_agent == pytest.approx(2 * common.nbytes / 5)


def test_shared_parameters_apply_hands_every_agent_one_read_only_array(manager: Any, agents: list[Agent]) -> None:
    candidate = candidates_of(manager, agents, "shared-parameters")["transition"]
    originals = [agent.transition for agent in agents]
    expected = originals[0].copy()
    before = distinct_bytes(agents)

    apply_candidate(manager, agents, candidate)

    shared = agents[0].transition
    assert type(shared) is np.ndarray
    assert all(agent.transition is shared for agent in agents)
    assert np.array_equal(shared, expected)
    assert shared.dtype == expected.dtype and shared.shape == expected.shape
    with pytest.raises(ValueError):
        agents[1].transition[0, 0] = 1.0
    with pytest.raises(ValueError):
        shared.flags.writeable = True
    assert np.array_equal(shared, expected)
    # The agents' former arrays were copied, never locked or modified.
    assert all(original.flags.writeable for original in originals)
    assert all(np.array_equal(original, expected) for original in originals)
    assert_measured_saving(before, distinct_bytes(agents), candidate)
    # Already shared: nothing left to find.
    assert candidates_of(manager, agents, "shared-parameters") == {}


def test_shared_parameters_shares_arrays_inside_lists_and_object_arrays(manager: Any) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((16, 16)), rng.random((8, 32))
    agents = [Agent() for _ in range(3)]
    for agent in agents:
        agent.layers = [a.copy(), b.copy()]
        holder = np.empty(2, dtype=object)
        holder[0], holder[1] = a.copy(), b.copy()
        agent.pymdp_A = holder
    found = candidates_of(manager, agents, "shared-parameters")
    per_agent = 2 * (a.nbytes + b.nbytes) / 3
    assert found["layers"].estimated_bytes_saved_per_agent == pytest.approx(per_agent)
    assert found["pymdp_A"].estimated_bytes_saved_per_agent == pytest.approx(per_agent)
    for candidate in found.values():
        apply_candidate(manager, agents, candidate)
    for position, expected in enumerate((a, b)):
        assert all(agent.layers[position] is agents[0].layers[position] for agent in agents)
        assert all(agent.pymdp_A[position] is agents[0].pymdp_A[position] for agent in agents)
        assert np.array_equal(agents[2].layers[position], expected)
    assert type(agents[0].layers) is list
    assert agents[0].pymdp_A.dtype == object and agents[0].pymdp_A.shape == (2,)


def test_shared_parameters_apply_shares_the_arrays_of_a_deque_it_proposed(manager: Any) -> None:
    content = np.random.default_rng(5).random(2048)
    agents = [Agent() for _ in range(N_AGENTS)]
    for agent in agents:
        agent.recent = deque([content.copy()])
    candidate = candidates_of(manager, agents, "shared-parameters")["recent"]
    before = distinct_bytes(agents)
    apply_candidate(manager, agents, candidate)
    assert all(agent.recent[0] is agents[0].recent[0] for agent in agents)
    assert before - distinct_bytes(agents) >= 0.9 * candidate.estimated_bytes_saved_per_agent * N_AGENTS


# --------------------------------------------------------------------------- lazy-beliefs


def test_lazy_beliefs_estimates_dense_bytes_minus_a_value_and_an_index_per_nonzero(manager: Any, agents: list[Agent]) -> None:
    found = candidates_of(manager, agents, "lazy-beliefs")
    assert sorted(found) == ["belief"], "weights and huge are dense; transition is below 64 KiB"
    expected = sum(
        agent.belief.nbytes - np.count_nonzero(agent.belief) * (agent.belief.itemsize + 4) for agent in agents
    ) / len(agents)
    assert found["belief"].estimated_bytes_saved_per_agent == pytest.approx(expected)
    assert found["belief"].parameters["sparsity_threshold"] == pytest.approx(0.9)


def test_lazy_beliefs_ignores_arrays_below_the_sparsity_threshold_or_64_kib(manager: Any) -> None:
    agents = [Agent() for _ in range(3)]
    for index, agent in enumerate(agents):
        dense_enough = np.zeros(10_000)
        dense_enough[: 1000 + 1 if index == 2 else 10] = 1.0  # agent 2: 89.99 % zeros
        agent.belief = dense_enough
        agent.small = np.zeros(1000)  # 8000 bytes, all zero, but too small
        agent.ints = np.zeros(20_000, dtype=np.int64)  # not floating
    assert candidates_of(manager, agents, "lazy-beliefs") == {}


def test_lazy_beliefs_apply_stores_beliefs_sparsely_with_the_same_values(manager: Any, agents: list[Agent]) -> None:
    candidate = candidates_of(manager, agents, "lazy-beliefs")["belief"]
    originals = [agent.belief for agent in agents]
    expected = [original.copy() for original in originals]
    before = distinct_bytes(agents)

    apply_candidate(manager, agents, candidate)

    for agent, original, values in zip(agents, originals, expected):
        assert type(agent.belief) is LazyBeliefArray
        assert agent.belief.is_sparse
        assert agent.belief.nnz == np.count_nonzero(values)
        assert agent.belief.shape == values.shape and agent.belief.dtype == values.dtype
        assert np.array_equal(np.asarray(agent.belief), values)
        assert np.array_equal(original, values), "the dense array was not modified"
    # Reads that numpy would give as views come back as read-only copies.
    row = agents[0].belief[0]
    assert isinstance(row, np.ndarray) and not row.flags.writeable
    with pytest.raises(ValueError):
        row[0] = 1.0
    assert_measured_saving(before, distinct_bytes(agents), candidate)
    assert candidates_of(manager, agents, "lazy-beliefs") == {}


# --------------------------------------------------------------------------- compressed-history


def expected_history_saving(agents: list[Agent]) -> float:
    """The saving the plugin documents: held entries x entry size x (1 - zlib ratio of a sample)."""
    sample = list(agents[0].history)[-64:]
    raw = b"".join(encode_entry(entry) for entry in sample)
    ratio = len(zlib.compress(raw, 6)) / len(raw)
    entry_bytes = sum(sys.getsizeof(entry) for entry in sample) / len(sample)
    held = sum(len(agent.history) for agent in agents) / len(agents)
    return held * entry_bytes * (1 - ratio)


def test_compressed_history_needs_the_attribute_to_be_growing(manager: Any, agents: list[Agent]) -> None:
    assert candidates_of(manager, agents, "compressed-history", AnalysisContext()) == {}
    found = candidates_of(manager, agents, "compressed-history")
    assert sorted(found) == ["history"]
    assert found["history"].estimated_bytes_saved_per_agent == pytest.approx(expected_history_saving(agents))
    assert found["history"].parameters == {"compression_level": 6}


def test_compressed_history_skips_histories_it_cannot_store_losslessly(manager: Any) -> None:
    agents = [Agent() for _ in range(2)]
    for agent in agents:
        agent.history = [Agent() for _ in range(10)]  # arbitrary objects
        agent.tuples = tuple(np.zeros(512) for _ in range(10))  # not a list or deque
    ctx = AnalysisContext(growing={"history": 100.0, "tuples": 100.0})
    assert candidates_of(manager, agents, "compressed-history", ctx) == {}


def test_compressed_history_apply_keeps_every_entry_and_shrinks(manager: Any, agents: list[Agent]) -> None:
    candidate = candidates_of(manager, agents, "compressed-history")["history"]
    expected = [[entry.copy() for entry in agent.history] for agent in agents]
    before = distinct_bytes(agents)

    apply_candidate(manager, agents, candidate)

    for agent, entries in zip(agents, expected):
        assert type(agent.history) is CompressedHistory
        assert agent.history.maxlen is None
        assert agent.history.compression_level == 6
        assert len(agent.history) == len(entries)
        for stored, entry in zip(agent.history, entries):
            assert stored.dtype == entry.dtype and np.array_equal(stored, entry)
        # Reads are decoded copies: writing to one does not change the history.
        first = agent.history[0]
        first[:] = -1.0
        assert np.array_equal(agent.history[0], entries[0])
        agent.history.drop_cache()
    assert_measured_saving(before, distinct_bytes(agents), candidate)


def test_compressed_history_keeps_a_deque_maxlen(manager: Any) -> None:
    agents = [Agent() for _ in range(2)]
    for agent in agents:
        agent.recent = deque((np.zeros(512) for _ in range(30)), maxlen=50)
    candidate = candidates_of(manager, agents, "compressed-history", AnalysisContext(growing={"recent": 4096.0}))["recent"]
    apply_candidate(manager, agents, candidate)
    for agent in agents:
        assert type(agent.recent) is CompressedHistory and agent.recent.maxlen == 50 and len(agent.recent) == 30


# --------------------------------------------------------------------------- lower-precision


def test_lower_precision_estimates_half_the_float64_bytes_that_survive(manager: Any, agents: list[Agent]) -> None:
    found = candidates_of(manager, agents, "lower-precision")
    assert "huge" not in found, "values near 1e300 overflow float32"
    assert "label" not in found
    assert sorted(found) == ["belief", "history", "transition", "weights"]
    assert found["weights"].estimated_bytes_saved_per_agent == pytest.approx(agents[0].weights.nbytes / 2)
    assert found["belief"].estimated_bytes_saved_per_agent == pytest.approx(agents[0].belief.nbytes / 2)
    assert found["transition"].estimated_bytes_saved_per_agent == pytest.approx(agents[0].transition.nbytes / 2)
    history_bytes = sum(entry.nbytes for agent in agents for entry in agent.history)
    assert found["history"].estimated_bytes_saved_per_agent == pytest.approx(history_bytes / 2 / N_AGENTS)
    assert found["weights"].parameters == {"dtype": "float32", "rtol": 1e-5, "atol": 1e-8}


def test_lower_precision_follows_the_context_tolerance(manager: Any, agents: list[Agent]) -> None:
    strict = candidates_of(manager, agents, "lower-precision", context(rtol=1e-12, atol=0.0))
    # Random values need float64; small integers and zeros are exact in float32.
    assert "weights" not in strict and "transition" not in strict
    assert "history" in strict
    assert strict["history"].parameters == {"dtype": "float32", "rtol": 1e-12, "atol": 0.0}


def test_lower_precision_apply_converts_to_float32_within_the_tolerance(manager: Any, agents: list[Agent]) -> None:
    ctx = context()
    candidate = candidates_of(manager, agents, "lower-precision", ctx)["weights"]
    expected = [agent.weights.copy() for agent in agents]
    huge = [agent.huge for agent in agents]
    before = distinct_bytes(agents)

    apply_candidate(manager, agents, candidate)

    for agent, values, untouched in zip(agents, expected, huge):
        assert agent.weights.dtype == np.float32
        assert agent.weights.shape == values.shape
        assert np.allclose(agent.weights.astype(np.float64), values, rtol=ctx.rtol, atol=ctx.atol)
        assert agent.huge is untouched
    assert_measured_saving(before, distinct_bytes(agents), candidate)
    assert "weights" not in candidates_of(manager, agents, "lower-precision", ctx)


def test_lower_precision_apply_converts_inside_lists(manager: Any, agents: list[Agent]) -> None:
    candidate = candidates_of(manager, agents, "lower-precision")["history"]
    expected = [[entry.copy() for entry in agent.history] for agent in agents]
    apply_candidate(manager, agents, candidate)
    for agent, entries in zip(agents, expected):
        assert type(agent.history) is list
        assert all(entry.dtype == np.float32 for entry in agent.history)
        assert all(np.array_equal(new, old) for new, old in zip(agent.history, entries))


def test_lower_precision_apply_refuses_when_values_changed_since_the_analysis(manager: Any, agents: list[Agent]) -> None:
    candidate = candidates_of(manager, agents, "lower-precision")["weights"]
    originals = [agent.weights for agent in agents]
    agents[2].weights = np.full(WEIGHTS_SIZE, 1e300)  # no longer survives float32
    replaced = agents[2].weights
    with pytest.raises(TransformationFailed, match="lower-precision"):
        apply_candidate(manager, agents, candidate)
    expected = [originals[0], originals[1], replaced, originals[3]]
    assert all(agent.weights is value for agent, value in zip(agents, expected))
    assert all(agent.weights.dtype == np.float64 for agent in agents)


@pytest.mark.parametrize("container", ["dict", "deque"])
def test_lower_precision_apply_converts_the_arrays_it_counted(manager: Any, container: str) -> None:
    rng = np.random.default_rng(11)
    agents = [Agent() for _ in range(N_AGENTS)]
    for agent in agents:
        arrays = [rng.random(WEIGHTS_SIZE)]
        agent.params = {"w": arrays[0]} if container == "dict" else deque(arrays)
    candidate = candidates_of(manager, agents, "lower-precision")["params"]
    assert candidate.estimated_bytes_saved_per_agent == pytest.approx(WEIGHTS_SIZE * 8 / 2)
    apply_candidate(manager, agents, candidate)
    held = [agent.params["w"] if container == "dict" else agent.params[0] for agent in agents]
    assert all(array.dtype == np.float32 for array in held)


def test_lower_precision_keeps_an_array_shared_by_all_agents_shared(manager: Any) -> None:
    common = np.random.default_rng(12).random(WEIGHTS_SIZE)
    agents = [Agent() for _ in range(N_AGENTS)]
    for agent in agents:
        agent.prior = common
    candidate = candidates_of(manager, agents, "lower-precision")["prior"]
    assert candidate.estimated_bytes_saved_per_agent == pytest.approx(common.nbytes / 2 / N_AGENTS)
    before = distinct_bytes(agents)
    apply_candidate(manager, agents, candidate)
    assert all(agent.prior is agents[0].prior for agent in agents)
    assert distinct_bytes(agents) < before


# --------------------------------------------------------------------------- analyse()


def test_analyse_returns_every_plugins_candidates_largest_saving_first(manager: Any, agents: list[Agent]) -> None:
    found, failures = analyse(manager, agents, context(), select(manager, None))
    assert failures == []
    for candidate in found:
        assert candidate.reason.strip()
        assert json.loads(json.dumps(candidate.parameters, allow_nan=False)) == candidate.parameters, "JSON values only"
    savings = [candidate.estimated_bytes_saved_per_agent for candidate in found]
    assert savings == sorted(savings, reverse=True)
    assert {(candidate.plugin, candidate.attribute) for candidate in found} == {
        ("shared-parameters", "transition"),
        ("lazy-beliefs", "belief"),
        ("compressed-history", "history"),
        ("lower-precision", "belief"),
        ("lower-precision", "history"),
        ("lower-precision", "transition"),
        ("lower-precision", "weights"),
    }


def test_analyse_does_not_modify_the_agents(manager: Any, agents: list[Agent]) -> None:
    before = {index: dict(vars(agent)) for index, agent in enumerate(agents)}
    copies = [agent.belief.copy() for agent in agents]
    analyse(manager, agents, context(), select(manager, None))
    for index, agent in enumerate(agents):
        assert vars(agent).keys() == before[index].keys()
        assert all(vars(agent)[name] is value for name, value in before[index].items())
        assert np.array_equal(agent.belief, copies[index])
        assert agent.belief.flags.writeable


def test_exclude_drops_the_excluded_attributes_candidates(manager: Any, agents: list[Agent]) -> None:
    everything, _ = analyse(manager, agents, context(), select(manager, None))
    excluded, failures = analyse(manager, agents, context(exclude=frozenset({"belief", "history"})), select(manager, None))
    assert failures == []
    assert {candidate.attribute for candidate in excluded} == {"transition", "weights"}
    assert excluded == [candidate for candidate in everything if candidate.attribute not in {"belief", "history"}]


def test_analyse_only_asks_the_enabled_plugins(manager: Any, agents: list[Agent]) -> None:
    found, _ = analyse(manager, agents, context(), ["lazy-beliefs", "shared-parameters"])
    assert {candidate.plugin for candidate in found} == {"lazy-beliefs", "shared-parameters"}
    assert analyse(manager, agents, context(), []) == ([], [])


# --------------------------------------------------------------------------- test plugins


class _Recorder:
    """A well-behaved test plugin: proposes every attribute it is told to, records applies."""

    def __init__(self, name: str, attribute: str = "label", saving: float = 1.0) -> None:
        self.name, self.attribute, self.saving = name, attribute, saving
        self.applied: list[Candidate] = []

    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        return PluginInfo(self.name, "test plugin")

    @hookimpl
    def fa_mem_analyse(self, agents: list[Any], context: AnalysisContext) -> list[Any]:
        return [
            Candidate(self.name, self.attribute, self.saving, "test"),
            "not a candidate",  # ignored
        ]

    @hookimpl
    def fa_mem_apply(self, agents: list[Any], candidate: Candidate) -> bool | None:
        if candidate.plugin != self.name:
            return None
        self.applied.append(candidate)
        for agent in agents:
            setattr(agent, candidate.attribute, f"applied:{getattr(agent, candidate.attribute, None)}")
        return True


class _BrokenAnalysis:
    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        return PluginInfo("broken-analysis", "raises while analysing")

    @hookimpl
    def fa_mem_analyse(self, agents: list[Any], context: AnalysisContext) -> list[Candidate]:
        raise RuntimeError("analysis exploded")


class _HalfWay:
    """Changes the attribute on the first ``changed`` agents, then raises (or returns None)."""

    def __init__(self, name: str = "half-way", changed: int = 2, then: str = "raise") -> None:
        self.name, self.changed, self.then = name, changed, then

    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        return PluginInfo(self.name, "changes some agents, then fails")

    @hookimpl
    def fa_mem_apply(self, agents: list[Any], candidate: Candidate) -> bool | None:
        if candidate.plugin != self.name:
            return None
        for agent in agents[: self.changed]:
            setattr(agent, candidate.attribute, np.zeros(3))
        if self.then == "raise":
            raise RuntimeError("failed half-way")
        return None


def test_a_plugin_registered_by_hand_is_listed_without_a_distribution(agents: list[Agent]) -> None:
    recorder = _Recorder("by-hand")
    manager = plugin_manager(extra=[recorder])
    listed = {item.name: item for item in installed(manager)}
    assert listed["by-hand"] == InstalledPlugin("by-hand", "test plugin", "", "")
    found, failures = analyse(manager, agents, context(), ["by-hand"])
    assert failures == []
    assert found == [Candidate("by-hand", "label", 1.0, "test")]
    labels = [agent.label for agent in agents]
    apply_candidate(manager, agents, found[0])
    assert [agent.label for agent in agents] == [f"applied:{label}" for label in labels]
    assert recorder.applied == found


def test_a_plugin_that_raises_while_analysing_is_reported_and_the_others_still_answer(agents: list[Agent]) -> None:
    manager = plugin_manager(extra=[_BrokenAnalysis(), _Recorder("healthy")])
    enabled = select(manager, None)
    assert "broken-analysis" in enabled
    found, failures = analyse(manager, agents, context(), enabled)
    assert failures == [PluginFailure("broken-analysis", "analyse", "RuntimeError: analysis exploded")]
    plugins = {candidate.plugin for candidate in found}
    assert plugins == set(BUILT_INS) | {"healthy"}
    built_in_only, _ = analyse(plugin_manager(), agents, context(), BUILT_INS)
    assert [candidate for candidate in found if candidate.plugin != "healthy"] == built_in_only


def test_a_plugin_that_raises_half_way_through_apply_leaves_every_agent_as_it_was(agents: list[Agent]) -> None:
    manager = plugin_manager(extra=[_HalfWay()])
    originals = [agent.weights for agent in agents]
    others = [dict(vars(agent)) for agent in agents]
    with pytest.raises(TransformationFailed) as raised:
        apply_candidate(manager, agents, Candidate("half-way", "weights", 1.0, "test"))
    assert "half-way" in str(raised.value) and "weights" in str(raised.value)
    assert "failed half-way" in str(raised.value)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert all(agent.weights is original for agent, original in zip(agents, originals))
    for agent, attributes in zip(agents, others):
        assert vars(agent).keys() == attributes.keys()
        assert all(vars(agent)[name] is value for name, value in attributes.items())


def test_a_plugin_that_changes_agents_and_declines_is_rolled_back(agents: list[Agent]) -> None:
    manager = plugin_manager(extra=[_HalfWay("decliner", changed=3, then="return-none")])
    originals = [agent.belief for agent in agents]
    with pytest.raises(TransformationFailed, match="did not apply"):
        apply_candidate(manager, agents, Candidate("decliner", "belief", 1.0, "test"))
    assert all(agent.belief is original for agent, original in zip(agents, originals))


def test_rollback_removes_an_attribute_the_plugin_added(agents: list[Agent]) -> None:
    manager = plugin_manager(extra=[_HalfWay()])
    del agents[1].weights
    originals = {index: agent.weights for index, agent in enumerate(agents) if index != 1}
    with pytest.raises(TransformationFailed):
        apply_candidate(manager, agents, Candidate("half-way", "weights", 1.0, "test"))
    assert not hasattr(agents[1], "weights")
    assert all(agents[index].weights is value for index, value in originals.items())


def test_apply_through_a_plugin_that_is_not_installed_fails_cleanly(manager: Any, agents: list[Agent]) -> None:
    weights = [agent.weights for agent in agents]
    with pytest.raises(TransformationFailed, match="not installed"):
        apply_candidate(manager, agents, Candidate("no-such-plugin", "weights", 1.0, "test"))
    assert all(agent.weights is value for agent, value in zip(agents, weights))


def test_a_built_in_that_cannot_apply_is_rolled_back(manager: Any) -> None:
    """compressed-history looks at one agent's entries; another agent's cannot be stored."""
    agents = [Agent() for _ in range(3)]
    for agent in agents:
        agent.history = [np.zeros(512) for _ in range(20)]
    agents[2].history = [np.zeros(512) for _ in range(19)] + [Agent()]
    candidate = candidates_of(manager, agents, "compressed-history", AnalysisContext(growing={"history": 1.0}))["history"]
    originals = [agent.history for agent in agents]
    with pytest.raises(TransformationFailed, match="compressed-history"):
        apply_candidate(manager, agents, candidate)
    assert all(agent.history is original for agent, original in zip(agents, originals))
    assert all(type(agent.history) is list for agent in agents)


class _SubsetArguments:
    """Valid for pluggy: a hook implementation may accept a subset of the spec's arguments."""

    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        return PluginInfo("subset-arguments", "takes only some hook arguments")

    @hookimpl
    def fa_mem_analyse(self, agents: list[Any]) -> list[Candidate]:
        return [Candidate("subset-arguments", "label", 1.0, "test")]


def test_a_hook_implementation_taking_a_subset_of_the_arguments_is_called_as_pluggy_allows(agents: list[Agent]) -> None:
    manager = plugin_manager(extra=[_SubsetArguments()])
    found, failures = analyse(manager, agents, context(), ["subset-arguments"])
    assert failures == []
    assert found == [Candidate("subset-arguments", "label", 1.0, "test")]


class _BrokenInfo:
    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        raise RuntimeError("cannot describe myself")

    @hookimpl
    def fa_mem_analyse(self, agents: list[Any], context: AnalysisContext) -> list[Candidate]:
        return []


def test_a_plugin_whose_info_raises_does_not_stop_the_others(agents: list[Agent]) -> None:
    manager = plugin_manager(extra=[_BrokenInfo()])
    assert [item.name for item in installed(manager)] == BUILT_INS
    found, _failures = analyse(manager, agents, context(), select(manager, None))
    assert {candidate.plugin for candidate in found} == set(BUILT_INS)


# --------------------------------------------------------------------------- documentation


def _hookspec_names() -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(name for name, value in vars(hookspecs).items() if callable(value) and hasattr(value, marker))


def test_the_hookspecs_include_the_plugin_hooks() -> None:
    assert {"fa_mem_plugin_info", "fa_mem_analyse", "fa_mem_apply"} <= set(_hookspec_names())


@pytest.mark.parametrize("plugin", BUILT_INS)
def test_each_built_in_answers_only_for_its_own_candidates_through_the_firstresult_hooks(manager: Any, plugin: str) -> None:
    """``fa_mem_apply`` is firstresult: the built-ins return None for other plugins' candidates."""
    agents = make_population(2)
    foreign = Candidate("someone-else", "weights", 1.0, "test")
    weights = [agent.weights for agent in agents]
    assert manager.hook.fa_mem_apply(agents=agents, candidate=foreign) is None
    assert all(agent.weights is value for agent, value in zip(agents, weights))
    if hasattr(manager.hook, "fa_mem_adoption"):
        assert manager.hook.fa_mem_adoption(candidate=foreign, expression="np.zeros(3)") is None
        own = Candidate(plugin, "weights", 1.0, "test")
        adopted = manager.hook.fa_mem_adoption(candidate=own, expression="np.zeros(3)")
        assert isinstance(adopted, str) and "np.zeros(3)" in adopted


@pytest.mark.parametrize("hook", _hookspec_names())
def test_every_hookspec_is_documented_in_docs_plugins_md(hook: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert re.search(rf"`{hook}(\([^`]*\))?`", text), f"docs/plugins.md does not document `{hook}`"


@pytest.mark.parametrize("dataclass", [PluginInfo, AnalysisContext, Candidate])
def test_every_field_of_the_plugin_dataclasses_is_documented(dataclass: type) -> None:
    import dataclasses

    text = DOCS.read_text(encoding="utf-8")
    assert f"`{dataclass.__name__}`" in text
    for item in dataclasses.fields(dataclass):
        assert f"`{item.name}`" in text, f"docs/plugins.md does not document {dataclass.__name__}.{item.name}"


def test_docs_name_every_built_in_plugin_and_the_entry_point_group() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in BUILT_INS:
        assert f"`{name}`" in text
    assert "`fa_mem`" in text
    assert "[project.entry-points.fa_mem]" in text
