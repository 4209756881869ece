"""PopulationDriver: building, reading the agent set, stable ids and one step, for lists and models."""

from __future__ import annotations

from typing import Any

import numpy
import pytest

from fa_memtool.errors import EXIT_USAGE, EXIT_WORKLOAD_FAILED, PopulationEmpty, StepError, WorkloadError
from fa_memtool.population_driver import MODEL_LABEL, PopulationDriver, Stepping, own_id, takes_observation
from fa_memtool.spec import RunSpec


class Listener:
    """Steps with an observation and returns it, so the test sees what it was fed."""

    def __init__(self) -> None:
        self.heard: list[Any] = []

    def step(self, observation: Any) -> Any:
        self.heard.append(observation)
        return observation


class Walker:
    """A Mesa-style agent: ``step(self)`` takes no observation."""

    def __init__(self, unique_id: int | None = None) -> None:
        if unique_id is not None:
            self.unique_id = unique_id
        self.steps = 0

    def step(self) -> int:
        self.steps += 1
        return self.steps


def driver_for(built: Any, **stepping: Any) -> PopulationDriver:
    return PopulationDriver(lambda: ("make(3, 0)", built), stepping=Stepping(**stepping), requested=3)


# -- lists of agents ----------------------------------------------------------------------


def test_a_list_is_stepped_agent_by_agent_with_the_seeded_default_stream() -> None:
    agents = [Listener() for _ in range(3)]
    driver = driver_for(agents, seed=5)
    assert driver.build() == agents
    latencies: list[float] = []
    actions = driver.step(0, latencies=latencies)
    expected = [int(numpy.random.default_rng([5, index]).integers(0, 2**16)) for index in range(3)]
    assert actions == [(0, expected[0]), (1, expected[1]), (2, expected[2])]
    assert [agent.heard for agent in agents] == [[value] for value in expected]
    assert len(latencies) == 3 and all(latency >= 0 for latency in latencies)
    assert driver.labels() == [0, 1, 2]
    assert driver.program_objects() == []
    assert driver.notes() == []


def test_observe_gets_the_agent_the_step_and_its_own_generator() -> None:
    agents = [Listener() for _ in range(2)]
    seen: list[tuple[int, int]] = []

    def observe(agent: Any, step: int, rng: Any) -> float:
        seen.append((agents.index(agent), step))
        return float(rng.random())

    driver = PopulationDriver(lambda: ("make", agents), stepping=Stepping(seed=1), observe=observe)
    driver.build()
    driver.step(0)
    driver.step(1)
    assert seen == [(0, 0), (1, 0), (0, 1), (1, 1)]
    expected = numpy.random.default_rng([1, 1])
    assert agents[1].heard == [expected.random(), expected.random()]
    assert driver.stream.source == "module"


def test_a_step_without_a_parameter_is_called_without_an_observation_and_observe_is_not_asked() -> None:
    agents = [Walker(), Walker()]

    def observe(agent: Any, step: int, rng: Any) -> None:
        raise AssertionError("observe must not be called for a step that takes no observation")

    driver = PopulationDriver(lambda: ("make", agents), stepping=Stepping(), observe=observe)
    driver.build()
    assert driver.step(0) == [(0, 1), (1, 1)]
    assert driver.step(1) == [(0, 2), (1, 2)]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (lambda: None, False),
        (lambda observation: None, True),
        (lambda observation=None: None, True),
        (lambda *args, **kwargs: None, False),  # a pass-through wrapper such as Mesa's _wrapped_step
        (lambda *, observation: None, False),
        (lambda observation, /: None, True),
        (len, True),  # a builtin with a signature
    ],
)
def test_the_signature_says_whether_a_step_takes_the_observation(function: Any, expected: bool) -> None:
    assert takes_observation(function) is expected


def test_ids_come_from_unique_id_then_id_then_creation_order() -> None:
    class WithId:
        def __init__(self, value: Any) -> None:
            self.id = value

    assert own_id(Walker(7)) == 7
    assert own_id(WithId("a-1")) == "a-1"
    assert own_id(WithId(numpy.int64(3))) == 3
    assert own_id(WithId(True)) is None
    assert own_id(WithId(2.5)) is None
    assert own_id(Walker()) is None
    agents = [Walker(10), Walker(), Walker(30)]
    driver = driver_for(agents)
    driver.build()
    assert driver.labels() == [10, 1, 30]


def test_an_agent_without_the_step_method_is_refused_before_stepping() -> None:
    with pytest.raises(WorkloadError) as raised:
        driver_for([Listener(), object()]).build()
    assert raised.value.message == "agent 1 (object) has no callable .step(observation); name the method with --step-method"
    assert raised.value.exit_code == EXIT_USAGE


def test_a_raising_agent_step_says_which_agent_and_which_step() -> None:
    class Fails:
        def step(self, observation: Any) -> None:
            raise ValueError("sensor went dark")

    driver = driver_for([Listener(), Fails()])
    driver.build()
    with pytest.raises(StepError) as raised:
        driver.step(4)
    assert raised.value.message == "agent 1 (Fails) raised ValueError at step 4: sensor went dark"
    assert (raised.value.agent, raised.value.step, raised.value.exit_code) == (1, 4, EXIT_WORKLOAD_FAILED)
    assert "Traceback" in (raised.value.detail or "")


def test_a_list_factory_must_return_a_list_of_objects() -> None:
    with pytest.raises(WorkloadError, match="returned a dict; expected a non-empty list of agents"):
        driver_for({"a": 1}).build()
    with pytest.raises(WorkloadError, match="returned an empty list"):
        driver_for([]).build()


# -- models -------------------------------------------------------------------------------


class Critter:
    _next = 1

    def __init__(self, model: Any) -> None:
        self.unique_id = Critter._next
        Critter._next += 1
        self.model = model
        self.energy = numpy.zeros(4)

    def step(self) -> None:
        self.energy += 1


class Schedule:
    def __init__(self) -> None:
        self.agents: list[Critter] = []


class Pond:
    """A model that owns its agents: each step the first critter dies and a new one hatches."""

    def __init__(self, size: int, *, births: bool = True, deaths: bool = True) -> None:
        Critter._next = 1
        self.schedule = Schedule()
        self.schedule.agents = [Critter(self) for _ in range(size)]
        self.water = numpy.ones((8, 8))
        self.births, self.deaths = births, deaths
        self.running = True
        self.steps = 0

    @property
    def agents(self) -> list[Critter]:
        return self.schedule.agents

    def step(self) -> int:
        self.steps += 1
        if self.deaths:
            self.schedule.agents.pop(0)
        if self.births:
            self.schedule.agents.append(Critter(self))
        for critter in self.schedule.agents:
            critter.step()
        return self.steps


def pond_driver(pond: Pond, **stepping: Any) -> PopulationDriver:
    settings = {"agents_from": "schedule.agents", "step_model": True, **stepping}
    return PopulationDriver(lambda: ("Pond(size=3)", pond), stepping=Stepping(**settings), requested=3)


def test_a_model_is_stepped_and_its_agents_read_again_after_every_step() -> None:
    pond = Pond(3)
    driver = pond_driver(pond)
    assert [critter.unique_id for critter in driver.build()] == [1, 2, 3]
    assert driver.model is pond and driver.program_objects() == [pond]
    assert driver.model_step_method == "step"
    assert driver.step(0) == [(MODEL_LABEL, 1)]
    assert driver.labels() == [2, 3, 4]
    assert driver.agents() == pond.schedule.agents and driver.agents() is not pond.schedule.agents
    driver.step(1)
    assert driver.labels() == [3, 4, 5]
    assert (driver.initial_agents, driver.appeared, driver.removed) == (3, 2, 2)
    assert any("3 agents after building, 2 appeared and 2 were removed, 3 at the end" in note for note in driver.notes())
    assert driver.mode() == {"agents_from": "schedule.agents", "step_model": True, "model_step_method": "step"}


def test_agents_without_ids_keep_their_creation_order_across_births_and_deaths() -> None:
    class Plain:
        def step(self) -> None:
            pass

    class Flock:
        def __init__(self) -> None:
            self.members = [Plain() for _ in range(3)]

        def step(self) -> None:
            self.members = self.members[1:] + [Plain()]

    driver = PopulationDriver(lambda: ("Flock()", Flock()), stepping=Stepping(agents_from="members", step_model=True))
    driver.build()
    assert driver.labels() == [0, 1, 2]
    driver.step(0)
    driver.step(1)
    assert driver.labels() == [2, 3, 4]


def test_agents_of_a_model_can_be_stepped_one_by_one_and_newcomers_observe_with_their_own_generator() -> None:
    class Hatchery:
        def __init__(self) -> None:
            self.agents = [Listener(), Listener()]

    hatchery = Hatchery()
    driver = PopulationDriver(lambda: ("Hatchery()", hatchery), stepping=Stepping(seed=2, agents_from="agents"))
    driver.build()
    driver.step(0)
    newcomer = Listener()
    hatchery.agents.append(newcomer)  # born between steps: seen at the next read
    driver.step(1)  # the read after step 1 sees it
    assert driver.labels() == [0, 1, 2]
    driver.step(2)
    assert newcomer.heard == [int(numpy.random.default_rng([2, 2]).integers(0, 2**16))]
    assert driver.appeared == 1


def test_a_model_that_stops_itself_is_finished() -> None:
    pond = Pond(2, births=False, deaths=False)
    driver = pond_driver(pond)
    driver.build()
    driver.step(0)
    assert not driver.finished
    pond.running = False
    driver.step(1)
    assert driver.finished


def test_a_model_whose_agents_all_leave_raises_population_empty_with_the_step() -> None:
    pond = Pond(2, births=False)
    driver = pond_driver(pond)
    driver.build()
    driver.step(0)
    with pytest.raises(PopulationEmpty) as raised:
        driver.step(1)
    assert raised.value.step == 1 and raised.value.agent is None
    assert raised.value.exit_code == EXIT_WORKLOAD_FAILED
    assert raised.value.message == "the model (Pond) has no agents left at .schedule.agents after step 1; nothing is left to measure"
    assert driver.agents() == []


def test_a_model_step_that_raises_names_the_model_and_the_agents_are_read_again() -> None:
    class Collapsing(Pond):
        def step(self) -> int:
            self.schedule.agents.pop()
            raise RuntimeError("the pond froze")

    driver = pond_driver(Collapsing(3))
    driver.build()
    with pytest.raises(StepError) as raised:
        driver.step(2)
    assert raised.value.message.startswith("the model (Collapsing) raised RuntimeError at step 2 in .step(): the pond froze")
    assert raised.value.agent is None and raised.value.step == 2
    assert driver.labels() == [1, 2]


def test_another_model_step_method_can_be_named() -> None:
    class Ticking(Pond):
        def advance(self, observation: int) -> int:
            return observation

    driver = pond_driver(Ticking(2, births=False, deaths=False), model_step_method="advance", seed=9)
    driver.build()
    expected = int(numpy.random.default_rng([9, 0]).integers(0, 2**16))
    assert driver.step(0) == [(MODEL_LABEL, expected)]


@pytest.mark.parametrize(
    ("stepping", "message"),
    [
        ({"agents_from": "herd"}, "--agents-from herd: the model (Pond) has no attribute 'herd'"),
        ({"agents_from": "schedule.herd"}, "--agents-from schedule.herd: Pond.schedule (Schedule) has no attribute 'herd'"),
        ({"agents_from": "water.shape.size"}, "--agents-from water.shape.size: Pond.water.shape (tuple) has no attribute 'size'"),
        ({"agents_from": "steps"}, "--agents-from steps: Pond.steps is a int, which is not iterable"),
        ({"agents_from": "water.shape"}, "--agents-from water.shape: holds int 8 at position 0; agents must be objects"),
        ({"agents_from": "agents", "step_model": True, "model_step_method": "advance"}, "the model (Pond) has no callable .advance()"),
    ],
)
def test_a_model_that_does_not_fit_the_options_is_refused_when_built(stepping: dict[str, Any], message: str) -> None:
    driver = PopulationDriver(lambda: ("Pond(size=3)", Pond(3)), stepping=Stepping(**stepping))
    with pytest.raises(WorkloadError) as raised:
        driver.build()
    assert raised.value.message.startswith(message), raised.value.message
    assert raised.value.exit_code == EXIT_USAGE


def test_an_empty_model_or_a_list_with_agents_from_is_refused() -> None:
    empty = Pond(0)
    with pytest.raises(WorkloadError, match=r"--agents-from agents: Pond.agents is empty after building; expected 3 agents"):
        pond_driver(empty, agents_from="agents").build()
    with pytest.raises(WorkloadError, match="the factory returned a list, so leave out --agents-from"):
        driver_for([Listener()], agents_from="agents").build()
    with pytest.raises(WorkloadError, match="must return the model"):
        driver_for(None, agents_from="agents").build()


def test_a_path_that_stops_existing_while_stepping_is_a_step_failure() -> None:
    class Vanishing(Pond):
        def step(self) -> int:
            del self.schedule.agents
            return 0

    driver = pond_driver(Vanishing(2))
    driver.build()
    with pytest.raises(StepError) as raised:
        driver.step(0)
    assert raised.value.message == "--agents-from schedule.agents: Vanishing.schedule (Schedule) has no attribute 'agents' after step 0"
    assert raised.value.exit_code == EXIT_WORKLOAD_FAILED


def test_duplicate_ids_are_noted() -> None:
    agents = [Walker(1), Walker(1)]
    driver = driver_for(agents)
    driver.build()
    assert any("the same id 1" in note for note in driver.notes())


# -- agentpy ------------------------------------------------------------------------------


class FakeAgentpyModel:
    """Shaped like agentpy's Model: agents are made in setup(), run through sim_setup / sim_step."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.p = parameters
        self.running = False
        self.calls: list[Any] = []
        self.t = 0

    def sim_setup(self, steps: int | None = None, seed: int | None = None) -> None:
        self.calls.append(("sim_setup", steps, seed))
        self.running = True
        self.agents = [Walker(index + 1) for index in range(self.p["agents"])]

    def sim_step(self) -> None:
        self.t += 1
        self.calls.append("sim_step")

    def step(self) -> None:
        raise AssertionError("agentpy models are stepped through sim_step")


@pytest.mark.parametrize(("parameters", "seed"), [({"agents": 2}, 4), ({"agents": 2, "seed": 11}, None)])
def test_an_agentpy_model_is_set_up_and_stepped_like_its_run(parameters: dict[str, Any], seed: int | None) -> None:
    model = FakeAgentpyModel(parameters)
    driver = PopulationDriver(
        lambda: ("Market(parameters=...)", model), stepping=Stepping(seed=4, steps=7, agents_from="agents", step_model=True)
    )
    driver.build()
    assert model.calls == [("sim_setup", 7, seed)]
    assert driver.model_step_method == "sim_step"
    driver.step(0)
    assert model.calls[-1] == "sim_step" and model.t == 1
    assert any("sim_setup(steps=7" in note for note in driver.notes())


def test_an_agentpy_model_already_set_up_by_the_factory_is_not_set_up_again() -> None:
    model = FakeAgentpyModel({"agents": 2})
    model.sim_setup(steps=3, seed=0)
    driver = PopulationDriver(lambda: ("make()", model), stepping=Stepping(agents_from="agents", step_model=True))
    driver.build()
    assert model.calls == [("sim_setup", 3, 0)]


def test_a_real_agentpy_model_gets_its_agents_their_ids_and_its_clock() -> None:
    agentpy = pytest.importorskip("agentpy")

    class Trader(agentpy.Agent):  # type: ignore[misc]
        def setup(self) -> None:
            self.wealth = 1

        def trade(self) -> None:
            if self.wealth > 0:
                self.model.agents.random().wealth += 1
                self.wealth -= 1

    class Market(agentpy.Model):  # type: ignore[misc]
        def setup(self) -> None:
            self.agents = agentpy.AgentList(self, self.p.agents, Trader)

        def step(self) -> None:
            self.agents.trade()

        def update(self) -> None:
            self.record("total", sum(self.agents.wealth))

    def run(seed: int) -> list[int]:
        model = Market({"agents": 4})
        driver = PopulationDriver(
            lambda: ("Market", model), stepping=Stepping(seed=seed, steps=3, agents_from="agents", step_model=True)
        )
        driver.build()
        assert driver.labels() == [1, 2, 3, 4]
        for step in range(3):
            driver.step(step)
        assert model.t == 3 and driver.finished  # sim_setup(steps=3): agentpy stops itself after the third
        assert len(model.log["total"]) == 4  # update() ran after setup and after every step
        return [agent.wealth for agent in driver.agents()]

    assert run(1) == run(1), "the same --seed builds and steps the same agentpy model"


def test_stepping_comes_from_the_run_spec() -> None:
    spec = RunSpec(target="m.py", seed=3, steps=8, step_method="act", agents_from="agents", step_model=True, model_step_method="go")
    assert Stepping.from_spec(spec) == Stepping(
        seed=3, steps=8, step_method="act", agents_from="agents", step_model=True, model_step_method="go"
    )


def test_of_agents_steps_an_already_built_list() -> None:
    agents = [Walker(), Walker()]
    driver = PopulationDriver.of_agents(agents, stepping=Stepping(method_hint="use step_method="))
    driver.step(0)
    assert [agent.steps for agent in agents] == [1, 1]
    with pytest.raises(WorkloadError, match="use step_method="):
        PopulationDriver.of_agents([object()], stepping=Stepping(method_hint="use step_method="))
