"""A small, deterministic population for the memory-gate tests.

The tests copy this file into a temporary folder (always as ``agents.py``, so the
baseline's fingerprint stays the same), write a baseline, then edit one line of the
copy to inject a regression or an improvement. Each line the tests edit occurs exactly
once in this file; keep it that way.

Every agent holds:

* ``weights``: its own float32 array of WEIGHTS_SIZE values (80 kB);
* ``terrain``: the World's float64 array of TERRAIN_SIZE values (128 KiB), shared by
  every agent of the population (not copied), so it is amortized over the agents;
* ``history``: a ``deque(maxlen=HISTORY_LEN)`` of float64 frames of FRAME_SIZE
  values: bounded, it stops growing after HISTORY_LEN steps;
* ``visits``: a list that gains one small int every step (slow growth);
* ``scores``: a dict of at most SCORE_SLOTS entries, rewritten every step;
* ``bias``: its own float64 array of BIAS_SIZE zeros.

If the environment variable FA_MEM_GATE_TRIPWIRE names a file, ``create_agents``
appends a line to it: a test can tell whether a measurement ran at all.
"""

from __future__ import annotations

import os
from collections import deque

import numpy as np

WEIGHTS_SIZE = 20_000
TERRAIN_SIZE = 16_384
HISTORY_LEN = 4
FRAME_SIZE = 256
SCORE_SLOTS = 8
BIAS_SIZE = 4_096


class World:
    def __init__(self, seed: int) -> None:
        self.terrain = np.random.default_rng(seed).random(TERRAIN_SIZE)


class Agent:
    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.weights = rng.random(WEIGHTS_SIZE).astype(np.float32)
        self.terrain = world.terrain
        self.history: deque[np.ndarray] = deque(maxlen=HISTORY_LEN)
        self.visits: list[int] = []
        self.scores: dict[int, float] = {}
        self.bias = np.zeros(BIAS_SIZE)

    def step(self, observation: int) -> int:
        self.history.append(np.full(FRAME_SIZE, float(observation)))
        self.visits.append(observation % 7)
        self.scores[len(self.visits) % SCORE_SLOTS] = float(self.terrain[observation % TERRAIN_SIZE])
        action = int(observation % 3)
        return action


def create_agents(n: int, seed: int) -> list[Agent]:
    tripwire = os.environ.get("FA_MEM_GATE_TRIPWIRE")
    if tripwire:
        with open(tripwire, "a", encoding="utf-8") as marker:
            marker.write(f"create_agents({n}, {seed})\n")
    world = World(seed)
    return [Agent(world, np.random.default_rng([seed, index])) for index in range(n)]
