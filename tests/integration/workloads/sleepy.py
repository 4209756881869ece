"""Agents whose step blocks for a minute. Before sleeping, the first step creates the file
named by FA_MEM_TEST_MARKER, so a test knows the measuring process is stepping.

With FA_MEM_TEST_SLEEP_AGENTS=K only a population of exactly K agents sleeps (other
populations step instantly): a test uses it to block a scaling run only."""

import os
import time
from pathlib import Path


class Sleeper:
    def __init__(self, sleeps: bool) -> None:
        self.sleeps = sleeps

    def step(self, observation: int) -> int:
        if self.sleeps:
            marker = os.environ.get("FA_MEM_TEST_MARKER")
            if marker:
                Path(marker).touch()
            time.sleep(60)
        return 0


def create_agents(n: int, seed: int) -> list[Sleeper]:
    only = os.environ.get("FA_MEM_TEST_SLEEP_AGENTS")
    sleeps = only is None or int(only) == n
    return [Sleeper(sleeps) for _ in range(n)]
