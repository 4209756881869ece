"""A benchmark population with a byte-exact ledger of everything it creates.

Modelled on real agent libraries (pymdp / FreeAgentics style filters on a shared
world), each agent holds

* ``belief``: its own float64 belief over ``NUM_STATES`` states (owns its buffer),
* ``joint``: its own float64 joint belief (``JOINT_SHAPE``, owns its buffer),
* ``focus``: a view of ``belief[:FOCUS]`` (a header only; the buffer is ``belief``'s),
* ``likelihood``: a ``scipy.sparse.csr_matrix`` (NUM_STATES x NUM_STATES, ``NNZ_PER_ROW``
  entries per row). scipy keeps ``data`` and ``indices`` as *views* of the arrays
  it was given, so the buffers live on those base arrays,
* ``history``: a list of ``HISTORY`` small float64 arrays (``HISTORY_LENGTH`` each),
* ``name``: its own ``str``,
* ``transition``: the ONE float64 transition matrix of the world, shared by all agents,
* ``world``: a back-pointer to the ``World``, whose ``agents`` list registers every agent.

While it builds, the population records every object it creates in a
:class:`Ledger` (ids, so nothing is counted twice). The ground truth is then
``sum(sys.getsizeof(obj))`` over those distinct objects: ``getsizeof`` of a numpy
array includes its data buffer only when the array owns it, so a buffer is counted
once, on its owner, and a view costs its header. Nothing here walks the object
graph: the ledger is what the construction says it made, so it can be checked
against sizers that do walk the graph.

Not in the ledger, on purpose, because the construction did not create them:
interned attribute-name strings (dict keys, owned by the code of the classes),
small cached ints (-5..256), ``True``/``False``/``None``, dtypes and classes.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse

NUM_STATES = 256
JOINT_SHAPE = (64, 8)
FOCUS = 16
NNZ_PER_ROW = 4
HISTORY = 16
HISTORY_LENGTH = 8

SHARED = -1  # ledger owner of the world's objects (shared by every agent)


@dataclass
class Ledger:
    """Distinct objects created by the construction, each with the agent that owns it."""

    objects: dict[int, object] = field(default_factory=dict)
    owner: dict[int, int] = field(default_factory=dict)

    def add(self, obj: object, owner: int) -> None:
        key = id(obj)
        if key in self.objects:
            if self.owner[key] != owner:  # reached by two owners: it is shared
                self.owner[key] = SHARED
            return
        self.objects[key] = obj
        self.owner[key] = owner

    def add_int(self, value: int, owner: int) -> None:
        """An int is an object of its own unless it is one of the interpreter's cached small ints."""
        if not -5 <= value <= 256:
            self.add(value, owner)

    def add_array(self, array: np.ndarray, owner: int) -> None:
        """An array and, for a view, every array down its base chain (the owner of the buffer)."""
        while isinstance(array, np.ndarray):
            self.add(array, owner)
            array = array.base  # type: ignore[assignment]

    def sizes(self) -> dict[int, int]:
        """Bytes per owner (SHARED for the world's objects); taken when the population is complete."""
        totals: dict[int, int] = {}
        for key, obj in self.objects.items():
            owner = self.owner[key]
            totals[owner] = totals.get(owner, 0) + sys.getsizeof(obj)
        return totals


class World:
    """One transition matrix for the whole population, and the registry of its agents."""

    def __init__(self, rng: np.random.Generator) -> None:
        transition = rng.random((NUM_STATES, NUM_STATES))
        transition /= transition.sum(axis=1, keepdims=True)
        self.transition = transition
        self.agents: list[FilterAgent] = []


class FilterAgent:
    """A Bayes filter with dense and sparse beliefs, a view, and a history."""

    def __init__(self, index: int, world: World, rng: np.random.Generator) -> None:
        self.name = f"agent-{index:05d}"
        self.world = world
        self.transition = world.transition  # shared, not copied
        self.belief = rng.dirichlet(np.ones(NUM_STATES))
        self.joint = rng.random(JOINT_SHAPE)
        self.focus = self.belief[:FOCUS]  # view: no buffer of its own
        rows = np.repeat(np.arange(NUM_STATES, dtype=np.int32), NNZ_PER_ROW)
        columns = (rows + rng.integers(0, NUM_STATES, size=rows.size, dtype=np.int32)) % NUM_STATES
        columns = np.sort(columns.reshape(NUM_STATES, NNZ_PER_ROW), axis=1).ravel().astype(np.int32)
        indptr = np.arange(0, rows.size + 1, NNZ_PER_ROW, dtype=np.int32)
        values = rng.random(rows.size)
        # scipy keeps views of ``values`` and ``columns`` (and ``indptr`` itself).
        self.likelihood = scipy.sparse.csr_matrix((values, columns, indptr), shape=(NUM_STATES, NUM_STATES))
        self.history = [rng.random(HISTORY_LENGTH) for _ in range(HISTORY)]

    def step(self, observation: int) -> int:
        predicted = self.belief @ self.transition
        posterior = predicted * (self.likelihood @ np.ones(NUM_STATES))
        self.belief[:] = posterior / posterior.sum()
        self.history.append(self.belief[:HISTORY_LENGTH].copy())
        del self.history[0]
        return int(np.argmax(self.belief))


def _record_agent(ledger: Ledger, agent: FilterAgent, index: int) -> None:
    ledger.add(agent, index)
    ledger.add(vars(agent), index)  # materialises the instance dict now, as any sizer would
    ledger.add(agent.name, index)
    for array in (agent.belief, agent.joint, agent.focus):
        ledger.add_array(array, index)
    matrix = agent.likelihood
    ledger.add(matrix, index)
    ledger.add(vars(matrix), index)
    for array in (matrix.data, matrix.indices, matrix.indptr):
        ledger.add_array(array, index)  # the views scipy keeps, and their bases
    ledger.add(matrix._shape, index)
    for dimension in matrix._shape:
        ledger.add_int(dimension, index)
    ledger.add_int(matrix.maxprint, index)
    ledger.add(agent.history, index)
    for array in agent.history:
        ledger.add_array(array, index)


def create_agents(n: int, seed: int) -> list[FilterAgent]:
    """Build ``n`` agents on one world (fa-mem module protocol)."""
    return build(n, seed)[0]


def build(n: int, seed: int = 0) -> tuple[list[FilterAgent], World, Ledger]:
    """The population, its world, and the ledger of every object the construction created."""
    rng = np.random.default_rng(seed)
    world = World(rng)
    for index in range(n):
        world.agents.append(FilterAgent(index, world, np.random.default_rng([seed, index])))
    ledger = Ledger()
    ledger.add(world, SHARED)
    ledger.add(vars(world), SHARED)
    ledger.add_array(world.transition, SHARED)
    ledger.add(world.agents, SHARED)
    for index, agent in enumerate(world.agents):
        _record_agent(ledger, agent, index)
    return list(world.agents), world, ledger


def observe(agent: FilterAgent, step: int, rng: np.random.Generator) -> int:
    return int(rng.integers(NUM_STATES))
