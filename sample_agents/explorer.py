"""Active-inference grid explorers (pymdp / FreeAgentics style) searching for a hidden target.

Each agent lives on a 28 x 16 grid (448 cells) with 8 candidate target sites. It
keeps an exact joint belief over (own position x target site), observes a noisy
reading of its own cell and a noisy distance-to-target signal, plans 3 steps
ahead over all 5**3 = 125 action sequences with expected free energy, and
samples its next move from the resulting policy posterior.

Memory pattern (31.8 MB per agent at creation, +28,672 bytes per step, so
34.7 MB after 100 steps; decimal MB, i.e. 30.4 and 33.1 MiB). All of it is real
and all of it is fixable:

* ``A`` and ``B`` are stored the way pymdp stores them: object arrays whose
  elements are dense float64 tensors spanning *every* hidden-state factor.
  ``A[0]`` (position reading, 448 x 448 x 8, 12.8 MB) does not depend on the
  target at all, yet is repeated for each of the 8 sites; it and ``B[0]``
  (448 x 448 x 5, 8.0 MB) are more than 98 % zeros because readings and moves
  only reach neighbouring cells.
* Every agent takes a defensive ``.copy()`` of the population's generative
  model (the usual pattern when agents might later learn their own ``A``/``B``).
  No learning happens here, so all copies stay identical in content: n agents
  hold n copies of the same 21 MB.
* ``predicted_states`` keeps the predicted joint belief for every policy and
  every future step (125 x 3 x 448 x 8 float64, 10.8 MB), although policies
  sharing a prefix share those predictions and only a few dozen cells are
  reachable within the horizon (>= 90 % zeros).
* ``beliefs`` is a dense (448, 8) float64 joint whose position marginal covers
  at most 5 cells (a reading only reaches a cell and its 4 neighbours), so it
  is >= 90 % zeros.
* ``belief_history`` appends a float64 copy of ``beliefs`` every step and is
  never trimmed, so memory grows by 448 * 8 * 8 = 28,672 bytes per step.
* Everything is float64 although these are probabilities for which float32
  would do.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

GRID_WIDTH = 28
GRID_HEIGHT = 16
NUM_SITES = 8
PLANNING_HORIZON = 3
ACTION_NAMES = ("stay", "north", "south", "east", "west")
_ACTION_DELTAS = ((0, 0), (0, -1), (0, 1), (1, 0), (-1, 0))  # (dx, dy); north is y - 1

LOCATION_ACCURACY = 0.8  # P(reading == own cell); the rest is split over the 4-neighbours
SIGNAL_ACCURACY = 0.85  # P(distance signal == true bin); the rest is split over adjacent bins
MOVE_SUCCESS = 0.9  # a move fails (agent stays put) with probability 0.1
SIGNAL_NAMES = ("here", "close", "near", "far")  # Manhattan distance 0, 1-2, 3-6, >6
SIGNAL_LOG_PREFERENCES = (4.0, 2.0, 0.5, 0.0)  # prior preferences over signals (pre-normalisation)
POLICY_PRECISION = 4.0
_EPS = 1e-16


def _move(cell: int, action: int, width: int, height: int) -> int:
    """Cell reached by taking ``action`` from ``cell``; bumping into a wall means staying."""
    x, y = cell % width, cell // width
    dx, dy = _ACTION_DELTAS[action]
    nx, ny = x + dx, y + dy
    if 0 <= nx < width and 0 <= ny < height:
        return ny * width + nx
    return cell


def _neighbours(cell: int, width: int, height: int) -> list[int]:
    """In-grid 4-neighbours of ``cell`` (the cells a noisy position reading can report)."""
    return sorted({_move(cell, a, width, height) for a in range(1, 5)} - {cell})


def _signal_bin(distance: int) -> int:
    """Distance-to-target signal level for a Manhattan distance."""
    if distance == 0:
        return 0
    if distance <= 2:
        return 1
    if distance <= 6:
        return 2
    return 3


def _adjacent_bins(level: int) -> list[int]:
    return [b for b in (level - 1, level + 1) if 0 <= b < len(SIGNAL_NAMES)]


def _manhattan(cell_a: int, cell_b: int, width: int) -> int:
    return abs(cell_a % width - cell_b % width) + abs(cell_a // width - cell_b // width)


def enumerate_policies(num_actions: int, horizon: int) -> np.ndarray:
    """All action sequences of length ``horizon`` in lexicographic order, shape (P, horizon)."""
    return np.array(list(itertools.product(range(num_actions), repeat=horizon)), dtype=np.int64)


@dataclass
class GenerativeModel:
    """Population-wide model: pymdp-style object arrays plus the quantities derived from them."""

    A: np.ndarray  # object array: A[m] has shape (num_obs[m], num_cells, num_sites)
    B: np.ndarray  # object array: B[f] has shape (num_states[f], num_states[f], num_controls[f])
    C: np.ndarray  # object array of log-preferences per modality
    observation_entropy: np.ndarray  # object array: H[A[m]] per hidden state, (num_cells, num_sites)


def _grid_moves(width: int, height: int) -> np.ndarray:
    """Destination cell of every (cell, action) pair, shape (num_cells, num_actions)."""
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    xs, ys = xs.ravel(), ys.ravel()
    cells = ys * width + xs
    moves = np.empty((width * height, len(ACTION_NAMES)), dtype=np.int64)
    for action, (dx, dy) in enumerate(_ACTION_DELTAS):
        nx, ny = xs + dx, ys + dy
        inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        moves[:, action] = np.where(inside, ny * width + nx, cells)
    return moves


def build_generative_model(width: int, height: int, site_cells: np.ndarray) -> GenerativeModel:
    """Build A, B, C for a grid with the given candidate target sites (deterministic).

    As in pymdp, every likelihood tensor spans all hidden-state factors, even the
    position reading that ignores the target, and all tensors are dense float64.
    """
    num_cells = width * height
    num_sites = len(site_cells)
    num_actions = len(ACTION_NAMES)
    cells = np.arange(num_cells)
    moves = _grid_moves(width, height)

    # Position reading: own cell with LOCATION_ACCURACY, otherwise a uniformly chosen 4-neighbour.
    is_neighbour = moves[:, 1:] != cells[:, None]  # (num_cells, 4)
    spill = (1.0 - LOCATION_ACCURACY) / is_neighbour.sum(axis=1)
    location = np.zeros((num_cells, num_cells))
    location[cells, cells] = LOCATION_ACCURACY
    src, direction = np.nonzero(is_neighbour)
    location[moves[src, direction + 1], src] = spill[src]
    # pymdp layout: the modality spans both factors, so the same matrix is repeated per site.
    a_location = np.repeat(location[:, :, None], num_sites, axis=2)

    # Distance signal: true bin with SIGNAL_ACCURACY, otherwise a uniformly chosen adjacent bin.
    distance = np.abs(cells[:, None] % width - site_cells[None, :] % width) + np.abs(
        cells[:, None] // width - site_cells[None, :] // width
    )
    level = np.select([distance == 0, distance <= 2, distance <= 6], [0, 1, 2], default=3)
    num_levels = len(SIGNAL_NAMES)
    num_adjacent = np.where((level == 0) | (level == num_levels - 1), 1, 2)
    a_signal = np.zeros((num_levels, num_cells, num_sites))
    cell_idx, site_idx = np.indices(level.shape)
    a_signal[level, cell_idx, site_idx] = SIGNAL_ACCURACY
    for offset in (-1, 1):
        other = level + offset
        valid = (other >= 0) & (other < num_levels)
        a_signal[other[valid], cell_idx[valid], site_idx[valid]] = (
            1.0 - SIGNAL_ACCURACY
        ) / num_adjacent[valid]

    # Position transitions: the intended move succeeds with MOVE_SUCCESS, otherwise stay put.
    b_position = np.zeros((num_cells, num_cells, num_actions))
    actions = np.arange(num_actions)
    np.add.at(b_position, (moves, cells[:, None], actions[None, :]), MOVE_SUCCESS)
    np.add.at(b_position, (cells[:, None], cells[:, None], actions[None, :]), 1.0 - MOVE_SUCCESS)
    b_target = np.eye(num_sites)[:, :, None]  # the target never moves

    A = np.empty(2, dtype=object)
    A[0], A[1] = a_location, a_signal
    B = np.empty(2, dtype=object)
    B[0], B[1] = b_position, b_target

    C = np.empty(2, dtype=object)
    C[0] = np.zeros(num_cells)  # no preference over where the position reading says we are
    prefs = np.asarray(SIGNAL_LOG_PREFERENCES, dtype=np.float64)
    C[1] = prefs - np.log(np.exp(prefs).sum())  # log-softmax, as pymdp normalises C

    entropy = np.empty(2, dtype=object)
    for m in range(2):
        entropy[m] = _entropy_per_state(A[m])
    return GenerativeModel(A=A, B=B, C=C, observation_entropy=entropy)


def _entropy_per_state(likelihood: np.ndarray) -> np.ndarray:
    """H[p(o | s)] for every hidden state s (sums over axis 0), one site slice at a time
    so the temporaries stay small."""
    out = np.empty(likelihood.shape[1:])
    for k in range(likelihood.shape[-1]):
        p = likelihood[..., k]
        log_p = np.log(p, out=np.zeros(p.shape), where=p > 0)
        out[..., k] = -(p * log_p).sum(axis=0)
    return out


def _copy_object_array(arrays: np.ndarray) -> np.ndarray:
    """Deep copy of a pymdp-style object array (each element gets its own buffer)."""
    out = np.empty(len(arrays), dtype=object)
    for i, element in enumerate(arrays):
        out[i] = element.copy()
    return out


@dataclass
class HiddenGridState:
    """Generative process for one agent (the true world, invisible to the agent's inference)."""

    position: int
    target_site: int  # index into the agent's ``site_cells``


class GridExplorer:
    """Active-inference agent with an exact joint belief over (position, target site)."""

    def __init__(
        self,
        model: GenerativeModel,
        site_cells: np.ndarray,
        start_position: int,
        hidden_state: HiddenGridState,
        rng: np.random.Generator,
        width: int = GRID_WIDTH,
        height: int = GRID_HEIGHT,
    ) -> None:
        self.width = width
        self.height = height
        self.num_cells = width * height
        self.site_cells = site_cells.copy()
        # Defensive per-agent copies of the shared model (identical content across agents).
        self.A = _copy_object_array(model.A)
        self.B = _copy_object_array(model.B)
        self.C = _copy_object_array(model.C)
        self.observation_entropy = _copy_object_array(model.observation_entropy)
        num_sites = len(site_cells)
        # The agent knows its spawn cell; the target is equally likely at every site.
        self.D = np.empty(2, dtype=object)
        self.D[0] = np.zeros(self.num_cells)
        self.D[0][start_position] = 1.0
        self.D[1] = np.full(num_sites, 1.0 / num_sites)
        self.beliefs = np.outer(self.D[0], self.D[1])  # joint q(position, target site)

        self.policies = enumerate_policies(len(ACTION_NAMES), PLANNING_HORIZON)
        num_policies = len(self.policies)
        self.E = np.full(num_policies, 1.0 / num_policies)  # flat prior over policies
        self.predicted_states = np.zeros((num_policies, PLANNING_HORIZON, self.num_cells, num_sites))
        self.expected_free_energy = np.zeros(num_policies)
        self.policy_posterior = np.full(num_policies, 1.0 / num_policies)

        self.belief_history: list[np.ndarray] = []
        self.action_history: list[int] = []
        self.last_action: int | None = None
        self.rng = rng
        self.hidden_state = hidden_state

    # ------------------------------------------------------------------ inference
    def step(self, observation: tuple[int, int]) -> int:
        """Filter the observation into the joint belief, plan, and return the next action."""
        location_obs, signal_obs = int(observation[0]), int(observation[1])
        if self.last_action is None:
            prior = self.beliefs
        else:
            # B applied to the last posterior for the action taken: already computed while
            # planning (policy ``last_action * 25`` starts with that action).
            first = self.last_action * len(ACTION_NAMES) ** (PLANNING_HORIZON - 1)
            prior = self.predicted_states[first, 0]
        likelihood = self.A[0][location_obs] * self.A[1][signal_obs]
        posterior = prior * likelihood
        total = posterior.sum()
        if total > 0.0:
            posterior /= total
        else:  # observation impossible under the prior: re-localise from the likelihood alone
            posterior = likelihood / likelihood.sum()
        self.beliefs[...] = posterior
        self.belief_history.append(self.beliefs.copy())

        self._infer_policies()
        action = self._sample_action()
        self.last_action = action
        self.action_history.append(action)
        return action

    def _infer_policies(self) -> None:
        """Fill ``predicted_states`` and ``expected_free_energy`` for every policy.

        Predictions are expanded level by level over the policy tree (policies sharing a
        prefix share the prediction) and only over the rows that carry probability mass;
        this is exact because every other entry is zero.
        """
        num_actions = len(ACTION_NAMES)
        num_policies, horizon = self.policies.shape
        num_cells, num_sites = self.beliefs.shape
        b_position, b_target = self.B[0], self.B[1][:, :, 0]
        level = self.beliefs[None]
        free_energy = np.zeros(num_policies)
        for t in range(horizon):
            nodes = level.shape[0]
            rows = np.flatnonzero(level.any(axis=(0, 2)))
            source = level[:, rows, :].transpose(1, 0, 2).reshape(len(rows), nodes * num_sites)
            expanded = np.empty((nodes, num_actions, num_cells, num_sites))
            for action in range(num_actions):
                moved = b_position[:, rows, action] @ source  # (num_cells, nodes * num_sites)
                expanded[:, action] = moved.reshape(num_cells, nodes, num_sites).transpose(1, 0, 2)
            level = (expanded.reshape(-1, num_sites) @ b_target.T).reshape(
                nodes * num_actions, num_cells, num_sites
            )
            repeats = num_actions ** (horizon - 1 - t)
            # Policies sharing this prefix share the prediction: policy p is node p // repeats
            # (written through a broadcast view: no repeated copy is built first).
            by_node = self.predicted_states[:, t].reshape(level.shape[0], repeats, num_cells, num_sites)
            by_node[...] = level[:, None]
            free_energy += np.repeat(self._free_energy(level), repeats)
        self.expected_free_energy[...] = free_energy
        log_posterior = -POLICY_PRECISION * free_energy + np.log(self.E)
        log_posterior -= log_posterior.max()
        posterior = np.exp(log_posterior)
        self.policy_posterior[...] = posterior / posterior.sum()

    def _free_energy(self, states: np.ndarray) -> np.ndarray:
        """Expected free energy (risk + ambiguity form: -pragmatic - epistemic) per predicted state."""
        flat = states.reshape(states.shape[0], -1)
        cols = np.flatnonzero(flat.any(axis=0))
        q = flat[:, cols]
        free_energy = np.zeros(states.shape[0])
        for m in range(len(self.A)):
            a_m = self.A[m].reshape(self.A[m].shape[0], -1)[:, cols]
            expected_obs = q @ a_m.T
            pragmatic = expected_obs @ self.C[m]
            obs_entropy = -(expected_obs * np.log(expected_obs + _EPS)).sum(axis=1)
            ambiguity = q @ self.observation_entropy[m].reshape(-1)[cols]
            free_energy -= pragmatic + (obs_entropy - ambiguity)
        return free_energy

    def _sample_action(self) -> int:
        """Sample the first action from the policy posterior with the agent's own Generator."""
        num_actions = len(ACTION_NAMES)
        action_probs = np.bincount(
            self.policies[:, 0], weights=self.policy_posterior, minlength=num_actions
        )
        return int(self.rng.choice(num_actions, p=action_probs / action_probs.sum()))

    # ------------------------------------------------------------------ read-outs
    def position_marginal(self) -> np.ndarray:
        """Posterior over the agent's own cell."""
        return self.beliefs.sum(axis=1)

    def target_marginal(self) -> np.ndarray:
        """Posterior over which candidate site holds the target."""
        return self.beliefs.sum(axis=0)

    def predicted_positions(self, policy_index: int) -> np.ndarray:
        """Predicted position marginals (horizon, num_cells) for one policy."""
        return self.predicted_states[policy_index].sum(axis=2)


def create_agents(n: int, seed: int) -> list[GridExplorer]:
    """Build ``n`` explorers sharing one map; agent i's spawn, target and Generator come from (seed, i)."""
    map_rng = np.random.default_rng(seed)
    num_cells = GRID_WIDTH * GRID_HEIGHT
    site_cells = np.sort(map_rng.choice(num_cells, size=NUM_SITES, replace=False)).astype(np.int64)
    model = build_generative_model(GRID_WIDTH, GRID_HEIGHT, site_cells)
    agents = []
    for i in range(n):
        world_seq, policy_seq = np.random.SeedSequence(seed, spawn_key=(i,)).spawn(2)
        world_rng = np.random.default_rng(world_seq)
        start = int(world_rng.integers(num_cells))
        hidden = HiddenGridState(position=start, target_site=int(world_rng.integers(NUM_SITES)))
        agents.append(
            GridExplorer(model, site_cells, start, hidden, np.random.default_rng(policy_seq))
        )
    return agents


def observe(agent: GridExplorer, step: int, rng: np.random.Generator) -> tuple[int, int]:
    """Advance the hidden world with the agent's last action, then emit (position reading, signal).

    The generative process uses the same noise levels as the agent's model, so every
    observation has non-zero likelihood under the agent's beliefs.
    """
    hidden = agent.hidden_state
    if agent.last_action is not None and rng.random() < MOVE_SUCCESS:
        hidden.position = _move(hidden.position, agent.last_action, agent.width, agent.height)

    if rng.random() < LOCATION_ACCURACY:
        location_obs = hidden.position
    else:
        nbrs = _neighbours(hidden.position, agent.width, agent.height)
        location_obs = nbrs[int(rng.integers(len(nbrs)))]

    target_cell = int(agent.site_cells[hidden.target_site])
    level = _signal_bin(_manhattan(hidden.position, target_cell, agent.width))
    if rng.random() < SIGNAL_ACCURACY:
        signal_obs = level
    else:
        adjacent = _adjacent_bins(level)
        signal_obs = adjacent[int(rng.integers(len(adjacent)))]
    return int(location_obs), int(signal_obs)
