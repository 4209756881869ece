"""An agentpy model written the way agentpy's tutorials write them (docs/protocol.md).

Each trader holds its own MEMORY-long float64 ``memory``; the market's PRICES_SHAPE
float64 ``prices`` belong to the model.
"""

from __future__ import annotations

import agentpy as ap
import numpy as np

MEMORY = 64
PRICES_SHAPE = (100, 100)


class Trader(ap.Agent):
    def setup(self) -> None:
        self.wealth = 1
        self.memory = np.zeros(MEMORY)

    def trade(self) -> None:
        if self.wealth > 0:
            partner = self.model.agents.random()
            partner.wealth += 1
            self.wealth -= 1
        self.memory[self.model.t % MEMORY] = self.wealth


class Market(ap.Model):
    def setup(self) -> None:
        self.agents = ap.AgentList(self, self.p.agents, Trader)
        self.prices = np.zeros(PRICES_SHAPE)

    def step(self) -> None:
        self.agents.trade()

    def update(self) -> None:
        self.record("total", sum(self.agents.wealth))
