"""A small, deterministic population for the ``fa-mem optimize`` tests.

Each agent holds exactly one candidate for each built-in transformation, and nothing
else of any size, so the tests can compute the expected savings with numpy:

* ``matrix``: the agent's own COPY of the population's MATRIX_SHAPE float64 cost
  matrix (identical contents on every agent: shared-parameters). It holds a big-M
  sentinel (FORBIDDEN, 1e300) that float32 cannot represent, so lower-precision
  never proposes it and the only transformation of ``matrix`` is sharing it.
* ``belief``: a BELIEF_SHAPE float64 array (78 KiB) that is mostly zero. Every step
  writes the agent's CELLS_PER_AGENT cells one by one, by indexing, so exactly that
  many cells are non-zero (lazy-beliefs). The last cell is never one of them. The
  values are multiples of 1/1024 in [1, 2): float32 holds them exactly.
* ``history``: a list that gains one float64 frame (FRAME_SIZE values, 4 KiB, all
  zero but one) every step and is never trimmed (compressed-history). The agent uses
  the number of frames it holds as its clock, so bounding the history (bounded-history)
  changes the actions and the replay rolls every bound back. (``len`` reads no entry:
  a CompressedHistory answers it without decompressing.)

``step`` returns an int action computed from the belief (the flat position of its
largest value) plus the number of frames held, modulo ACTIONS, so any transformation
that changes the belief's values, or drops frames, changes the actions. Observations are fa-mem's default stream (one int per
agent per step); the module defines no ``observe``.
"""

from __future__ import annotations

import numpy as np

MATRIX_SHAPE = (256, 256)
BELIEF_SHAPE = (100, 100)
FRAME_SIZE = 512
CELLS_PER_AGENT = 12
ACTIONS = 7
FORBIDDEN = 1e300  # big-M cost for a forbidden transition: does not fit float32


def build_matrix(seed: int) -> np.ndarray:
    """The population's cost matrix (deterministic for a seed)."""
    rng = np.random.default_rng([seed, 2024])
    matrix = rng.random(MATRIX_SHAPE)
    np.fill_diagonal(matrix, FORBIDDEN)
    return matrix


class SimpleAgent:
    def __init__(self, matrix: np.ndarray, rng: np.random.Generator) -> None:
        self.matrix = matrix.copy()  # a defensive per-agent copy: identical contents everywhere
        self.belief = np.zeros(BELIEF_SHAPE)
        flat = rng.choice(self.belief.size - 1, size=CELLS_PER_AGENT, replace=False)
        self.cells = [divmod(int(position), BELIEF_SHAPE[1]) for position in flat]
        self.history: list[np.ndarray] = []
        self.steps_taken = 0

    def step(self, observation: int) -> int:
        for k, (row, column) in enumerate(self.cells):
            # Distinct values for the k cells (37 * k differ modulo 1021 for k < 12).
            self.belief[row, column] = 1.0 + ((observation + 37 * k) % 1021) / 1024.0
        frame = np.zeros(FRAME_SIZE)
        frame[self.steps_taken % FRAME_SIZE] = float(observation)
        self.history.append(frame)
        self.steps_taken += 1
        return (int(np.argmax(self.belief)) + len(self.history)) % ACTIONS


def create_agents(n: int, seed: int) -> list[SimpleAgent]:
    matrix = build_matrix(seed)
    return [SimpleAgent(matrix, np.random.default_rng([seed, 7, index])) for index in range(n)]
