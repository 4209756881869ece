"""Plans: JSON round trip, refusal of plans that do not match, all-or-nothing apply.

A plan made with ``step_for`` and applied with ``apply_plan`` must leave a population
exactly as applying the same candidates directly does; a plan that no longer matches
the agents (or cannot be read) is refused with ``PlanError`` before anything changes;
a step that fails restores every path earlier steps changed. Steps name paths: a
top-level attribute (as plans of earlier versions did), a path inside an object, or
the items of a container.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fa_memtool
from fa_memtool.containers import CompressedHistory, LazyBeliefArray
from fa_memtool.errors import EXIT_USAGE, UsageError
from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl
from fa_memtool.plan import PLAN_VERSION, Plan, PlanError, PlanStep, apply_plan, describe, load_plan, save_plan, step_for
from fa_memtool.plugins import analyse, apply_candidate, plugin_manager, select
from fa_memtool.sizing import measure_population

N_AGENTS = 4


class Agent:
    pass


def make_population(n: int = N_AGENTS, seed: int = 99) -> list[Agent]:
    """Deterministic agents with one attribute for each built-in plugin."""
    rng = np.random.default_rng(seed)
    template = rng.standard_normal((48, 48))
    agents = []
    for index in range(n):
        agent = Agent()
        agent.transition = template.copy()
        belief = np.zeros((100, 100))
        positions = rng.choice(belief.size, size=25 * (index + 1), replace=False)
        belief.flat[positions] = rng.random(positions.size) + 0.25
        agent.belief = belief
        history = []
        for step in range(30):
            entry = np.zeros(512)
            entry[(step * 5 + index) % 512] = step + 1 + 1000 * index
            history.append(entry)
        agent.history = history
        agent.weights = rng.random(12_000)
        agents.append(agent)
    return agents


CONTEXT = AnalysisContext(growing={"history": 4096.0})


def best_per_attribute(agents: list[Agent], manager: Any) -> list[Candidate]:
    """The best candidate per attribute (one step per attribute keeps the recorded state exact)."""
    found, failures = analyse(manager, agents, CONTEXT, select(manager, None))
    assert failures == []
    chosen: dict[str, Candidate] = {}
    for candidate in found:
        chosen.setdefault(candidate.attribute, candidate)
    return list(chosen.values())


def plan_for(agents: list[Agent], candidates: list[Candidate]) -> Plan:
    return Plan(
        PLAN_VERSION,
        [step_for(agents[0], candidate.plugin, candidate.attribute, candidate.parameters) for candidate in candidates],
        workload={"module": "test_plan", "agents": len(agents)},
    )


def snapshot(agents: list[Agent]) -> list[dict[str, Any]]:
    """Every agent's attribute bindings (the objects themselves)."""
    return [dict(vars(agent)) for agent in agents]


def assert_untouched(agents: list[Agent], before: list[dict[str, Any]], copies: list[dict[str, Any]] | None = None) -> None:
    for agent, attributes in zip(agents, before):
        assert vars(agent).keys() == attributes.keys()
        for name, value in attributes.items():
            assert vars(agent)[name] is value, f".{name} was replaced"
    if copies is not None:
        for agent, values in zip(agents, copies):
            for name, value in values.items():
                assert np.array_equal(getattr(agent, name), value), f".{name} was modified in place"


def value_copies(agents: list[Agent]) -> list[dict[str, Any]]:
    return [{"belief": agent.belief.copy(), "weights": agent.weights.copy(), "transition": agent.transition.copy()} for agent in agents]


@pytest.fixture(scope="module")
def manager() -> Any:
    return plugin_manager()


@pytest.fixture
def agents() -> list[Agent]:
    return make_population()


def sample_plan() -> Plan:
    return Plan(
        PLAN_VERSION,
        [
            PlanStep("lazy-beliefs", "belief", {"sparsity_threshold": 0.9}, "ndarray", [100, 100], "float64", 80_000.0, 1_200.5),
            PlanStep("compressed-history", "history", {"compression_level": 6}, "list"),
            PlanStep("lower-precision", "weights", {"dtype": "float32", "rtol": 1e-05, "atol": 1e-08, "nested": {"a": [1, 2]}}, "ndarray", [12000], "float64"),
        ],
        workload={"module": "agents.py", "factory": "build", "agents": 10, "seed": 0},
    )


# --------------------------------------------------------------------------- the file


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    plan = sample_plan()
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    loaded = load_plan(path)
    assert loaded == plan
    assert all(type(step) is PlanStep for step in loaded.steps)
    assert isinstance(loaded.steps[0].before_bytes_per_agent, float)
    assert loaded.to_json() == plan.to_json()
    assert json.loads(path.read_text(encoding="utf-8"))["fa_mem_plan"] == PLAN_VERSION
    assert load_plan(str(path)) == plan


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    save_plan(Plan(PLAN_VERSION), path)
    save_plan(sample_plan(), path)  # overwrite
    assert sorted(os.listdir(tmp_path)) == ["plan.json"]
    assert load_plan(path) == sample_plan()


def test_save_into_a_missing_folder_fails_without_leaving_anything(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        save_plan(sample_plan(), tmp_path / "missing" / "plan.json")
    assert os.listdir(tmp_path) == []


def test_save_refuses_a_value_json_cannot_hold_and_keeps_the_old_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    save_plan(sample_plan(), path)
    bad = sample_plan()
    bad.steps[0].before_bytes_per_agent = float("nan")
    with pytest.raises(ValueError):
        save_plan(bad, path)
    assert load_plan(path) == sample_plan()
    assert os.listdir(tmp_path) == ["plan.json"]


def test_a_newer_plan_with_extra_fields_still_loads(tmp_path: Path) -> None:
    data = dataclasses.asdict(sample_plan())
    data["made_by"] = "a newer fa-mem"
    data["steps"][0]["confidence"] = 0.5
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert load_plan(path) == sample_plan()


def _step(**changes: Any) -> dict[str, Any]:
    step = dataclasses.asdict(sample_plan().steps[0])
    step.update(changes)
    return step


def _without(key: str) -> dict[str, Any]:
    step = _step()
    del step[key]
    return step


BAD_PLANS = {
    "empty file": "",
    "corrupt json": '{"fa_mem_plan": 1, "steps": [',
    "a list": "[1, 2, 3]",
    "a report, not a plan": '{"schema_version": 1, "agents": []}',
    "another version": json.dumps({"fa_mem_plan": 2, "steps": []}),
    "version as text": json.dumps({"fa_mem_plan": "1", "steps": []}),
    "steps not a list": json.dumps({"fa_mem_plan": 1, "steps": 5}),
    "steps null": json.dumps({"fa_mem_plan": 1, "steps": None}),
    "a step that is a number": json.dumps({"fa_mem_plan": 1, "steps": [3]}),
    "a step that is a string": json.dumps({"fa_mem_plan": 1, "steps": ["lazy-beliefs"]}),
    "a step without parameters": json.dumps({"fa_mem_plan": 1, "steps": [_without("parameters")]}),
    "a step without plugin": json.dumps({"fa_mem_plan": 1, "steps": [_without("plugin")]}),
    "a step without attribute": json.dumps({"fa_mem_plan": 1, "steps": [_without("attribute")]}),
    "a step without type_name": json.dumps({"fa_mem_plan": 1, "steps": [_without("type_name")]}),
    "attribute not a string": json.dumps({"fa_mem_plan": 1, "steps": [_step(attribute=7)]}),
    "parameters not an object": json.dumps({"fa_mem_plan": 1, "steps": [_step(parameters=[1, 2])]}),
    "shape not a list": json.dumps({"fa_mem_plan": 1, "steps": [_step(shape=5)]}),
}


@pytest.mark.parametrize("text", list(BAD_PLANS.values()), ids=list(BAD_PLANS))
def test_unreadable_plans_are_refused_with_plan_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PlanError) as raised:
        load_plan(path)
    assert str(path) in str(raised.value)
    assert raised.value.exit_code == EXIT_USAGE


def test_a_missing_or_undecodable_plan_is_refused_with_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no plan"):
        load_plan(tmp_path / "absent.json")
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"fa_mem_plan": 1, "steps": ["\xff\xfe"]}')
    with pytest.raises(PlanError):
        load_plan(binary)
    with pytest.raises(PlanError):
        load_plan(tmp_path)  # a folder


def test_apply_plan_refuses_an_unreadable_plan_file_and_changes_nothing(tmp_path: Path, agents: list[Agent], manager: Any) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"fa_mem_plan": 1, "steps": [{"plugin": "lazy-beliefs"', encoding="utf-8")
    before = snapshot(agents)
    with pytest.raises(PlanError):
        apply_plan(agents, path, manager=manager)
    assert_untouched(agents, before)


def test_a_step_whose_plugin_is_not_a_string_is_refused_with_plan_error(tmp_path: Path, agents: list[Agent], manager: Any) -> None:
    path = tmp_path / "plan.json"
    step = step_for(agents[0], "lazy-beliefs", "belief", {})
    data = dataclasses.asdict(Plan(PLAN_VERSION, [step]))
    data["steps"][0]["plugin"] = 5
    path.write_text(json.dumps(data), encoding="utf-8")
    before = snapshot(agents)
    try:
        with pytest.raises(PlanError):
            apply_plan(agents, path, manager=manager)
    finally:
        assert_untouched(agents, before)


# --------------------------------------------------------------------------- step_for


def test_step_for_records_type_shape_and_dtype(agents: list[Agent]) -> None:
    step = step_for(agents[0], "lazy-beliefs", "belief", {"sparsity_threshold": 0.9})
    assert step == PlanStep("lazy-beliefs", "belief", {"sparsity_threshold": 0.9}, "ndarray", [100, 100], "float64")
    history = step_for(agents[0], "compressed-history", "history", {})
    assert (history.type_name, history.shape, history.dtype) == ("list", None, None)
    parameters = {"a": 1}
    assert step_for(agents[0], "x", "weights", parameters).parameters is not parameters
    lazy = LazyBeliefArray.from_dense(agents[0].belief)
    assert describe(lazy) == ("LazyBeliefArray", [100, 100], "float64")


# --------------------------------------------------------------------------- apply_plan


def test_apply_plan_gives_the_same_result_as_applying_the_candidates(tmp_path: Path, manager: Any) -> None:
    direct, planned = make_population(), make_population()
    candidates = best_per_attribute(direct, manager)
    assert {(c.plugin, c.attribute) for c in candidates} == {
        ("shared-parameters", "transition"),
        ("lazy-beliefs", "belief"),
        ("compressed-history", "history"),
        ("lower-precision", "history[*]"),
        ("lower-precision", "weights"),
    }
    path = tmp_path / "plan.json"
    save_plan(plan_for(planned, candidates), path)

    for candidate in candidates:
        apply_candidate(manager, direct, candidate)
    returned = apply_plan(planned, path, manager=manager)

    assert returned == load_plan(path)
    for one, other in zip(direct, planned):
        assert vars(one).keys() == vars(other).keys()
        for name in vars(one):
            a, b = getattr(one, name), getattr(other, name)
            assert type(a) is type(b), name
        assert np.array_equal(np.asarray(one.belief), np.asarray(other.belief))
        assert one.weights.dtype == other.weights.dtype == np.float32
        assert np.array_equal(one.weights, other.weights)
        assert np.array_equal(one.transition, other.transition)
        assert len(one.history) == len(other.history)
        assert all(np.array_equal(x, y) for x, y in zip(one.history, other.history))
    assert all(type(agent.belief) is LazyBeliefArray for agent in planned)
    assert all(type(agent.history) is CompressedHistory for agent in planned)
    assert all(agent.transition is planned[0].transition for agent in planned)
    assert not planned[0].transition.flags.writeable
    assert measure_population(direct).distinct_bytes == measure_population(planned).distinct_bytes


def test_apply_plan_is_reachable_from_the_package_and_takes_a_plan_object(agents: list[Agent], manager: Any) -> None:
    assert fa_memtool.apply_plan is apply_plan
    assert "apply_plan" in fa_memtool.__all__
    from fa_memtool import apply_plan as imported

    assert imported is apply_plan
    plan = plan_for(agents, [Candidate("lazy-beliefs", "belief", 1.0, "", {"sparsity_threshold": 0.9})])
    assert fa_memtool.apply_plan(agents, plan) is plan  # the default manager: installed plugins
    assert all(type(agent.belief) is LazyBeliefArray for agent in agents)
    with pytest.raises(AttributeError):
        fa_memtool.no_such_name  # noqa: B018


def test_an_empty_plan_changes_nothing(agents: list[Agent], manager: Any) -> None:
    before = snapshot(agents)
    apply_plan(agents, Plan(PLAN_VERSION), manager=manager)
    assert_untouched(agents, before)


def test_apply_plan_needs_agents(manager: Any) -> None:
    with pytest.raises(PlanError, match="at least one agent"):
        apply_plan([], sample_plan(), manager=manager)


def test_a_plan_applied_twice_is_refused_the_second_time(agents: list[Agent], manager: Any) -> None:
    plan = plan_for(agents, best_per_attribute(agents, manager))
    apply_plan(agents, plan, manager=manager)
    before = snapshot(agents)
    with pytest.raises(PlanError, match="LazyBeliefArray|CompressedHistory"):
        apply_plan(agents, plan, manager=manager)
    assert_untouched(agents, before)


class _Spy:
    """A plugin that records every apply, to prove a refused plan never reaches a plugin."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        return PluginInfo("spy", "records applies")

    @hookimpl
    def fa_mem_apply(self, agents: list[Any], candidate: Candidate) -> bool | None:
        if candidate.plugin != "spy":
            return None
        self.calls.append(candidate.attribute)
        return True


def _mismatch_missing(agents: list[Agent]) -> None:
    del agents[2].belief


def _mismatch_shape(agents: list[Agent]) -> None:
    agents[3].belief = np.zeros((100, 101))


def _mismatch_dtype(agents: list[Agent]) -> None:
    agents[1].belief = agents[1].belief.astype(np.float32)


def _mismatch_type(agents: list[Agent]) -> None:
    agents[0].belief = agents[0].belief.tolist()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_mismatch_missing, "does not have"),
        (_mismatch_shape, "shape"),
        (_mismatch_dtype, "dtype"),
        (_mismatch_type, "list"),
    ],
    ids=["missing attribute", "other shape", "other dtype", "other type"],
)
def test_a_plan_that_does_not_match_the_agents_is_refused_before_anything_changes(
    agents: list[Agent], change: Any, message: str
) -> None:
    spy = _Spy()
    manager = plugin_manager(extra=[spy])
    # The spy's step comes first and matches: it must not run when a later step does not.
    plan = Plan(
        PLAN_VERSION,
        [
            step_for(agents[0], "spy", "weights", {}),
            step_for(agents[0], "lower-precision", "transition", {"rtol": 1e-5, "atol": 1e-8}),
            step_for(agents[0], "lazy-beliefs", "belief", {"sparsity_threshold": 0.9}),
        ],
    )
    change(agents)
    before, copies = snapshot(agents), value_copies([agent for agent in agents if hasattr(agent, "belief")])
    with pytest.raises(PlanError, match=message) as raised:
        apply_plan(agents, plan, manager=manager)
    assert ".belief" in str(raised.value)
    assert raised.value.exit_code == EXIT_USAGE
    assert spy.calls == []
    assert_untouched(agents, before, copies if len(copies) == len(agents) else None)


def test_a_plan_naming_an_unknown_plugin_is_refused_naming_the_installed_ones(agents: list[Agent], manager: Any) -> None:
    plan = Plan(
        PLAN_VERSION,
        [step_for(agents[0], "lazy-beliefs", "belief", {}), step_for(agents[0], "no-such-plugin", "weights", {})],
    )
    before, copies = snapshot(agents), value_copies(agents)
    with pytest.raises(UsageError) as raised:
        apply_plan(agents, plan, manager=manager)
    assert "'no-such-plugin'" in str(raised.value)
    assert "lazy-beliefs" in str(raised.value)
    assert raised.value.exit_code == EXIT_USAGE
    assert_untouched(agents, before, copies)


def test_a_plan_naming_an_unknown_plugin_is_refused_with_plan_error(agents: list[Agent], manager: Any) -> None:
    plan = Plan(PLAN_VERSION, [step_for(agents[0], "no-such-plugin", "weights", {})])
    with pytest.raises(PlanError):
        apply_plan(agents, plan, manager=manager)


class _FailOn:
    """Applies by replacing the attribute on every agent, but raises half-way on one attribute."""

    def __init__(self, failing_attribute: str) -> None:
        self.failing_attribute = failing_attribute
        self.applied: list[str] = []

    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        return PluginInfo("fail-on", "replaces attributes; fails on one")

    @hookimpl
    def fa_mem_apply(self, agents: list[Any], candidate: Candidate) -> bool | None:
        if candidate.plugin != "fail-on":
            return None
        for index, agent in enumerate(agents):
            if candidate.attribute == self.failing_attribute and index == 2:
                raise RuntimeError(f"cannot transform .{candidate.attribute}")
            setattr(agent, candidate.attribute, ("replaced", index))
        self.applied.append(candidate.attribute)
        return True


def test_a_step_that_fails_mid_plan_restores_what_earlier_steps_changed(agents: list[Agent]) -> None:
    plugin = _FailOn("weights")
    manager = plugin_manager(extra=[plugin])
    for agent in agents:
        agent.label = f"agent-{id(agent)}"
    plan = Plan(
        PLAN_VERSION,
        [
            step_for(agents[0], "lazy-beliefs", "belief", {"sparsity_threshold": 0.9}),
            step_for(agents[0], "shared-parameters", "transition", {}),
            step_for(agents[0], "fail-on", "label", {}),
            step_for(agents[0], "fail-on", "weights", {}),
            step_for(agents[0], "compressed-history", "history", {"compression_level": 6}),
        ],
    )
    before, copies = snapshot(agents), value_copies(agents)
    with pytest.raises(PlanError, match="nothing was changed") as raised:
        apply_plan(agents, plan, manager=manager)
    assert "cannot transform .weights" in str(raised.value)
    assert plugin.applied == ["label"], "the earlier steps really ran before the failure"
    assert_untouched(agents, before, copies)
    assert all(type(agent.history) is list for agent in agents)
    assert all(agent.transition.flags.writeable for agent in agents)


def test_two_steps_on_one_attribute_check_only_the_first(agents: list[Agent], manager: Any) -> None:
    """lower-precision then lazy-beliefs on the belief: the second step records the float32 state."""
    first = step_for(agents[0], "lower-precision", "belief", {"rtol": 1e-5, "atol": 1e-8})
    lowered = make_population()
    apply_candidate(manager, lowered, Candidate("lower-precision", "belief", 0.0, "", first.parameters))
    second = step_for(lowered[0], "lazy-beliefs", "belief", {"sparsity_threshold": 0.9})
    assert (second.dtype, first.dtype) == ("float32", "float64")
    expected = [agent.belief.astype(np.float32) for agent in agents]
    apply_plan(agents, Plan(PLAN_VERSION, [first, second]), manager=manager)
    for agent, values in zip(agents, expected):
        assert type(agent.belief) is LazyBeliefArray and agent.belief.dtype == np.float32
        assert np.array_equal(np.asarray(agent.belief), values)


def test_plan_error_is_a_usage_error_with_exit_code_2() -> None:
    assert issubclass(PlanError, UsageError)
    assert PlanError("x").exit_code == EXIT_USAGE == 2


# --------------------------------------------------------------------------- paths


class Model:
    def __init__(self, matrix: np.ndarray) -> None:
        self.B = np.empty(1, dtype=object)
        self.B[0] = matrix.copy()


def nested_population(n: int = N_AGENTS) -> list[Agent]:
    """Agents holding a model object whose B[0] is also reachable through a cache."""
    matrix = np.zeros((120, 120))
    matrix[np.arange(120), np.arange(120)] = 1.0
    agents = []
    for _ in range(n):
        agent = Agent()
        agent.model = Model(matrix)
        agent.cache = {"B0": agent.model.B[0]}
        agent.frames = []
        agents.append(agent)
    return agents


def test_a_plan_transforms_a_path_inside_an_object_and_its_alias(manager: Any) -> None:
    agents = nested_population()
    plan = Plan(PLAN_VERSION, [step_for(agents[0], "shared-parameters", "model.B[0]", {}), step_for(agents[0], "lazy-beliefs", "model.B[0]", {})])
    assert (plan.steps[0].type_name, plan.steps[0].shape, plan.steps[0].dtype) == ("ndarray", [120, 120], "float64")
    before = measure_population(agents).distinct_bytes
    apply_plan(agents, plan, manager=manager)
    shared = agents[0].model.B[0]
    assert type(shared) is LazyBeliefArray
    assert all(agent.model.B[0] is shared and agent.cache["B0"] is shared for agent in agents)
    assert np.array_equal(np.asarray(shared), np.eye(120))
    assert before - measure_population(agents).distinct_bytes >= N_AGENTS * np.eye(120).nbytes - 8192


def test_a_plan_for_items_accepts_an_empty_container_and_checks_the_items(manager: Any) -> None:
    agents = nested_population()
    for agent in agents:
        agent.frames = [np.ones(20_000) for _ in range(3)]
    step = step_for(agents[0], "lower-precision", "frames[*]", {"rtol": 1e-5, "atol": 1e-8})
    assert (step.type_name, step.dtype) == ("ndarray", "float64")
    fresh = nested_population()  # built now: no frame yet
    apply_plan(fresh, Plan(PLAN_VERSION, [step]), manager=manager)
    apply_plan(agents, Plan(PLAN_VERSION, [step]), manager=manager)
    assert all(frame.dtype == np.float32 for agent in agents for frame in agent.frames)
    with pytest.raises(PlanError, match=r"\.frames\[\*\] as ndarray .* dtype=float64; agent 0 has ndarray .* dtype=float32"):
        apply_plan(agents, Plan(PLAN_VERSION, [step]), manager=manager)
    empty = step_for(fresh[0], "lower-precision", "frames[*]", {})
    assert empty.type_name == "" and empty.shape is None


def test_a_plan_naming_a_missing_nested_path_is_refused(manager: Any) -> None:
    agents = nested_population()
    plan = Plan(PLAN_VERSION, [PlanStep("shared-parameters", "model.C[0]", {}, "ndarray")])
    with pytest.raises(PlanError, match=r"\.model\.C\[0\], which agent 0 \(Agent\) does not have"):
        apply_plan(agents, plan, manager=manager)


def test_a_failing_step_restores_nested_paths_and_aliases_changed_before_it(agents: list[Agent]) -> None:
    population = nested_population()
    originals = [(agent.model.B[0], agent.cache) for agent in population]
    plan = Plan(
        PLAN_VERSION,
        [step_for(population[0], "shared-parameters", "model.B[0]", {}), step_for(population[0], "fail-on", "frames", {})],
    )
    with pytest.raises(PlanError, match="nothing was changed"):
        apply_plan(population, plan, manager=plugin_manager(extra=[_FailOn("frames")]))
    for agent, (matrix, cache) in zip(population, originals):
        assert agent.model.B[0] is matrix and agent.cache is cache and cache["B0"] is matrix
        assert matrix.flags.writeable


# --------------------------------------------------------------------------- import cost


def test_import_fa_memtool_imports_neither_numpy_nor_pluggy() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        import fa_memtool
        before = {name: name in sys.modules for name in ("numpy", "pluggy", "fa_memtool.plan", "fa_memtool.plugins")}
        apply_plan = fa_memtool.apply_plan
        after = {name: name in sys.modules for name in ("numpy", "pluggy", "fa_memtool.plan", "fa_memtool.plugins")}
        print(json.dumps({"before": before, "after": after, "callable": callable(apply_plan)}))
        """
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environment, check=False)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["before"] == {"numpy": False, "pluggy": False, "fa_memtool.plan": False, "fa_memtool.plugins": False}
    assert seen["after"]["fa_memtool.plan"] is True
    assert seen["callable"] is True
