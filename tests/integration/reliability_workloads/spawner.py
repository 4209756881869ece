"""Agents whose factory starts helper processes that would sleep for five minutes.

FA_MEM_TEST_SPAWN is a comma-separated list of the helpers to start:

- ``popen``: ``sleep 300`` through subprocess.Popen (it stays in the measuring
  process's process group);
- ``session``: the same with ``start_new_session=True`` (its own session and group);
- ``multiprocessing``: a daemon multiprocessing.Process (fork) that calls os.setsid
  and starts ``sleep 300`` itself, so the sleep is a grandchild, orphaned when
  multiprocessing stops the daemon at exit.

The pid of every ``sleep`` is appended to the file named by FA_MEM_TEST_PIDS before
the factory returns. The first step touches FA_MEM_TEST_MARKER (if set), then sleeps
FA_MEM_TEST_STEP_SLEEP seconds (default 0).
"""

import multiprocessing
import os
import subprocess
import time
from pathlib import Path

SLEEP = ["sleep", "300"]


def _note(pid: int) -> None:
    with open(os.environ["FA_MEM_TEST_PIDS"], "a", encoding="utf-8") as pids:
        pids.write(f"{pid}\n")


def _grandchild() -> None:
    os.setsid()
    _note(subprocess.Popen(SLEEP).pid)
    time.sleep(300)


def _spawn(kind: str) -> None:
    if kind == "popen":
        _note(subprocess.Popen(SLEEP).pid)
    elif kind == "session":
        _note(subprocess.Popen(SLEEP, start_new_session=True).pid)
    elif kind == "multiprocessing":
        pids = Path(os.environ["FA_MEM_TEST_PIDS"])
        before = len(pids.read_text(encoding="utf-8").split()) if pids.exists() else 0
        helper = multiprocessing.get_context("fork").Process(target=_grandchild, daemon=True)
        helper.start()
        deadline = time.monotonic() + 30
        while (len(pids.read_text(encoding="utf-8").split()) if pids.exists() else 0) == before:
            if time.monotonic() > deadline:
                raise RuntimeError("the multiprocessing helper never started its sleep")
            time.sleep(0.01)
    else:
        raise ValueError(f"unknown helper {kind!r}")


class Agent:
    stepped = False

    def step(self, observation: int) -> int:
        if not Agent.stepped:
            Agent.stepped = True
            marker = os.environ.get("FA_MEM_TEST_MARKER")
            if marker:
                Path(marker).touch()
            time.sleep(float(os.environ.get("FA_MEM_TEST_STEP_SLEEP", "0")))
        return 0


def create_agents(n: int, seed: int) -> list[Agent]:
    for kind in filter(None, os.environ.get("FA_MEM_TEST_SPAWN", "").split(",")):
        _spawn(kind)
    return [Agent() for _ in range(n)]
