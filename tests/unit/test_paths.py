"""Paths: parsing, formatting, reading and writing objects at any depth."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from fa_memtool.paths import (
    ALL,
    PathError,
    Step,
    assign,
    format_path,
    labelled_children,
    parse_path,
    paths_to,
    resolve,
    resolve_all,
    walk,
)


class Inner:
    def __init__(self) -> None:
        self.B = np.empty(2, dtype=object)
        self.B[0] = np.zeros((3, 3))
        self.B[1] = np.ones(4)
        self.qs_hist: list[np.ndarray] = [np.zeros(2) for _ in range(3)]


class Outer:
    def __init__(self) -> None:
        self.agent = Inner()
        self.state = {"params": {"likelihood": {"A": np.arange(6.0)}}, 3: "three"}
        self.cache = {"B0": self.agent.B[0]}
        self.pair = (1, [2, 3])


@pytest.mark.parametrize(
    "text",
    ['agent.B[0]', 'state["params"]["likelihood"]["A"]', "history[*]", "grid[2, 3]", "state[3]", "x"],
)
def test_parse_and_format_round_trip(text: str) -> None:
    assert format_path(parse_path(text)) == text


def test_leading_dot_is_accepted() -> None:
    assert parse_path(".agent.B[0]") == (Step("attr", "agent"), Step("attr", "B"), Step("index", 0))


def test_brackets_inside_string_keys() -> None:
    assert parse_path('d["a]b"]') == (Step("attr", "d"), Step("key", "a]b"))


@pytest.mark.parametrize("text", ["", "[0]", "a[", "a[foo]", "a..b!", "a b"])
def test_bad_paths_are_refused(text: str) -> None:
    with pytest.raises(PathError):
        parse_path(text)


def test_resolve_reads_at_any_depth() -> None:
    outer = Outer()
    assert resolve(outer, "agent.B[0]") is outer.agent.B[0]
    assert resolve(outer, 'state["params"]["likelihood"]["A"]') is outer.state["params"]["likelihood"]["A"]
    assert resolve(outer, "state[3]") == "three"
    assert resolve(outer, "pair[1][0]") == 2
    with pytest.raises(PathError):
        resolve(outer, "agent.nothing")
    with pytest.raises(PathError):
        resolve(outer, "agent.qs_hist[*]")


def test_resolve_all_expands_items() -> None:
    outer = Outer()
    assert resolve_all(outer, "agent.qs_hist[*]") == outer.agent.qs_hist
    assert resolve_all(outer, "agent.B[*]")[1] is outer.agent.B[1]


def test_assign_replaces_one_object() -> None:
    outer = Outer()
    replacement = np.eye(3)
    assign(outer, "agent.B[0]", replacement)
    assert outer.agent.B[0] is replacement
    assign(outer, 'state["params"]["likelihood"]["A"]', 5)
    assert outer.state["params"]["likelihood"]["A"] == 5
    assign(outer, "agent", "gone")
    assert outer.agent == "gone"


def test_assign_into_a_tuple_is_refused() -> None:
    with pytest.raises(PathError, match="immutable tuple"):
        assign(Outer(), "pair[0]", 9)


def test_labelled_children_by_kind() -> None:
    assert labelled_children({"a": 1}) == [(Step("key", "a"), 1)]
    assert labelled_children(deque([4])) == [(Step("index", 0), 4)]
    assert labelled_children({7}) == [(ALL, 7)]
    grid = np.empty((2, 2), dtype=object)
    assert labelled_children(grid)[3][0] == Step("index", (1, 1))
    assert labelled_children(np.zeros(3)) == []
    assert labelled_children(len) == []


def test_walk_yields_each_object_once_at_its_shortest_path() -> None:
    outer = Outer()
    found = {id(obj): path for path, obj, _ in walk(outer)}
    # .cache["B0"] and .agent.B[0] are one array: the walk names it once, breadth first.
    assert found[id(outer.agent.B[0])] == 'cache["B0"]'
    assert found[id(outer.agent.qs_hist[2])] == "agent.qs_hist[2]"


def test_paths_to_finds_every_alias() -> None:
    outer = Outer()
    assert sorted(paths_to(outer, outer.agent.B[0])) == ["agent.B[0]", 'cache["B0"]']


def test_walk_stops_at_boundaries() -> None:
    outer = Outer()
    found = [path for path, _, _ in walk(outer, stop=frozenset({id(outer.agent)}))]
    assert not any(path.startswith("agent") for path in found)
