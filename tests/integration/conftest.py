"""Fixtures for the fa-mem integration tests; the helpers live in fa_mem_cli.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The helpers sit next to this file; make them importable under any --import-mode.
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from fa_mem_cli import fa_mem_executable  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def fa_mem() -> Path:
    executable = fa_mem_executable()
    if not executable.exists():
        pytest.fail(f"the fa-mem console script is not installed next to {sys.executable} ({executable})")
    return executable


@pytest.fixture
def json_dir(tmp_path: Path) -> Path:
    """An empty directory for --json output: after a failed run it must stay empty (no temp files)."""
    directory = tmp_path / "json-out"
    directory.mkdir()
    return directory
