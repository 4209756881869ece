"""Container-heavy agents for the profile-cost benchmark: views, dicts, sparse, deques.

Each agent holds a float64 table and views into it, a dict of small arrays keyed by
name, a scipy.sparse transition matrix, a bounded deque of recent observations and a
list of per-step records trimmed to the last 50; every step reads through all of them.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import scipy.sparse

SIZE = 200


class TableAgent:
    def __init__(self, rng: np.random.Generator) -> None:
        self.table = rng.random((SIZE, SIZE))
        self.rows = [self.table[index] for index in range(0, SIZE, 20)]  # views, no copies
        self.params = {f"w{index}": rng.random(64) for index in range(16)}
        self.transitions = scipy.sparse.random(SIZE, SIZE, density=0.02, format="csr", random_state=rng)
        self.recent: deque[int] = deque(maxlen=32)
        self.records: list[dict[str, float]] = []
        self.state = np.zeros(SIZE)
        self.state[0] = 1.0

    def step(self, observation: int) -> int:
        self.recent.append(observation)
        self.state = self.transitions @ self.state + self.table[observation % SIZE] * 1e-3
        self.state /= max(float(self.state.sum()), 1e-12)
        score = sum(float(row @ self.state) for row in self.rows)
        weight = sum(float(value[observation % 64]) for value in self.params.values())
        self.records.append({"score": score, "weight": weight, "observation": float(observation)})
        del self.records[:-50]
        return int(np.argmax(self.state)) % 4


def create_agents(n: int, seed: int) -> list[TableAgent]:
    rng = np.random.default_rng(seed)
    return [TableAgent(rng) for _ in range(n)]
