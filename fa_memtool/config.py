"""``[tool.fa-mem]`` in the user's pyproject.toml: workload, budgets and tolerances.

Flags always win over the file; the file wins over fa-mem's defaults. Paths in the
file (``module``, ``baseline``) are relative to the directory of pyproject.toml.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fa_memtool.errors import UsageError

# key -> accepted TOML types
KNOWN_KEYS: dict[str, tuple[type, ...]] = {
    "module": (str,),
    "agents": (int,),
    "steps": (int,),
    "seed": (int,),
    "factory": (str,),
    "step-method": (str,),
    "factory-args": (dict, list),
    "agents-from": (str,),
    "step-model": (bool,),
    "model-step-method": (str,),
    "observations": (str,),
    "sample-every": (int,),
    "scaling": (str, list),
    "trace": (bool,),
    "max-memory": (str, int),
    "timeout": (int, float),
    "baseline": (str,),
    "budget-per-agent": (str, int),
    "budget-total": (str, int),
    "max-leak": (str, int, float),
    "max-retained": (str, int, float),
    "tolerance": (str, int, float),
    "rss-tolerance": (str, int, float),
    "min-change": (str, int),
    "plugins": (list,),
    "target": (str, int),
    "verify-seeds": (int,),
}
PATH_KEYS = ("module", "baseline")


@dataclass(frozen=True)
class Config:
    values: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def find_pyproject(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start: Path | None = None) -> Config:
    """The ``[tool.fa-mem]`` table of the nearest pyproject.toml, validated."""
    path = find_pyproject((start or Path.cwd()).resolve())
    if path is None:
        return Config()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"cannot read {path}: {error}") from error
    table = document.get("tool", {}).get("fa-mem")
    if table is None:
        return Config(source=path)
    if not isinstance(table, dict):
        raise UsageError(f"{path}: [tool.fa-mem] must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        accepted = KNOWN_KEYS.get(key)
        if accepted is None:
            raise UsageError(f"{path}: unknown key {key!r} in [tool.fa-mem]; known keys: {', '.join(sorted(KNOWN_KEYS))}")
        if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
            names = " or ".join(kind.__name__ for kind in accepted)
            raise UsageError(f"{path}: [tool.fa-mem] {key} must be a {names}, not {type(value).__name__}")
        if key in PATH_KEYS and _looks_like_path(key, str(value)):
            text = str(value)
            value = str((path.parent / text).resolve()) if not Path(text).is_absolute() else text
        values[key] = value
    return Config(values=values, source=path)


def _looks_like_path(key: str, value: str) -> bool:
    """``module`` may be a dotted module name, which is left as it is."""
    return key != "module" or value.endswith(".py") or "/" in value or "\\" in value


def parse_fraction(value: str | int | float, flag: str) -> float:
    """'2%', '2' and 2 all mean two percent; returns 0.02."""
    text = str(value).strip().rstrip("%").strip()
    try:
        number = float(text)
    except ValueError:
        raise UsageError(f"{flag} takes a percentage such as 2% (got {value!r})") from None
    if not 0 <= number < 1000:
        raise UsageError(f"{flag} must be between 0% and 1000% (got {value!r})")
    return number / 100.0
