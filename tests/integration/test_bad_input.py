"""Bad input, failing workloads, limits and Ctrl-C, through the installed ``fa-mem``.

Every failure must be: the documented exit code, exactly one line on stderr starting
with ``fa-mem: error:``, no traceback (unless --debug), no measuring process left
running, and no --json file (nor a temporary file next to it) when no report exists.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
import json
from pathlib import Path

import pytest

from fa_mem_cli import (
    ERROR_PREFIX,
    WORKLOADS,
    CliProcess,
    CliResult,
    assert_no_measuring_child_left,
    assert_one_error_line,
    cli_environment,
    load_json,
    run_cli,
    write_module,
)

FAST = ["-n", "2", "--steps", "5", "--scaling", "none"]

GOOD_AGENT = """
    class Agent:
        def step(self, observation):
            return 0


    def create_agents(n, seed):
        return [Agent() for _ in range(n)]
"""

# A model that owns its agents, for the --agents-from / --step-model / --factory-arg cases.
GOOD_MODEL = """
    class Fish:
        def step(self):
            return 0


    class Pond:
        def __init__(self, size):
            self.size = size
            self.agents = [Fish() for _ in range(size)]

        def step(self):
            for fish in self.agents:
                fish.step()
"""
MODEL = ("--factory", "Pond", "--factory-arg", "size={n}")


def assert_nothing_written(json_dir: Path) -> None:
    leftovers = sorted(path.name for path in json_dir.iterdir())
    assert leftovers == [], f"files left in the --json directory: {leftovers}"


@dataclass(frozen=True)
class BadInput:
    """A workload file (or none), the arguments after ``profile``, what the error must say."""

    id: str
    source: str | None
    filename: str
    args: tuple[str, ...]
    exit_code: int
    fragments: tuple[str, ...]


BAD_INPUTS = [
    BadInput("missing-path", None, "missing_agents.py", (), 2, ("missing_agents.py",)),
    BadInput("missing-dotted-module", None, "no_such_agents_module", (), 2, ("no_such_agents_module",)),
    BadInput("not-a-py-file", "just some notes\n", "notes.txt", (), 2, ("notes.txt",)),
    BadInput(
        "syntax-error",
        "def create_agents(n, seed):\n    return [1,\n",
        "broken.py",
        (),
        2,
        ("syntax error", "broken.py:2"),
    ),
    BadInput(
        "import-error",
        "import no_such_module_for_fa_mem_tests\n\ndef create_agents(n, seed):\n    return []\n",
        "imports_missing.py",
        (),
        2,
        ("imports_missing.py", "no_such_module_for_fa_mem_tests"),
    ),
    BadInput("no-factory", "VALUE = 1\n", "no_factory.py", (), 2, ("create_agents",)),
    BadInput("factory-flag-names-missing-function", GOOD_AGENT, "good.py", ("--factory", "make_population"), 2, ("make_population",)),
    BadInput(
        "factory-raises",
        "def create_agents(n, seed):\n    raise RuntimeError('factory exploded')\n",
        "factory_raises.py",
        (),
        2,
        ("create_agents", "RuntimeError", "factory exploded"),
    ),
    BadInput(
        "factory-returns-none",
        "def create_agents(n, seed):\n    return None\n",
        "returns_none.py",
        (),
        2,
        ("create_agents", "NoneType", "list"),
    ),
    BadInput(
        "factory-returns-empty-list",
        "def create_agents(n, seed):\n    return []\n",
        "returns_empty.py",
        (),
        2,
        ("create_agents", "empty"),
    ),
    BadInput(
        "agents-without-step",
        "class Inert:\n    pass\n\ndef create_agents(n, seed):\n    return [Inert() for _ in range(n)]\n",
        "no_step.py",
        (),
        2,
        ("agent 0", "step"),
    ),
    BadInput("zero-agents", GOOD_AGENT, "good.py", ("-n", "0"), 2, ("agents",)),
    BadInput("negative-steps", GOOD_AGENT, "good.py", ("--steps", "-1"), 2, ("--steps", "-1")),
    BadInput("bad-max-memory", GOOD_AGENT, "good.py", ("--max-memory", "10XB"), 2, ("--max-memory", "10XB")),
    BadInput("bad-scaling", GOOD_AGENT, "good.py", ("--scaling", "a,b"), 2, ("--scaling", "a,b")),
    BadInput("zero-timeout", GOOD_AGENT, "good.py", ("--timeout", "0"), 2, ("--timeout",)),
    BadInput("unknown-backend", GOOD_AGENT, "good.py", ("--backend", "valgrind"), 2, ("valgrind",)),
    BadInput("unknown-option", GOOD_AGENT, "good.py", ("--no-such-flag",), 2, ("--no-such-flag",)),
    BadInput("agents-not-a-number", GOOD_AGENT, "good.py", ("-n", "many"), 2, ("--agents",)),
    BadInput(
        "agents-from-missing",
        GOOD_MODEL,
        "pond.py",
        (*MODEL, "--agents-from", "fish"),
        2,
        ("--agents-from fish", "the model (Pond) has no attribute 'fish'"),
    ),
    BadInput(
        "agents-from-not-iterable",
        GOOD_MODEL,
        "pond.py",
        (*MODEL, "--agents-from", "size"),
        2,
        ("--agents-from size", "Pond.size is a int, which is not iterable"),
    ),
    BadInput(
        "agents-from-not-a-path", GOOD_MODEL, "pond.py", (*MODEL, "--agents-from", "agents[0]"), 2, ("not an attribute path",)
    ),
    BadInput(
        "agents-from-empty",
        GOOD_MODEL,
        "pond.py",
        ("--factory", "Pond", "--factory-arg", "size=0", "--agents-from", "agents"),
        2,
        ("Pond.agents is empty after building",),
    ),
    BadInput(
        "agents-from-on-a-list", GOOD_AGENT, "good.py", ("--agents-from", "agents"), 2, ("leave out --agents-from",)
    ),
    BadInput(
        "factory-arg-not-json",
        GOOD_MODEL,
        "pond.py",
        ("--factory", "Pond", "--factory-arg", "size=many"),
        2,
        ("--factory-arg size=many", "is not a JSON value"),
    ),
    BadInput(
        "factory-arg-without-value", GOOD_MODEL, "pond.py", ("--factory", "Pond", "--factory-arg", "size"), 2, ("NAME=VALUE",)
    ),
    BadInput(
        "factory-arg-names-no-parameter",
        GOOD_MODEL,
        "pond.py",
        (*MODEL, "--factory-arg", "depth=3", "--agents-from", "agents"),
        2,
        ("--factory-arg depth", "has no parameter 'depth' (it takes size)"),
    ),
    BadInput("step-model-without-agents-from", GOOD_MODEL, "pond.py", (*MODEL, "--step-model"), 2, ("--agents-from",)),
    BadInput(
        "model-without-the-step-method",
        GOOD_MODEL,
        "pond.py",
        (*MODEL, "--agents-from", "agents", "--step-model", "--model-step-method", "advance"),
        2,
        ("the model (Pond) has no callable .advance()",),
    ),
]


def profile_args(case: BadInput, target: str, json_path: Path) -> list[str]:
    # Defaults first so that the case's own flags win (the last occurrence counts).
    return ["profile", target, *FAST, *case.args, "--json", str(json_path)]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_bad_input_is_one_clear_error(case: BadInput, tmp_path: Path, json_dir: Path) -> None:
    if case.source is not None:
        write_module(tmp_path, case.filename, case.source)
    result = run_cli(profile_args(case, case.filename, json_dir / "report.json"), cwd=tmp_path)
    assert_one_error_line(result, case.exit_code, *case.fragments)
    assert result.stdout.strip() == "", "nothing is rendered when there is no report"
    assert_nothing_written(json_dir)


MULTILINE_MESSAGES = [
    pytest.param(
        "import_fails",
        'raise ImportError("cannot load the sensors\\nbecause the driver is missing")\n',
        2,
        id="import",
    ),
    pytest.param(
        "factory_fails",
        'def create_agents(n, seed):\n    raise RuntimeError("cannot load the sensors\\nbecause the driver is missing")\n',
        2,
        id="factory",
    ),
    pytest.param(
        "step_fails",
        "class Agent:\n"
        "    def step(self, observation):\n"
        '        raise ValueError("cannot load the sensors\\nbecause the driver is missing")\n'
        "\n"
        "def create_agents(n, seed):\n"
        "    return [Agent() for _ in range(n)]\n",
        4,
        id="step",
    ),
]


@pytest.mark.parametrize(("name", "source", "exit_code"), MULTILINE_MESSAGES)
def test_multiline_exception_message_is_still_one_line(tmp_path: Path, name: str, source: str, exit_code: int) -> None:
    write_module(tmp_path, name, source)
    result = run_cli(["profile", f"{name}.py", *FAST], cwd=tmp_path)
    assert_one_error_line(result, exit_code, "cannot load the sensors")


def test_directory_is_not_a_module(tmp_path: Path, json_dir: Path) -> None:
    (tmp_path / "agents_dir").mkdir()
    result = run_cli(["profile", "agents_dir", *FAST, "--json", json_dir / "report.json"], cwd=tmp_path)
    assert_one_error_line(result, 2, "agents_dir", "directory")
    assert_nothing_written(json_dir)


def test_missing_argument_is_one_clear_error(tmp_path: Path) -> None:
    result = run_cli(["profile"], cwd=tmp_path)
    assert_one_error_line(result, 2)


def test_json_into_a_missing_directory_fails_before_measuring(tmp_path: Path) -> None:
    write_module(tmp_path, "good", GOOD_AGENT)
    target = tmp_path / "no" / "such" / "dir" / "report.json"
    result = run_cli(["profile", "good.py", *FAST, "--json", target], cwd=tmp_path)
    assert_one_error_line(result, 2, "--json")
    assert result.children == [], "measured although the report could not be written"
    assert not (tmp_path / "no").exists()


def test_debug_shows_the_traceback(tmp_path: Path, json_dir: Path) -> None:
    write_module(tmp_path, "broken", "def create_agents(n, seed):\n    return [1,\n")
    result = run_cli(["profile", "broken.py", *FAST, "--json", json_dir / "report.json", "--debug"], cwd=tmp_path)
    assert result.returncode == 2, result.describe()
    assert "Traceback" in result.stderr, result.describe()
    assert "SyntaxError" in result.stderr
    assert len(result.error_lines) == 1, result.describe()
    assert result.stderr_lines[-1].startswith(ERROR_PREFIX)
    assert "broken.py:2" in result.stderr_lines[-1]
    assert_nothing_written(json_dir)


def test_module_that_exits_while_imported_is_an_input_error(tmp_path: Path, json_dir: Path) -> None:
    write_module(tmp_path, "exits_on_import", "import sys\n\nsys.exit(3)\n")
    result = run_cli(["profile", "exits_on_import.py", *FAST, "--json", json_dir / "report.json"], cwd=tmp_path)
    assert_one_error_line(result, 2, "exits_on_import.py")
    assert_nothing_written(json_dir)


# -- report subcommand ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no report"),
        ("{not json", "not valid JSON"),
        ('{"schema_version": 99}', "schema_version"),
        ('{"fa_mem_version": "0.1.0"}', "schema_version"),
        ('{"schema_version": 1}', "not a complete"),
    ],
    ids=["missing", "corrupt", "other-schema", "no-schema", "incomplete"],
)
def test_report_of_a_bad_file_is_one_clear_error(tmp_path: Path, content: str | None, fragment: str) -> None:
    path = tmp_path / "saved.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    for extra in ([], ["--json"]):
        result = run_cli(["report", *extra, path.name], cwd=tmp_path)
        assert_one_error_line(result, 2, "saved.json", fragment)
        assert result.stdout.strip() == "", result.describe()


# -- a step that raises: exit 4, partial report kept ------------------------------------

STEP_RAISES = """
    class Agent:
        def __init__(self, index):
            self.index = index
            self.calls = 0

        def step(self, observation):
            if self.index == 1 and self.calls == 3:
                raise ValueError("sensor went dark")
            self.calls += 1
            return 0


    def create_agents(n, seed):
        return [Agent(index) for index in range(n)]
"""


@pytest.mark.slow
def test_step_that_raises_keeps_a_partial_report(tmp_path: Path, json_dir: Path) -> None:
    write_module(tmp_path, "step_raises", STEP_RAISES)
    json_path = json_dir / "report.json"
    result = run_cli(["profile", "step_raises.py", "-n", "3", "--steps", "10", "--scaling", "none", "--json", json_path], cwd=tmp_path)
    assert result.returncode == 4, result.describe()
    assert "Traceback" not in result.stderr
    assert len(result.error_lines) == 1, result.describe()
    line = result.error_lines[0]
    assert result.stderr_lines[-1] == line, "the error is the last thing printed"
    for fragment in ("agent 1", "step 3", "ValueError", "sensor went dark"):
        assert fragment in line, (fragment, line)
    assert [name.name for name in json_dir.iterdir()] == ["report.json"], "partial report only, no temp file"
    report = load_json(json_path)
    assert report["complete"] is False
    assert report["error"]["kind"] == "step"
    assert report["error"]["agent"] == 1
    assert report["error"]["step"] == 3
    assert "sensor went dark" in report["error"]["message"]
    assert report["population"]["agents"] == 3
    assert report["population"]["measured_after_steps"] == 3
    assert report["growth"]["samples"][-1]["step"] == 3
    assert "step_raises" in result.stdout, "the partial report is rendered"
    assert_no_measuring_child_left(result)


@pytest.mark.slow
def test_step_that_raises_without_json_is_one_line(tmp_path: Path) -> None:
    write_module(tmp_path, "step_raises", STEP_RAISES)
    result = run_cli(["profile", "step_raises.py", "-n", "3", "--steps", "10", "--scaling", "none"], cwd=tmp_path)
    assert_one_error_line(result, 4, "agent 1", "step 3", "sensor went dark")
    assert "step_raises" in result.stdout


@pytest.mark.slow
def test_observe_that_raises_is_a_step_failure(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "observe_raises",
        GOOD_AGENT
        + """

    def observe(agent, step, rng):
        if step == 2:
            raise KeyError("no reading")
        return 0
""",
    )
    result = run_cli(["profile", "observe_raises.py", *FAST], cwd=tmp_path)
    assert_one_error_line(result, 4, "agent 0", "step 2", "no reading")


@pytest.mark.slow
def test_step_that_raises_in_a_scaling_run_exits_4(tmp_path: Path, json_dir: Path) -> None:
    target = WORKLOADS / "third_agent_fails.py"
    result = run_cli(
        ["profile", target, "-n", "2", "--steps", "5", "--scaling", "1,3", "--json", json_dir / "report.json"],
        cwd=tmp_path,
    )
    assert result.returncode == 4, result.describe()
    assert "Traceback" not in result.stderr
    assert len(result.error_lines) == 1 and result.stderr_lines[-1] == result.error_lines[0], result.describe()
    for fragment in ("agent 2", "step 0", "agent two cannot step", "scaling run with 3 agents"):
        assert fragment in result.error_lines[0]
    assert_no_measuring_child_left(result)
    # The profile run itself completed: its report is kept, with the failed scaling run named.
    saved = json.loads((json_dir / "report.json").read_text())
    assert saved["complete"] is True
    assert saved["error"]["kind"] == "scaling"
    assert saved["scaling"] is None


# -- limits ------------------------------------------------------------------------------


@pytest.mark.slow
def test_memory_limit_stops_the_workload(tmp_path: Path, json_dir: Path) -> None:
    target = WORKLOADS / "hog.py"  # ~1 GB over the run, 40 MB more every step
    result = run_cli(
        ["profile", target, "-n", "2", "--steps", "25", "--scaling", "none", "--max-memory", "200MB",
         "--json", json_dir / "report.json"],
        cwd=tmp_path,
        timeout=90,
    )
    assert_one_error_line(result, 5, "--max-memory")
    assert result.children, "the measuring process was never seen"
    assert_nothing_written(json_dir)


@pytest.mark.slow
def test_timeout_stops_a_step_that_hangs(tmp_path: Path, json_dir: Path) -> None:
    target = WORKLOADS / "sleepy.py"  # every step sleeps a minute
    result = run_cli(
        ["profile", target, *FAST, "--timeout", "3", "--json", json_dir / "report.json"], cwd=tmp_path, timeout=60
    )
    assert_one_error_line(result, 5, "--timeout")
    assert 3 <= result.elapsed < 30, result.describe()
    assert_nothing_written(json_dir)


# -- Ctrl-C --------------------------------------------------------------------------------


def _interrupt_when_marked(process: CliProcess, marker: Path, deadline_seconds: float = 60) -> CliResult:
    deadline = time.monotonic() + deadline_seconds
    while not marker.exists():
        process.watch()
        if process.popen.poll() is not None:
            return process.wait(5)
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the workload never started stepping")
        time.sleep(0.05)
    children = process.watch()
    assert children, "no measuring process while the workload steps"
    time.sleep(0.3)
    process.popen.send_signal(signal.SIGINT)
    return process.wait(30)


@pytest.mark.slow
def test_ctrl_c_stops_everything_and_writes_nothing(tmp_path: Path, json_dir: Path) -> None:
    marker = tmp_path / "stepping"
    process = CliProcess(
        ["profile", str(WORKLOADS / "sleepy.py"), *FAST, "--json", str(json_dir / "report.json")],
        cwd=tmp_path,
        output_dir=tmp_path / "output",
        env=cli_environment(FA_MEM_TEST_MARKER=str(marker)),
    )
    result = _interrupt_when_marked(process, marker)
    assert_one_error_line(result, 130)
    assert result.children
    assert_nothing_written(json_dir)


@pytest.mark.slow
def test_ctrl_c_during_a_scaling_run(tmp_path: Path, json_dir: Path) -> None:
    marker = tmp_path / "stepping"
    process = CliProcess(
        ["profile", str(WORKLOADS / "sleepy.py"), "-n", "2", "--steps", "5", "--scaling", "3",
         "--json", str(json_dir / "report.json")],
        cwd=tmp_path,
        output_dir=tmp_path / "output",
        # Only the 3-agent (scaling) population sleeps: the profile itself finishes.
        env=cli_environment(FA_MEM_TEST_MARKER=str(marker), FA_MEM_TEST_SLEEP_AGENTS="3"),
    )
    result = _interrupt_when_marked(process, marker)
    assert_one_error_line(result, 130)
    assert result.children, "the scaling child was never seen"
    assert_nothing_written(json_dir)

