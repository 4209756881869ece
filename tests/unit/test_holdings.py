"""What a population holds, by path: groups, aliases, replacement at every alias, undo."""

from __future__ import annotations

from collections import deque, namedtuple
from typing import Any

import numpy as np
import pytest

from fa_memtool.holdings import COLLAPSE_ITEMS, AgentHoldings, PopulationHoldings, Snapshot, is_under, occurrences
from fa_memtool.paths import PathError, resolve

Pair = namedtuple("Pair", "left right")


class Model:
    def __init__(self) -> None:
        self.A = np.empty(2, dtype=object)
        self.A[0] = np.arange(12.0).reshape(3, 4)
        self.A[1] = np.ones(5)


class Agent:
    def __init__(self, index: int = 0) -> None:
        self.model = Model()
        self.cache = {"A": self.model.A[0]}  # the same array at two paths
        self.history = [np.full(3, float(step)) for step in range(COLLAPSE_ITEMS + 4)]
        self.short = [np.zeros(2), np.ones(2)]
        self.pair = Pair(np.zeros(4), 7)
        self.label = f"agent-{index}"


def test_paths_name_each_object_once_and_group_the_items_of_large_containers() -> None:
    agent = Agent()
    held = {item.path: item for item in AgentHoldings(agent).held}
    assert held["model.A[1]"].value is agent.model.A[1]
    # breadth first: the cache reaches the shared array before the model does
    assert held['cache["A"]'].value is agent.model.A[0]
    assert "model.A[0]" not in held
    assert held["history[3]"].group == "history[*]"
    assert held["short[1]"].group == "short[1]", "a container of a few items keeps its positions"
    assert "label" not in held, "strings and numbers hold nothing and are not listed"


def test_population_groups_collect_every_agents_objects_at_a_path() -> None:
    agents = [Agent(index) for index in range(3)]
    groups = PopulationHoldings(agents).groups()
    assert [held.value for _, held in groups["model.A[1]"]] == [agent.model.A[1] for agent in agents]
    assert len(groups["history[*]"]) == 3 * len(agents[0].history)
    only = PopulationHoldings(agents).groups(["model.A[1]"])
    assert list(only) == ["model.A[1]"]


def test_another_agent_is_a_boundary() -> None:
    first, second = Agent(0), Agent(1)
    first.friend = second  # type: ignore[attr-defined]
    paths = [held.path for held in PopulationHoldings([first, second]).agents[0].held]
    assert "friend" not in paths and not any(path.startswith("friend.") for path in paths)


def test_aliases_are_every_edge_to_an_object() -> None:
    agent = Agent()
    holdings = AgentHoldings(agent)
    assert sorted(holdings.aliases(agent.model.A[0])) == ['cache["A"]', "model.A[0]"]
    assert holdings.keeping_alive(agent.model.A[0]) == []


def test_what_keeps_an_object_alive_when_it_is_replaced() -> None:
    agent = Agent()
    array = agent.model.A[1]
    agent.frozen = frozenset({("key", 1)})  # type: ignore[attr-defined]
    agent.view = array[1:]  # type: ignore[attr-defined]
    holdings = AgentHoldings(agent)
    assert holdings.keeping_alive(array) == ["view"], "a view keeps the buffer alive"
    assert holdings.keeping_alive(array, replaced=[agent.view]) == []  # type: ignore[attr-defined]
    assert holdings.keeping_alive(agent.view) == ["model.A[1]"], "a view does not free its base"  # type: ignore[attr-defined]
    inner = ("x", "y")
    agent.frozen = frozenset({inner})  # type: ignore[attr-defined]
    agent.tuple_alias = inner  # type: ignore[attr-defined]
    holdings = AgentHoldings(agent)
    assert holdings.keeping_alive(inner) == ["frozen[*]"]


def test_replace_writes_at_every_alias() -> None:
    agent = Agent()
    old = agent.model.A[0]
    new = np.zeros((3, 4))
    written = AgentHoldings(agent).replace({id(old): new})
    assert sorted(written) == ['cache["A"]', "model.A[0]"]
    assert agent.model.A[0] is new and agent.cache["A"] is new


def test_replace_rebuilds_tuples_and_namedtuples_once() -> None:
    agent = Agent()
    agent.nested = (agent.pair, agent.pair)  # type: ignore[attr-defined]
    old = agent.pair.left
    new = np.ones(4)
    AgentHoldings(agent).replace({id(old): new})
    assert type(agent.pair) is Pair and agent.pair.left is new and agent.pair.right == 7
    assert agent.nested[0] is agent.nested[1] is agent.pair, "one rebuilt namedtuple wherever the old one was"  # type: ignore[attr-defined]


def test_replace_refuses_what_a_set_holds() -> None:
    agent = Agent()
    inner = (1, 2)
    agent.frozen = frozenset({inner})  # type: ignore[attr-defined]
    with pytest.raises(PathError, match="frozenset"):
        AgentHoldings(agent).replace({id(inner): (3, 4)})


def test_occurrences_expand_items_and_skip_items_without_the_rest() -> None:
    agent = Agent()
    found = occurrences(agent, "history[*]")
    assert [path for path, _ in found] == [f"history[{index}]" for index in range(len(agent.history))]
    agent.records = [{"a": np.zeros(1)}, {"b": 2}]  # type: ignore[attr-defined]
    assert [path for path, _ in occurrences(agent, 'records[*]["a"]')] == ['records[0]["a"]']
    assert occurrences(agent, "model.A[1]") == [("model.A[1]", agent.model.A[1])]
    with pytest.raises(PathError):
        occurrences(agent, "nothing[*]")


def test_snapshot_restores_nested_assignments_rebuilt_tuples_and_added_attributes() -> None:
    agent = Agent()
    originals: dict[str, Any] = {path: resolve(agent, path) for path in ("model.A[0]", 'cache["A"]', "pair", "history", "label")}
    snapshot = Snapshot([agent])
    AgentHoldings(agent).replace({id(agent.model.A[0]): np.zeros(1), id(agent.pair.left): np.zeros(1)})
    agent.history = deque()  # type: ignore[assignment]
    agent.label = "changed"
    agent.added = 1  # type: ignore[attr-defined]
    snapshot.restore()
    for path, value in originals.items():
        assert resolve(agent, path) is value, path
    assert not hasattr(agent, "added")


def test_is_under() -> None:
    assert is_under("agent.B[0]", "agent") and is_under("agent", "agent") and is_under("a[0]", "a")
    assert not is_under("agents", "agent") and not is_under("agent", "agent.B")
