"""The tree of paths: every figure checked against getsizeof / nbytes of what the test built."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fa_memtool.pathtree import MAX_CHILDREN, OTHER, flatten
from fa_memtool.sizing import measure_population


class Inner:
    """Shaped like a pymdp Agent: object arrays of matrices and a belief history."""

    def __init__(self, steps: int) -> None:
        self.A = np.empty(1, dtype=object)
        self.A[0] = np.ones((40, 40))
        self.B = np.empty(2, dtype=object)
        self.B[0] = np.zeros((120, 120))
        self.B[0][0, 0] = 1.0
        self.B[1] = np.arange(500.0)
        self.qs_hist = [np.full(64, float(step)) for step in range(steps)]


class Wrapper:
    def __init__(self, shared: np.ndarray, steps: int = 30) -> None:
        self.agent = Inner(steps)
        self.params = {"T": shared, "gamma": 16.0}
        self.matrix_cache = {"A": self.agent.A[0]}


def _rows(agents, **options):
    population = measure_population(agents, path_detail=True, **options)
    return {row.path: row for row in flatten(population.paths)}, population


def test_nested_array_has_its_own_row_with_exact_bytes():
    agents = [Wrapper(np.ones(10)) for _ in range(3)]
    rows, _ = _rows(agents)
    b0 = agents[0].agent.B[0]
    row = rows["agent.B[0]"]
    assert row.deep_bytes == sys.getsizeof(b0)  # owns its buffer: header + nbytes
    assert row.exclusive_bytes == sys.getsizeof(b0)
    assert row.shape == [120, 120] and row.dtype == "float64"
    assert row.zero_fraction == pytest.approx(1 - 1 / b0.size)
    assert row.agents == 3 and not row.shared


def test_container_items_are_one_row():
    agents = [Wrapper(np.ones(10), steps=30) for _ in range(2)]
    rows, _ = _rows(agents)
    items = rows["agent.qs_hist[*]"]
    assert items.items == 30
    assert items.deep_bytes == sum(sys.getsizeof(entry) for entry in agents[0].agent.qs_hist)
    assert items.shape == [64]
    history = rows["agent.qs_hist"]
    assert history.deep_bytes == sys.getsizeof(agents[0].agent.qs_hist) + items.deep_bytes
    assert not any(path.startswith("agent.qs_hist[0]") for path in rows)


def test_shared_array_inside_per_agent_dicts_is_on_every_agent():
    shared = np.ones(4096)
    agents = [Wrapper(shared) for _ in range(4)]
    rows, _ = _rows(agents)
    row = rows['params["T"]']
    assert row.agents == 4
    assert row.sharers == 4 and row.shared
    assert row.deep_bytes == sys.getsizeof(shared)
    assert row.exclusive_bytes == 0
    assert row.amortized_bytes == pytest.approx(sys.getsizeof(shared) / 4)


def test_alias_inside_one_agent_is_shown_once_and_named():
    agents = [Wrapper(np.ones(10)) for _ in range(2)]
    rows, _ = _rows(agents)
    a0 = agents[0].agent.A[0]
    holders = [row for row in rows.values() if row.deep_bytes == sys.getsizeof(a0) and row.shape == [40, 40]]
    assert len(holders) == 1  # one object, one row
    (holder,) = holders
    other = {'matrix_cache["A"]', "agent.A[0]"} - {holder.path}
    assert holder.aliases == sorted(other)


def test_children_never_exceed_their_parent():
    agents = [Wrapper(np.ones(100)) for _ in range(3)]
    rows, _ = _rows(agents)
    for row in rows.values():
        if row.children:
            assert sum(child.deep_bytes for child in row.children) <= row.deep_bytes + 1e-6
            assert sum(child.amortized_bytes for child in row.children) <= row.amortized_bytes + 1e-6


def test_top_level_rows_add_up_to_the_agents_amortized_bytes_without_aliases():
    class Plain:
        def __init__(self, shared):
            self.weights = np.ones(1000)
            self.table = {"k": [1.5, 2.5], "shared": shared}

    shared = np.zeros(2048)
    agents = [Plain(shared) for _ in range(5)]
    population = measure_population(agents)
    total = sum(row.amortized_bytes for row in population.paths)
    attributes = sum(
        attribute.amortized_bytes for attribute in population.agents[0].attributes if attribute.name != "(object)"
    )
    assert total == pytest.approx(attributes)


def test_rows_per_parent_are_bounded_with_an_other_row():
    class Wide:
        def __init__(self):
            self.config = {f"key{index}": np.ones(100 + index) for index in range(20)}

    agents = [Wide()]
    rows, _ = _rows(agents)
    config = rows["config"]
    assert len(config.children) == MAX_CHILDREN + 1
    assert config.children[-1].name == OTHER
    expected_other = sum(sys.getsizeof(agents[0].config[f"key{index}"]) for index in range(20 - MAX_CHILDREN))
    assert config.children[-1].deep_bytes == pytest.approx(expected_other)


def test_a_large_agent_gives_a_small_tree():
    class Big:
        def __init__(self):
            self.log = [{"step": index, "values": [float(index)] * 3} for index in range(50_000)]

    population = measure_population([Big()])
    assert len(flatten(population.paths)) < 50
    row = {row.path: row for row in flatten(population.paths)}["log[*]"]
    assert row.items == 50_000


def test_without_paths_no_tree():
    assert measure_population([Wrapper(np.ones(3))], paths=False).paths == []
