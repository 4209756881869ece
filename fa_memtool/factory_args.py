"""Keyword arguments for the factory: ``--factory-arg NAME=VALUE`` and ``factory-args``.

VALUE is a JSON literal (``10``, ``true``, ``"torus"``, ``{"agents": "{n}"}``) or exactly
``{n}`` or ``{seed}``. A string that is exactly ``"{n}"`` or ``"{seed}"``, at any depth of
a JSON value, stands for the run's agent count or seed: the scaling runs build other
population sizes from the same arguments, so the count cannot be written down once.
Nothing is evaluated.
"""

from __future__ import annotations

import inspect
import json
import keyword
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fa_memtool.errors import UsageError, WorkloadError

AGENTS_PLACEHOLDER = "{n}"
SEED_PLACEHOLDER = "{seed}"
PLACEHOLDERS = (AGENTS_PLACEHOLDER, SEED_PLACEHOLDER)
SHOWN_VALUE_CHARACTERS = 40


def _check_name(name: str, label: str, text: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"{label} {text!r}: expected NAME=VALUE with NAME a Python identifier, for example population_size={{n}}")


def parse_factory_arg(text: str, *, label: str = "--factory-arg") -> tuple[str, Any]:
    """``NAME=VALUE`` as a name and a JSON value (placeholders kept as their strings)."""
    name, equals, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not equals:
        raise UsageError(f"{label} {text!r}: expected NAME=VALUE, for example population_size={{n}}")
    _check_name(name, label, text)
    if value in PLACEHOLDERS:
        return name, value
    try:
        return name, json.loads(value)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{label} {name}={value}: {value!r} is not a JSON value ({error.msg}); write a string as JSON "
            f"(quoted for the shell: {name}='\"{value}\"'), or use {{n}} or {{seed}}"
        ) from None


def parse_factory_args(texts: Iterable[str], *, label: str = "--factory-arg") -> dict[str, Any]:
    """Every ``NAME=VALUE``, in order; a name given twice is refused."""
    parsed: dict[str, Any] = {}
    for text in texts:
        name, value = parse_factory_arg(text, label=label)
        if name in parsed:
            raise UsageError(f"{label} {name} is given twice")
        parsed[name] = value
    return parsed


def factory_args_from_config(value: object, *, label: str) -> dict[str, Any]:
    """``factory-args`` in [tool.fa-mem]: a table of values, or a list of NAME=VALUE strings."""
    if isinstance(value, Mapping):
        for name in value:
            _check_name(str(name), label, str(name))
        return {str(name): item for name, item in value.items()}
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return parse_factory_args(value, label=label)
    raise UsageError(f"{label} must be a table (population_size = \"{{n}}\") or a list of \"NAME=VALUE\" strings")


def substitute(value: Any, *, agents: int, seed: int) -> Any:
    """The value with every placeholder string replaced by this run's agent count or seed."""
    if isinstance(value, str):
        if value == AGENTS_PLACEHOLDER:
            return agents
        if value == SEED_PLACEHOLDER:
            return seed
        return value
    if isinstance(value, list):
        return [substitute(item, agents=agents, seed=seed) for item in value]
    if isinstance(value, dict):
        return {key: substitute(item, agents=agents, seed=seed) for key, item in value.items()}
    return value


def check_accepted(factory: Callable[..., Any], names: Iterable[str], *, factory_name: str) -> None:
    """Refuse a name the factory's signature has no parameter for (unless it takes ``**kwargs``)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # no signature to read (a builtin): the call itself will say what is wrong
    parameters = list(signature.parameters.values())
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return
    accepted = [
        parameter.name
        for parameter in parameters
        if parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    for name in names:
        if name not in accepted:
            takes = ", ".join(accepted) if accepted else "no keyword arguments"
            raise WorkloadError(f"--factory-arg {name}: {factory_name} has no parameter {name!r} (it takes {takes})")


def describe_call(factory_name: str, arguments: Mapping[str, Any]) -> str:
    """``name(a=1, b='x')`` for messages, each value shortened."""
    shown = []
    for name, value in arguments.items():
        text = repr(value)
        if len(text) > SHOWN_VALUE_CHARACTERS:
            text = text[: SHOWN_VALUE_CHARACTERS - 3] + "..."
        shown.append(f"{name}={text}")
    return f"{factory_name}({', '.join(shown)})"


def command_line_value(value: Any) -> str:
    """How a parsed value is written back on a command line (placeholders bare)."""
    if value in PLACEHOLDERS:
        return str(value)
    return json.dumps(value)
