"""Processes and resources around the measuring child, through the installed ``fa-mem``.

- SIGTERM and SIGHUP (a CI cancel, ``timeout``, a closed terminal) are handled like
  Ctrl-C: the child's process group and its descendants are stopped, the temporary
  directory is removed, nothing is written, one error line, exit 143 / 129.
- A SIGKILLed ``fa-mem`` takes its measuring child with it (PR_SET_PDEATHSIG), and a
  child whose parent is already gone when it starts exits at once.
- What the workload starts (subprocess, its own session, multiprocessing) does not
  outlive the measuring process after a normal run either.
- A workload printing 100 MB costs the CLI neither the memory nor the disk for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

import fa_mem_cli
from fa_mem_cli import (
    CliProcess,
    CliResult,
    assert_clean_success,
    assert_no_measuring_child_left,
    assert_one_error_line,
    cli_environment,
    still_running,
)
from fa_memtool.runner import LOG_TAIL_BYTES, PARENT_PID_VARIABLE

RELIABILITY_WORKLOADS = Path(__file__).resolve().parent / "reliability_workloads"
SPAWNER = RELIABILITY_WORKLOADS / "spawner.py"
CHATTY = RELIABILITY_WORKLOADS / "chatty.py"
FAST = ["-n", "1", "--steps", "2", "--scaling", "none", "--no-trace"]
TOKEN_VARIABLE = "FA_MEM_TEST_TOKEN"
GONE_WITHIN = 5.0  # seconds for a killed process to be gone


@pytest.fixture(autouse=True)
def default_stop_signals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start fa-mem with SIGINT, SIGTERM and SIGHUP at their defaults, as from a terminal,
    even if pytest runs under nohup (fa-mem leaves an ignored SIGHUP ignored)."""

    def reset() -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)

    monkeypatch.setattr(fa_mem_cli, "_default_sigint", reset)


@pytest.fixture
def token() -> str:
    """A value in the environment of fa-mem, so every process it starts can be found."""
    return uuid.uuid4().hex


@pytest.fixture
def scratch_tmp(tmp_path: Path) -> Path:
    """TMPDIR for the fa-mem run: its fa-mem-* directories can be watched and counted."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    return directory


def _environment(token: str, scratch_tmp: Path, **extra: str) -> dict[str, str]:
    return cli_environment(TMPDIR=str(scratch_tmp), **{TOKEN_VARIABLE: token}, **extra)


def _with_token(token: str) -> list[psutil.Process]:
    """The live processes (ours) whose environment holds ``token``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid == os.getpid() or process.environ().get(TOKEN_VARIABLE) != token:
                continue
        except (psutil.Error, OSError):
            continue
        if still_running(process):
            found.append(process)
    return found


def _in_session_or_group(leader: int) -> list[psutil.Process]:
    """The live processes in the session or the process group led by ``leader``."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != leader and leader not in (os.getpgid(process.pid), os.getsid(process.pid)):
                continue
        except OSError:
            continue
        if still_running(process):
            found.append(process)
    return found


def _describe(processes: list[psutil.Process]) -> list[str]:
    described = []
    for process in processes:
        try:
            described.append(f"{process.pid}: {' '.join(process.cmdline())}")
        except psutil.Error:
            described.append(f"{process.pid}: (gone)")
    return described


def _assert_gone(find: Callable[[], list[psutil.Process]], what: str, result: CliResult | None = None) -> None:
    deadline = time.monotonic() + GONE_WITHIN
    left = find()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = find()
    detail = f"\n{result.describe()}" if result is not None else ""
    assert not left, f"{what} left running: {_describe(left)}{detail}"


def _pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text(encoding="utf-8").split()] if path.exists() else []


def _wait_for(marker: Path, process: CliProcess, deadline_seconds: float = 60) -> list[psutil.Process]:
    """Wait until the workload touched ``marker``; return the measuring children seen."""
    deadline = time.monotonic() + deadline_seconds
    while not marker.exists():
        process.watch()
        if process.popen.poll() is not None:
            raise AssertionError(f"fa-mem ended before the workload stepped\n{process.wait(5).describe()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the workload never started stepping")
        time.sleep(0.05)
    time.sleep(0.3)  # a few of the parent's polls: it has seen the helpers
    children = process.watch()
    assert children, "no measuring process while the workload steps"
    return children


@pytest.fixture
def cleanup_token(token: str) -> Iterator[None]:
    """Whatever a failed assertion leaves behind is killed after the test."""
    yield
    for process in _with_token(token):
        try:
            process.kill()
        except psutil.Error:
            pass


# -- SIGTERM / SIGHUP -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "exit_code", "fragment"), [
    pytest.param(signal.SIGTERM, 143, "SIGTERM", id="sigterm"),
    pytest.param(signal.SIGHUP, 129, "SIGHUP", id="sighup"),
])
def test_stop_signal_stops_everything_and_writes_nothing(
    tmp_path: Path, json_dir: Path, scratch_tmp: Path, token: str, cleanup_token: None,
    signum: int, exit_code: int, fragment: str,
) -> None:
    marker = tmp_path / "stepping"
    pids = tmp_path / "pids.txt"
    process = CliProcess(
        ["profile", SPAWNER, *FAST, "--json", json_dir / "report.json"],
        cwd=tmp_path,
        output_dir=tmp_path / "output",
        env=_environment(token, scratch_tmp, FA_MEM_TEST_MARKER=str(marker), FA_MEM_TEST_PIDS=str(pids),
                         FA_MEM_TEST_SPAWN="popen,session", FA_MEM_TEST_STEP_SLEEP="60"),
    )
    children = _wait_for(marker, process)
    assert len(_pids(pids)) == 2, "the workload did not start its helpers"
    assert list(scratch_tmp.glob("fa-mem-*")), "no fa-mem temporary directory while the child runs"
    process.popen.send_signal(signum)
    result = process.wait(30)

    assert_one_error_line(result, exit_code, fragment)
    assert result.elapsed < 30, result.describe()
    assert list(json_dir.iterdir()) == [], "a --json file was written"
    for child in children:
        _assert_gone(lambda: _in_session_or_group(child.pid), "processes of the child's session or group", result)
    _assert_gone(lambda: _with_token(token), "processes fa-mem started", result)
    assert list(scratch_tmp.glob("fa-mem-*")) == [], "the temporary directory was left"


# -- SIGKILL of fa-mem ------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_of_fa_mem_takes_the_child_with_it(
    tmp_path: Path, scratch_tmp: Path, token: str, cleanup_token: None,
) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the child dies with its parent through PR_SET_PDEATHSIG, on Linux only")
    marker = tmp_path / "stepping"
    process = CliProcess(
        ["profile", SPAWNER, *FAST],
        cwd=tmp_path,
        output_dir=tmp_path / "output",
        env=_environment(token, scratch_tmp, FA_MEM_TEST_MARKER=str(marker), FA_MEM_TEST_STEP_SLEEP="60"),
    )
    children = _wait_for(marker, process)
    process.popen.send_signal(signal.SIGKILL)
    result = process.wait(10)
    assert result.returncode == -signal.SIGKILL, result.describe()
    assert_no_measuring_child_left(result)  # within 5 s
    assert not [child for child in children if still_running(child)]


def test_a_child_whose_parent_is_gone_exits_at_once(tmp_path: Path) -> None:
    """The race before PR_SET_PDEATHSIG: the parent died and the child was reparented."""
    spec = tmp_path / "spec.json"
    spec.write_text("{not read}", encoding="utf-8")
    result_file = tmp_path / "result.json"
    environment = dict(os.environ)
    environment[PARENT_PID_VARIABLE] = str(os.getpid() + 1)  # its parent is this process
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "fa_memtool.child", str(spec), str(result_file)],
        env=environment, capture_output=True, timeout=60,
    )
    assert completed.returncode == 129, completed
    assert not result_file.exists()
    assert time.monotonic() - started < 30


# -- what the workload starts, after a normal run ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("spawn", "helpers"), [
    pytest.param("popen", 1, id="subprocess"),
    pytest.param("session", 1, id="new-session"),
    pytest.param("multiprocessing", 1, id="multiprocessing-setsid-grandchild"),
    pytest.param("popen,session,multiprocessing", 3, id="all"),
])
def test_processes_the_workload_starts_end_with_a_normal_run(
    tmp_path: Path, scratch_tmp: Path, token: str, cleanup_token: None, spawn: str, helpers: int,
) -> None:
    pids = tmp_path / "pids.txt"
    process = CliProcess(
        ["profile", SPAWNER, *FAST],
        cwd=tmp_path,
        output_dir=tmp_path / "output",
        env=_environment(token, scratch_tmp, FA_MEM_TEST_PIDS=str(pids), FA_MEM_TEST_SPAWN=spawn),
    )
    result = process.wait(120)
    assert_clean_success(result)
    started = _pids(pids)
    assert len(started) == helpers, f"the workload started {started}\n{result.describe()}"
    _assert_gone(lambda: _with_token(token), "processes the workload started", result)
    _assert_gone(lambda: _alive_pids(started), "the workload's sleep processes", result)
    assert list(scratch_tmp.glob("fa-mem-*")) == [], "the temporary directory was left"


def _alive_pids(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
        except psutil.Error:
            continue
        if still_running(process):
            found.append(process)
    return found


# -- a workload printing a lot -----------------------------------------------------------------


def _tree_bytes(directory: Path) -> int:
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


@pytest.mark.slow
def test_a_workload_printing_100_mb_costs_the_cli_neither_memory_nor_disk(
    tmp_path: Path, json_dir: Path, scratch_tmp: Path, token: str, cleanup_token: None,
) -> None:
    assert LOG_TAIL_BYTES <= 1 << 20, "the kept tail of the child's output is meant to be small"
    printed = tmp_path / "printed.txt"
    process = CliProcess(
        ["profile", CHATTY, *FAST, "--json", json_dir / "report.json"],
        cwd=tmp_path,
        output_dir=tmp_path / "output",
        env=_environment(token, scratch_tmp, FA_MEM_TEST_PRINT_MB="100", FA_MEM_TEST_PRINTED=str(printed)),
    )
    cli = psutil.Process(process.popen.pid)
    peak_rss = peak_disk = 0
    deadline = time.monotonic() + 120
    while process.popen.poll() is None and time.monotonic() < deadline:
        process.watch()
        try:
            peak_rss = max(peak_rss, cli.memory_info().rss)
        except psutil.Error:
            pass
        peak_disk = max(peak_disk, _tree_bytes(scratch_tmp))
        time.sleep(0.01)
    result = process.wait(10)
    assert_clean_success(result)
    assert (json_dir / "report.json").exists(), result.describe()
    assert int(printed.read_text(encoding="utf-8")) >= 100 * 2**20, "the workload did not print"
    assert peak_rss < 200 * 2**20, f"the CLI peaked at {peak_rss / 2**20:.0f} MiB RSS\n{result.describe()}"
    assert peak_disk < 4 * 2**20, f"the temporary directory held {peak_disk / 2**20:.1f} MiB\n{result.describe()}"
    assert list(scratch_tmp.glob("fa-mem-*")) == [], "the temporary directory was left"
