"""Wrapper agents that each hold their own numpy pymdp ``Agent`` (``pymdp.legacy`` in pymdp 1.x,
the API of 0.0.7) as ``self.agent``.

A 12 x 12 grid world (144 cells, 5 moves: stay, north, south, east, west), built with
``pymdp.utils`` the way pymdp's tutorials build theirs:

* ``A[0]`` (144 x 144 float64, 165,888 bytes): a noisy reading of the agent's own cell
  (the cell itself with LOCATION_ACCURACY, the rest split over its in-grid neighbours).
* ``B[0]`` (144 x 144 x 5 float64, 829,440 bytes): a move succeeds with MOVE_SUCCESS,
  else the agent stays; bumping into a wall means staying. 98.8 % zeros.
* ``C[0]``: a preference for reading the goal cell; ``D[0]``: a uniform prior.

Every ``GridAgent`` builds its own copy of the model, so the matrices are identical in
content on every agent but never the same objects: the memory a per-agent model costs,
hidden one level down (``agent.A[0]``, ``agent.B[0]``) where top-level analyses cannot
see it. ``step`` feeds the observation (fa-mem's default integer stream, folded onto
the cells) to the pymdp agent, infers states and policies, and returns the
deterministic action as an int.
"""

from __future__ import annotations

import numpy as np
from pymdp.legacy import utils
from pymdp.legacy.agent import Agent

WIDTH = HEIGHT = 12
CELLS = WIDTH * HEIGHT
MOVES = ((0, 0), (0, -1), (0, 1), (1, 0), (-1, 0))  # stay, north, south, east, west
MOVE_SUCCESS = 0.9
LOCATION_ACCURACY = 0.8
GOAL = CELLS - 1


def _moved(cell: int, move: int) -> int:
    x, y = cell % WIDTH, cell // WIDTH
    dx, dy = MOVES[move]
    nx, ny = x + dx, y + dy
    return ny * WIDTH + nx if 0 <= nx < WIDTH and 0 <= ny < HEIGHT else cell


def _neighbours(cell: int) -> list[int]:
    return sorted({_moved(cell, move) for move in range(1, len(MOVES))} - {cell})


def build_model() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A, B, C, D as pymdp object arrays (one modality, one factor)."""
    A = utils.obj_array(1)
    A[0] = np.zeros((CELLS, CELLS))
    for cell in range(CELLS):
        around = _neighbours(cell)
        A[0][cell, cell] = LOCATION_ACCURACY
        for other in around:
            A[0][other, cell] = (1.0 - LOCATION_ACCURACY) / len(around)
    B = utils.obj_array(1)
    B[0] = np.zeros((CELLS, CELLS, len(MOVES)))
    for cell in range(CELLS):
        for move in range(len(MOVES)):
            target = _moved(cell, move)
            B[0][target, cell, move] += MOVE_SUCCESS if target != cell else 1.0
            if target != cell:
                B[0][cell, cell, move] += 1.0 - MOVE_SUCCESS
    C = utils.obj_array_zeros([CELLS])
    C[0][GOAL] = 4.0
    D = utils.obj_array_uniform([CELLS])
    return A, B, C, D


class GridAgent:
    """Holds its own pymdp Agent; everything of size lives inside it."""

    def __init__(self) -> None:
        A, B, C, D = build_model()
        self.agent = Agent(A=A, B=B, C=C, D=D)
        self.steps_taken = 0

    def step(self, observation: int) -> int:
        self.agent.infer_states([int(observation) % CELLS])
        self.agent.infer_policies()
        action = self.agent.sample_action()
        self.steps_taken += 1
        return int(action[0])


def create_agents(n: int, seed: int) -> list[GridAgent]:
    return [GridAgent() for _ in range(n)]
