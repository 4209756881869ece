"""FrozenDict / FrozenList: read like the dict and list they replace, refuse every change."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from fa_memtool.containers import FrozenDict, FrozenList, SharedParameterPool, freeze
from fa_memtool.containers.frozen import is_plain_structure


def table() -> dict[int, dict[int, list[tuple[float, int, int, bool]]]]:
    return {state: {action: [(1.0, (state + action) % 10, -1, False)] for action in range(3)} for state in range(10)}


def test_a_frozen_table_reads_exactly_like_the_original() -> None:
    original = table()
    frozen = freeze(original)
    assert type(frozen) is FrozenDict and type(frozen[3]) is FrozenDict and type(frozen[3][1]) is FrozenList
    assert frozen == original and list(frozen) == list(original) and list(frozen.items()) == list(original.items())
    assert frozen[3][1][0] is original[3][1][0], "tuples of scalars are reused, not copied"
    assert isinstance(frozen, dict) and isinstance(frozen[3][1], list)
    assert json.loads(json.dumps({str(k): {str(a): r for a, r in v.items()} for k, v in frozen.items()}))
    assert original == table(), "the original is not modified"


MUTATIONS = {
    "setitem": lambda t: t.__setitem__(0, {}),
    "delitem": lambda t: t.__delitem__(0),
    "update": lambda t: t.update({11: {}}),
    "setdefault": lambda t: t.setdefault(12, {}),
    "pop": lambda t: t.pop(0),
    "clear": lambda t: t.clear(),
    "ior": lambda t: t.__ior__({}),
    "list append": lambda t: t[0][0].append((0.5, 1, 0, False)),
    "list setitem": lambda t: t[0][0].__setitem__(0, None),
    "list extend": lambda t: t[0][0].extend([]),
    "list iadd": lambda t: t[0][0].__iadd__([]),
    "list sort": lambda t: t[0][0].sort(),
}


@pytest.mark.parametrize("change", list(MUTATIONS.values()), ids=list(MUTATIONS))
def test_every_change_raises(change: Any) -> None:
    frozen = freeze(table())
    with pytest.raises(TypeError, match="read-only"):
        change(frozen)
    assert frozen == table()


def test_copies_are_writable_and_pickles_and_deep_copies_stay_frozen() -> None:
    frozen = freeze(table())
    own = frozen.copy()
    own[0] = {}
    assert type(own) is dict and frozen[0] != {}
    for clone in (pickle.loads(pickle.dumps(frozen)), copy.deepcopy(frozen)):
        assert type(clone) is FrozenDict and clone == table() and type(clone[0][0]) is FrozenList


def test_plain_structures_only() -> None:
    assert is_plain_structure(table()) and is_plain_structure([1, "a", None, (2.0, b"x")])
    assert not is_plain_structure({1: object()}) and not is_plain_structure({1, 2}) and not is_plain_structure("text")
    looped: list[Any] = []
    looped.append(looped)
    assert not is_plain_structure(looped)
    with pytest.raises(TypeError):
        freeze({1: {2}})


def test_the_pool_keeps_one_frozen_copy_per_content() -> None:
    pool = SharedParameterPool()
    first, second = pool.share_structure(table()), pool.share_structure(table())
    assert first is second and pool.share_structure(first) is first
    assert pool.share_structure({0: {0: [(1, 0, -1, False)]}}) is not first, "1 and 1.0 are different contents"
    reordered = dict(reversed(list(table().items())))
    assert pool.share_structure(reordered) is not first, "another order iterates differently"
    with pytest.raises(TypeError):
        pool.share_structure({1: object()})
    pool.clear()
    assert pool.share_structure(table()) is not first
