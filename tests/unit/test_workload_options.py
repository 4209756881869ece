"""The model options as flags and as [tool.fa-mem] keys, resolved into the RunSpec."""

from __future__ import annotations

from pathlib import Path

import pytest

from fa_memtool.cli._workload import Workload, WorkloadFlags, resolve_workload
from fa_memtool.config import load_config
from fa_memtool.errors import UsageError
from fa_memtool.factory_args import command_line_value, parse_factory_arg
from fa_memtool.runner import Limits
from fa_memtool.spec import RunSpec

MODEL_TABLE = """
[tool.fa-mem]
module = "sim.py"
factory = "World"
factory-args = { size = "{n}", seed = "{seed}", torus = true }
agents-from = "schedule.agents"
step-model = true
model-step-method = "advance"
"""


def write_pyproject(folder: Path, text: str) -> None:
    (folder / "pyproject.toml").write_text(text, encoding="utf-8")
    (folder / "sim.py").write_text("", encoding="utf-8")


def test_the_model_keys_of_the_config_reach_the_spec(tmp_path: Path) -> None:
    write_pyproject(tmp_path, MODEL_TABLE)
    spec = resolve_workload(WorkloadFlags(), load_config(tmp_path), scaling_by_default=False).spec
    assert spec.factory_args == {"size": "{n}", "seed": "{seed}", "torus": True}
    assert (spec.agents_from, spec.step_model, spec.model_step_method) == ("schedule.agents", True, "advance")


def test_flags_win_over_the_config(tmp_path: Path) -> None:
    write_pyproject(tmp_path, MODEL_TABLE)
    flags = WorkloadFlags(factory_args=["population={n}"], agents_from="agents", step_model=False)
    spec = resolve_workload(flags, load_config(tmp_path), scaling_by_default=False).spec
    assert spec.factory_args == {"population": "{n}"}, "--factory-arg replaces the whole factory-args table"
    assert (spec.agents_from, spec.step_model) == ("agents", False)


def test_without_factory_args_the_factory_is_called_with_n_and_seed(tmp_path: Path) -> None:
    write_pyproject(tmp_path, '[tool.fa-mem]\nmodule = "sim.py"\n')
    spec = resolve_workload(WorkloadFlags(factory_args=[]), load_config(tmp_path), scaling_by_default=False).spec
    assert spec.factory_args is None and spec.agents_from is None and not spec.step_model


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('factory-args = "size={n}"', "factory-args must be a dict or list"),
        ("step-model = 1", "step-model must be a bool"),
        ('factory-args = ["size=grid"]', "'grid' is not a JSON value"),
    ],
)
def test_a_bad_model_key_is_a_usage_error(tmp_path: Path, table: str, fragment: str) -> None:
    write_pyproject(tmp_path, f'[tool.fa-mem]\nmodule = "sim.py"\n{table}\n')
    with pytest.raises(UsageError, match=fragment):
        resolve_workload(WorkloadFlags(), load_config(tmp_path), scaling_by_default=False)


def test_the_rerun_command_repeats_the_model_options() -> None:
    spec = RunSpec(
        target="sim.py",
        factory="World",
        factory_args={"size": "{n}", "mode": "torus", "parameters": {"seed": "{seed}"}},
        agents_from="schedule.agents",
        step_model=True,
        model_step_method="advance",
    )
    command = Workload(spec, Limits(), None).command("gate")
    assert command == (
        "fa-mem gate sim.py -n 10 --steps 100 --seed 0 --factory World --factory-arg 'size={n}' "
        "--factory-arg 'mode=\"torus\"' --factory-arg 'parameters={\"seed\": \"{seed}\"}' "
        "--agents-from schedule.agents --step-model --model-step-method advance"
    )
    for name, value in (spec.factory_args or {}).items():
        assert parse_factory_arg(f"{name}={command_line_value(value)}") == (name, value)
