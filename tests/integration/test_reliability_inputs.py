"""Inputs fa-mem does not control: a hand-edited plan, pytest marker values, what a
marked test returns, and progress events that the workload's own code writes.

- ``fa-mem profile --plan`` with a plan that asks for unproven settings (a dtype the
  plugin does not apply, a tolerance of 1e9, a dunder path, a shape written as text, an
  uninstalled plugin) exits 2 with one ``fa-mem: error:`` line naming the step, the path
  and the parameter, and leaves the plan file as it was.
- The pytest plugin (run in inner sessions with ``pytester``) fails a test whose marker
  or ini option is not a budget (negative, zero, a bool, inf, NaN, text that is no size)
  with one line naming the keyword, before the body runs, never headed "agent memory
  over budget"; a test returning something that is not agents fails naming what it
  returned.
- The progress consumer ignores (and counts) malformed events: fed directly, and from a
  workload that writes garbage to the child's progress descriptor (``sys.argv[3]``)
  while a rich progress display is drawn.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from fa_mem_cli import (
    ERROR_PREFIX,
    CliProcess,
    assert_clean_success,
    assert_one_error_line,
    cli_environment,
    run_cli,
    write_module,
)
from fa_memtool.cli._common import ProgressConsumer

pytest_plugins = ["pytester"]

FAST = ["-n", "2", "--steps", "3", "--scaling", "none"]

# --------------------------------------------------------------------------- plans through the CLI

PLAN_AGENTS = """
    import numpy as np


    class Agent:
        def __init__(self, seed):
            self.weights = np.random.default_rng(seed).random(20_000)
            self.history = []

        def step(self, observation):
            self.history.append(observation)
            return 0


    def create_agents(n, seed):
        return [Agent(seed + index) for index in range(n)]
"""


def _lowering_step(**changes: Any) -> dict[str, Any]:
    step = {
        "plugin": "lower-precision",
        "attribute": "weights",
        "parameters": {"dtype": "float32", "rtol": 1e-05, "atol": 1e-08},
        "type_name": "ndarray",
        "shape": [20000],
        "dtype": "float64",
        "before_bytes_per_agent": None,
        "after_bytes_per_agent": None,
    }
    step.update(changes)
    return step


BAD_PLANS = {
    "dtype-float16": (_lowering_step(parameters={"dtype": "float16", "rtol": 1e-05, "atol": 1e-08}), ("steps[0]", ".weights", "'dtype'")),
    "rtol-1e9": (_lowering_step(parameters={"dtype": "float32", "rtol": 1e9, "atol": 1e-08}), ("steps[0]", ".weights", "'rtol'", "[0, 1]")),
    "atol-negative": (_lowering_step(parameters={"dtype": "float32", "rtol": 1e-05, "atol": -1}), ("steps[0]", ".weights", "'atol'")),
    "unknown-parameter": (_lowering_step(parameters={"dtype": "float32", "precision": "half"}), ("steps[0]", "'precision'")),
    "dunder-dict": (
        _lowering_step(plugin="shared-structures", attribute="__dict__", parameters={}, type_name="dict", shape=None, dtype=None),
        ("steps[0]", ".__dict__", "'__dict__'"),
    ),
    "dunder-deep": (
        _lowering_step(plugin="bounded-history", attribute="history.__class__", parameters={"maxlen": 2}, type_name="type", shape=None, dtype=None),
        ("steps[0]", ".history.__class__", "'__class__'"),
    ),
    "maxlen-bool": (
        _lowering_step(plugin="bounded-history", attribute="history", parameters={"maxlen": True}, type_name="list", shape=None, dtype=None),
        ("steps[0]", ".history", "'maxlen'"),
    ),
    "shape-as-text": (_lowering_step(shape="20000"), ("steps[0]", "shape", "20000")),
    "plugin-not-installed": (_lowering_step(plugin="half-precision"), ("steps[0]", "half-precision", ".weights", "installed:")),
}


@pytest.mark.parametrize("name", sorted(BAD_PLANS))
def test_profile_refuses_a_bad_plan_in_one_line_and_keeps_the_file(tmp_path: Path, name: str) -> None:
    step, fragments = BAD_PLANS[name]
    module = write_module(tmp_path, "planned_agents", PLAN_AGENTS)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"fa_mem_plan": 1, "steps": [step], "workload": {}}, indent=1), encoding="utf-8")
    before = plan.read_bytes()
    result = run_cli(["profile", module, *FAST, "--plan", plan, "--json", tmp_path / "out.json"], cwd=tmp_path)
    line = assert_one_error_line(result, 2, *fragments)
    assert "['2', '0'" not in line, line
    assert plan.read_bytes() == before, "the plan file was changed"
    assert not (tmp_path / "out.json").exists()


def test_profile_applies_a_valid_plan(tmp_path: Path) -> None:
    module = write_module(tmp_path, "planned_agents", PLAN_AGENTS)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"fa_mem_plan": 1, "steps": [_lowering_step()], "workload": {}}), encoding="utf-8")
    result = run_cli(["profile", module, *FAST, "--plan", plan, "--json", tmp_path / "out.json"], cwd=tmp_path)
    assert_clean_success(result)
    notes = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))["notes"]
    assert any("plan of 1 transformation" in note for note in notes), notes


# --------------------------------------------------------------------------- the pytest plugin

PLUGIN_COMMON = '''
import numpy as np
import pytest


class Agent:
    def __init__(self, size=1_000):
        self.weights = np.zeros(size)

    def step(self, observation):
        return 0


def test_unmarked_neighbour():
    pass
'''

BAD_BUDGETS = [
    ("per_agent", "-5"),
    ("per_agent", "0"),
    ("per_agent", "0.0"),
    ("per_agent", "True"),
    ("per_agent", "False"),
    ("per_agent", 'float("inf")'),
    ("per_agent", 'float("nan")'),
    ("per_agent", '"0 MB"'),
    ("per_agent", '"-5 MB"'),
    ("per_agent", '"lots"'),
    ("per_agent", "[10]"),
    ("per_agent", "10 ** 400"),
    ("total", 'float("-inf")'),
    ("total", "-1.5"),
    ("total", "True"),
    ("leak_per_step", "0"),
    ("leak_per_step", 'float("nan")'),
    ("leak_per_step", '{"bytes": 5}'),
]


def _failures(reprec: Any) -> dict[str, Any]:
    return {report.nodeid.split("::")[-1]: report for report in reprec.getreports("pytest_runtest_logreport") if report.failed}


def _assert_configuration_failure(report: Any, *fragments: str) -> str:
    text = report.longreprtext.strip()
    assert len(text.splitlines()) == 1, f"expected one line, got:\n{text}"
    assert "agent_memory configuration error" in text, text
    assert "over budget" not in text, text
    for forbidden in ("Traceback", "OverflowError", "TypeError", "the body ran"):
        assert forbidden not in text, text
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return text


def test_marker_values_that_are_not_budgets_fail_each_test_in_one_line(pytester: pytest.Pytester) -> None:
    """One inner session, one marked test per bad value (each would be a budget of
    nothing, of everything, or a crash); the bodies never run."""
    cases = "".join(
        f"""

@pytest.mark.agent_memory({keyword}={value})
def test_bad_{index}(fa_mem):
    raise AssertionError("the body ran")
"""
        for index, (keyword, value) in enumerate(BAD_BUDGETS)
    )
    pytester.makepyfile(test_budget=PLUGIN_COMMON + cases)
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=1, failed=len(BAD_BUDGETS))
    failures = _failures(reprec)
    for index, (keyword, value) in enumerate(BAD_BUDGETS):
        report = failures[f"test_bad_{index}"]
        assert report.when == "call", (keyword, value)
        text = _assert_configuration_failure(report, keyword)
        assert f"agent_memory({keyword}=" in text, (value, text)


def test_a_bad_ini_default_names_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfa_mem_budget_per_agent = 0 MB\nfa_mem_max_leak = -1\n")
    pytester.makepyfile(
        test_ini=PLUGIN_COMMON
        + '''

@pytest.mark.agent_memory
def test_marked(fa_mem):
    fa_mem.track([Agent()])


@pytest.mark.agent_memory(per_agent="10 MB", leak_per_step="1 kB")
def test_marker_wins(fa_mem):
    fa_mem.track([Agent()])
    fa_mem.run(3)
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=2, failed=1)
    _assert_configuration_failure(_failures(reprec)["test_marked"], "fa_mem_budget_per_agent", "'0 MB'")


def test_good_budgets_still_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_good=PLUGIN_COMMON
        + '''

@pytest.mark.parametrize(
    "limit",
    [
        pytest.param(limit, marks=pytest.mark.agent_memory(per_agent=limit, total=limit, leak_per_step=limit), id=repr(limit))
        for limit in ["10 MB", "1.5 GiB", 10_000_000, 1e7, np.int64(10_000_000), np.float64(1e7), 10 ** 30]
    ],
)
def test_budget(fa_mem, limit):
    fa_mem.track([Agent()])
    fa_mem.run(3)


@pytest.mark.agent_memory(per_agent=1)
def test_really_over():
    return [Agent()]
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=8, failed=1)
    text = _failures(reprec)["test_really_over"].longreprtext
    assert text.startswith("agent memory over budget:"), text
    assert "over per_agent=1 B" in text, text


RETURNED = [
    ("[1, 2, 3]", ("[1, 2, 3]", "item 0 is 1 (int)", "not agents")),
    ('["a", "b"]', ("item 0 is 'a' (str)",)),
    ("[Agent(), None]", ("item 1 is None",)),
    ("(Agent(), 7.5)", ("item 1 is 7.5 (float)",)),
    ("5", ("returned 5 (int)", "list or tuple")),
    ('{"agent": Agent()}', ("(dict)", "list or tuple")),
    ("(agent for agent in [Agent()])", ("(generator)",)),
    ("[]", ("empty list",)),
    ("()", ("empty tuple",)),
]


def test_a_returned_value_that_is_not_agents_is_named(pytester: pytest.Pytester) -> None:
    cases = "".join(
        f"""

@pytest.mark.agent_memory(per_agent="10 MB")
def test_returns_{index}():
    return {returned}
"""
        for index, (returned, _) in enumerate(RETURNED)
    )
    pytester.makepyfile(test_returned=PLUGIN_COMMON + cases)
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=1, failed=len(RETURNED))
    failures = _failures(reprec)
    for index, (returned, fragments) in enumerate(RETURNED):
        _assert_configuration_failure(failures[f"test_returns_{index}"], "the test returned", *fragments)


def test_returned_agents_are_still_checked_and_the_fixture_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_returned=PLUGIN_COMMON
        + '''

@pytest.mark.agent_memory(per_agent="10 MB")
def test_returns_agents():
    return [Agent(), Agent()]


@pytest.mark.agent_memory(per_agent="10 MB")
def test_tracks_and_returns_something_else(fa_mem):
    fa_mem.track([Agent()])
    return 5


def test_unmarked_returns_a_number_as_before():
    return 5
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider", "-W", "ignore::pytest.PytestReturnNotNoneWarning")
    reprec.assertoutcome(passed=4, failed=0)


def test_only_budget_failures_are_headed_over_budget(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_headings=PLUGIN_COMMON
        + '''

@pytest.mark.agent_memory(per_agent="10 MB")
def test_tracks_nothing():
    Agent()


@pytest.mark.agent_memory(per_agent="10 MB", leak_per_step="1 kB")
def test_never_steps(fa_mem):
    fa_mem.track([Agent()])


@pytest.mark.agent_memory(per_agent="1 kB", leak_per_step="1 kB")
def test_over_and_never_steps(fa_mem):
    fa_mem.track([Agent(10_000)])


@pytest.mark.agent_memory("10 MB")
def test_positional(fa_mem):
    fa_mem.track([Agent()])


@pytest.mark.agent_memory(per_agnet="10 MB")
def test_misspelt(fa_mem):
    fa_mem.track([Agent()])


def test_track_refuses_numbers(fa_mem):
    with pytest.raises(TypeError, match="item 0 is 1 \\\\(int\\\\)"):
        fa_mem.track([1, 2, 3])
    with pytest.raises(TypeError, match="takes a list of agents"):
        fa_mem.track(5)
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=2, failed=5)
    failures = _failures(reprec)
    nothing = failures["test_tracks_nothing"].longreprtext
    assert "over budget" not in nothing and "tracked no agents" in nothing, nothing
    never = failures["test_never_steps"].longreprtext
    assert "over budget" not in never and "leak_per_step needs samples" in never, never
    both = failures["test_over_and_never_steps"].longreprtext
    assert both.startswith("agent memory over budget:\n  1 of 1 agents over per_agent=1 kB"), both
    assert "leak_per_step needs samples" in both.split("agent memory over budget:")[1].split("could not check")[1], both
    _assert_configuration_failure(failures["test_positional"], "takes only the keywords", "'10 MB'")
    _assert_configuration_failure(failures["test_misspelt"], "per_agnet")


def test_no_traceback_reaches_the_terminal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_terminal=PLUGIN_COMMON
        + '''

@pytest.mark.agent_memory(per_agent=float("inf"))
def test_infinite(fa_mem):
    fa_mem.track([Agent()])


@pytest.mark.agent_memory(per_agent="10 MB")
def test_returns_numbers():
    return [1, 2, 3]
'''
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    output = result.stdout.str() + result.stderr.str()
    for forbidden in ("Traceback", "OverflowError", "TypeError", "over budget", "INTERNALERROR"):
        assert forbidden not in output, output
    assert "agent_memory(per_agent=inf)" in output, output
    assert "the test returned [1, 2, 3], not agents" in output, output


# --------------------------------------------------------------------------- progress events


def _progress() -> tuple[Progress, Console]:
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, auto_refresh=False,
    )
    return progress, console


def _render(progress: Progress, console: Console) -> str:
    """What rich's refresh thread draws: rendering raises on a task rich cannot show."""
    console.file = io.StringIO()
    console.print(progress.get_renderable())
    return console.file.getvalue()


BAD_EVENTS: list[Any] = [
    None,
    5,
    "steps",
    [1, 2, 3],
    {},
    {"no_event": 1},
    {"event": 7},
    {"event": "explode"},
    {"event": ["steps"]},
    {"event": "steps", "done": "many", "total": "lots"},
    {"event": "steps", "done": 1, "total": "10"},
    {"event": "steps", "done": -5, "total": 10},
    {"event": "steps", "done": 3, "total": -1},
    {"event": "steps", "done": 3, "total": 10**400},
    {"event": "steps", "done": 3, "total": 1e308},
    {"event": "steps", "done": 3, "total": math.inf},
    {"event": "steps", "done": math.nan, "total": 10},
    {"event": "steps", "done": 2.5, "total": 10},
    {"event": "steps", "done": True, "total": 10},
    {"event": "steps", "done": [1], "total": 10},
    {"event": "build", "total": {"a": 1}},
    {"event": "build"},
    {"event": "phase"},
    {"event": "phase", "name": 42},
    {"event": "phase", "name": None},
    {"event": "configuration", "name": ["x"]},
    {"event": "trials", "stage": 5},
    {"event": "trials", "name": {"plugin": "x"}, "done": 1, "total": 2},
    {"event": "trials", "name": "x", "done": 1, "total": -2},
]


def test_the_consumer_ignores_and_counts_malformed_events() -> None:
    progress, console = _progress()
    consumer = ProgressConsumer(progress)
    consumer({"event": "configuration", "name": "profile, 2 agents"})
    consumer({"event": "steps", "done": 2, "total": 10})
    shown = _render(progress, console)
    assert "profile, 2 agents: stepping" in shown and "2/10" in shown, shown
    for event in BAD_EVENTS:
        consumer(event)
        assert "2/10" in _render(progress, console), f"{event!r} changed the display"
    assert consumer.ignored == len(BAD_EVENTS)
    (task,) = progress.tasks
    assert (task.completed, task.total) == (2, 10)
    assert task.description == "profile, 2 agents: stepping"


def test_the_consumer_shows_what_names_hold_without_markup_or_control_characters() -> None:
    progress, console = _progress()
    consumer = ProgressConsumer(progress)
    consumer({"event": "configuration", "name": "optimize [bold]"})
    consumer({"event": "phase", "name": "[/nothing] \x1b[2J\nbuilt" + "x" * 500})
    shown = _render(progress, console)
    assert "optimize [bold]: [/nothing]" in shown, shown
    assert "\x1b[2J" not in progress.tasks[0].description and "\n" not in progress.tasks[0].description
    assert len(progress.tasks[0].description) < 200
    consumer({"event": "trials", "name": "lower-precision:history[*]", "done": 1, "total": 3})
    assert "replaying lower-precision:history[*]" in _render(progress, console)
    assert consumer.ignored == 0


def test_the_consumer_accepts_every_event_the_child_sends() -> None:
    progress, console = _progress()
    consumer = ProgressConsumer(progress)
    consumer({"event": "steps", "done": 1, "total": 3})  # before any configuration: nothing to update
    for event in [
        {"event": "configuration", "name": "profile, 10 agents"},
        {"event": "phase", "name": "import", "rss_bytes": 123},
        {"event": "build", "total": 10},
        {"event": "sample", "step": 0},
        {"event": "steps", "done": 0, "total": 0},
        {"event": "steps", "done": 3, "total": 3, "force": True},
        {"event": "steps", "done": 3.0, "total": None},
        {"event": "analyse"},
        {"event": "trials", "stage": "analyse"},
        {"event": "trials", "name": "bounded-history:history", "done": 1, "total": 4},
        {"event": "configuration", "name": "scaling, 5 agents"},
    ]:
        consumer(event)
        _render(progress, console)
    assert consumer.ignored == 0
    assert len(progress.tasks) == 1 and progress.tasks[0].description == "scaling, 5 agents: starting"


GARBAGE_WORKLOAD = r'''
import os
import sys
import time

GARBAGE = [
    b'[1, 2, 3]\n',
    b'"just a string"\n',
    b'{"event": "steps", "done": "many", "total": "lots"}\n',
    b'{"event": "steps", "done": -5, "total": 10}\n',
    b'{"event": "steps", "done": 3, "total": ' + b'9' * 400 + b'}\n',
    b'{"event": "steps", "done": 1e308, "total": 1e308}\n',
    b'{"event": "phase", "name": "[bold unclosed [/nothing]"}\n',
    b'{"event": "build", "total": {"a": 1}}\n',
    b'{"no_event": 1}\n',
    b'not json at all\n',
    b'\xff\xfe\n',
]
MALFORMED = 8  # the lines that are JSON but no event fa-mem sends (the others never parse)


def write_garbage():
    descriptor = int(sys.argv[3])  # python -m fa_memtool.child SPEC RESULT FD
    for line in GARBAGE:
        os.write(descriptor, line)
        time.sleep(0.15)  # let rich's refresh thread draw what each line did


class Agent:
    def __init__(self):
        self.history = []

    def step(self, observation):
        self.history.append(observation)
        return 0


def create_agents(n, seed):
    write_garbage()
    return [Agent() for _ in range(n)]
'''


def test_garbage_on_the_progress_descriptor_does_not_break_the_run(tmp_path: Path) -> None:
    module = write_module(tmp_path, "garbage_agents", GARBAGE_WORKLOAD)
    environment = cli_environment(TTY_COMPATIBLE="1", TERM="xterm")  # draw the bar as on a terminal
    environment.pop("FA_MEM_NO_PROGRESS", None)
    process = CliProcess(["profile", str(module), *FAST, "--json", str(tmp_path / "out.json")], tmp_path, tmp_path / ".cli-output", env=environment)
    result = process.wait(120)
    assert result.returncode == 0, result.describe()
    for forbidden in ("Traceback", "Exception in thread", "Error", ERROR_PREFIX):
        assert forbidden not in result.stderr, result.describe()
    # The factory ran twice: for the population, and for the traced sample of allocation sites.
    assert f"note: ignored {2 * 8} malformed progress event(s)" in result.stderr, result.describe()
    report = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert report["complete"] is True and report["population"]["agents"] == 2


def test_a_failing_run_with_garbage_progress_still_ends_in_its_one_error(tmp_path: Path) -> None:
    source = GARBAGE_WORKLOAD.replace(
        "    write_garbage()\n    return [Agent() for _ in range(n)]",
        "    write_garbage()\n    raise RuntimeError('factory exploded after the garbage')",
    )
    assert "factory exploded" in source
    module = write_module(tmp_path, "garbage_then_fail", source)
    environment = cli_environment(TTY_COMPATIBLE="1", TERM="xterm")
    environment.pop("FA_MEM_NO_PROGRESS", None)
    process = CliProcess(["profile", str(module), *FAST], tmp_path, tmp_path / ".cli-output", env=environment)
    result = process.wait(120)
    assert result.returncode == 2, result.describe()
    assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr, result.describe()
    assert result.stderr.count(ERROR_PREFIX) == 1 and "factory exploded after the garbage" in result.stderr, result.describe()
    assert "note: ignored" not in result.stderr, "the failure must stay the one thing said"



def test_optimize_trials_show_batches_done_of_all_and_keep_the_count_while_recording() -> None:
    progress, console = _progress()
    consumer = ProgressConsumer(progress)
    consumer({"event": "configuration", "name": "trials"})
    consumer({"event": "trials", "stage": "trial", "done": 3, "total": 7, "name": "shared-parameters on .A"})
    assert "trials: replaying shared-parameters on .A" in _render(progress, console) and "3/7" in _render(progress, console)
    consumer({"event": "trials", "stage": "record", "name": "the original agents on seed 1"})
    shown = _render(progress, console)
    assert "trials: recording the original agents on seed 1" in shown and "3/7" in shown, shown
    consumer({"event": "trials", "stage": "sensitivity", "name": ".A: perturbed replay 2/5"})
    shown = _render(progress, console)
    assert "trials: sensitivity of .A: perturbed replay 2/5" in shown and "3/7" in shown, shown
    assert consumer.ignored == 0
