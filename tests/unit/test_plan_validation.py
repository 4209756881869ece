"""Plans are input: every step is validated before any agent is changed.

A hand-edited plan must not apply settings no replay proved: each step's parameters
are checked against what its plugin's ``fa_mem_apply`` reads (names, types, ranges:
lower-precision's dtype for the kind of value, rtol/atol finite within [0, 1], bounds
positive whole numbers), a path never names an object's internals (``__dict__``,
``__class__``, any dunder step), a step's plugin must be installed, and a shape must be
a list of integers. The error is one PlanError (a UsageError, exit 2) naming the step,
its path and the parameter; the agents are untouched.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fa_memtool.errors import EXIT_USAGE, UsageError
from fa_memtool.hookspecs import Candidate, PluginInfo, hookimpl
from fa_memtool.plan import (
    BUILT_IN_PARAMETERS,
    PLAN_VERSION,
    Plan,
    PlanError,
    PlanStep,
    apply_plan,
    check_plan_parameters,
    check_plan_steps,
    load_plan,
    save_plan,
    step_for,
)
from fa_memtool.plugins import plugin_manager


class Inner:
    def __init__(self) -> None:
        self.values = np.linspace(0.0, 1.0, 20_000)


class Agent:
    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.random(20_000)
        self.history = [rng.random(8) for _ in range(12)]
        self.cache = {index: float(index) for index in range(40)}
        self.inner = Inner()
        self.params = {"__meta__": np.arange(256.0)}  # the same on every agent


@pytest.fixture(scope="module")
def manager() -> Any:
    return plugin_manager()


@pytest.fixture
def agents() -> list[Agent]:
    return [Agent(seed) for seed in range(3)]


def bindings(agents: list[Agent]) -> list[dict[str, Any]]:
    """Every agent's instance dict (the objects themselves) and the dict object."""
    return [{"dict": vars(agent), "items": dict(vars(agent)), "inner": dict(vars(agent.inner))} for agent in agents]


def assert_untouched(agents: list[Agent], before: list[dict[str, Any]]) -> None:
    for agent, seen in zip(agents, before):
        assert vars(agent) is seen["dict"], "the instance dict was replaced"
        assert vars(agent).keys() == seen["items"].keys()
        for name, value in seen["items"].items():
            assert vars(agent)[name] is value, f".{name} was replaced"
        for name, value in seen["inner"].items():
            assert vars(agent.inner)[name] is value, f".inner.{name} was replaced"
        assert type(agent) is Agent and agent.weights.dtype == np.float64


def refused(agents: list[Agent], plan: Plan, manager: Any, *fragments: str) -> PlanError:
    """apply_plan refuses ``plan`` with a PlanError holding every fragment; nothing changed."""
    before = bindings(agents)
    with pytest.raises(PlanError) as raised:
        apply_plan(agents, plan, manager=manager)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message
    assert raised.value.exit_code == EXIT_USAGE and isinstance(raised.value, UsageError)
    assert_untouched(agents, before)
    return raised.value


def lowering(agent: Agent, path: str = "weights", **parameters: Any) -> PlanStep:
    return step_for(agent, "lower-precision", path, {"dtype": "float32", "rtol": 1e-5, "atol": 1e-8, **parameters})


# --------------------------------------------------------------------------- lower-precision


def test_a_valid_plan_still_applies(agents: list[Agent], manager: Any) -> None:
    apply_plan(agents, Plan(PLAN_VERSION, [lowering(agents[0])]), manager=manager)
    assert all(agent.weights.dtype == np.float32 for agent in agents)


@pytest.mark.parametrize("dtype", ["float16", "float64", "int8", "complex64", "", 32, None, ["float32"]])
def test_lower_precision_refuses_a_dtype_it_does_not_apply_to_numpy_arrays(agents: list[Agent], manager: Any, dtype: Any) -> None:
    step = lowering(agents[0])
    step.parameters["dtype"] = dtype  # null too: it is not "no dtype", the plugin would read the text "None"
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", "lower-precision", ".weights", "'dtype'")


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [1e9, 1.0000001, -1e-9, math.nan, math.inf, -math.inf, True, False, "1e-5", None, [0.1]])
def test_lower_precision_refuses_a_tolerance_outside_0_to_1(agents: list[Agent], manager: Any, name: str, value: Any) -> None:
    step = lowering(agents[0], **{name: value})
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", ".weights", repr(name))


@pytest.mark.parametrize("value", [0, 0.0, 1, 1.0, 0.5])
def test_tolerances_at_the_ends_of_the_range_are_accepted(agents: list[Agent], manager: Any, value: float) -> None:
    # Accepted by validation (whether the values survive a zero tolerance is the plugin's to say).
    check_plan_parameters(Plan(PLAN_VERSION, [lowering(agents[0], rtol=value, atol=value)]), manager)


def test_the_bad_step_is_named_even_after_good_ones_and_nothing_runs(agents: list[Agent], manager: Any) -> None:
    plan = Plan(
        PLAN_VERSION,
        [
            step_for(agents[0], "shared-parameters", "inner.values", {}),
            step_for(agents[0], "bounded-cache", "cache", {"maxsize": 10}),
            lowering(agents[0], rtol=1e9),
        ],
    )
    refused(agents, plan, manager, "steps[2]", ".weights", "'rtol'", "[0, 1]")
    assert all(agent.inner.values.flags.writeable for agent in agents), "an earlier step ran"
    assert all(type(agent.cache) is dict for agent in agents)


def test_lower_precision_refuses_a_step_recorded_on_float32(agents: list[Agent], manager: Any) -> None:
    for agent in agents:
        agent.weights = agent.weights.astype(np.float32)
    step = lowering(agents[0])
    assert step.dtype == "float32"
    before = [agent.weights for agent in agents]
    with pytest.raises(PlanError, match=r"steps\[0\].*\.weights.*float64 arrays only"):
        apply_plan(agents, Plan(PLAN_VERSION, [step]), manager=manager)
    assert all(agent.weights is array for agent, array in zip(agents, before))


@pytest.mark.parametrize(
    ("recorded", "parameters", "fragment"),
    [
        ("torch.float64", {"dtype": "float16", "values": "tensors", "library": "torch"}, "float32"),
        ("float32", {"dtype": "float32", "values": "tensors", "library": "jax"}, "float16"),
        ("float16", {"dtype": "float16", "values": "tensors"}, "does not lower float16"),
        ("torch.float64", {"values": "tensors"}, "'dtype' is missing"),
        ("torch.float64", {"dtype": "float32", "values": "tensors", "library": "numpy"}, "'library'"),
        ("torch.float64", {"dtype": "float32", "values": "arrays"}, "'values'"),
    ],
)
def test_lower_precision_checks_the_dtype_for_tensors(agents: list[Agent], manager: Any, recorded: str, parameters: dict[str, Any], fragment: str) -> None:
    # Refused on the plan alone: no torch or JAX needed (the agents never get that far).
    step = PlanStep("lower-precision", "weights", parameters, "Tensor", [20_000], recorded)
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", ".weights", fragment)


def test_library_without_tensors_is_refused(agents: list[Agent], manager: Any) -> None:
    refused(agents, Plan(PLAN_VERSION, [lowering(agents[0], library="torch")]), manager, "'library'")


# --------------------------------------------------------------------------- the other built-ins


@pytest.mark.parametrize("value", [True, False, 0, -3, 2.5, 5.0, "5", None, [5], 10**30])
@pytest.mark.parametrize(("plugin", "path", "name"), [("bounded-history", "history", "maxlen"), ("bounded-cache", "cache", "maxsize")])
def test_bounds_must_be_positive_whole_numbers(agents: list[Agent], manager: Any, plugin: str, path: str, name: str, value: Any) -> None:
    step = step_for(agents[0], plugin, path, {name: value})
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", f".{path}", repr(name))


@pytest.mark.parametrize(("plugin", "path", "name"), [("bounded-history", "history", "maxlen"), ("bounded-cache", "cache", "maxsize")])
def test_a_missing_bound_is_refused_and_a_good_one_applies(agents: list[Agent], manager: Any, plugin: str, path: str, name: str) -> None:
    refused(agents, Plan(PLAN_VERSION, [step_for(agents[0], plugin, path, {})]), manager, f"{name!r} is missing")
    apply_plan(agents, Plan(PLAN_VERSION, [step_for(agents[0], plugin, path, {name: 5})]), manager=manager)
    assert all(len(getattr(agent, path)) == 5 for agent in agents)


@pytest.mark.parametrize(
    ("plugin", "path", "parameters", "fragment"),
    [
        ("compressed-history", "history", {"compression_level": 10}, "'compression_level'"),
        ("compressed-history", "history", {"compression_level": True}, "'compression_level'"),
        ("compressed-history", "history", {"compression_level": 6.0}, "'compression_level'"),
        ("lazy-beliefs", "weights", {"sparsity_threshold": 1.5}, "'sparsity_threshold'"),
        ("lazy-beliefs", "weights", {"sparsity_threshold": "0.9"}, "'sparsity_threshold'"),
        ("shared-parameters", "inner.values", {"values": "all"}, "'values'"),
        ("shared-structures", "cache", {"deep": True}, "unknown parameter 'deep'"),
        ("lower-precision", "weights", {"dtype": "float32", "nested": {"a": [1, 2]}}, "unknown parameter 'nested'"),
        ("bounded-history", "history", {"maxlen": 4, "maxsize": 4}, "unknown parameter 'maxsize'"),
    ],
)
def test_parameters_are_checked_for_every_built_in(agents: list[Agent], manager: Any, plugin: str, path: str, parameters: dict[str, Any], fragment: str) -> None:
    step = step_for(agents[0], plugin, path, parameters)
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", plugin, f".{path}", fragment)


def test_every_built_in_has_a_parameter_table(manager: Any) -> None:
    from fa_memtool.plugins import installed

    built_ins = {plugin.name for plugin in installed(manager) if plugin.distribution == "fa-mem"}
    assert built_ins and built_ins <= set(BUILT_IN_PARAMETERS), built_ins - set(BUILT_IN_PARAMETERS)


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path",
    ["__dict__", "__class__", "inner.__dict__", "weights.__class__", "history[*].__dict__", "inner.__dict__['values']", "__weakref__"],
)
def test_a_path_with_a_dunder_step_is_refused(agents: list[Agent], manager: Any, tmp_path: Path, path: str) -> None:
    step = PlanStep("shared-structures", path, {}, "dict")
    error = refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", "internals")
    dunder = next(part for part in ("__dict__", "__class__", "__weakref__") if part in path)
    assert repr(dunder) in str(error)
    # The same plan as a file is refused when it is loaded, naming the file.
    location = tmp_path / "plan.json"
    save_plan(Plan(PLAN_VERSION, [step]), location)
    with pytest.raises(PlanError, match=r"plan .*plan\.json: steps\[0\].*internals"):
        load_plan(location)


def test_a_dunder_dict_key_is_data_not_internals(agents: list[Agent], manager: Any) -> None:
    step = step_for(agents[0], "shared-parameters", 'params["__meta__"]', {})
    check_plan_steps(Plan(PLAN_VERSION, [step]))
    apply_plan(agents, Plan(PLAN_VERSION, [step]), manager=manager)
    assert all(agent.params["__meta__"] is agents[0].params["__meta__"] for agent in agents)


@pytest.mark.parametrize("path", ["", "weights[", "9lives", "weights[0", "[0]", "a b"])
def test_a_path_that_does_not_parse_is_refused_naming_the_step(agents: list[Agent], manager: Any, path: str) -> None:
    refused(agents, Plan(PLAN_VERSION, [PlanStep("shared-parameters", path, {}, "ndarray")]), manager, "steps[0]")


# --------------------------------------------------------------------------- plugins


def test_a_step_whose_plugin_is_not_installed_is_refused_naming_the_step(agents: list[Agent], manager: Any) -> None:
    plan = Plan(PLAN_VERSION, [lowering(agents[0]), step_for(agents[0], "zstd-history", "history", {"level": 3})])
    refused(agents, plan, manager, "steps[1]", "zstd-history", ".history", "installed:", "lower-precision")


@pytest.mark.parametrize("name", ["", " lower-precision", "lower-precision ", 5, None])
def test_a_plugin_name_that_is_not_a_name_is_refused(agents: list[Agent], manager: Any, name: Any) -> None:
    step = lowering(agents[0])
    step.plugin = name
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]")


class _Echo:
    """A third-party plugin: its parameters are its own, only JSON is required of them."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    def fa_mem_plugin_info(self) -> PluginInfo:
        return PluginInfo("echo", "records its parameters")

    @hookimpl
    def fa_mem_apply(self, agents: list[Any], candidate: Candidate) -> bool | None:
        if candidate.plugin != "echo":
            return None
        self.seen.append(candidate.parameters)
        return True


def test_a_third_party_plugin_gets_its_own_parameters(agents: list[Agent]) -> None:
    echo = _Echo()
    manager = plugin_manager(extra=[echo])
    parameters = {"anything": [1, 2.5, "x", None, {"deep": True}]}
    apply_plan(agents, Plan(PLAN_VERSION, [step_for(agents[0], "echo", "weights", parameters)]), manager=manager)
    assert echo.seen == [parameters]


@pytest.mark.parametrize("value", [math.nan, math.inf, {1, 2}, object(), {1: "integer key"}])
def test_parameters_a_plan_file_cannot_hold_are_refused(agents: list[Agent], value: Any) -> None:
    echo = _Echo()
    manager = plugin_manager(extra=[echo])
    refused(agents, Plan(PLAN_VERSION, [step_for(agents[0], "echo", "weights", {"x": value})]), manager, "steps[0]", "parameters")
    assert echo.seen == []


# --------------------------------------------------------------------------- what a step recorded


def _plan_file(tmp_path: Path, agents: list[Agent], **changes: Any) -> Path:
    data = dataclasses.asdict(Plan(PLAN_VERSION, [lowering(agents[0])]))
    data["steps"][0].update(changes)
    location = tmp_path / "plan.json"
    location.write_text(json.dumps(data), encoding="utf-8")
    return location


@pytest.mark.parametrize("shape", ["20000", {"20000": 1}, 20000, True])
def test_a_shape_that_is_not_a_list_is_refused_when_loaded(agents: list[Agent], manager: Any, tmp_path: Path, shape: Any) -> None:
    location = _plan_file(tmp_path, agents, shape=shape)
    text = location.read_text(encoding="utf-8")
    before = bindings(agents)
    with pytest.raises(PlanError) as raised:
        apply_plan(agents, location, manager=manager)
    message = str(raised.value)
    assert "shape" in message and str(location) in message, message
    assert "['2', '0'" not in message, "the shape was read as a list of characters"
    assert_untouched(agents, before)
    assert location.read_text(encoding="utf-8") == text, "the plan file was changed"


@pytest.mark.parametrize("shape", ["20000", (20000,), [True], [-1], [2.0], ["20000"]])
def test_a_shape_that_is_not_a_list_of_integers_is_refused_in_a_plan_object(agents: list[Agent], manager: Any, shape: Any) -> None:
    step = lowering(agents[0])
    step.shape = shape
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", ".weights", "shape")


@pytest.mark.parametrize(
    ("field", "value"),
    [("dtype", 64), ("type_name", None), ("before_bytes_per_agent", -1.0), ("after_bytes_per_agent", "small"), ("before_bytes_per_agent", True)],
)
def test_what_a_step_recorded_must_have_its_type(agents: list[Agent], manager: Any, field: str, value: Any) -> None:
    step = lowering(agents[0])
    setattr(step, field, value)
    refused(agents, Plan(PLAN_VERSION, [step]), manager, "steps[0]", field)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_plan_file_with_nan_or_infinity_is_refused(agents: list[Agent], tmp_path: Path, literal: str) -> None:
    location = _plan_file(tmp_path, agents)
    location.write_text(location.read_text(encoding="utf-8").replace('"rtol": 1e-05', f'"rtol": {literal}'), encoding="utf-8")
    assert literal in location.read_text(encoding="utf-8")
    with pytest.raises(PlanError, match=literal):
        load_plan(location)


def test_a_refused_plan_file_is_left_as_it_was(agents: list[Agent], manager: Any, tmp_path: Path) -> None:
    location = _plan_file(tmp_path, agents, parameters={"dtype": "float16", "rtol": 1e9, "atol": 1e-8})
    data = location.read_bytes()
    with pytest.raises(PlanError, match=r"plan .*plan\.json: steps\[0\] \(lower-precision at \.weights\): parameter 'rtol'"):
        apply_plan(agents, location, manager=manager)
    assert location.read_bytes() == data
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plan.json"]


def test_apply_plan_refuses_what_is_not_a_plan_or_not_agents(agents: list[Agent], manager: Any) -> None:
    with pytest.raises(PlanError, match="takes a Plan"):
        apply_plan(agents, 5, manager=manager)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="list of agents"):
        apply_plan(5, Plan(PLAN_VERSION, [lowering(agents[0])]), manager=manager)  # type: ignore[arg-type]
    plan = Plan(PLAN_VERSION, [lowering(agents[0])])
    plan.steps = "steps"  # type: ignore[assignment]
    with pytest.raises(PlanError, match="steps must be a list"):
        apply_plan(agents, plan, manager=manager)


def test_a_plan_that_names_an_unknown_parameter_still_round_trips(tmp_path: Path, agents: list[Agent]) -> None:
    """Validation against the plugins happens when a plan is applied: a plan with a
    newer plugin's parameters can still be read (and shown) by this fa-mem."""
    plan = Plan(PLAN_VERSION, [lowering(agents[0], newer={"a": 1})])
    save_plan(plan, tmp_path / "plan.json")
    assert load_plan(tmp_path / "plan.json") == plan


def test_bounds_accept_the_largest_index(agents: list[Agent], manager: Any) -> None:
    apply_plan(agents, Plan(PLAN_VERSION, [step_for(agents[0], "bounded-history", "history", {"maxlen": sys.maxsize})]), manager=manager)
    assert all(len(agent.history) == 12 for agent in agents)
