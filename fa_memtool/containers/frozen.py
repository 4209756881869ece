"""Read-only plain-Python structures that read exactly like the dicts and lists they replace.

A transition table such as gymnasium's ``env.unwrapped.P`` (a dict of dicts of lists of
tuples) is often built identically by every agent. One copy, shared, must still read the
same: ``P[s][a]`` indexes, iteration follows the same order, ``==`` with the original
holds, ``isinstance(P, dict)`` stays true, JSON and pickle work. ``FrozenDict`` and
``FrozenList`` are ``dict`` and ``list`` subclasses whose every mutating method raises
``TypeError``, so an agent that writes to the shared structure fails loudly instead of
changing every agent's table. Tuples and scalars are immutable already and are reused as
they are.

What they cannot stop: code that calls ``dict.__setitem__(table, k, v)`` on the base
class directly, or mutates a mutable object the structure holds (``freeze`` only accepts
numbers, strings, bytes, None and tuples, lists and dicts of them).
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["FrozenDict", "FrozenList", "freeze", "is_plain_structure"]

_LEAVES = (type(None), bool, int, float, complex, str, bytes)


def _refuse(obj: object, *_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError(
        f"this {type(obj).__name__} is shared read-only by every agent (fa-mem shared-structures); "
        "take a copy (dict(...) or list(...)) before changing it"
    )


def _rebuild_dict(items: list[tuple[Any, Any]]) -> FrozenDict:
    return FrozenDict(items)


def _rebuild_list(items: list[Any]) -> FrozenList:
    return FrozenList(items)


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that refuses every change (``TypeError``); reading is a plain dict's."""

    __slots__ = ()

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dict.update(self, *args, **kwargs)

    def copy(self) -> dict[Any, Any]:
        """A plain, writable dict (what code copying a table means to change)."""
        return dict(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_dict, (list(self.items()),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


class FrozenList(list):  # type: ignore[type-arg]
    """A list that refuses every change (``TypeError``); reading is a plain list's."""

    __slots__ = ()

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse

    def __init__(self, items: Any = ()) -> None:
        list.extend(self, items)

    def copy(self) -> list[Any]:
        return list(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_list, (list(self),))

    def __repr__(self) -> str:
        return f"FrozenList({list.__repr__(self)})"


def is_plain_structure(value: Any, *, _depth: int = 0) -> bool:
    """True for dicts, lists and tuples (exact types) holding only numbers, strings,
    bytes, None and such containers, nested, with at least one container; no cycles."""
    if _depth > 100:
        return False  # deeper than any table: most likely a cycle
    kind = type(value)
    if kind is dict:
        return all(_plain_key(key) for key in value) and all(
            type(item) in _LEAVES or is_plain_structure(item, _depth=_depth + 1) for item in value.values()
        )
    if kind is list or kind is tuple:
        return all(type(item) in _LEAVES or is_plain_structure(item, _depth=_depth + 1) for item in value)
    return False


def _plain_key(key: Any) -> bool:
    return type(key) in _LEAVES or (type(key) is tuple and is_plain_structure(key))


def freeze(value: Any) -> Any:
    """A read-only structure that reads like ``value``: FrozenDict for dicts, FrozenList
    for lists, tuples rebuilt only where they hold a list or dict; scalars and tuples of
    scalars are the same objects as in ``value``. A container reached twice becomes one
    frozen container."""
    return _freeze(value, {})


def _freeze(value: Any, memo: dict[int, Any]) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    if id(value) in memo:
        return memo[id(value)]
    frozen: Any
    if kind is dict:
        frozen = FrozenDict((key, _freeze(item, memo)) for key, item in value.items())
    elif kind is list:
        frozen = FrozenList(_freeze(item, memo) for item in value)
    elif kind is tuple:
        items = [_freeze(item, memo) for item in value]
        frozen = value if all(new is old for new, old in zip(items, value)) else tuple(items)
    else:
        raise TypeError(f"freeze() takes plain dicts, lists, tuples and scalars, not {kind.__name__}")
    memo[id(value)] = frozen
    return frozen
