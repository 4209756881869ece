"""The one line that adopts transformations in the user's own code.

A line must be safe to paste: a real Python statement, never a placeholder. Where the
user's code assigns a top-level attribute on one line (``self.belief = np.zeros(...)``),
the line rewrites that assignment, wrapping the user's own expression. Anywhere else
(a path inside an object the agent built, such as a pymdp Agent's ``B[0]``, or an
attribute assigned in a helper) the line re-assigns the transformed current value at
the path, with a comment saying where it goes::

    self.agent.B[0] = get_shared_pool().share(self.agent.B[0])  # after self.agent is built

Several transformations of one path are one expression, nested in the order they are
applied (``LazyBeliefArray.from_dense(self.A.astype("float32"))``); every plugin's
``fa_mem_adoption`` returns an expression for the transformed value, so they nest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fa_memtool.paths import PathError, format_path, parse_path

__all__ = ["adoption_line", "assigned_expression", "path_expression", "site_for"]

ROOT = "self"  # how the user's methods name the agent


def _without_comment(line: str) -> str:
    """The line with a trailing ``# comment`` removed (strings keep their ``#``)."""
    import io
    import tokenize

    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                return line[: token.start[1]].rstrip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return line


def assigned_expression(attribute: str, code: str | None) -> str | None:
    """The right-hand side of ``self.<attribute> = <expression>`` in a source line."""
    for statement in _without_comment(code or "").split(";"):
        target, equals, value = statement.partition("=")
        if not equals or value.startswith("="):
            continue
        name = target.strip().split(":")[0].strip()
        if name.endswith(f".{attribute}") or name == attribute:
            return value.strip()
    return None


def path_expression(path: str) -> str:
    """The Python expression for a path on the agent (``agent.B[0]`` -> ``self.agent.B[0]``)."""
    return f"{ROOT}.{path}"


def site_for(path: str, sites: dict[str, str]) -> str | None:
    """The entry of ``sites`` for ``path``, else for the nearest path enclosing it (the
    top-level attribute's allocation site serves the paths inside it)."""
    if path in sites:
        return sites[path]
    try:
        steps = parse_path(path)
    except PathError:
        return None
    for end in range(len(steps) - 1, 0, -1):
        found = sites.get(format_path(steps[:end]))
        if found is not None:
            return found
    return None


def _wrapped(manager: Any, path: str, transformations: Sequence[tuple[str, dict[str, Any]]], expression: str) -> str | None:
    from fa_memtool.hookspecs import Candidate

    for plugin, parameters in transformations:
        candidate = Candidate(plugin, path, 0.0, "", dict(parameters))
        adopted = manager.hook.fa_mem_adoption(candidate=candidate, expression=expression)
        if not adopted:
            return None  # a plugin that cannot say how: no line rather than half of one
        expression = str(adopted)
    return expression


def adoption_line(
    manager: Any,
    *,
    path: str,
    transformations: Sequence[tuple[str, dict[str, Any]]],
    code: str | None,
) -> str | None:
    """The statement that adopts ``transformations`` (plugin name and parameters, in the
    order they apply) of ``path``, given the source line that allocated it (or None).
    None when a plugin offers no adoption, or the path has more than one ``[*]``."""
    steps = parse_path(path)
    stars = [position for position, step in enumerate(steps) if step.kind == "items"]
    if len(stars) > 1:
        return None
    if stars:
        container = path_expression(format_path(steps[: stars[0]]))
        item = f"{container}[key]" + "".join(step.text() for step in steps[stars[0] + 1 :])
        wrapped = _wrapped(manager, path, transformations, item)
        if wrapped is None:
            return None
        keys = f"(list({container}) if isinstance({container}, dict) else range(len({container})))"
        return f"for key in {keys}: {item} = {wrapped}"
    target = path_expression(path)
    own = assigned_expression(path, code) if len(steps) == 1 else None
    wrapped = _wrapped(manager, path, transformations, own or target)
    if wrapped is None:
        return None
    if own is not None:
        return f"{target} = {wrapped}"
    holder = path_expression(format_path(steps[:1]))
    where = f"after {holder} is built" if len(steps) > 1 else f"after {holder} is assigned"
    return f"{target} = {wrapped}  # {where}"
