"""What survives a release, and the reference path that keeps it: ground truth from
populations the tests build and release themselves."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from fa_memtool import check_released
from fa_memtool.retention import ReleaseWatch


class Agent:
    def __init__(self) -> None:
        self.weights = np.ones(1000)


REGISTRY: list[Any] = []


class Registry:
    members: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def empty_registries() -> Any:
    yield
    REGISTRY.clear()
    Registry.members.clear()


def test_a_clean_population_retains_nothing() -> None:
    retention = check_released(lambda: [Agent() for _ in range(5)])
    assert retention.clean and retention.agents == 5 and retention.retained_bytes == 0 and retention.paths == []


def test_a_module_level_list_is_named_with_the_bytes_it_keeps() -> None:
    def run() -> list[Agent]:
        agents = [Agent() for _ in range(4)]
        REGISTRY.append(agents[1])
        return agents

    retention = check_released(run)
    assert retention.retained_agents == [1]
    assert retention.retained_bytes >= REGISTRY[0].weights.nbytes
    assert retention.paths == [f"{__name__}.REGISTRY[0] -> agent 1"]


def test_a_class_attribute_registry_is_named() -> None:
    def run() -> list[Agent]:
        agents = [Agent() for _ in range(3)]
        Registry.members["x"] = agents[2]
        return agents

    retention = check_released(run)
    assert retention.retained_agents == [2]
    assert retention.paths == [f'{__name__}.Registry.members["x"] -> agent 2']


def test_a_closure_is_named() -> None:
    keepers: list[Any] = []

    def run() -> list[Agent]:
        agents = [Agent() for _ in range(2)]
        kept = agents[0]

        def callback() -> Agent:
            return kept

        REGISTRY.append(callback)
        return agents

    retention = check_released(run)
    assert retention.retained_agents == [0]
    assert retention.paths[0].startswith(f"{__name__}.REGISTRY[0]") and "(closure)" in retention.paths[0]
    del keepers


def test_a_running_thread_is_named() -> None:
    release = threading.Event()

    def run() -> list[Agent]:
        agents = [Agent() for _ in range(2)]
        threading.Thread(target=lambda held=agents[1]: release.wait(10), name="holder", daemon=True).start()
        return agents

    try:
        retention = check_released(run)
    finally:
        release.set()
    assert retention.retained_agents == [1]
    assert retention.paths[0] == "thread 'holder' (in <lambda>) local held -> agent 1"


class Cyclic:
    def __del__(self) -> None:
        pass


def test_a_cycle_with_a_finalizer_is_collected_so_nothing_is_retained() -> None:
    def run() -> list[Cyclic]:
        agents = [Cyclic() for _ in range(2)]
        agents[0].other, agents[1].other = agents[1], agents[0]  # type: ignore[attr-defined]
        return agents

    assert check_released(run).clean


def test_objects_without_weak_references_are_tracked_by_id() -> None:
    class Slotted:
        __slots__ = ("weights",)

        def __init__(self) -> None:
            self.weights = np.ones(10)

    agents = [Slotted() for _ in range(3)]
    REGISTRY.append(agents[0])
    watch = ReleaseWatch(agents)
    del agents
    retention = watch.check()
    assert retention.untracked == 3 and retention.retained_agents == [0]


def test_a_mesa_model_kept_by_the_agent_base_class_is_found() -> None:
    mesa = pytest.importorskip("mesa")

    def run() -> Any:
        model = mesa.Model()
        for _ in range(4):
            mesa.Agent(model)
        return model

    retention = check_released(run)
    assert retention.model_retained is True and len(retention.retained_agents) == 4
    assert retention.paths[0] == "mesa.agent.Agent._ids[<Model>] -> the model"


def test_the_runs_verdict_says_what_the_sweep_leaves() -> None:
    from fa_memtool.report import ReleasedRun
    from fa_memtool.retention import runs_verdict

    def runs(retained: list[int], rss: list[int]) -> list[ReleasedRun]:
        return [ReleasedRun(index + 1, size, count, None, count * 8000) for index, (count, size) in enumerate(zip(retained, rss))]

    assert runs_verdict(runs([0], [100])) is None
    assert runs_verdict(runs([2, 2, 2], [100, 200, 300])).startswith("every run leaves its population behind: 16 kB retained per run")
    assert runs_verdict(runs([0, 2, 0], [100, 100, 100])).startswith("1 of 3 runs left agents behind")
    growing = runs_verdict(runs([0, 0, 0], [0, 4 * 1024 * 1024, 8 * 1024 * 1024]))
    assert growing.startswith("no agent survives, but RSS after release grows by 4.19 MB per run")
    assert runs_verdict(runs([0, 0], [100, 100])).startswith("runs leave nothing behind")


def test_every_root_that_holds_the_first_survivor_is_listed() -> None:
    def run() -> list[Agent]:
        agents = [Agent() for _ in range(3)]
        REGISTRY.append(agents[0])
        Registry.members["a"] = agents[0]
        return agents

    retention = check_released(run)
    assert sorted(retention.paths) == sorted([f"{__name__}.REGISTRY[0] -> agent 0", f'{__name__}.Registry.members["a"] -> agent 0'])
