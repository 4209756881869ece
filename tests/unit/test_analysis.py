from collections import deque

import numpy as np
import pytest

from fa_memtool import analysis
from fa_memtool.report import AttributeGrowth


def _values(name, values):
    entry = analysis.AttributeValues(name)
    for value in values:
        entry.values.append(value)
        entry.arrays.append(analysis.numeric_arrays(value))
    return entry


def test_numeric_arrays_open_object_arrays_and_containers():
    a, b = np.zeros(3), np.ones(4)
    matrices = np.empty(2, dtype=object)
    matrices[0], matrices[1] = a, b
    found = analysis.numeric_arrays(matrices)
    assert [id(x) for x in found] == [id(a), id(b)]
    assert len(analysis.numeric_arrays([a, b, "text"])) == 2
    assert len(analysis.numeric_arrays({"x": a})) == 1
    assert analysis.numeric_arrays("text") == []


def test_zero_fraction_is_counted_from_the_values():
    array = np.zeros(1000)
    array[:37] = 1.5
    assert analysis.zero_fraction([array]) == pytest.approx(963 / 1000)
    assert analysis.zero_fraction([]) is None


def test_mostly_zeros_saving_is_dense_minus_sparse_bytes():
    agents = 3
    beliefs = []
    for index in range(agents):
        belief = np.zeros((200, 200))
        belief[index, : 10 + index] = 0.1
        beliefs.append(belief)
    found = analysis.suggest([_values("beliefs", beliefs)], [], agents=agents, steps=0, sites={})
    zeros = [s for s in found if s.kind == "mostly-zeros"]
    assert len(zeros) == 1
    dense = sum(b.nbytes for b in beliefs)
    sparse = sum(np.count_nonzero(b) * (8 + 8) + (200 + 1) * 8 for b in beliefs)
    assert zeros[0].estimated_bytes_saved_total == dense - sparse
    assert zeros[0].estimated_bytes_saved_per_agent == pytest.approx((dense - sparse) / agents)


def test_identical_arrays_across_agents_but_not_shared_objects():
    agents = 4
    base = np.linspace(0, 1, 10_000)
    copies = [base.copy() for _ in range(agents)]
    found = analysis.suggest([_values("A", copies)], [], agents=agents, steps=0, sites={"A": "m.py:3"})
    identical = [s for s in found if s.kind == "identical-across-agents"]
    assert identical[0].estimated_bytes_saved_total == (agents - 1) * base.nbytes
    assert identical[0].site == "m.py:3"
    # The same object held by every agent is already shared: nothing to suggest.
    shared = analysis.suggest([_values("A", [base] * agents)], [], agents=agents, steps=0, sites={})
    assert not [s for s in shared if s.kind == "identical-across-agents"]


def test_float32_suggestion_checks_the_values():
    agents = 2
    safe = [np.full(20_000, 0.25) for _ in range(agents)]
    found = analysis.suggest([_values("p", safe)], [], agents=agents, steps=0, sites={})
    lower = [s for s in found if s.kind == "float32-safe"]
    assert lower[0].estimated_bytes_saved_total == sum(a.nbytes for a in safe) // 2
    # Beyond float32's range a value becomes inf: the check must see it.
    unsafe = [np.full(20_000, 0.25) for _ in range(agents)]
    unsafe[1][7] = 1e300
    found = analysis.suggest([_values("q", unsafe)], [], agents=agents, steps=0, sites={})
    assert not [s for s in found if s.kind == "float32-safe"]
    # Integers above 2**24 lose their last digits in float32, beyond rtol=1e-5 only when
    # the tolerance is tight; with the default tolerance a 2**24 + 1 survives.
    assert np.float64(np.float32(2**24 + 1)) != 2**24 + 1


def test_unbounded_history_saving_uses_the_measured_compression_ratio():
    import zlib

    histories = [[np.zeros(1000) for _ in range(40)] for _ in range(2)]
    growth = AttributeGrowth("history", start_bytes=56.0, end_bytes=330_000.0, bytes_per_step_per_agent=8000.0,
                             bounded=False, reason="list still growing")
    found = analysis.suggest([_values("history", histories)], [growth], agents=2, steps=40, sites={})
    history = [s for s in found if s.kind == "unbounded-history"][0]
    raw = [np.zeros(1000).tobytes() for _ in range(analysis.HISTORY_SAMPLE)]
    ratio = sum(len(zlib.compress(r, 6)) for r in raw) / sum(len(r) for r in raw)
    assert history.evidence["zlib_ratio"] == pytest.approx(ratio)
    assert history.estimated_bytes_saved_per_agent == pytest.approx(330_000.0 * (1 - ratio))


def test_growing_cache_and_bounded_growth():
    caches = [{i: i for i in range(100)} for _ in range(2)]
    grow = AttributeGrowth("cache", 100.0, 5100.0, 50.0, False, "dict still growing")
    found = analysis.suggest([_values("cache", caches)], [grow], agents=2, steps=100, sites={})
    assert [s.kind for s in found] == ["growing-cache"]
    assert found[0].estimated_bytes_saved_per_agent == pytest.approx(5000.0)
    bounded = AttributeGrowth("recent", 100.0, 900.0, 8.0, True, "deque reached maxlen=5")
    assert analysis.suggest([_values("recent", [deque(maxlen=5)])], [bounded], agents=1, steps=10, sites={}) == []


def test_residency_of_untouched_zeros_is_below_allocation():
    if analysis.resident_of([np.ones(10)]) is None:
        pytest.skip("no pagemap on this platform")
    untouched = np.zeros(8 * 1024 * 1024 // 8)
    resident = analysis.resident_of([untouched])
    assert resident is not None and resident < untouched.nbytes // 4
    written = np.ones(8 * 1024 * 1024 // 8)
    assert analysis.resident_of([written]) == written.nbytes
