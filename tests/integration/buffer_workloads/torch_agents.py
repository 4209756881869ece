"""DQN-style agents in torch, as reinforcement-learning code keeps them.

Each agent has a policy network trained with Adam, a frozen target network (no
gradients), a replay buffer tensor with a view of its most recent rows, and a
history that grows by one observation tensor per step.
"""

from __future__ import annotations

import torch
from torch import nn

OBSERVATION = 16
HIDDEN = 64
ACTIONS = 4
REPLAY = 256


def network() -> nn.Sequential:
    return nn.Sequential(nn.Linear(OBSERVATION, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, ACTIONS))


class DQNAgent:
    def __init__(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.policy = network()
        self.target = network()
        self.target.load_state_dict(self.policy.state_dict())
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=1e-3)
        self.replay = torch.zeros(REPLAY, OBSERVATION)
        self.recent = self.replay[-32:]
        self.history: list[torch.Tensor] = []
        self.generator = generator
        self.t = 0

    def step(self, observation: int) -> int:
        obs = torch.zeros(OBSERVATION)
        obs[observation % OBSERVATION] = 1.0
        self.replay[self.t % REPLAY] = obs
        self.history.append(obs.clone())
        q = self.policy(obs)
        with torch.no_grad():
            target = self.target(obs)
        loss = ((q - target) ** 2).sum()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.t += 1
        return int(target.argmax())


def create_agents(n: int, seed: int) -> list[DQNAgent]:
    return [DQNAgent(seed + index) for index in range(n)]
