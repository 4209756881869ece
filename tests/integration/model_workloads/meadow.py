"""A Mesa 3 model for the model-mode tests: grazers on a meadow of numpy grass.

The GRID_SHAPE float64 ``grass`` belongs to the model. Every grazer holds its own
MEMORY-long float64 ``memory`` and, like every Mesa agent, the model. Options of the
factory drive what the tests look at: with ``churn`` the oldest grazer dies and two are
born every step, so the agent set changes while stepping; ``stop_after`` sets
``running`` to False after that many steps; ``copies`` gives every grazer its own copy
of one identical PARAMETERS_SHAPE float64 matrix (a shared-parameters candidate for
optimize).
"""

from __future__ import annotations

import mesa
import numpy as np

GRID_SHAPE = (200, 200)
MEMORY = 100
PARAMETERS_SHAPE = (128, 128)


class Grazer(mesa.Agent):
    def __init__(self, model: Meadow) -> None:
        super().__init__(model)
        self.memory = np.zeros(MEMORY)
        self.eaten = 0.0
        if model.copies:
            self.parameters = model.parameters_template.copy()

    def step(self) -> None:
        row, column = (int(value) for value in self.model.rng.integers(0, GRID_SHAPE[0], 2))
        bite = float(self.model.grass[row, column]) * 0.5
        if self.model.copies:
            bite *= float(self.parameters[row % PARAMETERS_SHAPE[0], column % PARAMETERS_SHAPE[1]])
        self.model.grass[row, column] -= bite
        self.eaten += bite
        self.memory[self.model.steps % MEMORY] = bite


class Meadow(mesa.Model):
    def __init__(
        self,
        grazers: int = 10,
        seed: int | None = None,
        churn: bool = False,
        stop_after: int | None = None,
        copies: bool = False,
    ) -> None:
        super().__init__(seed=seed)
        self.grass = np.ones(GRID_SHAPE)
        self.churn = churn
        self.stop_after = stop_after
        self.copies = copies
        self.parameters_template = np.linspace(0.5, 1.0, PARAMETERS_SHAPE[0] * PARAMETERS_SHAPE[1]).reshape(PARAMETERS_SHAPE)
        Grazer.create_agents(self, grazers)

    def step(self) -> None:
        self.agents.shuffle_do("step")
        if self.churn:
            min(self.agents, key=lambda grazer: grazer.unique_id).remove()
            Grazer(self)
            Grazer(self)
        if self.stop_after is not None and self.steps >= self.stop_after:
            self.running = False
