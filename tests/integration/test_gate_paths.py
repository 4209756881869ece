"""The gate names a regression where it sits: at a path inside the agent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fa_mem_cli import assert_clean_success, run_cli, write_module

pytestmark = pytest.mark.slow

AGENTS = 3
STEPS = 12
FRAME = 128
MAXLEN = 3
BOUNDED = f"deque(maxlen={MAXLEN})"

SOURCE = f"""
    from collections import deque

    import numpy as np


    class Inner:
        def __init__(self):
            self.history = {BOUNDED}
            self.weights = np.ones(2048)


    class Agent:
        def __init__(self):
            self.agent = Inner()

        def step(self, observation):
            self.agent.history.append(np.full({FRAME}, float(observation)))
            return observation % 3


    def create_agents(n, seed):
        return [Agent() for _ in range(n)]
"""


def _gate(workdir: Path) -> tuple[int, dict]:
    out = workdir / "gate.json"
    result = run_cli(["gate", "agents.py", "-n", AGENTS, "--steps", STEPS, "--no-trace", "--json", out], cwd=workdir)
    assert "Traceback" not in result.stderr, result.describe()
    return result.returncode, json.loads(out.read_text(encoding="utf-8"))


def test_nested_history_made_unbounded_is_named_by_its_path(tmp_path: Path) -> None:
    agents = write_module(tmp_path, "agents", SOURCE)
    assert_clean_success(
        run_cli(["baseline", "update", "agents.py", "-n", AGENTS, "--steps", STEPS, "--no-trace"], cwd=tmp_path)
    )
    recorded = {metric["name"] for metric in json.loads((tmp_path / "fa-mem-baseline.json").read_text())["metrics"]}
    assert "path:agent.history" in recorded and "path:agent.weights" in recorded

    code, data = _gate(tmp_path)
    assert code == 0 and data["passed"], data["regressions"]

    agents.write_text(agents.read_text(encoding="utf-8").replace(BOUNDED, "[]"), encoding="utf-8")
    code, data = _gate(tmp_path)
    assert code == 1
    regressions = {check["metric"]: check for check in data["regressions"]}
    assert {"path:agent.history", "path-growth:agent.history"} <= set(regressions)
    frame_bytes = sys.getsizeof(np.zeros(FRAME))
    history = regressions["path:agent.history"]
    assert history["now"] >= STEPS * frame_bytes  # every frame kept
    assert history["baseline"] < (MAXLEN + 1) * frame_bytes + 1024
    assert "path:agent.weights" not in regressions
