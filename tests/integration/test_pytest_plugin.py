"""The pytest plugin (marker ``agent_memory``, fixture ``fa_mem``), through its entry point.

Each test writes a small test project into tmp_path and runs ``python -m pytest`` on it in
a subprocess, so the plugin is loaded the way a user gets it: from the installed
``pytest11`` entry point. Outcomes are read from the JUnit XML report, the failure text
from the terminal output.

Ground truth: an agent holding ``np.zeros(100_000)`` owns 800,000 bytes of buffer plus a
few hundred bytes of Python objects, so a per-agent budget of 700 kB fails and one of
900 kB passes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

AGENT_BYTES = np.zeros(100_000).nbytes  # 800,000
FRAME_BYTES = np.zeros(128).nbytes  # 1,024: what a leaking agent keeps per step
SECTION = "fa-mem agent memory"
TABLE_HEADER = re.compile(r"agent\s+type\s+exclusive\s+shared\s+amortized")

COMMON = '''
import numpy as np
import pytest


class Agent:
    """Owns one float64 array of `size` values (100_000 -> 800 kB)."""

    def __init__(self, size=100_000):
        self.weights = np.zeros(size)

    def step(self, observation):
        return 0


class LeakyAgent(Agent):
    """Keeps a 1 kB frame of every observation: about 1.1 kB more per step."""

    def __init__(self):
        super().__init__(1_000)
        self.frames = []

    def step(self, observation):
        self.frames.append(np.full(128, float(observation)))
        return 0
'''

BUDGET_TESTS = '''
@pytest.mark.agent_memory(per_agent="900 kB")
def test_per_agent_under(fa_mem):
    fa_mem.track([Agent() for _ in range(3)])


@pytest.mark.agent_memory(per_agent="700 kB")
def test_per_agent_over(fa_mem):
    fa_mem.track([Agent() for _ in range(3)])


@pytest.mark.agent_memory(total="2.5MB")
def test_total_under(fa_mem):
    fa_mem.track([Agent() for _ in range(3)])


@pytest.mark.agent_memory(total="2MB")
def test_total_over(fa_mem):
    fa_mem.track([Agent() for _ in range(3)])


@pytest.mark.agent_memory(leak_per_step="512 B")
def test_leak_over(fa_mem):
    fa_mem.track([LeakyAgent() for _ in range(2)])
    fa_mem.run(20)


@pytest.mark.agent_memory(leak_per_step="512 B")
def test_leak_under(fa_mem):
    fa_mem.track([Agent(1_000) for _ in range(2)])
    fa_mem.run(20)


@pytest.mark.agent_memory(leak_per_step="512 B")
def test_leak_sampled_by_hand(fa_mem):
    agents = fa_mem.track([LeakyAgent(), LeakyAgent()])
    for step in range(1, 11):
        for agent in agents:
            agent.step(step)
        fa_mem.sample(step)


@pytest.mark.agent_memory(leak_per_step="512 B")
def test_leak_without_steps(fa_mem):
    fa_mem.track([Agent()])


@pytest.mark.agent_memory(per_agent="900 kB")
def test_returned_under():
    return [Agent() for _ in range(2)]


@pytest.mark.agent_memory(per_agent="700 kB")
def test_returned_over():
    return [Agent() for _ in range(2)]


@pytest.mark.agent_memory(per_agent="700 kB")
def test_returned_tuple_over():
    return (Agent(), Agent(1_000))


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(100_000, marks=pytest.mark.agent_memory(per_agent="700 kB"), id="tight"),
        pytest.param(100_000, marks=pytest.mark.agent_memory(per_agent="900 kB"), id="roomy"),
    ],
)
def test_per_case(fa_mem, size):
    fa_mem.track([Agent(size)])


def test_unmarked_is_unaffected(fa_mem):
    fa_mem.track([Agent(1_000_000)])  # 8 MB, no marker: no budget


def test_unmarked_without_fixture():
    Agent(1_000_000)


@pytest.mark.agent_memory(per_agent="10MB")
def test_tracks_nothing():
    Agent()


@pytest.mark.agent_memory(per_agent="900 kB")
def test_own_failure_wins(fa_mem):
    fa_mem.track([Agent()])
    assert 1 + 1 == 3, "the test's own failure"


def limits(*sizes):
    return [pytest.param(size, marks=pytest.mark.agent_memory(per_agent=size), id=str(size)) for size in sizes]


@pytest.mark.parametrize("limit", limits("10MB", "1.5 GiB", "900kB", "0.9 MB", "879 KiB", 900_000, "9e5"))
def test_size_formats_pass(fa_mem, limit):
    fa_mem.track([Agent()])


@pytest.mark.parametrize("limit", limits("700kB", "0.7 MB", "683 KiB", 700_000))
def test_size_formats_fail(fa_mem, limit):
    fa_mem.track([Agent()])


class TestMarkedClass:
    pytestmark = pytest.mark.agent_memory(per_agent="700 kB")

    def test_inherits_the_class_limit(self):
        return [Agent()]
'''


@dataclass
class PytestRun:
    returncode: int
    output: str
    outcomes: dict[str, str]  # test name (with parameters) -> passed / failed / error / skipped
    messages: dict[str, str]  # test name -> failure message

    def describe(self) -> str:
        return f"exit {self.returncode}\n{self.output[-6000:]}"

    def failure_text(self, name: str) -> str:
        """The block the terminal printed for one failing test, up to the next one."""
        lines = self.output.splitlines()
        header = re.compile(r"^_{3,} (?:\S+\.)?" + re.escape(name) + r" _{3,}$")
        start = next((index for index, line in enumerate(lines) if header.match(line)), None)
        assert start is not None, f"no failure block for {name}\n{self.describe()}"
        end = next(
            (index for index in range(start + 1, len(lines)) if re.match(r"^(_{3,} \S.* _{3,}|={3,}.*)$", lines[index])),
            len(lines),
        )
        return "\n".join(lines[start:end])


def write_project(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def run_pytest(root: Path, *extra: str) -> PytestRun:
    environment = dict(os.environ)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_CURRENT_TEST"):
        environment.pop(name, None)
    environment["PYTHONDONTWRITEBYTECODE"] = "1"
    environment["NO_COLOR"] = "1"
    junit = root / "junit.xml"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--strict-markers", "-rfE",
         f"--junitxml={junit}", *extra],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    outcomes: dict[str, str] = {}
    messages: dict[str, str] = {}
    if junit.exists():
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            name = case.get("name", "")
            outcome = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = {"failure": "failed"}.get(child.tag, child.tag)
                    messages[name] = (child.get("message") or "") + "\n" + (child.text or "")
                    break
            outcomes[name] = outcome
    return PytestRun(completed.returncode, output, outcomes, messages)


@pytest.fixture(scope="module")
def budgets(tmp_path_factory: pytest.TempPathFactory) -> PytestRun:
    root = write_project(
        tmp_path_factory.mktemp("plugin-budgets"),
        {"pytest.ini": "[pytest]\n", "test_agents_memory.py": COMMON + BUDGET_TESTS},
    )
    run = run_pytest(root)
    assert run.outcomes, f"no test ran\n{run.describe()}"
    return run


def test_ground_truth() -> None:
    assert 700_000 < AGENT_BYTES < 900_000
    assert 2_000_000 < 3 * AGENT_BYTES < 2_500_000


def test_plugin_is_loaded_from_the_entry_point(budgets: PytestRun) -> None:
    assert re.search(r"^plugins:.*\bfa-mem-", budgets.output, re.MULTILINE), budgets.describe()
    # --strict-markers is on: agent_memory is registered by the plugin, no test errored on it.
    assert "error" not in budgets.outcomes.values(), budgets.describe()
    assert budgets.returncode == 1, budgets.describe()


@pytest.mark.parametrize(
    ("name", "outcome"),
    [
        ("test_per_agent_under", "passed"),
        ("test_per_agent_over", "failed"),
        ("test_total_under", "passed"),
        ("test_total_over", "failed"),
        ("test_leak_over", "failed"),
        ("test_leak_under", "passed"),
        ("test_leak_sampled_by_hand", "failed"),
        ("test_leak_without_steps", "failed"),
        ("test_returned_under", "passed"),
        ("test_returned_over", "failed"),
        ("test_returned_tuple_over", "failed"),
        ("test_per_case[tight]", "failed"),
        ("test_per_case[roomy]", "passed"),
        ("test_unmarked_is_unaffected", "passed"),
        ("test_unmarked_without_fixture", "passed"),
        ("test_tracks_nothing", "failed"),
        ("test_own_failure_wins", "failed"),
        ("test_inherits_the_class_limit", "failed"),
    ],
)
def test_outcome(budgets: PytestRun, name: str, outcome: str) -> None:
    assert budgets.outcomes.get(name) == outcome, f"{name}: {budgets.outcomes.get(name)}\n{budgets.describe()}"


def test_over_per_agent_shows_the_agent_table(budgets: PytestRun) -> None:
    text = budgets.failure_text("test_per_agent_over")
    assert "agent memory over budget" in text
    assert "3 of 3 agents over per_agent=700 kB" in text, text
    assert SECTION in text, text
    assert TABLE_HEADER.search(text), text
    rows = [line for line in text.splitlines() if re.match(r"^\s+\d+\s+Agent\s", line)]
    assert len(rows) == 3, text  # one row per agent
    assert ".weights" in text and "800 kB" in text
    assert "population distinct bytes: 2.4 MB" in text


def test_over_total_names_the_population(budgets: PytestRun) -> None:
    text = budgets.failure_text("test_total_over")
    assert "population 2.4 MB over total=2 MB" in text, text
    assert SECTION in text


def test_leak_message_gives_the_growth(budgets: PytestRun) -> None:
    text = budgets.failure_text("test_leak_over")
    match = re.search(r"agents grow ([0-9.]+) (B|kB) per agent per step, over leak_per_step=512 B", text)
    assert match, text
    growth = float(match.group(1)) * (1000 if match.group(2) == "kB" else 1)
    # One 1,024-byte frame plus its array header per agent per step.
    assert FRAME_BYTES <= growth <= FRAME_BYTES + 256, growth
    assert ".frames" in text
    assert "fa_mem.run" in budgets.failure_text("test_leak_without_steps")


def test_returned_agents_are_checked(budgets: PytestRun) -> None:
    assert "2 of 2 agents over per_agent=700 kB" in budgets.failure_text("test_returned_over")
    assert "1 of 2 agents over per_agent=700 kB" in budgets.failure_text("test_returned_tuple_over")


def test_each_parametrised_case_has_its_limit(budgets: PytestRun) -> None:
    assert "over per_agent=700 kB" in budgets.failure_text("test_per_case[tight]")


def test_tracking_nothing_is_a_clear_failure(budgets: PytestRun) -> None:
    text = budgets.failure_text("test_tracks_nothing")
    assert "tracked no agents" in text and "fa_mem.track" in text, text


def test_own_failure_is_reported_not_the_budget(budgets: PytestRun) -> None:
    text = budgets.failure_text("test_own_failure_wins")
    assert "the test's own failure" in text
    assert "agent memory over budget" not in text


def test_size_formats(budgets: PytestRun) -> None:
    passing = {name: outcome for name, outcome in budgets.outcomes.items() if name.startswith("test_size_formats_pass")}
    failing = {name: outcome for name, outcome in budgets.outcomes.items() if name.startswith("test_size_formats_fail")}
    assert len(passing) == 7 and set(passing.values()) == {"passed"}, passing
    assert len(failing) == 4 and set(failing.values()) == {"failed"}, failing


# With fa_mem_max_leak set, every marked test must step its agents (fa_mem.run).
INI_TESTS = '''
@pytest.mark.agent_memory
def test_default_per_agent_over(fa_mem):
    fa_mem.track([Agent()])
    fa_mem.run(5)


@pytest.mark.agent_memory()
def test_default_per_agent_under(fa_mem):
    fa_mem.track([Agent(50_000)])
    fa_mem.run(5)


@pytest.mark.agent_memory(per_agent="900 kB")
def test_marker_overrides_the_default(fa_mem):
    fa_mem.track([Agent()])
    fa_mem.run(5)


@pytest.mark.agent_memory(per_agent="10 MB")
def test_default_total_over(fa_mem):
    fa_mem.track([Agent(50_000) for _ in range(5)])
    fa_mem.run(5)


@pytest.mark.agent_memory(per_agent="10 MB", total="10 MB")
def test_default_leak_over(fa_mem):
    fa_mem.track([LeakyAgent()])
    fa_mem.run(10)


def test_unmarked_ignores_the_defaults(fa_mem):
    fa_mem.track([Agent(1_000_000)])
'''

INI_STYLES = {
    "pytest.ini": """
        [pytest]
        fa_mem_budget_per_agent = 700 kB
        fa_mem_budget_total = 1.5MB
        fa_mem_max_leak = 512 B
    """,
    "pyproject.toml": """
        [tool.pytest.ini_options]
        fa_mem_budget_per_agent = "700 kB"
        fa_mem_budget_total = "1.5MB"
        fa_mem_max_leak = "512 B"
    """,
}


@pytest.mark.parametrize("config_file", sorted(INI_STYLES))
def test_ini_defaults(tmp_path: Path, config_file: str) -> None:
    root = write_project(tmp_path, {config_file: INI_STYLES[config_file], "test_defaults.py": COMMON + INI_TESTS})
    run = run_pytest(root)
    assert run.outcomes == {
        "test_default_per_agent_over": "failed",
        "test_default_per_agent_under": "passed",
        "test_marker_overrides_the_default": "passed",
        "test_default_total_over": "failed",
        "test_default_leak_over": "failed",
        "test_unmarked_ignores_the_defaults": "passed",
    }, run.describe()
    assert "over per_agent=700 kB" in run.failure_text("test_default_per_agent_over")
    assert "over total=1.5 MB" in run.failure_text("test_default_total_over")
    assert "over leak_per_step=512 B" in run.failure_text("test_default_leak_over")


def test_without_the_plugin_the_marker_is_unknown(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"pytest.ini": "[pytest]\n", "test_one.py": COMMON + '''
@pytest.mark.agent_memory(per_agent="700 kB")
def test_marked():
    return None
'''})
    run = run_pytest(root, "-p", "no:fa_mem")
    assert run.returncode != 0, run.describe()
    assert "agent_memory" in run.output and "not found in `markers`" in run.output, run.describe()


def test_bad_size_fails_the_test_with_a_clear_message(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"pytest.ini": "[pytest]\n", "test_bad.py": COMMON + '''
@pytest.mark.agent_memory(per_agent="lots")
def test_bad_size(fa_mem):
    fa_mem.track([Agent()])


def test_other():
    pass
'''})
    run = run_pytest(root)
    assert run.outcomes.get("test_bad_size") in ("failed", "error"), run.describe()
    assert run.outcomes.get("test_other") == "passed", run.describe()
    assert "per_agent" in run.output and "'lots'" in run.output, run.describe()


@pytest.mark.parametrize("marker", ['per_agnet="700 kB"', '"700 kB"'], ids=["misspelt-keyword", "positional"])
def test_marker_arguments_that_are_not_limits_are_an_error(tmp_path: Path, marker: str) -> None:
    root = write_project(tmp_path, {"pytest.ini": "[pytest]\n", "test_typo.py": COMMON + f'''
@pytest.mark.agent_memory({marker})
def test_typo(fa_mem):
    fa_mem.track([Agent()])
'''})
    run = run_pytest(root)
    assert run.outcomes.get("test_typo") in ("failed", "error"), run.describe()
