"""An agentpy model whose agents record a variable every step, as agentpy's docs do.

agentpy keeps each agent's records in ``agent.log`` and lists every such log in the
model's ``_logs`` too.
"""

from __future__ import annotations

import agentpy as ap


class Recorder(ap.Agent):
    def setup(self) -> None:
        self.wealth = 1.5

    def earn(self) -> None:
        self.wealth = self.wealth * 1.01 + self.model.t


class Recorders(ap.Model):
    def setup(self) -> None:
        self.agents = ap.AgentList(self, self.p.agents, Recorder)

    def step(self) -> None:
        self.agents.earn()

    def update(self) -> None:
        self.agents.record("wealth")
