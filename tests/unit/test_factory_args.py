"""--factory-arg parsing, placeholders, the signature check and the factory call."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fa_memtool.errors import EXIT_USAGE, UsageError, WorkloadError
from fa_memtool.factory_args import (
    check_accepted,
    factory_args_from_config,
    parse_factory_arg,
    parse_factory_args,
    substitute,
)
from fa_memtool.spec import RunSpec
from fa_memtool.workload import call_factory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("population_size={n}", ("population_size", "{n}")),
        ("seed={seed}", ("seed", "{seed}")),
        ("width=50", ("width", 50)),
        ("rate=0.25", ("rate", 0.25)),
        ("torus=true", ("torus", True)),
        ("simulator=null", ("simulator", None)),
        ('mode="torus"', ("mode", "torus")),
        ('parameters={"agents": "{n}", "steps": 5}', ("parameters", {"agents": "{n}", "steps": 5})),
        ("sizes=[1, 2]", ("sizes", [1, 2])),
        (" width = 50 ", ("width", 50)),
        ('label="a=b"', ("label", "a=b")),
    ],
)
def test_a_value_is_json_or_a_placeholder(text: str, expected: tuple[str, Any]) -> None:
    assert parse_factory_arg(text) == expected


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("mode=torus", ["--factory-arg mode=torus", "'torus' is not a JSON value", "'\"torus\"'"]),
        ("width=1e", ["not a JSON value"]),
        ("n", ["expected NAME=VALUE"]),
        ("=5", ["NAME a Python identifier"]),
        ("two words=5", ["NAME a Python identifier"]),
        ("class=5", ["NAME a Python identifier"]),
        ("size={N}", ["not a JSON value"]),
    ],
)
def test_a_bad_argument_is_a_usage_error(text: str, fragments: list[str]) -> None:
    with pytest.raises(UsageError) as raised:
        parse_factory_arg(text)
    assert raised.value.exit_code == EXIT_USAGE
    assert "\n" not in raised.value.message
    for fragment in fragments:
        assert fragment in raised.value.message


def test_arguments_keep_their_order_and_a_name_twice_is_refused() -> None:
    assert list(parse_factory_args(["b=1", "a=2"])) == ["b", "a"]
    with pytest.raises(UsageError, match="given twice"):
        parse_factory_args(["a=1", "a=2"])


def test_placeholders_are_replaced_at_any_depth_and_nothing_else_is() -> None:
    given = {"n": "{n}", "nested": {"agents": "{n}", "seeds": ["{seed}", "{n}x", 3]}, "text": "{seed} "}
    assert substitute(given, agents=7, seed=3) == {
        "n": 7,
        "nested": {"agents": 7, "seeds": [3, "{n}x", 3]},
        "text": "{seed} ",
    }
    assert given["n"] == "{n}", "the parsed arguments are not changed in place"


def test_config_takes_a_table_or_a_list_of_strings() -> None:
    assert factory_args_from_config({"population_size": "{n}", "width": 50}, label="factory-args") == {
        "population_size": "{n}",
        "width": 50,
    }
    assert factory_args_from_config(["population_size={n}", "width=50"], label="factory-args") == {
        "population_size": "{n}",
        "width": 50,
    }
    assert factory_args_from_config({}, label="factory-args") == {}
    with pytest.raises(UsageError, match="factory-args"):
        factory_args_from_config([1, 2], label="factory-args")
    with pytest.raises(UsageError, match="identifier"):
        factory_args_from_config({"not a name": 1}, label="factory-args")


class Model:
    def __init__(self, population_size: int = 10, width: int = 10, *, seed: int | None = None) -> None:
        self.population_size, self.width, self.seed = population_size, width, seed


def takes_anything(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def test_a_name_the_factory_does_not_take_is_refused_with_what_it_takes() -> None:
    check_accepted(Model, ["population_size", "seed"], factory_name="mod.Model")
    with pytest.raises(WorkloadError) as raised:
        check_accepted(Model, ["population_size", "height"], factory_name="mod.Model")
    assert raised.value.exit_code == EXIT_USAGE
    assert raised.value.message == (
        "--factory-arg height: mod.Model has no parameter 'height' (it takes population_size, width, seed)"
    )
    check_accepted(takes_anything, ["whatever"], factory_name="mod.takes_anything")
    check_accepted(dict, ["anything"], factory_name="dict")  # no signature to read: the call decides


def test_the_factory_is_called_positionally_without_arguments_and_by_keyword_with_them() -> None:
    call, built = call_factory("mod.make", lambda n, seed: [n, seed], agents=4, seed=2)
    assert (call, built) == ("mod.make(4, 2)", [4, 2])
    call, model = call_factory(
        "mod.Model", Model, agents=4, seed=2, factory_args={"population_size": "{n}", "seed": "{seed}", "width": 30}
    )
    assert call == "mod.Model(population_size=4, seed=2, width=30)"
    assert (model.population_size, model.seed, model.width) == (4, 2, 30)
    _, empty = call_factory("mod.takes_anything", takes_anything, agents=4, seed=2, factory_args={})
    assert empty == {}


def test_a_factory_that_raises_names_the_keyword_call() -> None:
    def broken(size: int) -> None:
        raise RuntimeError("no room")

    with pytest.raises(WorkloadError) as raised:
        call_factory("mod.broken", broken, agents=3, seed=0, factory_args={"size": "{n}"})
    assert raised.value.message.startswith("mod.broken(size=3) raised RuntimeError: no room")


def test_run_spec_keeps_factory_args_through_json() -> None:
    spec = RunSpec(target="m.py", factory_args={"parameters": {"agents": "{n}"}}, agents_from="agents", step_model=True)
    again = RunSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(spec.to_json())["factory_args"] == {"parameters": {"agents": "{n}"}}


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"step_model": True}, "--step-model steps a model"),
        ({"agents_from": "agents", "model_step_method": "advance"}, "it needs --step-model"),
        ({"agents_from": "agents", "step_model": True, "model_step_method": "a b"}, "not a method name"),
        ({"agents_from": "schedule..agents"}, "not an attribute path"),
        ({"agents_from": "agents[0]"}, "not an attribute path"),
    ],
)
def test_inconsistent_model_options_are_usage_errors(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(")):
        RunSpec(target="m.py", **fields)
