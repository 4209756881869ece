"""The profile's suggestions: the plugins' own candidates, one number per finding.

Every expected saving is computed here from the test's arrays (nbytes, count_nonzero,
getsizeof, zlib), never read back from the code under test; and every suggestion's
estimate is checked to be exactly the estimate of the plugin candidate it comes from.
"""

from __future__ import annotations

import sys
import zlib
from collections import deque
from typing import Any

import numpy as np
import pytest

from fa_memtool import analysis
from fa_memtool.containers.history import encode_entry
from fa_memtool.hookspecs import AnalysisContext
from fa_memtool.plugins import analyse, plugin_manager, select
from fa_memtool.sizing import deep_size


class Agent:
    pass


def population(count: int, **attributes: Any) -> list[Agent]:
    """Agents whose attribute ``name`` is ``values[i]`` for agent i."""
    agents = [Agent() for _ in range(count)]
    for name, values in attributes.items():
        for agent, value in zip(agents, values):
            setattr(agent, name, value)
    return agents


def suggestions(agents: list[Agent], context: AnalysisContext | None = None, **options: Any) -> list[Any]:
    found, failures = analysis.suggest(
        agents, context or AnalysisContext(), agents=len(agents), steps=options.pop("steps", 0), sites=options.pop("sites", {}), **options
    )
    assert failures == []
    return found


def of(found: list[Any], kind: str, attribute: str) -> Any:
    matching = [item for item in found if item.kind == kind and item.attribute == attribute]
    assert len(matching) == 1, [(item.kind, item.attribute) for item in found]
    return matching[0]


def test_numeric_arrays_open_object_arrays_and_containers() -> None:
    a, b = np.zeros(3), np.ones(4)
    matrices = np.empty(2, dtype=object)
    matrices[0], matrices[1] = a, b
    found = analysis.numeric_arrays(matrices)
    assert [id(x) for x in found] == [id(a), id(b)]
    assert len(analysis.numeric_arrays([a, b, "text"])) == 2
    assert len(analysis.numeric_arrays({"x": a})) == 1
    assert analysis.numeric_arrays("text") == []


def test_zero_fraction_is_counted_from_the_values() -> None:
    array = np.zeros(1000)
    array[:37] = 1.5
    assert analysis.zero_fraction([array]) == pytest.approx(963 / 1000)
    assert analysis.zero_fraction([]) is None


def test_mostly_zeros_saving_is_what_lazy_beliefs_stores_less() -> None:
    beliefs = []
    for index in range(3):
        belief = np.zeros((200, 200))
        belief[index, : 10 + index] = 0.1
        beliefs.append(belief)
    found = suggestions(population(3, beliefs=beliefs))
    zeros = of(found, "mostly-zeros", "beliefs")
    # A LazyBeliefArray holds a value and an int32 position per non-zero.
    sparse = sum(np.count_nonzero(b) * (b.itemsize + 4) for b in beliefs)
    dense = sum(b.nbytes for b in beliefs)
    assert zeros.estimated_bytes_saved_total == pytest.approx(dense - sparse)
    assert zeros.estimated_bytes_saved_per_agent == pytest.approx((dense - sparse) / 3)
    assert zeros.transformation == "lazy-beliefs"
    assert zeros.evidence["dense_bytes"] == dense and zeros.evidence["sparse_bytes"] == sparse


def test_identical_arrays_across_agents_but_not_shared_objects() -> None:
    base = np.linspace(0, 1, 10_000)
    found = suggestions(population(4, A=[base.copy() for _ in range(4)]), sites={"A": "m.py:3"})
    identical = of(found, "identical-across-agents", "A")
    assert identical.estimated_bytes_saved_total == pytest.approx(3 * base.nbytes)
    assert identical.site == "m.py:3"
    # The same object held by every agent is already shared: nothing to suggest.
    shared = suggestions(population(4, A=[base] * 4))
    assert not [item for item in shared if item.kind == "identical-across-agents"]


def test_arrays_inside_objects_are_found_at_their_path_with_the_enclosing_site() -> None:
    class Model:
        def __init__(self) -> None:
            self.B = np.empty(1, dtype=object)
            self.B[0] = np.eye(128)

    agents = population(3, model=[Model() for _ in range(3)])
    found = suggestions(agents, sites={"model": "agents.py:9"})
    identical = of(found, "identical-across-agents", "model.B[0]")
    assert identical.estimated_bytes_saved_total == pytest.approx(2 * np.eye(128).nbytes)
    assert identical.site == "agents.py:9", "the top-level attribute's site serves the paths inside it"
    assert identical.adoption == "self.model.B[0] = get_shared_pool().share(self.model.B[0])  # after self.model is built"


def test_float32_suggestion_checks_the_values() -> None:
    safe = [np.full(20_000, 0.25) for _ in range(2)]
    lower = of(suggestions(population(2, p=safe)), "float32-safe", "p")
    assert lower.estimated_bytes_saved_total == sum(a.nbytes for a in safe) // 2
    # Beyond float32's range a value becomes inf: the check must see it.
    unsafe = [np.full(20_000, 0.25) for _ in range(2)]
    unsafe[1][7] = 1e300
    assert not [item for item in suggestions(population(2, q=unsafe)) if item.kind == "float32-safe"]


def test_every_suggestion_carries_exactly_its_candidates_estimate() -> None:
    rng = np.random.default_rng(4)
    template = rng.random((64, 64))
    beliefs = [np.zeros((150, 150)) for _ in range(3)]
    for index, belief in enumerate(beliefs):
        belief[index, :5] = 1.0
    agents = population(3, A=[template.copy() for _ in range(3)], belief=beliefs, weights=[rng.random(10_000) for _ in range(3)])
    found = suggestions(agents)
    manager = plugin_manager()
    candidates, _ = analyse(manager, agents, AnalysisContext(), select(manager, None))
    by_key = {(candidate.plugin, candidate.attribute): candidate for candidate in candidates}
    assert found and len(found) == len(by_key)
    for item in found:
        candidate = by_key[(item.transformation, item.attribute)]
        assert item.estimated_bytes_saved_per_agent == candidate.estimated_bytes_saved_per_agent
        assert item.estimated_bytes_saved_total == candidate.estimated_bytes_saved_per_agent * len(agents)
        assert item.kind == candidate.kind and item.message == candidate.message and item.evidence == candidate.evidence
    totals = [item.estimated_bytes_saved_total for item in found]
    assert totals == sorted(totals, reverse=True)


def test_unbounded_history_savings_use_the_measured_compression_ratio_and_the_steps() -> None:
    steps = 40
    histories = [[np.zeros(1000) for _ in range(steps)] for _ in range(2)]
    context = AnalysisContext(growing={"history": 8000.0})
    found = suggestions(population(2, history=histories), context, steps=steps)
    compressed = [item for item in found if item.transformation == "compressed-history"][0]
    sample = histories[0][-64:]
    raw = b"".join(encode_entry(entry) for entry in sample)
    ratio = len(zlib.compress(raw, 6)) / len(raw)
    entry = sys.getsizeof(np.zeros(1000))  # owns its data: the deep size of the entry
    held = 2 * steps
    expected = held * entry - held * (len(raw) / len(sample)) * ratio  # entries freed, compressed bytes added
    assert compressed.evidence["zlib_ratio"] == pytest.approx(ratio)
    assert compressed.estimated_bytes_saved_total == pytest.approx(expected)
    assert compressed.kind == "unbounded-history"
    # One entry a step: the smallest bound offered is one entry, and it frees the others.
    bounded = [item for item in found if item.transformation == "bounded-history"][0]
    assert bounded.evidence["maxlen"] == 1
    assert bounded.estimated_bytes_saved_total == pytest.approx(2 * (steps - 1) * entry)
    assert bounded.adoption == "self.history = bounded(self.history, maxlen=1)  # after self.history is assigned"


def test_growing_cache_and_bounded_growth() -> None:
    steps = 100
    caches = [{1000 + i: np.full(8, float(i)) for i in range(steps)} for _ in range(2)]
    found = suggestions(population(2, cache=caches), AnalysisContext(growing={"cache": 50.0}), steps=steps)
    cache = of(found, "growing-cache", "cache")
    assert cache.transformation == "bounded-cache" and cache.evidence["maxsize"] == 1
    # Dropping 99 entries frees their keys, their values and their share of the table.
    key, value = deep_size(1000), sys.getsizeof(np.full(8, 0.0))
    table = (sys.getsizeof(caches[0]) - sys.getsizeof({})) * (steps - 1) / steps
    assert cache.estimated_bytes_saved_per_agent == pytest.approx((steps - 1) * (key + value) + table)
    # A deque that reached its maxlen is bounded already: no bound to suggest.
    recent = [deque((np.zeros(4) for _ in range(5)), maxlen=5) for _ in range(2)]
    bounded = suggestions(population(2, recent=recent), AnalysisContext(growing={"recent": 8.0}), steps=10)
    assert not [item for item in bounded if item.transformation == "bounded-history"]


def test_a_value_held_elsewhere_is_not_counted_as_freed() -> None:
    """The entries of a cache that a deque also holds stay alive when the cache is bounded."""
    steps = 20
    agents = []
    for _ in range(2):
        agent = Agent()
        agent.cache = {1000 + i: np.full(8, float(i)) for i in range(steps)}
        agent.recent = deque(agent.cache.values())  # every value is held twice
        agents.append(agent)
    cache = of(suggestions(agents, AnalysisContext(growing={"cache": 50.0}), steps=steps), "growing-cache", "cache")
    table = (sys.getsizeof(agents[0].cache) - sys.getsizeof({})) * (steps - 1) / steps
    assert cache.estimated_bytes_saved_per_agent == pytest.approx((steps - 1) * deep_size(1000) + table)


def test_residency_of_untouched_zeros_is_below_allocation() -> None:
    if analysis.resident_of([np.ones(10)]) is None:
        pytest.skip("no pagemap on this platform")
    # Larger than glibc's largest dynamic mmap threshold (32 MiB): calloc maps fresh,
    # untouched pages whatever earlier tests freed (a smaller block may come from
    # reused, already touched heap).
    untouched = np.zeros(64 * 1024 * 1024 // 8)
    resident = analysis.resident_of([untouched])
    assert resident is not None and resident < untouched.nbytes // 4
    written = np.ones(8 * 1024 * 1024 // 8)
    assert analysis.resident_of([written]) == written.nbytes
