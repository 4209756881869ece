"""Helpers for the fa-mem integration tests (imported by conftest.py and the tests).

Every test runs the *installed* console script (``fa-mem`` next to the interpreter
running pytest) in a subprocess, the way a user runs it. ``run_cli`` watches the
process tree while the command runs, so a test can assert afterwards that no
measuring child (``python -m fa_memtool.child``) outlived the command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_AGENTS = REPO_ROOT / "sample_agents"
WORKLOADS = Path(__file__).resolve().parent / "workloads"
CHILD_MODULE = "fa_memtool.child"
ERROR_PREFIX = "fa-mem: error:"


def fa_mem_executable() -> Path:
    return Path(sys.executable).parent / "fa-mem"


def cli_environment(**extra: str) -> dict[str, str]:
    environment = dict(os.environ)
    environment["FA_MEM_NO_PROGRESS"] = "1"
    environment["NO_COLOR"] = "1"
    environment.pop("FORCE_COLOR", None)
    environment.update(extra)
    return environment


@dataclass
class CliResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    children: list[psutil.Process] = field(default_factory=list)  # measuring children seen while running

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(ERROR_PREFIX)]

    def describe(self) -> str:
        return (
            f"fa-mem {' '.join(self.args)}\n-> exit {self.returncode} after {self.elapsed:.1f} s\n"
            f"--- stdout (tail) ---\n{self.stdout[-3000:]}\n--- stderr ---\n{self.stderr[-3000:]}"
        )


def _measuring_children(process: psutil.Process) -> list[psutil.Process]:
    try:
        descendants = process.children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in descendants:
        try:
            if CHILD_MODULE in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def still_running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class CliProcess:
    """A running ``fa-mem`` command (output to files, so nothing can block on a pipe)."""

    def __init__(self, args: list[str], cwd: Path, output_dir: Path, env: dict[str, str] | None = None) -> None:
        self.args = [str(arg) for arg in args]
        output_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.monotonic_ns()}"
        self.stdout_path = output_dir / f"stdout-{stamp}.txt"
        self.stderr_path = output_dir / f"stderr-{stamp}.txt"
        self.children: dict[int, psutil.Process] = {}
        self.started = time.monotonic()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                [str(fa_mem_executable()), *self.args],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env or cli_environment(),
                # As from a terminal: Ctrl-C is delivered even if pytest itself was started
                # with SIGINT ignored (a background job of a non-interactive shell, some CI).
                preexec_fn=_default_sigint,
            )
        self._process = psutil.Process(self.popen.pid)

    def watch(self) -> list[psutil.Process]:
        for child in _measuring_children(self._process):
            self.children.setdefault(child.pid, child)
        return list(self.children.values())

    def wait(self, timeout: float) -> CliResult:
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None:
            self.watch()
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"fa-mem {' '.join(self.args)} did not finish within {timeout} s")
            time.sleep(0.05)
        elapsed = time.monotonic() - self.started
        return CliResult(
            args=self.args,
            returncode=self.popen.returncode,
            stdout=self.stdout_path.read_text(encoding="utf-8", errors="replace"),
            stderr=self.stderr_path.read_text(encoding="utf-8", errors="replace"),
            elapsed=elapsed,
            children=list(self.children.values()),
        )

    def kill(self) -> None:
        for child in self.watch():
            try:
                child.kill()
            except psutil.Error:
                pass
        self.popen.kill()
        self.popen.wait()


def run_cli(args: list[Any], *, cwd: Path, output_dir: Path | None = None, timeout: float = 120.0) -> CliResult:
    """Run ``fa-mem ARGS`` to completion in ``cwd`` and return what it printed."""
    process = CliProcess([str(arg) for arg in args], cwd, output_dir or cwd / ".cli-output")
    return process.wait(timeout)


def write_module(directory: Path, name: str, source: str) -> Path:
    """Write a workload module ``name`` (with or without .py) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name if name.endswith((".py", ".txt")) else f"{name}.py")
    path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    return path


def import_source(path: Path, name: str) -> ModuleType:
    """Import a workload file into the test process under ``name`` (not on sys.modules), so a
    test can build its ground truth from the same classes and constants fa-mem measures."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree_rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every row of a JSON report's tree of paths, by path."""
    found: dict[str, dict[str, Any]] = {}
    stack = list(report["paths"])
    while stack:
        row = stack.pop()
        found[row["path"]] = row
        stack.extend(row["children"])
    return found


def load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def assert_no_measuring_child_left(result: CliResult) -> None:
    # Give the OS a moment to reap a child that was just killed.
    deadline = time.monotonic() + 5.0
    alive = [child for child in result.children if still_running(child)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [child for child in alive if still_running(child)]
    assert not alive, f"measuring processes left running: {[child.pid for child in alive]}\n{result.describe()}"


def assert_clean_success(result: CliResult) -> None:
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert not result.error_lines, result.describe()
    assert_no_measuring_child_left(result)


def assert_one_error_line(result: CliResult, exit_code: int, *fragments: str) -> str:
    """Exit code, exactly one stderr line (the error), no traceback; returns the line."""
    assert result.returncode == exit_code, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    lines = result.stderr_lines
    assert len(lines) == 1, f"expected exactly one stderr line\n{result.describe()}"
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), result.describe()
    assert len(line) > len(ERROR_PREFIX) + 10, f"error line says too little: {line!r}"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in the error line {line!r}"
    assert_no_measuring_child_left(result)
    return line
