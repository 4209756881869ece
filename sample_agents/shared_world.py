"""Trackers on a shared 256-state ring world: parameters are already shared, and agents point back at the world.

Each agent filters a noisy position reading of its own hidden walker on a circular
track of 256 states, using a transition model and a likelihood lookup table that
are NOT its own.

Memory pattern (what a naive deep-size of one agent gets wrong):

* ``World.transition`` (float64 256 x 256, 512 KiB) is built once per population
  and handed to every agent without copying: ``agent.transition is world.transition``.
* ``GAUSSIAN_KERNEL_TABLE`` (float64, 8192 entries, 64 KiB) is a module-level
  global that every agent references as ``agent.kernel_table``.
* ``agent.world`` points back at the ``World``, whose ``agents`` list registers
  the whole population, so following references from one agent reaches every
  other agent.
* What each agent exclusively owns is small: ``belief`` (float64, 256 entries,
  2 KiB) and ``focus``, a view of ``belief[:16]`` that shares its buffer.
"""

from __future__ import annotations

import numpy as np

NUM_STATES = 256
HOME_SEGMENT = 16  # states 0..15 are the "home" stretch of the track
NUM_SECTORS = 4
READING_NOISE = 3.0  # std-dev of the position reading, in states
_TABLE_RESOLUTION = 32  # table entries per unit of distance
_TABLE_SIZE = 8192  # covers distances 0 .. 256 (the ring's half-length is 128)

# Gaussian likelihood of a reading at a given distance from the state; 64 KiB, built at import.
GAUSSIAN_KERNEL_TABLE = np.exp(
    -0.5 * (np.arange(_TABLE_SIZE) / _TABLE_RESOLUTION / READING_NOISE) ** 2
)


class World:
    """Population container: one shared transition model plus a registry of all agents."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        # Banded random walk on the ring: from s, move by -2..+2 with world-specific weights.
        weights = rng.dirichlet(np.ones(5), size=NUM_STATES)
        transition = np.zeros((NUM_STATES, NUM_STATES))
        states = np.arange(NUM_STATES)
        for offset in range(-2, 3):
            transition[states, (states + offset) % NUM_STATES] += weights[:, offset + 2]
        self.transition = transition  # transition[s, s'] = p(s' | s); rows sum to 1
        self.agents: list[RingTracker] = []

    def register(self, agent: RingTracker) -> None:
        self.agents.append(agent)


class RingTracker:
    """Bayes filter over the ring using the world's transition and the global kernel table."""

    def __init__(self, world: World, start_state: int) -> None:
        self.world = world
        self.transition = world.transition  # shared, not copied
        self.kernel_table = GAUSSIAN_KERNEL_TABLE  # shared module-level global
        self.belief = np.zeros(NUM_STATES)
        self.belief[start_state] = 1.0
        self.focus = self.belief[:HOME_SEGMENT]  # view: mass on the home stretch
        self.hidden_state = start_state  # true walker position, advanced by observe()
        world.register(self)

    def likelihood(self, reading: float) -> np.ndarray:
        """p(reading | state) for every state, looked up in the shared kernel table."""
        states = np.arange(NUM_STATES)
        diff = np.abs(reading - states)
        distance = np.minimum(diff, NUM_STATES - diff)
        index = np.minimum((distance * _TABLE_RESOLUTION).astype(np.int64), _TABLE_SIZE - 1)
        return self.kernel_table[index]

    def step(self, observation: float) -> int:
        """Predict with the shared transition, correct with the reading; 0 = 'home', else sector 1..4."""
        predicted = self.belief @ self.transition
        posterior = predicted * self.likelihood(float(observation))
        total = posterior.sum()
        # In place, so ``focus`` keeps viewing the current belief.
        self.belief[:] = posterior / total if total > 0.0 else 1.0 / NUM_STATES
        if self.focus.sum() > 0.5:
            return 0
        return 1 + int(np.argmax(self.belief)) * NUM_SECTORS // NUM_STATES


def create_agents(n: int, seed: int) -> list[RingTracker]:
    """One World per population; agent i's start state comes from (seed, i)."""
    world = World(seed)
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        RingTracker(world, int(rng.integers(NUM_STATES)))
    return list(world.agents)


def observe(agent: RingTracker, step: int, rng: np.random.Generator) -> float:
    """Move the hidden walker with the shared transition (after step 0) and return a noisy reading."""
    if step > 0:
        agent.hidden_state = int(rng.choice(NUM_STATES, p=agent.transition[agent.hidden_state]))
    return float((agent.hidden_state + rng.normal(0.0, READING_NOISE)) % NUM_STATES)
