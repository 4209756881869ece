"""The transformation plugin system: loading, analysing, applying, rolling back.

Every built-in plugin is exercised on a small population built here, with its
estimated saving checked against ground truth computed from the test's own arrays,
and its transformation checked for unchanged values, the new types and a measured
(deep-size) decrease. Candidates name paths: arrays inside lists, dicts, object arrays
and nested objects (a pymdp Agent held by a wrapper, a gymnasium environment) are found
where they are, and an object held at two paths is replaced at both. The plugin
machinery is checked with test plugins registered through ``plugin_manager(extra=...)``:
a plugin that raises while analysing is isolated, and one that raises while applying
leaves every agent exactly as it was.
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
    priorities,
    select,
)
from fa_memtool.sizing import measure_population

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BUILT_INS = ["bounded-cache", "bounded-history", "compressed-history", "lazy-beliefs", "lower-precision", "shared-parameters", "shared-structures"]
# The built-ins with a candidate on make_population(): it holds no growing dict (bounded-cache)
# and no plain-Python table (shared-structures).
PROPOSING = set(BUILT_INS) - {"bounded-cache", "shared-structures"}
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


def test_the_built_ins_are_installed_through_the_fa_mem_entry_point_group(manager: Any) -> None:
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


def test_plugin_manager_is_one_per_process_and_fresh_with_extra_plugins() -> None:
    first, second = plugin_manager(), plugin_manager()
    assert first is second, "entry points are loaded once"
    extra = _Recorder("only-in-first")
    with_extra = plugin_manager(extra=[extra])
    assert with_extra is not first
    assert "only-in-first" in select(with_extra, None)
    assert "only-in-first" not in select(plugin_manager(), None)


def test_plugins_declare_their_priority_in_their_info(manager: Any) -> None:
    order = priorities(manager)
    assert order["lower-precision"] < order["shared-parameters"] < order["lazy-beliefs"] < order["compressed-history"]
    assert order["compressed-history"] < order["bounded-history"], "a bound keeps the compressed form"
    third = plugin_manager(extra=[_Recorder("early", priority=1), _Recorder("default")])
    assert priorities(third)["early"] == 1 and priorities(third)["default"] == 100


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
    # One candidate per array, at its own path: (3 - 1) copies of it saved over 3 agents.
    assert sorted(found) == ["layers[0]", "layers[1]", "pymdp_A[0]", "pymdp_A[1]"]
    for prefix in ("layers", "pymdp_A"):
        assert found[f"{prefix}[0]"].estimated_bytes_saved_per_agent == pytest.approx(2 * a.nbytes / 3)
        assert found[f"{prefix}[1]"].estimated_bytes_saved_per_agent == pytest.approx(2 * b.nbytes / 3)
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
    candidate = candidates_of(manager, agents, "shared-parameters")["recent[0]"]
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
    # Reads that numpy would give as views write through, as an ndarray's do.
    row = agents[0].belief[0]
    kept = float(row[0])
    row[0] = kept + 1.0
    assert agents[0].belief[0, 0] == kept + 1.0
    row[0] = kept
    assert np.array_equal(np.asarray(agents[0].belief), expected[0])
    assert_measured_saving(before, distinct_bytes(agents), candidate)
    assert candidates_of(manager, agents, "lazy-beliefs") == {}


# --------------------------------------------------------------------------- compressed-history


def expected_history_saving(agents: list[Agent]) -> float:
    """The saving the plugin documents: the entries freed (each array owns its data, so
    its deep size is getsizeof) minus every entry encoded and compressed at the zlib
    ratio of a sample of the first agent's last 64 entries."""
    sample = list(agents[0].history)[-64:]
    raw = b"".join(encode_entry(entry) for entry in sample)
    ratio = len(zlib.compress(raw, 6)) / len(raw)
    entry_bytes = sum(sys.getsizeof(entry) for entry in sample) / len(sample)
    held = sum(len(agent.history) for agent in agents)
    return (held * entry_bytes - held * len(raw) / len(sample) * ratio) / len(agents)


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
    assert sorted(found) == ["belief", "history[*]", "transition", "weights"], "the history's entries, as one path"
    assert found["weights"].estimated_bytes_saved_per_agent == pytest.approx(agents[0].weights.nbytes / 2)
    assert found["belief"].estimated_bytes_saved_per_agent == pytest.approx(agents[0].belief.nbytes / 2)
    assert found["transition"].estimated_bytes_saved_per_agent == pytest.approx(agents[0].transition.nbytes / 2)
    history_bytes = sum(entry.nbytes for agent in agents for entry in agent.history)
    assert found["history[*]"].estimated_bytes_saved_per_agent == pytest.approx(history_bytes / 2 / N_AGENTS)
    assert found["weights"].parameters == {"dtype": "float32", "rtol": 1e-5, "atol": 1e-8}


def test_lower_precision_follows_the_context_tolerance(manager: Any, agents: list[Agent]) -> None:
    strict = candidates_of(manager, agents, "lower-precision", context(rtol=1e-12, atol=0.0))
    # Random values need float64; small integers and zeros are exact in float32.
    assert "weights" not in strict and "transition" not in strict
    assert "history[*]" in strict
    assert strict["history[*]"].parameters == {"dtype": "float32", "rtol": 1e-12, "atol": 0.0}


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
    candidate = candidates_of(manager, agents, "lower-precision")["history[*]"]
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
    path = 'params["w"]' if container == "dict" else "params[0]"
    candidate = candidates_of(manager, agents, "lower-precision")[path]
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
        assert candidate.reason.strip() and candidate.kind and candidate.message.startswith(candidate.attribute)
        assert json.loads(json.dumps(candidate.parameters, allow_nan=False)) == candidate.parameters, "JSON values only"
        assert json.loads(json.dumps(candidate.evidence, allow_nan=False)) == candidate.evidence, "JSON values only"
    savings = [candidate.estimated_bytes_saved_per_agent for candidate in found]
    assert savings == sorted(savings, reverse=True)
    assert {(candidate.plugin, candidate.attribute) for candidate in found} == {
        ("shared-parameters", "transition"),
        ("lazy-beliefs", "belief"),
        ("compressed-history", "history"),
        ("bounded-history", "history"),
        ("lower-precision", "belief"),
        ("lower-precision", "history[*]"),
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
    assert {candidate.attribute for candidate in excluded} == {"transition", "weights"}, "history[*] lies inside history"
    assert excluded == [candidate for candidate in everything if candidate.attribute.split("[")[0] not in {"belief", "history"}]


def test_analyse_only_asks_the_enabled_plugins(manager: Any, agents: list[Agent]) -> None:
    found, _ = analyse(manager, agents, context(), ["lazy-beliefs", "shared-parameters"])
    assert {candidate.plugin for candidate in found} == {"lazy-beliefs", "shared-parameters"}
    assert analyse(manager, agents, context(), []) == ([], [])


# --------------------------------------------------------------------------- test plugins


class _Recorder:
    """A well-behaved test plugin: proposes every attribute it is told to, records applies."""

    def __init__(self, name: str, attribute: str = "label", saving: float = 1.0, priority: int | None = None) -> None:
        self.name, self.attribute, self.saving, self.priority = name, attribute, saving, priority
        self.applied: list[Candidate] = []

    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        if self.priority is None:
            return PluginInfo(self.name, "test plugin")
        return PluginInfo(self.name, "test plugin", self.priority)

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
    assert plugins == PROPOSING | {"healthy"}
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
    assert {candidate.plugin for candidate in found} == PROPOSING


# --------------------------------------------------------------------------- paths inside objects


def _load_workload(name: str) -> Any:
    import importlib.util

    location = Path(__file__).resolve().parents[1] / "integration" / "optimize_workloads" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"fa_mem_test_{name}", location)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pymdp_agents_inside_wrappers_are_analysed_at_their_paths(manager: Any) -> None:
    """Each wrapper holds its own pymdp Agent as .agent: B[0] is found one level down,
    identical on every agent and mostly zeros, with the estimates computed here."""
    workload = _load_workload("pymdp_agents")
    agents = workload.create_agents(3, 0)
    B = agents[0].agent.B[0]
    assert type(agents[0].agent).__name__ == "Agent" and B.dtype == np.float64 and B.nbytes == 144 * 144 * 5 * 8
    assert all(agent.agent.B[0] is not B for agent in agents[1:]), "every agent builds its own copy"
    shared = candidates_of(manager, agents, "shared-parameters")
    assert shared["agent.B[0]"].estimated_bytes_saved_per_agent == pytest.approx(2 * B.nbytes / 3)
    assert shared["agent.A[0]"].estimated_bytes_saved_per_agent == pytest.approx(2 * agents[0].agent.A[0].nbytes / 3)
    lazy = candidates_of(manager, agents, "lazy-beliefs")["agent.B[0]"]
    zeros = 1.0 - np.count_nonzero(B) / B.size
    assert zeros > 0.98
    assert lazy.estimated_bytes_saved_per_agent == pytest.approx(B.nbytes - np.count_nonzero(B) * (8 + 4))
    assert lazy.evidence["min_zero_fraction"] == pytest.approx(zeros)
    assert "agent.B" not in shared, "the object array is not counted again: its element is"

    before = distinct_bytes(agents)
    apply_candidate(manager, agents, shared["agent.B[0]"])
    assert all(agent.agent.B[0] is agents[0].agent.B[0] for agent in agents)
    assert agents[0].agent.B.dtype == object, "the pymdp object array is kept; its element is replaced"
    assert before - distinct_bytes(agents) == pytest.approx(2 * B.nbytes, abs=1024)


def test_a_nested_growing_history_is_proposed_at_its_path(manager: Any) -> None:
    workload = _load_workload("pymdp_agents")
    agents = workload.create_agents(2, 0)
    for agent in agents:
        agent.agent.qs_hist = [np.full(144, step / 144.0) for step in range(12)]
    ctx = AnalysisContext(growing={"agent.qs_hist": 1200.0}, steps=12)
    bounded = [c for c in analyse(manager, agents, ctx, ["bounded-history"])[0] if c.attribute == "agent.qs_hist"]
    assert [c.parameters["maxlen"] for c in bounded] == [1, 2, 4], "one entry a step, doubled while it keeps at most half"
    entry = sys.getsizeof(np.full(144, 0.0))
    assert bounded[0].estimated_bytes_saved_per_agent == pytest.approx(11 * entry)
    apply_candidate(manager, agents, bounded[0])
    assert all(type(agent.agent.qs_hist) is deque and agent.agent.qs_hist.maxlen == 1 for agent in agents)
    assert np.array_equal(agents[0].agent.qs_hist[0], np.full(144, 11 / 144.0)), "the most recent entry is kept"


class _Cached:
    """One array reachable by two paths: a cache and the model it came from."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.model = Agent()
        self.model.A = np.empty(1, dtype=object)
        self.model.A[0] = matrix.copy()
        self.matrix_cache = {"A": self.model.A[0]}


def test_an_array_at_two_paths_is_replaced_at_both_and_really_freed(manager: Any) -> None:
    matrix = np.random.default_rng(9).random((96, 96))
    agents = [_Cached(matrix) for _ in range(N_AGENTS)]
    found = candidates_of(manager, agents, "shared-parameters")
    assert list(found) == ['matrix_cache["A"]'], "named once, at its shortest path"
    candidate = found['matrix_cache["A"]']
    assert candidate.estimated_bytes_saved_per_agent == pytest.approx((N_AGENTS - 1) * matrix.nbytes / N_AGENTS)
    before = measure_population(agents)
    apply_candidate(manager, agents, candidate)
    for agent in agents:
        assert agent.model.A[0] is agent.matrix_cache["A"] is agents[0].model.A[0]
    after = measure_population(agents)
    # Both references were replaced: the N copies are gone, one pooled copy remains.
    assert before.distinct_bytes - after.distinct_bytes == pytest.approx((N_AGENTS - 1) * matrix.nbytes, abs=1024)
    per_agent = sum(agent.amortized_bytes for agent in after.agents) / N_AGENTS
    assert sum(agent.amortized_bytes for agent in before.agents) / N_AGENTS - per_agent == pytest.approx(
        candidate.estimated_bytes_saved_per_agent, abs=1024
    )


def test_an_alias_that_cannot_be_replaced_is_not_counted(manager: Any) -> None:
    """A view of the buffer elsewhere keeps it alive: no saving is promised for it."""
    matrix = np.zeros((200, 100))
    matrix[0, :3] = 1.0
    agents = [_Cached(matrix) for _ in range(N_AGENTS)]
    agents[0].first_row = agents[0].model.A[0][0]  # type: ignore[attr-defined]
    lazy = candidates_of(manager, agents, "lazy-beliefs")['matrix_cache["A"]']
    saving = matrix.nbytes - 3 * (8 + 4)
    assert lazy.estimated_bytes_saved_per_agent == pytest.approx((N_AGENTS - 1) * saving / N_AGENTS)
    assert ".first_row" in lazy.reason and "not counted" in lazy.reason
    for agent in agents:
        agent.first_row = agent.model.A[0][0]  # type: ignore[attr-defined]
    assert "matrix_cache[\"A\"]" not in candidates_of(manager, agents, "lazy-beliefs")


def test_the_parts_of_scipy_sparse_matrices_are_paths_too(manager: Any) -> None:
    import scipy.sparse

    rng = np.random.default_rng(21)
    template = scipy.sparse.random(400, 400, density=0.05, format="csr", random_state=rng)
    agents = [Agent() for _ in range(3)]
    for agent in agents:
        agent.W = template.copy()
    found = candidates_of(manager, agents, "shared-parameters")
    for part in ("data", "indices", "indptr"):
        nbytes = getattr(template, part).nbytes
        assert found[f"W.{part}"].estimated_bytes_saved_per_agent == pytest.approx(2 * nbytes / 3), part
    for part in ("data", "indices", "indptr"):
        apply_candidate(manager, agents, found[f"W.{part}"])
    vector = rng.random(400)
    assert all(agent.W.indices is agents[0].W.indices for agent in agents)
    assert np.allclose(agents[2].W @ vector, template @ vector), "the shared parts still multiply"


def test_analysis_may_be_restricted_to_known_paths(manager: Any, agents: list[Agent]) -> None:
    only, failures = analyse(manager, agents, context(paths=["transition"]), select(manager, None))
    assert failures == []
    assert {candidate.attribute for candidate in only} == {"transition"}


def test_a_failed_nested_apply_is_undone_at_every_path() -> None:
    class _NestedHalfWay:
        @hookimpl
        def fa_mem_plugin_info(self) -> PluginInfo:
            return PluginInfo("nested-half-way", "writes inside, then fails")

        @hookimpl
        def fa_mem_apply(self, agents: list[Any], candidate: Candidate) -> bool | None:
            if candidate.plugin != "nested-half-way":
                return None
            from fa_memtool.paths import assign

            assign(agents[0], "model.A[0]", np.zeros(1))
            assign(agents[1], 'matrix_cache["A"]', np.zeros(1))
            raise RuntimeError("failed half-way")

    agents = [_Cached(np.ones((4, 4))) for _ in range(3)]
    originals = [agent.model.A[0] for agent in agents]
    with pytest.raises(TransformationFailed, match="failed half-way"):
        apply_candidate(plugin_manager(extra=[_NestedHalfWay()]), agents, Candidate("nested-half-way", "model.A[0]", 1.0, "test"))
    for agent, original in zip(agents, originals):
        assert agent.model.A[0] is original and agent.matrix_cache["A"] is original


# --------------------------------------------------------------------------- shared-structures


def _taxi_agents(n: int) -> list[Any]:
    import gymnasium

    class QAgent:
        def __init__(self, seed: int) -> None:
            self.env = gymnasium.make("Taxi-v4")
            self.observation, _ = self.env.reset(seed=seed)
            self.q = np.zeros((500, 6))

    return [QAgent(seed) for seed in range(n)]


def test_shared_structures_shares_a_gymnasium_transition_table(manager: Any) -> None:
    from fa_memtool.containers import FrozenDict
    from fa_memtool.sizing import deep_size

    agents = _taxi_agents(N_AGENTS)
    copies = [agent.env.unwrapped.P for agent in agents]
    table = copies[0]
    assert type(table) is dict and len(table) == 500 and all(copy is not table for copy in copies[1:])
    found = candidates_of(manager, agents, "shared-structures")
    path = "env.env.env.env.P"  # TimeLimit -> OrderEnforcing -> PassiveEnvChecker -> TaxiEnv
    assert list(found) == [path], "the table itself, not each of its rows"
    assert found[path].kind == "identical-structures"
    # What one copy frees: every copy's objects, minus those all copies already share
    # (the 1.0 probability is one constant of the environment's code), minus the copy kept.
    expected = deep_size(tuple(copies)) - sys.getsizeof(tuple(copies)) - deep_size(table)
    assert expected == pytest.approx((N_AGENTS - 1) * deep_size(table), rel=1e-3)
    assert found[path].estimated_bytes_saved_per_agent == pytest.approx(expected / N_AGENTS)
    reference = {state: {action: list(rows) for action, rows in actions.items()} for state, actions in table.items()}

    before = distinct_bytes(agents)
    apply_candidate(manager, agents, found[path])
    assert before - distinct_bytes(agents) == pytest.approx(expected, rel=1e-3)

    shared = agents[0].env.unwrapped.P
    assert all(agent.env.unwrapped.P is shared for agent in agents)
    assert type(shared) is FrozenDict and shared == reference and list(shared) == list(reference)
    assert shared[328][1] == reference[328][1] and isinstance(shared[328], dict)
    with pytest.raises(TypeError, match="read-only"):
        shared[0][0].append((1.0, 0, 0, False))
    with pytest.raises(TypeError):
        shared[0] = {}
    for agent in agents:  # the environment still steps with the shared table
        agent.env.step(1)
    assert candidates_of(manager, agents, "shared-structures") == {}, "shared already: nothing left to find"


def test_shared_structures_ignores_tables_that_differ_or_grow(manager: Any) -> None:
    agents = [Agent() for _ in range(3)]
    for index, agent in enumerate(agents):
        agent.table = {state: [(state, 1.0)] * 4 for state in range(64)}
        agent.own = {state: [(state, float(index))] for state in range(64)}
        agent.log = [(step, "event") for step in range(200)]
    found = candidates_of(manager, agents, "shared-structures", AnalysisContext(growing={"log": 24.0}))
    assert sorted(found) == ["table"]


# --------------------------------------------------------------------------- bounded caches


def test_bounded_cache_keeps_the_most_recent_entries(manager: Any) -> None:
    from fa_memtool.containers import BoundedCache

    agents = [Agent() for _ in range(2)]
    for agent in agents:
        agent.memo = {1000 + step: np.full(16, float(step)) for step in range(40)}
    ctx = AnalysisContext(growing={"memo": 200.0}, steps=20)  # two entries a step
    found = [c for c in analyse(manager, agents, ctx, ["bounded-cache"])[0] if c.attribute == "memo"]
    assert [c.parameters["maxsize"] for c in found] == [2, 4, 8, 16]
    apply_candidate(manager, agents, found[0])
    for agent in agents:
        assert type(agent.memo) is BoundedCache and agent.memo.maxsize == 2
        assert list(agent.memo) == [1038, 1039]


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
        own = Candidate(plugin, "weights", 1.0, "test", {"maxlen": 4, "maxsize": 4})  # the bounds carry their N
        adopted = manager.hook.fa_mem_adoption(candidate=own, expression="np.zeros(3)")
        assert isinstance(adopted, str) and "np.zeros(3)" in adopted
        compile(adopted, "<adoption>", "eval")


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
