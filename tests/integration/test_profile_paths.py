"""``fa-mem profile`` on agents that hold their state deep inside: the tree of paths.

The bundled ``sample_agents/wrapped.py`` keeps a pymdp-style agent as ``self.agent``;
the expected figures are computed here from agents the test builds itself."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from fa_mem_cli import SAMPLE_AGENTS, assert_clean_success, load_json, run_cli, tree_rows

pytestmark = pytest.mark.slow

AGENTS = 3
STEPS = 12


@pytest.fixture(scope="module")
def wrapped_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("wrapped")
    out = workdir / "report.json"
    result = run_cli(
        ["profile", SAMPLE_AGENTS / "wrapped.py", "-n", AGENTS, "--steps", STEPS, "--scaling", "none", "--json", out],
        cwd=workdir,
    )
    assert_clean_success(result)
    return load_json(out)


def test_nested_matrix_has_its_own_row(wrapped_report: dict[str, Any]) -> None:
    sys.path.insert(0, str(SAMPLE_AGENTS))
    import wrapped  # the same module, built here for the ground truth

    forager = wrapped.create_agents(1, 0)[0]
    b0 = forager.agent.B[0]
    row = tree_rows(wrapped_report)["agent.B[0]"]
    assert row["deep_bytes"] == sys.getsizeof(b0)  # header + 829,440 bytes of float64
    assert row["shape"] == list(b0.shape) and row["dtype"] == "float64"
    assert row["zero_fraction"] == pytest.approx(1 - np.count_nonzero(b0) / b0.size)
    assert row["agents"] == AGENTS
    assert row["allocation_code"] == "tensor = np.zeros((NUM_STATES, NUM_STATES, len(ACTIONS)))"


def test_histories_are_one_row_of_items(wrapped_report: dict[str, Any]) -> None:
    rows = tree_rows(wrapped_report)
    beliefs = rows["agent.q_pi_hist[*]"]
    assert beliefs["items"] == STEPS  # one policy posterior per step
    assert beliefs["shape"] == [5]
    assert beliefs["deep_bytes"] == STEPS * sys.getsizeof(np.zeros(5))


def test_growth_is_named_by_the_deepest_paths(wrapped_report: dict[str, Any]) -> None:
    growing = [item["name"] for item in wrapped_report["growth"]["paths"]]
    # prev_actions holds small ints (interpreter singletons): only its list grows, in jumps.
    assert {"agent.qs_hist", "agent.q_pi_hist"} <= set(growing) <= {"agent.qs_hist", "agent.q_pi_hist", "agent.prev_actions"}
    assert all(not item["bounded"] for item in wrapped_report["growth"]["paths"])
    assert "agent.qs_hist" in wrapped_report["growth"]["verdict"]


def test_alias_is_shown_once_with_its_other_path(wrapped_report: dict[str, Any]) -> None:
    rows = tree_rows(wrapped_report)
    assert rows['matrix_cache["A"]']["aliases"] == ["agent.A[0]"]
    assert "agent.A[0]" not in rows


def test_terminal_shows_where_the_memory_sits(tmp_path: Any, wrapped_report: dict[str, Any]) -> None:
    import json

    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(wrapped_report), encoding="utf-8")
    result = run_cli(["report", saved], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Where the memory sits" in result.stdout
    assert "144x144x5 float64" in result.stdout
    assert "also at .agent.A[0]" in result.stdout
