"""Candidate order in the optimizer's trials: paths by best estimate, then declared priority."""

from __future__ import annotations

from typing import Any

from fa_memtool.hookspecs import Candidate
from fa_memtool.optimize import _order


def test_candidates_are_ordered_by_path_then_declared_priority() -> None:
    candidates = [
        Candidate("lazy-beliefs", "a", 90.0, ""),
        Candidate("third-party", "a", 10.0, ""),
        Candidate("lower-precision", "a", 50.0, ""),
        Candidate("shared-parameters", "b", 200.0, ""),
    ]
    priority = {"lower-precision": 10, "lazy-beliefs": 30, "third-party": 5}
    order = [(c.plugin, c.attribute) for c in _order(candidates, priority)]
    assert order == [("shared-parameters", "b"), ("third-party", "a"), ("lower-precision", "a"), ("lazy-beliefs", "a")]


def test_unknown_plugins_take_the_default_priority() -> None:
    candidates: list[Any] = [Candidate("x", "a", 1.0, ""), Candidate("lower-precision", "a", 1.0, "")]
    assert [c.plugin for c in _order(candidates, {"lower-precision": 10})] == ["lower-precision", "x"]
