"""Allocates about 1 GB progressively: every agent keeps a new, fully touched 20 MB array
each step (2 agents x 25 steps). Used to check that --max-memory stops the run."""

import numpy as np

CHUNK_BYTES = 20_000_000


class Hog:
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def step(self, observation: int) -> int:
        self.blocks.append(np.ones(CHUNK_BYTES // 8))  # np.ones writes every page: resident
        return 0


def create_agents(n: int, seed: int) -> list[Hog]:
    return [Hog() for _ in range(n)]
