"""``fa-mem profile`` and ``optimize`` on torch agents: storages counted at their paths.

The expected figures are computed here from agents the test builds itself, from
storage ``nbytes``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fa_mem_cli import assert_clean_success, import_source, load_json, run_cli, tree_rows

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow

WORKLOAD = Path(__file__).parent / "buffer_workloads" / "torch_agents.py"
AGENTS = 2
STEPS = 6


def _module() -> Any:
    return import_source(WORKLOAD, "fa_mem_buffer_torch_agents")


def _storage(tensor: Any) -> int:
    return int(tensor.untyped_storage().nbytes())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("torch")
    out = workdir / "report.json"
    result = run_cli(
        ["profile", WORKLOAD, "-n", AGENTS, "--steps", STEPS, "--scaling", "none", "--no-trace", "--json", out],
        cwd=workdir,
    )
    assert_clean_success(result)
    return load_json(out)


@pytest.fixture(scope="module")
def stepped() -> list[Any]:
    agents = _module().create_agents(AGENTS, 0)
    for step in range(STEPS):
        for agent in agents:
            agent.step(step)
    return agents


def test_every_storage_is_counted_once(report: dict[str, Any], stepped: list[Any]) -> None:
    agent = stepped[0]
    tensors = [*agent.policy.parameters(), *(p.grad for p in agent.policy.parameters()), *agent.target.parameters()]
    tensors += [value for state in agent.optimizer.state.values() for value in state.values()]
    tensors += [agent.replay, *agent.history]  # .recent is a view of .replay: the same storage
    truth = sum(_storage(tensor) for tensor in {t.untyped_storage().data_ptr(): t for t in tensors}.values())
    per_agent = report["population"]["per_agent_bytes"]
    assert truth <= per_agent <= truth * 1.35 + 64 * 1024, (per_agent, truth)
    assert report["population"]["device_bytes"] == {}


def test_parameters_sit_at_torch_names(report: dict[str, Any], stepped: list[Any]) -> None:
    rows = tree_rows(report)
    weight = stepped[0].policy[0].weight
    row = rows["policy[0].weight"]
    assert row["shape"] == list(weight.shape) and row["dtype"] == "float32" and row["device"] == "cpu"
    # the weight and its gradient, each its own storage
    assert _storage(weight) + _storage(weight.grad) <= row["deep_bytes"] <= _storage(weight) * 2 + 1024
    replay = rows["replay"]
    assert _storage(stepped[0].replay) <= replay["deep_bytes"] <= _storage(stepped[0].replay) + 512
    assert rows["recent"]["deep_bytes"] < 512, "a view holds no storage of its own"


def test_a_growing_history_of_tensors_is_named_with_its_storage_per_step(report: dict[str, Any], stepped: list[Any]) -> None:
    growing = {entry["name"]: entry for entry in report["growth"]["paths"]}
    assert "history" in growing, sorted(growing)
    entry = stepped[0].history[0]
    per_step = _storage(entry) + 64  # the storage, at least a header and a list slot
    assert growing["history"]["bytes_per_step_per_agent"] >= per_step
    assert not growing["history"]["bounded"]
