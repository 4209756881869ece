"""Paths inside an agent: how fa-mem names every object an agent holds.

A path starts at one of the agent's top-level attributes and follows attributes,
dict keys and sequence positions::

    weights                         the attribute itself (a top-level path is its name)
    agent.B[0]                      item 0 of the object array held as .agent.B
    state.params["likelihood"]["A"] dict keys, written as Python literals
    history[*]                      every item of a container, as one row
    grid[2, 3]                      a position in an object array of two dimensions

The report writes paths with a leading dot in text (``.agent.B[0]``); the JSON and
plans keep them without it, so a top-level path is the attribute name of earlier
reports and plans. ``[*]`` names a group (all items), never one object: it can be
read (``resolve_all``) but not assigned.

One function, ``labelled_children``, says which objects an object holds under which
label; the sizer's tree, the analyses and the transformations all use it, so a path
printed in a report is a path ``resolve`` and ``assign`` accept.
"""

from __future__ import annotations

import ast
import json
import sys
import types
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from fa_memtool.errors import UsageError

__all__ = [
    "ALL",
    "PathError",
    "Step",
    "assign",
    "COLLAPSE_ITEMS",
    "NAMED_KEYS",
    "format_path",
    "groups_items",
    "is_under",
    "join",
    "labelled_children",
    "parse_path",
    "resolve",
    "resolve_all",
    "top_attribute",
    "walk",
]


class PathError(UsageError):
    """A path that cannot be parsed, read or written on an agent (exit 2)."""


class Step(NamedTuple):
    """One step of a path: an attribute (``kind="attr"``), a dict key (``"key"``), a
    position in a sequence or object array (``"index"``) or every item (``"items"``).
    A named tuple: the tree makes one per edge it names, so it must be cheap."""

    kind: str
    value: Any = None

    def text(self) -> str:
        if self.kind == "attr":
            return f".{self.value}"
        if self.kind == "items":
            return "[*]"
        if self.kind == "index" and isinstance(self.value, tuple):
            return "[" + ", ".join(str(part) for part in self.value) + "]"
        if self.kind == "index":
            return f"[{self.value}]"
        if isinstance(self.value, str):
            # Double quotes, as people write keys; json's escapes are valid Python literals.
            return "[" + json.dumps(self.value, ensure_ascii=False) + "]"
        if isinstance(self.value, _LITERAL_KEYS):
            return f"[{self.value!r}]"
        # A key that is no literal (a class, an object) is named, not spelled: such a
        # path can be read in a report but not passed to resolve().
        if isinstance(self.value, type):
            return f"[<class {self.value.__name__}>]"
        return f"[<{type(self.value).__name__}>]"


ALL = Step("items")
_LITERAL_KEYS = (int, float, complex, bytes, bool, type(None), tuple, frozenset)

# Containers whose items are their children; other objects show their attributes.
_SEQUENCES = (list, tuple, deque)
_SETS = (set, frozenset)
# Objects that belong to the program, not to an agent: their attributes are not data.
_OPAQUE = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.GeneratorType,
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    bool,
    range,
    memoryview,
)


def format_path(steps: tuple[Step, ...] | list[Step]) -> str:
    """The text of a path (no leading dot: a top-level path is the attribute name)."""
    text = "".join(step.text() for step in steps)
    return text[1:] if text.startswith(".") else text


def join(path: str, step: Step) -> str:
    """``path`` extended by one step (``""`` is the agent itself)."""
    text = step.text()
    return text[1:] if not path and text.startswith(".") else path + text


def _parse_literal(text: str, path: str) -> Any:
    if text.strip() == "*":
        return ALL
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise PathError(f"path {path!r}: {text!r} is not a literal key or index") from None
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes, float, complex)):
        return Step("key", value)
    if isinstance(value, int):
        return Step("index", value)
    if isinstance(value, tuple) and value and all(type(part) is int for part in value):
        return Step("index", value)
    return Step("key", value)


def parse_path(path: str) -> tuple[Step, ...]:
    """The steps of a path such as ``agent.B[0]`` or ``.params["A"]``."""
    text = path.strip()
    if text.startswith("."):
        text = text[1:]
    steps: list[Step] = []
    position = 0
    expect_name = True
    while position < len(text):
        char = text[position]
        if char == "[":
            end = _closing_bracket(text, position, path)
            literal = _parse_literal(text[position + 1 : end], path)
            steps.append(literal)
            position = end + 1
            expect_name = False
            continue
        if char == ".":
            position += 1
            expect_name = True
            continue
        if not expect_name:
            raise PathError(f"path {path!r}: expected '.' or '[' at position {position}")
        end = position
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        name = text[position:end]
        if not name.isidentifier():
            raise PathError(f"path {path!r}: {text[position:] or 'nothing'!r} is not an attribute name")
        steps.append(Step("attr", name))
        position = end
        expect_name = False
    if not steps:
        raise PathError("an empty path names no attribute")
    if steps[0].kind != "attr":
        raise PathError(f"path {path!r} must start with an attribute name")
    return tuple(steps)


def _closing_bracket(text: str, start: int, path: str) -> int:
    """The ``]`` that closes the ``[`` at ``start`` (brackets inside string keys ignored)."""
    quote: str | None = None
    index = start + 1
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "]":
            return index
        index += 1
    raise PathError(f"path {path!r}: '[' at position {start} is never closed")


def top_attribute(path: str) -> str:
    """The top-level attribute a path starts at."""
    return str(parse_path(path)[0].value)


def _read(holder: Any, step: Step, path: str) -> Any:
    try:
        if step.kind == "attr":
            return getattr(holder, step.value)
        return holder[step.value]
    except (AttributeError, KeyError, IndexError, TypeError) as error:
        raise PathError(f"{type(holder).__name__} has no {step.text()} (path {path!r}): {error}") from None


def resolve(root: Any, path: str | tuple[Step, ...]) -> Any:
    """The object at ``path`` on ``root`` (``[*]`` is refused: it names many objects)."""
    steps = parse_path(path) if isinstance(path, str) else path
    shown = path if isinstance(path, str) else format_path(path)
    value = root
    for step in steps:
        if step.kind == "items":
            raise PathError(f"path {shown!r} names every item of a container, not one object")
        value = _read(value, step, shown)
    return value


def _items(container: Any) -> list[Any]:
    if isinstance(container, dict):
        return list(container.values())
    numpy = _numpy()
    if numpy is not None and isinstance(container, numpy.ndarray):
        return list(container.flat) if container.dtype == object else []
    try:
        return list(container)
    except TypeError:
        return []


def resolve_all(root: Any, path: str | tuple[Step, ...]) -> list[Any]:
    """Every object ``path`` names on ``root``: one, or several where it has ``[*]``."""
    steps = parse_path(path) if isinstance(path, str) else path
    shown = path if isinstance(path, str) else format_path(path)
    values = [root]
    for step in steps:
        if step.kind == "items":
            values = [item for value in values for item in _items(value)]
        else:
            values = [_read(value, step, shown) for value in values]
    return values


def assign(root: Any, path: str | tuple[Step, ...], value: Any) -> None:
    """Replace the object at ``path`` on ``root`` with ``value``."""
    steps = parse_path(path) if isinstance(path, str) else path
    shown = path if isinstance(path, str) else format_path(path)
    holder = resolve(root, steps[:-1]) if len(steps) > 1 else root
    last = steps[-1]
    if last.kind == "items":
        raise PathError(f"path {shown!r} names every item of a container; assign each item instead")
    if isinstance(holder, (tuple, frozenset, str, bytes)):
        raise PathError(f"cannot replace {shown!r}: it is held by an immutable {type(holder).__name__}")
    try:
        if last.kind == "attr":
            setattr(holder, last.value, value)
        else:
            holder[last.value] = value
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as error:
        raise PathError(f"cannot replace {shown!r} on {type(holder).__name__}: {error}") from None


def _numpy() -> Any:
    return sys.modules.get("numpy")


def object_attributes(obj: object) -> list[tuple[str, Any]]:
    """An object's attributes: instance dict entries, then slots.

    Reading ``vars`` may create the instance dict on CPython 3.11+ (the sizer's
    module doc says so); slots that were never set hold nothing.
    """
    found: list[tuple[str, Any]] = []
    instance_dict = getattr(obj, "__dict__", None)
    if isinstance(instance_dict, dict):
        found = [(str(name), value) for name, value in instance_dict.items()]
    slots = _slot_names(type(obj))
    if slots:
        seen = {name for name, _ in found}
        for name in slots:
            if name in seen:
                continue
            try:
                found.append((name, object.__getattribute__(obj, name)))
            except AttributeError:
                continue
    return found


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slot_names(kind: type) -> tuple[str, ...]:
    """The slot names of a class and its bases, mangled as Python stores them (cached:
    walking the method resolution order for every object would dominate a walk)."""
    found = _SLOTS.get(kind)
    if found is not None:
        return found
    names: list[str] = []
    for klass in kind.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            stripped = klass.__name__.lstrip("_")
            if name.startswith("__") and not name.endswith("__") and stripped:
                name = f"_{stripped}{name}"  # name mangling of private slots
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    _SLOTS[kind] = found = tuple(names)
    return found


def labelled_children(obj: Any, handlers: Any = None) -> list[tuple[Step, Any]]:
    """The objects ``obj`` holds as data, each with the step that reaches it.

    Dicts give their values by key (keys are the dict's own memory), sequences and
    object arrays their items by position, sets their items as ``[*]``, library objects
    as their buffer handler names them (``handlers``: a ``fa_memtool.buffers.HandlerTable``,
    default the installed handlers), other objects their attributes. Functions,
    classes, modules and scalars hold no data paths.
    """
    if isinstance(obj, dict):
        return [(Step("key", key), value) for key, value in obj.items()]
    if isinstance(obj, _SEQUENCES):
        return [(Step("index", position), item) for position, item in enumerate(obj)]
    if isinstance(obj, _SETS):
        return [(ALL, item) for item in obj]
    if isinstance(obj, _OPAQUE):
        return []
    numpy = _numpy()
    if numpy is None or type(obj) is not numpy.ndarray:
        named = _handler_children(obj, handlers)
        if named is not None:
            return named
    if numpy is not None and isinstance(obj, numpy.ndarray):
        if obj.dtype != object:
            return []
        if obj.ndim == 1:
            return [(Step("index", position), item) for position, item in enumerate(obj)]
        return [(Step("index", tuple(int(part) for part in index)), item) for index, item in numpy.ndenumerate(obj)]
    try:
        return [(Step("attr", name), value) for name, value in object_attributes(obj)]
    except Exception:  # an object whose attribute access raises holds no readable paths
        return []


def _handler_children(obj: Any, handlers: Any) -> list[tuple[Step, Any]] | None:
    """A library object's children as its buffer handler names them (fa_memtool.buffers)."""
    if handlers is None:
        from fa_memtool.buffers import default_table

        handlers = default_table()
    handler = handlers.handler_for(obj)
    if handler is None:
        return None
    try:
        named = handler.children(obj)
    except Exception:  # a handler that cannot name one object's children: the default
        return None
    return None if named is None else list(named)


def walk(
    root: Any,
    *,
    max_depth: int = 8,
    max_objects: int = 100_000,
    stop: frozenset[int] = frozenset(),
) -> Iterator[tuple[str, Any, int]]:
    """Breadth-first ``(path, object, depth)`` for everything ``root`` holds as data,
    each object once, at its shortest path (ties: attribute order). Objects whose id is
    in ``stop`` (other agents, the model) are neither yielded nor entered."""
    seen = {id(root)} | set(stop)
    queue: deque[tuple[str, Any, int]] = deque([("", root, 0)])
    yielded = 0
    while queue:
        path, obj, depth = queue.popleft()
        if depth:
            yield path, obj, depth
            yielded += 1
            if yielded >= max_objects:
                return
        if depth >= max_depth:
            continue
        for step, child in labelled_children(obj):
            if id(child) in seen or child is None:
                continue
            seen.add(id(child))
            queue.append((join(path, step), child, depth + 1))


def paths_to(root: Any, target: Any, *, max_depth: int = 8, limit: int = 16, stop: frozenset[int] = frozenset()) -> list[str]:
    """Every path (up to ``limit``) by which ``root`` holds ``target``: its aliases.

    Unlike ``walk`` this follows every edge, not only the first that reaches an
    object, so an array held both in a cache and in a model is found at both places.
    """
    found: list[str] = []
    expanded: set[int] = set(stop)
    queue: deque[tuple[str, Any, int]] = deque([("", root, 0)])
    while queue and len(found) < limit:
        path, obj, depth = queue.popleft()
        if id(obj) in expanded or depth >= max_depth:
            continue
        expanded.add(id(obj))
        for step, child in labelled_children(obj):
            child_path = join(path, step)
            if child is target:
                found.append(child_path)
                if len(found) >= limit:
                    break
            elif id(child) not in expanded and not isinstance(child, _OPAQUE):
                queue.append((child_path, child, depth + 1))
    return found


# When the items of a container are one ``[*]`` path: more than COLLAPSE_ITEMS items of a
# sequence, set or object array; a dict whose keys are not all strings, or that has more
# than NAMED_KEYS of them. The tree, the analyses and the replay group items alike.
COLLAPSE_ITEMS = 8
NAMED_KEYS = 32


def groups_items(container: Any, steps: Sequence[Step]) -> bool:
    """Whether ``container``'s children (reached by ``steps``) are shown as one ``[*]``."""
    if len(steps) <= COLLAPSE_ITEMS:
        return False
    if isinstance(container, (*_SEQUENCES, *_SETS)) or type(container).__name__ == "ndarray":
        return True
    if isinstance(container, dict):
        return len(steps) > NAMED_KEYS or not all(step.kind == "key" and isinstance(step.value, str) for step in steps)
    return False


def is_under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or a path inside it (``agent.B[0]`` is under ``agent``,
    ``agents`` is not)."""
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] in ".[")
