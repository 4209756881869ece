"""Hostile input, special files, full disks and terminal injection, through the
installed console script.

Every case asserts the documented exit code, exactly one ``fa-mem: error:`` line (or
a clean success), no traceback, and that no file was clobbered or left half-written.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from fa_mem_cli import (
    ERROR_PREFIX,
    assert_clean_success,
    assert_one_error_line,
    cli_environment,
    fa_mem_executable,
    load_json,
    run_cli,
    write_module,
)

pytestmark = pytest.mark.slow

TINY = """
    import numpy as np


    class Agent:
        def __init__(self):
            self.weights = np.ones(256)
            self.history = []

        def step(self, observation):
            self.history.append(observation)
            return 0


    def create_agents(n, seed):
        return [Agent() for _ in range(n)]
"""
RUN = ["-n", "2", "--steps", "3", "--scaling", "none", "--no-trace"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("reliability")
    write_module(directory, "agents", TINY)
    return directory


@pytest.fixture(scope="module")
def saved(workdir: Path) -> dict[str, Path]:
    """A complete report and a baseline of the tiny workload."""
    report, baseline = workdir / "saved-report.json", workdir / "saved-baseline.json"
    assert_clean_success(run_cli(["profile", "agents.py", *RUN, "--json", report], cwd=workdir))
    assert_clean_success(run_cli(["baseline", "update", "agents.py", *RUN, "--baseline", baseline], cwd=workdir))
    return {"report": report, "baseline": baseline}


def _leftovers(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


# -- 1. special files and symlinks as output ------------------------------------------------------


def test_json_to_dev_null_writes_through_and_keeps_the_device(workdir: Path) -> None:
    before = os.stat("/dev/null")
    assert_clean_success(run_cli(["profile", "agents.py", *RUN, "--json", "/dev/null"], cwd=workdir))
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


@pytest.mark.parametrize("command", ["profile", "baseline"])
def test_a_fifo_as_output_is_written_not_replaced(workdir: Path, tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    args = ["profile", "agents.py", *RUN, "--json", fifo] if command == "profile" else ["baseline", "update", "agents.py", *RUN, "--baseline", fifo]
    assert_clean_success(run_cli(args, cwd=workdir))
    reader.join(timeout=30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO must still be a FIFO"
    data = json.loads(received[0])
    assert ("schema_version" in data) if command == "profile" else ("fa_mem_baseline" in data)


def test_a_symlink_as_output_writes_its_target_and_stays_a_link(workdir: Path, tmp_path: Path) -> None:
    target = tmp_path / "real" / "report.json"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert_clean_success(run_cli(["profile", "agents.py", *RUN, "--json", link], cwd=workdir))
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert load_json(target)["complete"] is True
    assert _leftovers(target.parent) == [] and _leftovers(tmp_path) == []


def test_a_dangling_symlink_creates_its_target(workdir: Path, tmp_path: Path) -> None:
    target = tmp_path / "made.json"
    link = tmp_path / "dangling.json"
    link.symlink_to(target)
    assert_clean_success(run_cli(["profile", "agents.py", *RUN, "--json", link], cwd=workdir))
    assert link.is_symlink() and load_json(target)["complete"] is True


def test_a_directory_as_output_is_refused(workdir: Path, tmp_path: Path) -> None:
    result = run_cli(["profile", "agents.py", *RUN, "--json", tmp_path], cwd=workdir)
    assert_one_error_line(result, 2, "directory")


# -- 2. full disk ---------------------------------------------------------------------------------


def test_dev_full_is_one_line_and_exit_74(workdir: Path, saved: dict[str, Path]) -> None:
    result = run_cli(["gate", "--report", saved["report"], "--baseline", saved["baseline"], "--json", "/dev/full"], cwd=workdir)
    assert_one_error_line(result, 74, "/dev/full", "No space left on device")


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal, as a full disk gives an error
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


def test_a_write_that_fails_keeps_the_old_file_and_leaves_no_temporary(workdir: Path, saved: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    out.write_text("old result")
    completed = subprocess.run(
        [str(fa_mem_executable()), "gate", "--report", str(saved["report"]), "--baseline", str(saved["baseline"]), "--json", str(out)],
        cwd=workdir,
        env=cli_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size,
    )
    assert completed.returncode == 74, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX) and "the file that was there is kept" in lines[0], lines
    assert "Traceback" not in completed.stderr
    assert out.read_text() == "old result"
    assert _leftovers(tmp_path) == []


# -- 3. / 4. values nobody meant ------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (lambda text: _nested(200_000), "nested too deeply"),
        (lambda text: text.replace('"distinct_bytes": ', '"distinct_bytes": 1e400, "x": ', 1), "out of range"),
        (lambda text: text.replace('"distinct_bytes": ', '"distinct_bytes": NaN, "x": ', 1), "NaN"),
        (lambda text: text.replace('"steps": ', '"steps": "garbage", "x": ', 1), "workload.steps should be an integer"),
        (lambda text: text.replace('"agents": ', '"agents": true, "x": ', 1), "should be an integer"),
    ],
    ids=["nested", "1e400", "nan", "wrong-type", "boolean"],
)
def test_a_report_with_values_nobody_meant_is_refused(workdir: Path, saved: dict[str, Path], tmp_path: Path, content: Any, fragment: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content(saved["report"].read_text()))
    result = run_cli(["report", bad], cwd=workdir)
    assert_one_error_line(result, 2, fragment)


def test_reading_dev_zero_stops_at_the_size_cap(workdir: Path) -> None:
    result = run_cli(["report", "/dev/zero"], cwd=workdir, timeout=60)
    assert_one_error_line(result, 2, "larger than")


def _metric_edit(value: str) -> Any:
    def edit(text: str) -> str:
        data = json.loads(text)
        name = next(metric["name"] for metric in data["metrics"] if metric["kind"] == "bytes")
        raw = json.dumps(data, indent=1)
        marker = f'"name": "{name}"'
        head, tail = raw.split(marker, 1)
        tail = tail.replace('"value": ', f'"value": {value}, "was": ', 1)
        return head + marker + tail

    return edit


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("NaN", "not a finite number"), ("Infinity", "not a finite number"), ("1e400", "not a finite number"), ("true", "true, not a number"), ("-5", "negative size")],
    ids=["nan", "infinity", "1e400", "boolean", "negative"],
)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_baseline_with_values_nobody_meant_is_refused_naming_the_metric(
    workdir: Path, saved: dict[str, Path], tmp_path: Path, value: str, fragment: str, as_json: bool
) -> None:
    baseline = tmp_path / "baseline.json"
    text = saved["baseline"].read_text()
    baseline.write_text(_metric_edit(value)(text))
    first_bytes = next(metric["name"] for metric in json.loads(text)["metrics"] if metric["kind"] == "bytes")
    result = run_cli(["gate", "--report", saved["report"], "--baseline", baseline, *(["--json", tmp_path / "out.json"] if as_json else [])], cwd=workdir)
    line = assert_one_error_line(result, 2, fragment)
    assert first_bytes in line
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "agents.py", *RUN, "--timeout", "nan"],
        ["profile", "agents.py", *RUN, "--timeout", "inf"],
        ["optimize", "agents.py", *RUN, "--target", "1kB", "--max-slowdown", "nan"],
        ["optimize", "agents.py", *RUN, "--target", "1kB", "--rtol", "nan"],
        ["optimize", "agents.py", *RUN, "--target", "1kB", "--atol", "inf"],
        ["gate", "agents.py", *RUN, "--tolerance", "nan"],
    ],
    ids=["timeout-nan", "timeout-inf", "max-slowdown-nan", "rtol-nan", "atol-inf", "tolerance-nan"],
)
def test_float_options_refuse_nan_and_infinity(workdir: Path, args: list[str]) -> None:
    result = run_cli(args, cwd=workdir)
    assert_one_error_line(result, 2)
    assert not result.children, "refused before anything was measured"


# -- 3. the last resort ---------------------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_exit_70(workdir: Path, saved: dict[str, Path], tmp_path: Path) -> None:
    """A bug in fa-mem (simulated: the report renderer raises) is one line, exit 70;
    --debug adds the traceback."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import fa_memtool.renderers.terminal as terminal\n"
        "def broken(report, console):\n"
        "    raise ZeroDivisionError('simulated bug')\n"
        "terminal.render = broken\n"
    )
    environment = cli_environment(PYTHONPATH=str(hook))
    plain = subprocess.run([str(fa_mem_executable()), "report", str(saved["report"])], cwd=workdir, env=environment, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 70, plain.stderr
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "internal error (ZeroDivisionError: simulated bug)" in lines[0] and "Traceback" not in plain.stderr
    debug = subprocess.run([str(fa_mem_executable()), "report", str(saved["report"]), "--debug"], cwd=workdir, env=environment, capture_output=True, text=True, timeout=60)
    assert debug.returncode == 70 and "Traceback" in debug.stderr


# -- 5. terminal injection ------------------------------------------------------------------------

HOSTILE = """
    import numpy as np

    NAME = "evil\\x1b]0;pwned\\x07\\x1b[2J\\r\\x1b[2K ok"


    class Agent:
        def __init__(self):
            setattr(self, NAME, np.ones(4096))
            self.table = {NAME: np.zeros(4096)}

        def step(self, observation):
            return 0


    Agent.__name__ = Agent.__qualname__ = "Agent\\x1b[31m"


    def create_agents(n, seed):
        return [Agent() for _ in range(n)]
"""

RAISING = """
    class Agent:
        def step(self, observation):
            raise RuntimeError("boom\\x1b]0;pwned\\x07\\r\\x1b[2K fake ok")


    def create_agents(n, seed):
        return [Agent() for _ in range(n)]
"""


def test_names_from_the_users_code_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    write_module(tmp_path, "hostile", HOSTILE)
    report = tmp_path / "report.json"
    result = run_cli(["profile", "hostile.py", *RUN, "--json", report], cwd=tmp_path)
    assert_clean_success(result)
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x07" not in stream and "\r" not in stream
    assert "\\x1b]0;pwned\\x07" in result.stdout
    rendered = run_cli(["report", report], cwd=tmp_path)
    assert rendered.returncode == 0 and "\x1b" not in rendered.stdout and "\\x1b" in rendered.stdout


def test_an_exception_message_is_shown_not_sent(tmp_path: Path) -> None:
    write_module(tmp_path, "raising", RAISING)
    result = run_cli(["profile", "raising.py", *RUN], cwd=tmp_path)
    line = assert_one_error_line(result, 4, "boom")
    assert "\x1b" not in result.stderr and "\r" not in result.stderr and "\x07" not in result.stderr
    assert "\\x1b]0;pwned\\x07" in line


def test_hostile_names_are_escaped_in_markdown_and_annotations(tmp_path: Path) -> None:
    write_module(tmp_path, "hostile", HOSTILE)
    report, baseline = tmp_path / "report.json", tmp_path / "baseline.json"
    assert_clean_success(run_cli(["profile", "hostile.py", *RUN, "--json", report], cwd=tmp_path))
    assert_clean_success(run_cli(["baseline", "update", "--report", report, "--baseline", baseline], cwd=tmp_path))
    data = json.loads(baseline.read_text())
    for metric in data["metrics"]:
        if metric["kind"] == "bytes":
            metric["value"] = 0  # every byte metric regresses, hostile attribute names included
            metric["site"] = "hostile.py,line=1::warning::x:5"
    baseline.write_text(json.dumps(data))
    summary = tmp_path / "summary.md"
    environment = cli_environment(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    completed = subprocess.run(
        [str(fa_mem_executable()), "gate", "--report", str(report), "--baseline", str(baseline)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1, completed.stderr
    markdown = summary.read_text()
    for text in (completed.stdout, markdown):
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\\x1b]0;pwned" in markdown
    annotations = [line for line in completed.stdout.splitlines() if line.startswith("::")]
    assert annotations and all(line.startswith("::error ") for line in annotations)
    assert all(line.count("::") == 2 for line in annotations), annotations


# -- 9. smaller ones -------------------------------------------------------------------------------


def test_a_binary_file_is_a_syntax_error_without_a_line_number(tmp_path: Path) -> None:
    (tmp_path / "binary.py").write_bytes(b"x = 1\n\x00\x00\x01\x02binary")
    result = run_cli(["profile", "binary.py", *RUN], cwd=tmp_path)
    line = assert_one_error_line(result, 2, "syntax error in binary.py", "no line number")
    assert ":None" not in line


def test_ctypes_buffers_are_counted(tmp_path: Path) -> None:
    write_module(
        tmp_path,
        "buffers",
        """
        import ctypes


        class Agent:
            def __init__(self):
                self.buffer = ctypes.create_string_buffer(200_000)

            def step(self, observation):
                return 0


        def create_agents(n, seed):
            return [Agent() for _ in range(n)]
        """,
    )
    report = tmp_path / "report.json"
    assert_clean_success(run_cli(["profile", "buffers.py", *RUN, "--json", report], cwd=tmp_path))
    assert load_json(report)["population"]["per_agent_bytes"] >= 200_000
