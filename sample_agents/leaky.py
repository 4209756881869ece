"""Sensor-reading agents that leak memory for two common, realistic reasons.

Each agent encodes a 4-channel sensor observation into a 64-d feature vector with a
small two-layer network (about 36 KB of float64 weights at creation) and picks one
of 4 actions from the average of its recent feature vectors.

Memory pattern:

* Leak 1, ``feature_cache``: encoded features are memoised in a dict keyed by the
  whole observation tuple. The tuple starts with the frame number, so no key ever
  repeats: the cache never hits and is never evicted, and it gains one entry
  (a 512-byte float64 array plus a key tuple) every step.
* Leak 2, ``trajectory``: every step appends a new float64 record (features +
  action logits, 68 values = 544 bytes) "for later replay" and nothing trims it.
* Bounded, not a leak, ``recent_features``: a ``deque(maxlen=16)`` holding the
  feature vectors used for smoothing. It is full after 16 steps and stays that
  size (its arrays are the same objects as the cache entries, so it adds no buffers).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

NUM_SENSORS = 4
HIDDEN_DIM = 64
FEATURE_DIM = 64
NUM_ACTIONS = 4
RECENT_WINDOW = 16
SENSOR_LEVELS = 256  # readings are quantised to 0..255
SENSOR_DRIFT = 6.0  # std-dev of the per-step random walk of each sensor channel


@dataclass
class SensorStream:
    """Hidden sensor signal that ``observe`` drifts and quantises (the generative process)."""

    levels: np.ndarray = field(default_factory=lambda: np.full(NUM_SENSORS, SENSOR_LEVELS / 2))


class CachingSensorAgent:
    """Reactive agent with a never-evicted feature cache and an ever-growing trajectory log."""

    def __init__(self, rng: np.random.Generator) -> None:
        scale_in = 1.0 / np.sqrt(NUM_SENSORS)
        scale_hidden = 1.0 / np.sqrt(HIDDEN_DIM)
        self.input_weights = rng.normal(0.0, scale_in, size=(HIDDEN_DIM, NUM_SENSORS))
        self.input_bias = rng.normal(0.0, 0.1, size=HIDDEN_DIM)
        self.hidden_weights = rng.normal(0.0, scale_hidden, size=(FEATURE_DIM, HIDDEN_DIM))
        self.policy_weights = rng.normal(0.0, 1.0 / np.sqrt(FEATURE_DIM), size=(NUM_ACTIONS, FEATURE_DIM))
        self.feature_cache: dict[tuple[int, ...], np.ndarray] = {}
        self.trajectory: list[np.ndarray] = []
        self.recent_features: deque[np.ndarray] = deque(maxlen=RECENT_WINDOW)
        self.sensor_stream = SensorStream()

    def encode(self, readings: np.ndarray) -> np.ndarray:
        """Two-layer tanh encoder of the readings scaled to [-1, 1]."""
        x = readings / (SENSOR_LEVELS / 2) - 1.0
        hidden = np.tanh(self.input_weights @ x + self.input_bias)
        return np.tanh(self.hidden_weights @ hidden)

    def step(self, observation: tuple[int, ...]) -> int:
        """Encode (through the cache), smooth over recent features, act greedily."""
        key = tuple(int(v) for v in observation)
        features = self.feature_cache.get(key)
        if features is None:  # always the case: the frame number makes every key new
            features = self.encode(np.asarray(key[1:], dtype=np.float64))
            self.feature_cache[key] = features
        self.recent_features.append(features)
        smoothed = np.mean(np.stack(self.recent_features), axis=0)
        logits = self.policy_weights @ smoothed
        self.trajectory.append(np.concatenate([features, logits]))
        return int(np.argmax(logits))


def create_agents(n: int, seed: int) -> list[CachingSensorAgent]:
    """Agent i draws its weights from a Generator seeded with (seed, i)."""
    return [
        CachingSensorAgent(np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,))))
        for i in range(n)
    ]


def observe(agent: CachingSensorAgent, step: int, rng: np.random.Generator) -> tuple[int, ...]:
    """Drift the agent's hidden sensor levels and return (frame number, 4 quantised readings)."""
    stream = agent.sensor_stream
    stream.levels = np.clip(
        stream.levels + rng.normal(0.0, SENSOR_DRIFT, size=NUM_SENSORS), 0.0, SENSOR_LEVELS - 1
    )
    readings = np.rint(stream.levels).astype(np.int64)
    return (int(step), *(int(r) for r in readings))
