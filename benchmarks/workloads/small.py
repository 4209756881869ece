"""Many small agents for the profile-cost benchmark: about 60 kB each.

Each agent holds a 64 x 96 float64 weight matrix (49 kB), a 96-value state, a dict of a
few counters and a short list; a step is one small matrix-vector product.
"""

from __future__ import annotations

import numpy as np


class SmallAgent:
    def __init__(self, rng: np.random.Generator) -> None:
        self.weights = rng.standard_normal((64, 96)) * 0.1
        self.state = np.zeros(96)
        self.counts = {"seen": 0, "moves": 0}
        self.last: list[int] = []

    def step(self, observation: int) -> int:
        self.counts["seen"] += 1
        self.state[observation % 96] += 1.0
        action = int(np.argmax(self.weights @ self.state)) % 4
        self.last = [observation, action]
        return action


def create_agents(n: int, seed: int) -> list[SmallAgent]:
    rng = np.random.default_rng(seed)
    return [SmallAgent(rng) for _ in range(n)]
