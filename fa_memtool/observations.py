"""Recorded observations: ``--observations FILE`` feeds every agent the user's own data.

Two layouts, one observation per agent per step (documented in docs/protocol.md):

- ``.npz`` (numpy's ``savez``): an array named ``observations`` whose first axis is the
  step and second the agent (creation order), so ``observations[step, index]`` is what
  agent ``index`` observes at ``step``: a number, or an array of the remaining axes.
- ``.jsonl``: one line per step, each a JSON list with one value per agent (numbers,
  strings, booleans, null, lists or objects; a list is passed as a list).

With a model stepped as a whole (``--step-model``) there is one "agent": the model.
A run may use fewer steps and agents than the file holds, never more; both are checked
before anything is built (exit 2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fa_memtool.errors import UsageError, WorkloadError

__all__ = ["RecordedObservations", "load_observations"]

MAX_FILE_BYTES = 1 << 31
_LOADED: dict[str, RecordedObservations] = {}


class RecordedObservations:
    """The observations of a file, by step and agent index."""

    def __init__(self, path: str, values: Any, steps: int, agents: int) -> None:
        self.path = path
        self._values = values  # ndarray (steps, agents, ...) or list of lists
        self.steps = steps
        self.agents = agents

    def at(self, step: int, index: int) -> Any:
        if step >= self.steps:
            raise WorkloadError(f"--observations {self.path} holds {self.steps} steps; step {step} has none")
        if index >= self.agents:
            raise WorkloadError(
                f"--observations {self.path} holds {self.agents} agents' observations; agent {index} (created while "
                f"stepping) has none at step {step}"
            )
        if isinstance(self._values, list):
            return self._values[step][index]
        value = self._values[step, index]
        return value.copy() if hasattr(value, "copy") and getattr(value, "ndim", 0) else value

    def check(self, *, steps: int, agents: int) -> None:
        """A run of ``steps`` steps and ``agents`` observers fits in the file (exit 2 if not)."""
        if steps > self.steps:
            raise UsageError(f"--observations {self.path} holds {self.steps} steps; the run asks for {steps} (--steps)")
        if agents > self.agents:
            raise UsageError(f"--observations {self.path} holds observations for {self.agents} agents; the run builds {agents}")


def load_observations(path: str) -> RecordedObservations:
    """Read ``path`` once per process (optimize builds many populations from it)."""
    resolved = str(Path(path).resolve())
    if resolved not in _LOADED:
        _LOADED[resolved] = _read(path)
    return _LOADED[resolved]


def _read(path: str) -> RecordedObservations:
    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as error:
        raise UsageError(f"--observations {path}: cannot read it ({error.strerror or error})") from None
    if size > MAX_FILE_BYTES:
        raise UsageError(f"--observations {path} is {size} bytes; at most {MAX_FILE_BYTES} are read")
    if file.suffix == ".npz":
        return _read_npz(path)
    if file.suffix in (".jsonl", ".ndjson"):
        return _read_lines(path)
    raise UsageError(f"--observations {path}: give a .npz file (an array named observations) or a .jsonl file (a list per step)")


def _read_npz(path: str) -> RecordedObservations:
    import numpy

    try:
        with numpy.load(path, allow_pickle=False) as archive:
            if "observations" not in archive.files:
                raise UsageError(f"--observations {path} has no array named observations (it has {', '.join(archive.files) or 'none'})")
            values = archive["observations"]
    except UsageError:
        raise
    except (OSError, ValueError) as error:
        raise UsageError(f"--observations {path} is not a readable .npz file: {error}") from None
    if values.ndim < 2:
        raise UsageError(f"--observations {path}: observations has shape {values.shape}; it needs (steps, agents, ...)")
    if values.dtype.kind not in "biuf":
        raise UsageError(f"--observations {path}: observations has dtype {values.dtype}; numbers are needed (bool, int, float)")
    if values.dtype.kind == "f" and not numpy.isfinite(values).all():
        raise UsageError(f"--observations {path}: observations holds NaN or infinity")
    return RecordedObservations(path, values, int(values.shape[0]), int(values.shape[1]))


def _read_lines(path: str) -> RecordedObservations:
    rows: list[list[Any]] = []
    try:
        with open(path, encoding="utf-8") as stream:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line, parse_constant=_refuse_constant)
                except (ValueError, RecursionError) as error:
                    raise UsageError(f"--observations {path} line {number} is not JSON: {error}") from None
                if not isinstance(row, list):
                    raise UsageError(f"--observations {path} line {number} is a {type(row).__name__}; each line must be a list (one value per agent)")
                if any(isinstance(value, float) and not math.isfinite(value) for value in row):
                    raise UsageError(f"--observations {path} line {number} holds a number too large for a float")
                rows.append(row)
    except UnicodeDecodeError as error:
        raise UsageError(f"--observations {path} is not UTF-8 text: {error.reason}") from None
    except OSError as error:
        raise UsageError(f"--observations {path}: cannot read it ({error.strerror or error})") from None
    if not rows:
        raise UsageError(f"--observations {path} holds no observations")
    agents = min(len(row) for row in rows)
    return RecordedObservations(path, rows, len(rows), agents)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number fa-mem accepts")
