"""Array-heavy agents for the profile-cost benchmark: dense beliefs, per-agent matrices.

Each agent holds a 256 x 256 float64 likelihood, a 256 x 256 x 4 transition tensor and a
256-state belief (about 2.6 MB), and every step does a few matrix-vector products, a
normalisation and an argmax, the shape of an active-inference update.
"""

from __future__ import annotations

import numpy as np

STATES = 256
ACTIONS = 4


class BeliefAgent:
    def __init__(self, rng: np.random.Generator) -> None:
        likelihood = rng.random((STATES, STATES))
        self.A = likelihood / likelihood.sum(axis=0, keepdims=True)
        transitions = rng.random((STATES, STATES, ACTIONS))
        self.B = transitions / transitions.sum(axis=0, keepdims=True)
        self.beliefs = np.full(STATES, 1.0 / STATES)
        self.action = 0

    def step(self, observation: int) -> int:
        prior = self.B[:, :, self.action] @ self.beliefs
        posterior = self.A[observation % STATES] * prior
        self.beliefs = posterior / posterior.sum()
        values = [float((self.B[:, :, move] @ self.beliefs) @ self.A[0]) for move in range(ACTIONS)]
        self.action = int(np.argmax(values))
        return self.action


def create_agents(n: int, seed: int) -> list[BeliefAgent]:
    rng = np.random.default_rng(seed)
    return [BeliefAgent(rng) for _ in range(n)]
