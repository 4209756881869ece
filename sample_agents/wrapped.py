"""Foragers that wrap a pymdp-style active-inference agent, the way pymdp is used.

A pymdp user writes a small class of their own around ``pymdp.agent.Agent`` and keeps
the library's agent as ``self.agent``; the library agent holds its generative model as
object arrays (``A``, ``B``, ``C``, ``D``), its posterior ``qs`` and, as it runs, the
histories ``qs_hist``, ``q_pi_hist`` and ``prev_actions``. This module reproduces that
layout with numpy alone (so it runs without pymdp installed), with real inference:

* one hidden-state factor, the forager's cell on a 12 x 12 grid (144 states), and 5
  actions (stay, north, south, east, west);
* ``agent.A[0]``: a noisy reading of the cell (144 x 144 float64, 166 kB);
* ``agent.B[0]``: the moves (144 x 144 x 5 float64, 829 kB), more than 98 % zeros
  because a move only reaches a cell or its neighbour, and identical on every forager
  because each builds its own copy from the same grid;
* ``agent.C[0]``: preferences for the cells near the food;
* each step updates ``qs`` by Bayes' rule, scores the 5 one-step policies by expected
  free energy (risk against ``C`` plus ambiguity of ``A``), picks the best and appends
  to ``qs_hist``, ``q_pi_hist`` and ``prev_actions``: they grow every step, without bound;
* the wrapper keeps a ``matrix_cache`` whose ``"A"`` is the library agent's ``A[0]``
  itself (the same array under two paths).

What one forager costs, where it sits and how to make it smaller is what
``fa-mem profile sample_agents/wrapped.py`` and ``fa-mem optimize`` show.
"""

from __future__ import annotations

import numpy as np

GRID = 12
NUM_STATES = GRID * GRID
ACTIONS = ((0, 0), (0, -1), (0, 1), (1, 0), (-1, 0))  # stay, north, south, east, west
READING_ACCURACY = 0.7
MOVE_SUCCESS = 0.9
FOOD = (9, 3)
_EPS = 1e-16


def _obj_array(*arrays: np.ndarray) -> np.ndarray:
    """An object array of arrays, as ``pymdp.utils.obj_array`` makes them."""
    holder = np.empty(len(arrays), dtype=object)
    for index, array in enumerate(arrays):
        holder[index] = array
    return holder


def _cell(x: int, y: int) -> int:
    return y * GRID + x


def _neighbours(state: int) -> list[int]:
    x, y = state % GRID, state // GRID
    return [_cell(x + dx, y + dy) for dx, dy in ACTIONS[1:] if 0 <= x + dx < GRID and 0 <= y + dy < GRID]


def likelihood() -> np.ndarray:
    """P(reading | cell): the true cell with READING_ACCURACY, the rest over its neighbours."""
    matrix = np.zeros((NUM_STATES, NUM_STATES))
    for state in range(NUM_STATES):
        around = _neighbours(state)
        matrix[state, state] = READING_ACCURACY
        for other in around:
            matrix[other, state] = (1.0 - READING_ACCURACY) / len(around)
    return matrix


def transitions() -> np.ndarray:
    """P(next cell | cell, action): a move succeeds with MOVE_SUCCESS; walls keep the cell."""
    tensor = np.zeros((NUM_STATES, NUM_STATES, len(ACTIONS)))
    for state in range(NUM_STATES):
        x, y = state % GRID, state // GRID
        for action, (dx, dy) in enumerate(ACTIONS):
            nx, ny = x + dx, y + dy
            target = _cell(nx, ny) if 0 <= nx < GRID and 0 <= ny < GRID else state
            tensor[target, state, action] += MOVE_SUCCESS if target != state else 1.0
            if target != state:
                tensor[state, state, action] += 1.0 - MOVE_SUCCESS
    return tensor


def preferences() -> np.ndarray:
    """Log preferences over readings: higher the closer the cell is to the food."""
    xs, ys = np.meshgrid(np.arange(GRID), np.arange(GRID))
    distance = np.abs(xs - FOOD[0]) + np.abs(ys - FOOD[1])
    return (-0.5 * distance).reshape(-1).astype(float)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max())
    return shifted / shifted.sum()


class LibraryAgent:
    """The library's agent: generative model, posterior and histories, pymdp's names."""

    def __init__(self, A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray) -> None:
        self.A = A
        self.B = B
        self.C = C
        self.D = D
        self.qs = _obj_array(D[0].copy())
        self.qs_hist: list[np.ndarray] = []
        self.q_pi_hist: list[np.ndarray] = []
        self.prev_actions: list[int] = []
        self.gamma = 16.0

    def infer_states(self, observation: int) -> np.ndarray:
        prior = self.qs[0] if not self.prev_actions else self.B[0][:, :, self.prev_actions[-1]] @ self.qs[0]
        posterior = self.A[0][observation, :] * prior
        posterior /= max(posterior.sum(), _EPS)
        self.qs = _obj_array(posterior)
        self.qs_hist.append(self.qs)
        return posterior

    def infer_policies(self) -> np.ndarray:
        A, C = self.A[0], self.C[0]
        ambiguity_per_state = -np.sum(A * np.log(A + _EPS), axis=0)
        log_preference = np.log(_softmax(C) + _EPS)
        scores = np.empty(len(ACTIONS))
        for action in range(len(ACTIONS)):
            predicted = self.B[0][:, :, action] @ self.qs[0]
            readings = A @ predicted
            risk = float(readings @ (np.log(readings + _EPS) - log_preference))
            scores[action] = -(risk + float(ambiguity_per_state @ predicted))
        q_pi = _softmax(self.gamma * scores)
        self.q_pi_hist.append(q_pi)
        return q_pi

    def sample_action(self, q_pi: np.ndarray) -> int:
        action = int(np.argmax(q_pi))
        self.prev_actions.append(action)
        return action


class Forager:
    """The user's own class around the library agent."""

    def __init__(self, index: int, start: int) -> None:
        self.index = index
        A = _obj_array(likelihood())
        B = _obj_array(transitions())
        C = _obj_array(preferences())
        D = _obj_array(np.full(NUM_STATES, 1.0 / NUM_STATES))
        D[0][:] = 0.0
        D[0][start] = 1.0
        self.agent = LibraryAgent(A, B, C, D)
        self.matrix_cache = {"A": self.agent.A[0]}  # the same array, not a copy
        self.position = start
        self.rewards = 0

    def step(self, observation: int) -> int:
        self.agent.infer_states(observation)
        q_pi = self.agent.infer_policies()
        action = self.agent.sample_action(q_pi)
        dx, dy = ACTIONS[action]
        x, y = self.position % GRID, self.position // GRID
        if 0 <= x + dx < GRID and 0 <= y + dy < GRID:
            self.position = _cell(x + dx, y + dy)
        self.rewards += int(self.position == _cell(*FOOD))
        return action


def create_agents(n: int, seed: int) -> list[Forager]:
    rng = np.random.default_rng(seed)
    return [Forager(index, int(rng.integers(NUM_STATES))) for index in range(n)]


def observe(agent: Forager, step: int, rng: np.random.Generator) -> int:
    """A noisy reading of the forager's true cell, drawn from its likelihood."""
    column = agent.matrix_cache["A"][:, agent.position]
    return int(rng.choice(NUM_STATES, p=column / column.sum()))
