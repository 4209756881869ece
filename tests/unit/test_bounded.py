"""bounded() and BoundedCache: the last N entries of a history, the N most recent of a cache."""

from __future__ import annotations

import pickle
from collections import deque

import numpy as np
import pytest

from fa_memtool.containers import BoundedCache, CompressedHistory, bounded


def test_bounded_keeps_the_last_entries_in_the_bounded_form_of_the_container() -> None:
    kept = bounded([1, 2, 3, 4, 5], maxlen=2)
    assert type(kept) is deque and kept.maxlen == 2 and list(kept) == [4, 5]
    kept.append(6)
    assert list(kept) == [5, 6]
    compressed = bounded(CompressedHistory([np.full(3, float(i)) for i in range(10)], compression_level=3), maxlen=4)
    assert type(compressed) is CompressedHistory and compressed.maxlen == 4 and compressed.compression_level == 3
    assert [float(entry[0]) for entry in compressed] == [6.0, 7.0, 8.0, 9.0]
    assert list(bounded(CompressedHistory([1, 2]), maxlen=0)) == []
    with pytest.raises(ValueError):
        bounded([1], maxlen=-1)


def test_bounded_cache_drops_the_least_recently_used_entry() -> None:
    cache = BoundedCache({"a": 1, "b": 2, "c": 3}, maxsize=2)
    assert list(cache) == ["b", "c"] and isinstance(cache, dict)
    assert cache["b"] == 2  # b is now the most recent
    cache["d"] = 4
    assert list(cache.items()) == [("b", 2), ("d", 4)]
    assert cache.get("b") == 2 and cache.get("zz", 0) == 0
    assert cache.setdefault("e", 5) == 5 and list(cache) == ["b", "e"]
    cache.update({"f": 6}, g=7)
    assert list(cache) == ["f", "g"]
    cache |= {"h": 8}
    assert list(cache) == ["g", "h"]
    with pytest.raises(KeyError):
        cache["a"]
    assert "g" in cache and list(cache) == ["g", "h"], "in does not refresh"


def test_bounded_cache_copies_and_pickles_with_its_bound() -> None:
    cache = BoundedCache({1: "x", 2: "y"}, maxsize=3)
    for clone in (cache.copy(), pickle.loads(pickle.dumps(cache))):
        assert type(clone) is BoundedCache and clone.maxsize == 3 and clone == {1: "x", 2: "y"}
    with pytest.raises(ValueError):
        BoundedCache(maxsize=-2)
