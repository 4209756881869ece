"""Adoption lines: real statements, one per path, composed in plan order."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pytest

from fa_memtool.adoption import adoption_line, assigned_expression, site_for
from fa_memtool.containers import BoundedCache, CompressedHistory, LazyBeliefArray, bounded, get_shared_pool
from fa_memtool.plugins import plugin_manager

LOWER = ("lower-precision", {"dtype": "float32", "rtol": 1e-5, "atol": 1e-8})
LAZY = ("lazy-beliefs", {"sparsity_threshold": 0.9})
SHARE = ("shared-parameters", {})


@pytest.fixture(scope="module")
def manager() -> Any:
    return plugin_manager()


def statement(line: str) -> ast.Module:
    return ast.parse(line)


def test_a_top_level_assignment_wraps_the_users_own_expression(manager: Any) -> None:
    code = "        self.belief = np.zeros((100, 100))  # the joint"
    line = adoption_line(manager, path="belief", transformations=[LOWER, LAZY], code=code)
    assert line == 'self.belief = LazyBeliefArray.from_dense(np.zeros((100, 100)).astype("float32"))'
    statement(line)


def test_a_nested_path_reassigns_the_transformed_value_and_says_where(manager: Any) -> None:
    line = adoption_line(manager, path="agent.B[0]", transformations=[SHARE], code="self.agent = Agent(A=A, B=B)")
    assert line == "self.agent.B[0] = get_shared_pool().share(self.agent.B[0])  # after self.agent is built"
    statement(line)
    unknown = adoption_line(manager, path="A", transformations=[SHARE], code="return copy_of(model.A)")
    assert unknown == "self.A = get_shared_pool().share(self.A)  # after self.A is assigned"


def test_items_of_a_container_are_adopted_in_a_loop_that_runs(manager: Any) -> None:
    line = adoption_line(manager, path="history[*]", transformations=[LOWER], code=None)
    assert line is not None
    statement(line)

    class Agent:
        def __init__(self) -> None:
            self.history = [np.ones(3), np.zeros(3)]
            self.table = {"a": np.ones(2)}

    agent = Agent()
    exec(line, {"self": agent})
    assert [entry.dtype for entry in agent.history] == [np.float32, np.float32]
    exec(adoption_line(manager, path="table[*]", transformations=[LOWER], code=None) or "", {"self": agent})
    assert agent.table["a"].dtype == np.float32
    assert adoption_line(manager, path="a[*].b[*]", transformations=[LOWER], code=None) is None


def test_every_built_in_line_evaluates_to_the_transformed_value(manager: Any) -> None:
    class Agent:
        pass

    agent = Agent()
    agent.weights = np.zeros((300, 300))  # type: ignore[attr-defined]
    agent.weights[0, 0] = 0.5  # type: ignore[attr-defined]
    agent.history = [np.zeros(4) for _ in range(6)]  # type: ignore[attr-defined]
    agent.cache = {i: i for i in range(10)}  # type: ignore[attr-defined]
    agent.table = {0: [(1.0, 0)]}  # type: ignore[attr-defined]
    names = {"np": np, "self": agent, "LazyBeliefArray": LazyBeliefArray, "CompressedHistory": CompressedHistory,
             "get_shared_pool": get_shared_pool, "bounded": bounded, "BoundedCache": BoundedCache}
    cases = [
        ("weights", [LOWER, SHARE, LAZY], LazyBeliefArray),
        ("history", [("compressed-history", {"compression_level": 6}), ("bounded-history", {"maxlen": 3})], CompressedHistory),
        ("cache", [("bounded-cache", {"maxsize": 4})], BoundedCache),
        ("table", [("shared-structures", {})], dict),
    ]
    for path, transformations, kind in cases:
        line = adoption_line(manager, path=path, transformations=transformations, code=None)
        assert line is not None and "<" not in line, "never a placeholder"
        exec(line, names)
        assert isinstance(getattr(agent, path), kind), path
    assert agent.history.maxlen == 3 and len(agent.history) == 3  # type: ignore[attr-defined]
    assert agent.weights.dtype == np.float32  # type: ignore[attr-defined]


def test_a_plugin_without_an_adoption_gives_no_line(manager: Any) -> None:
    assert adoption_line(manager, path="x", transformations=[("no-such-plugin", {})], code=None) is None


def test_assigned_expression_and_sites() -> None:
    assert assigned_expression("belief", "self.belief = np.zeros(3)  # comment") == "np.zeros(3)"
    assert assigned_expression("belief", "x = 1; self.belief: Any = make()") == "make()"
    assert assigned_expression("belief", "if self.belief == 3:") is None
    sites = {"agent": "a.py:3", "agent.B[0]": "a.py:9"}
    assert site_for("agent.B[0]", sites) == "a.py:9"
    assert site_for("agent.A[0]", sites) == "a.py:3"
    assert site_for("other", sites) is None
