"""A third-party plugin installed through a real ``fa_mem`` entry point, without pip.

The test writes a plugin module and its distribution's ``.dist-info`` folder (METADATA
and entry_points.txt) into a temporary folder and puts that folder on PYTHONPATH, which
is exactly how ``importlib.metadata`` finds an installed distribution. Then the
installed ``fa-mem plugins`` must list it next to the built-ins, and fa-mem's Python API
must find it, analyse with it, apply it, and apply a plan that names it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fa_mem_cli import cli_environment, fa_mem_executable

BUILT_INS = [
    "bounded-cache",
    "bounded-history",
    "compressed-history",
    "lazy-beliefs",
    "lower-precision",
    "shared-parameters",
    "shared-structures",
]

DEMO_PLUGIN = '''
"""demo-zero: float arrays that are entirely zero -> one read-only broadcast zero."""

from __future__ import annotations

from typing import Any

from fa_memtool.hookspecs import AnalysisContext, Candidate, PluginInfo, hookimpl

NAME = "demo-zero"


@hookimpl
def fa_mem_plugin_info() -> PluginInfo:
    return PluginInfo(NAME, "all-zero float arrays -> one read-only broadcast zero")


def _all_zero(value: Any) -> bool:
    import numpy as np

    return type(value) is np.ndarray and value.dtype.kind == "f" and value.flags.owndata and value.size > 0 and not value.any()


@hookimpl
def fa_mem_analyse(agents: list[Any], context: AnalysisContext) -> list[Candidate]:
    names = {name for agent in agents for name in vars(agent)}
    found = []
    for name in sorted(names - context.exclude):
        values = [getattr(agent, name) for agent in agents if hasattr(agent, name)]
        if values and all(_all_zero(value) for value in values):
            saved = sum(value.nbytes for value in values) / len(agents)
            found.append(Candidate(NAME, name, saved, f"all zero on {len(values)} agents", {"marker": "demo"}))
    return found


@hookimpl
def fa_mem_apply(agents: list[Any], candidate: Candidate) -> bool | None:
    if candidate.plugin != NAME:
        return None
    import numpy as np

    for agent in agents:
        if hasattr(agent, candidate.attribute):
            value = getattr(agent, candidate.attribute)
            if not _all_zero(value):
                raise ValueError(f".{candidate.attribute} is no longer all zero")
            setattr(agent, candidate.attribute, np.broadcast_to(np.zeros((), value.dtype), value.shape))
    return True
'''

USE_IT = '''
import json

import numpy as np

from fa_memtool import apply_plan
from fa_memtool.hookspecs import AnalysisContext
from fa_memtool.plan import PLAN_VERSION, Plan, step_for
from fa_memtool.plugins import analyse, apply_candidate, installed, plugin_manager, select
from fa_memtool.sizing import measure_population


class Agent:
    def __init__(self, index):
        self.scratch = np.zeros((64, 64))        # all zero: demo-zero's candidate
        self.buffer = np.zeros(4096)             # all zero too, but excluded below
        self.weights = np.full(100, index + 1.0)  # not zero


manager = plugin_manager()
listed = {item.name: [item.distribution, item.version] for item in installed(manager)}
agents = [Agent(index) for index in range(4)]
before = measure_population(agents).distinct_bytes
context = AnalysisContext(exclude=frozenset({"buffer"}))
candidates, failures = analyse(manager, agents, context, select(manager, None))
demo = [candidate for candidate in candidates if candidate.plugin == "demo-zero"]
for candidate in demo:
    apply_candidate(manager, agents, candidate)
after = measure_population(agents).distinct_bytes

# The same through a plan and the default manager (the installed plugins).
planned = [Agent(index) for index in range(4)]
plan = Plan(PLAN_VERSION, [step_for(planned[0], "demo-zero", "scratch", {"marker": "demo"})])
apply_plan(planned, plan)

print(json.dumps({
    "listed": listed,
    "enabled": select(manager, None),
    "failures": [failure.__dict__ for failure in failures],
    "demo": [[c.attribute, c.estimated_bytes_saved_per_agent, c.parameters] for c in demo],
    "strides": [list(agent.scratch.strides) for agent in agents],
    "writeable": [bool(agent.scratch.flags.writeable) for agent in agents],
    "zero": all(agent.scratch.shape == (64, 64) and not agent.scratch.any() for agent in agents),
    "buffer_owned": all(agent.buffer.flags.owndata for agent in agents),
    "before": before,
    "after": after,
    "planned_strides": [list(agent.scratch.strides) for agent in planned],
}))
'''


def install_demo_plugin(folder: Path, source: str = DEMO_PLUGIN) -> None:
    """What pip would leave in site-packages for the distribution famem-demo-plugin 0.1."""
    (folder / "famem_demo_plugin.py").write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    dist_info = folder / "famem_demo_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: famem-demo-plugin\nVersion: 0.1\n", encoding="utf-8")
    (dist_info / "entry_points.txt").write_text("[fa_mem]\ndemo-zero = famem_demo_plugin\n", encoding="utf-8")


def run(args: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=folder,
        env=cli_environment(PYTHONPATH=str(folder)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def plugin_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    install_demo_plugin(folder)
    return folder


def test_fa_mem_plugins_lists_the_third_party_plugin_next_to_the_built_ins(plugin_folder: Path) -> None:
    result = run([str(fa_mem_executable()), "plugins", "--json"], plugin_folder)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    by_name = {item["name"]: item for item in listed}
    assert sorted(by_name) == sorted([*BUILT_INS, "demo-zero"])
    assert [item["name"] for item in listed] == sorted(by_name)
    assert by_name["demo-zero"] == {
        "name": "demo-zero",
        "transforms": "all-zero float arrays -> one read-only broadcast zero",
        "distribution": "famem-demo-plugin",
        "version": "0.1",
    }
    for name in BUILT_INS:
        assert by_name[name]["distribution"] == "fa-mem"

    table = run([str(fa_mem_executable()), "plugins"], plugin_folder)
    assert table.returncode == 0, table.stderr
    assert "demo-zero" in table.stdout and "famem-demo-plugin" in table.stdout


def test_without_the_distribution_on_the_path_the_plugin_is_not_listed(tmp_path: Path) -> None:
    result = run([str(fa_mem_executable()), "plugins", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(item["name"] for item in json.loads(result.stdout)) == BUILT_INS


def test_the_python_api_finds_analyses_and_applies_the_third_party_plugin(plugin_folder: Path) -> None:
    result = run([sys.executable, "-c", USE_IT], plugin_folder)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["listed"]["demo-zero"] == ["famem-demo-plugin", "0.1"]
    assert seen["enabled"] == sorted([*BUILT_INS, "demo-zero"])
    assert seen["failures"] == []
    # One candidate: .buffer is excluded, .weights is not zero.
    assert seen["demo"] == [["scratch", 64 * 64 * 8.0, {"marker": "demo"}]]
    assert seen["strides"] == [[0, 0]] * 4, "every agent holds the broadcast zero"
    assert seen["writeable"] == [False] * 4
    assert seen["zero"] is True
    assert seen["buffer_owned"] is True
    # The data buffers are gone; each agent now holds only a view header and a 0-d zero.
    assert seen["before"] - seen["after"] >= 0.95 * 4 * 64 * 64 * 8
    assert seen["planned_strides"] == [[0, 0]] * 4, "apply_plan found the plugin through its entry point"


def test_a_plugin_that_cannot_be_imported_is_reported_in_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    install_demo_plugin(folder, 'raise ImportError("this plugin is broken")\n')
    result = run([str(fa_mem_executable()), "plugins", "--json"], folder)
    assert "Traceback" not in result.stderr
    assert "famem_demo_plugin" in result.stderr or "demo-zero" in result.stderr
    assert result.returncode in (0, 2)
    if result.returncode == 0:
        assert sorted(item["name"] for item in json.loads(result.stdout)) == BUILT_INS
