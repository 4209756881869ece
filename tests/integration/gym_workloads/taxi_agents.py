"""Tabular Q-learning on gymnasium's Taxi, as its tutorial writes it: one environment per agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class TaxiAgent:
    def __init__(self, seed: int, learning_rate: float = 0.1, epsilon: float = 0.1) -> None:
        self.env = gym.make("Taxi-v4")
        self.rng = np.random.default_rng(seed)
        self.q_values = np.zeros((self.env.observation_space.n, self.env.action_space.n))
        self.learning_rate = learning_rate
        self.epsilon = epsilon
        self.state, _ = self.env.reset(seed=seed)

    def step(self) -> int:
        if self.rng.random() < self.epsilon:
            action = int(self.rng.integers(self.env.action_space.n))
        else:
            action = int(np.argmax(self.q_values[self.state]))
        next_state, reward, terminated, truncated, _ = self.env.step(action)
        future = (not terminated) * np.max(self.q_values[next_state])
        self.q_values[self.state, action] += self.learning_rate * (reward + 0.95 * future - self.q_values[self.state, action])
        self.state = next_state
        if terminated or truncated:
            self.state, _ = self.env.reset()
        return action


def create_agents(n: int, seed: int) -> list[TaxiAgent]:
    return [TaxiAgent(seed + i) for i in range(n)]
