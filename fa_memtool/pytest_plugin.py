"""pytest plugin: per-test memory budgets for the agents a test builds.

    @pytest.mark.agent_memory(per_agent="10 MB", total="512 MB", leak_per_step="1 KB")
    def test_population(fa_mem):
        agents = fa_mem.track(create_agents(50, seed=0))
        fa_mem.run(steps=100)              # or step them yourself and call fa_mem.sample(step)

A marked test may also simply return its list of agents. ``retained="0 B"`` also
checks the release: once the test function has returned, the plugin lets go of the
agents (keeping only a ``ReleaseWatch``), collects, and fails the test when more than
that many bytes are still reachable from the agents that survived, with their reference
paths. Limits differ per parametrised case through
``pytest.param(..., marks=pytest.mark.agent_memory(...))``; ini options
(``fa_mem_budget_per_agent``, ``fa_mem_budget_total``, ``fa_mem_max_leak``,
``fa_mem_max_retained``) give defaults for every marked test. Sizes use the same
parser as the CLI ("24 MB", "10MB", "1.5 GiB"). The sizing is fa-mem's own
(exclusive / shared / amortized), in the test's process.
"""

from __future__ import annotations

import inspect
import math
import numbers
import types
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from fa_memtool.growth import slope
from fa_memtool.retention import ReleaseWatch
from fa_memtool.sizing import PopulationSize, measure_population
from fa_memtool.units import format_bytes, parse_size

MARKER = "agent_memory"
MARKER_KEYWORDS = ("per_agent", "total", "leak_per_step", "retained")
ZERO_ALLOWED = frozenset({"retained"})  # limits for which 0 is a budget ("nothing may survive")
_RESULT_KEY = pytest.StashKey["AgentMemoryFailure | None"]()
_TRACKER_KEY = pytest.StashKey["AgentTracker"]()
_LIMITS_KEY = pytest.StashKey["dict[str, float | None]"]()
AGENT_ROWS = 20
INI_OPTIONS = {
    "per_agent": "fa_mem_budget_per_agent",
    "total": "fa_mem_budget_total",
    "leak_per_step": "fa_mem_max_leak",
    "retained": "fa_mem_max_retained",
}
# Values that are never an agent: a returned [1, 2, 3] or ["a", "b"] is a mistake.
_NOT_AGENTS = (type(None), numbers.Number, str, bytes, bytearray, type, types.ModuleType)


class ConfigurationError(ValueError):
    """The marker, an ini option or what the test returned cannot be used (never a
    budget failure: the message says what is wrong)."""


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the message
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= 60 else text[:57] + "..."


def not_agents(values: Sequence[Any]) -> str | None:
    """Why ``values`` is not a population of agents, or None when it may be one."""
    for index, value in enumerate(values):
        if isinstance(value, _NOT_AGENTS):
            return f"item {index} is {_shown(value)} ({type(value).__name__}), which is not an agent"
    return None


class AgentTracker:
    """What the ``fa_mem`` fixture gives a test: register agents, step them, sample them."""

    def __init__(self) -> None:
        self.agents: list[Any] = []
        self.samples: list[tuple[int, float]] = []  # (step, mean amortized bytes per agent)
        self.last: PopulationSize | None = None

    def track(self, agents: Sequence[Any]) -> list[Any]:
        """Register the population (returns it) and take the first sample at step 0."""
        try:
            population = list(agents) if not isinstance(agents, (str, bytes, dict)) else None
        except TypeError:
            population = None
        if population is None:
            raise TypeError(f"fa_mem.track() takes a list of agents, not {_shown(agents)} ({type(agents).__name__})")
        if not population:
            raise ValueError("fa_mem.track() needs at least one agent")
        problem = not_agents(population)
        if problem is not None:
            raise TypeError(f"fa_mem.track() takes a list of agents: {problem}")
        self.agents = population
        self.samples.clear()
        self.sample(0)
        return self.agents

    def sample(self, step: int) -> PopulationSize:
        """Size the tracked population after ``step`` steps (for the leak limit)."""
        if not self.agents:
            raise RuntimeError("call fa_mem.track(agents) before sampling")
        sized = measure_population(self.agents)
        self.samples.append((step, sum(agent.amortized_bytes for agent in sized.agents) / len(sized.agents)))
        self.last = sized
        return sized

    def run(
        self,
        steps: int,
        *,
        observe: Callable[[Any, int, Any], Any] | None = None,
        seed: int = 0,
        step_method: str = "step",
        sample_every: int = 0,
    ) -> None:
        """Step every tracked agent with fa-mem's seeded observation stream, sampling as it goes.

        A step method that takes no argument is called without an observation."""
        from fa_memtool.population_driver import PopulationDriver, Stepping

        stepping = Stepping(seed=seed, step_method=step_method, method_hint="name the method with fa_mem.run(step_method=...)")
        population = PopulationDriver.of_agents(self.agents, stepping=stepping, observe=observe)
        interval = sample_every or max(1, steps // 20)
        start = self.samples[-1][0] if self.samples else 0
        for offset in range(steps):
            step = start + offset
            population.step(step)
            if (offset + 1) % interval == 0 or offset + 1 == steps:
                self.sample(step + 1)

    def growth_per_step(self) -> float | None:
        if len(self.samples) < 2:
            return None
        steps = [step for step, _ in self.samples]
        values = [value for _, value in self.samples]
        fitted = steps[1:] if len(steps) >= 3 else steps
        return slope(fitted, values[-len(fitted):])


@dataclass
class AgentMemoryFailure:
    """Why a marked test failed after its body passed: ``reasons`` are budgets exceeded
    (headed "agent memory over budget:"), ``problems`` what kept the limits from being
    checked (headed with ``heading``); the table is the sized population, when there is one,
    and ``details`` the reference paths to the agents that survived the release."""

    reasons: list[str]
    table: str = ""
    details: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    heading: str = "agent_memory could not check the limits"

    def text(self) -> str:
        blocks = []
        if self.reasons:
            blocks.append("agent memory over budget:\n  " + "\n  ".join(self.reasons))
        if self.problems:
            blocks.append(f"{self.heading}:\n  " + "\n  ".join(self.problems))
        return "\n".join(blocks)

    def section(self) -> str:
        """The "fa-mem agent memory" section: the table, then the reference paths."""
        blocks = [self.table] if self.table else []
        if self.details:
            blocks.append("still alive after the test released them (reference paths):\n  " + "\n  ".join(self.details))
        return "\n\n".join(blocks)


def _budget(value: Any, keyword: str, source: str) -> float:
    """One limit as bytes: a size string ("10 MB") or a positive, finite number of bytes
    (never a bool); 0 is a budget too for the keywords in ZERO_ALLOWED. ``source`` says
    where it was given, for the message."""
    zero_allowed = keyword in ZERO_ALLOWED
    below = "it must be 0 bytes or more" if zero_allowed else "it must be more than 0 bytes"
    if isinstance(value, bool):
        raise ConfigurationError(f"{source}: {value!r} is not a budget; give a size such as '10 MB' or a number of bytes")
    if isinstance(value, str):
        try:
            size = parse_size(value)
        except ValueError as error:
            raise ConfigurationError(f"{source}: {error}") from None
        if size < 0 or (size == 0 and not zero_allowed):
            raise ConfigurationError(f"{source}: {value!r} is not a budget; {below}")
        return size
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (OverflowError, ValueError, TypeError):
            number = math.inf
        if math.isnan(number) or math.isinf(number):
            raise ConfigurationError(f"{source}: {value!r} is not a budget; it must be a finite number of bytes")
        if number < 0 or (number == 0 and not zero_allowed):
            raise ConfigurationError(f"{source}: {value!r} is not a budget; {below}")
        return int(value) if isinstance(value, numbers.Integral) else number
    raise ConfigurationError(
        f"{source}: {_shown(value)} ({type(value).__name__}) is not a budget; give a size such as '10 MB' or a number of bytes"
    )


def _limit(marker: pytest.Mark | None, config: pytest.Config, keyword: str, ini: str) -> float | None:
    value = marker.kwargs.get(keyword) if marker is not None else None
    if value is not None:
        return _budget(value, keyword, f"agent_memory({keyword}={_shown(value)})")
    configured = config.getini(ini) or None
    if configured is None:
        return None
    return _budget(configured, keyword, f"ini option {ini} = {_shown(configured)}")


def marker_limits(marker: pytest.Mark, config: pytest.Config) -> dict[str, float | None]:
    """The four limits of a marked test (the marker's, else the ini defaults), checked;
    ConfigurationError names the keyword (or ini option) and what is wrong with it."""
    unknown = sorted(set(marker.kwargs) - set(MARKER_KEYWORDS))
    if marker.args or unknown:
        given = [_shown(arg) for arg in marker.args] + unknown
        raise ConfigurationError(f"agent_memory takes only the keywords {', '.join(MARKER_KEYWORDS)}; got {', '.join(given)}")
    return {keyword: _limit(marker, config, keyword, INI_OPTIONS[keyword]) for keyword in MARKER_KEYWORDS}


def _table(sized: PopulationSize) -> str:
    lines = [f"{'agent':>6}  {'type':<20} {'exclusive':>11} {'shared':>11} {'amortized':>11}"]
    for agent in sized.agents[:AGENT_ROWS]:
        lines.append(
            f"{agent.index:>6}  {agent.type_name[:20]:<20} {format_bytes(agent.exclusive_bytes):>11} "
            f"{format_bytes(agent.shared_bytes):>11} {format_bytes(agent.amortized_bytes):>11}"
        )
    if len(sized.agents) > AGENT_ROWS:
        lines.append(f"{'...':>6}  {len(sized.agents) - AGENT_ROWS} more agents")
    largest = max(sized.agents, key=lambda agent: agent.amortized_bytes)
    lines.append("")
    lines.append(f"largest agent ({largest.index}) by attribute:")
    for attribute in sorted(largest.attributes, key=lambda item: item.amortized_bytes, reverse=True)[:10]:
        shared = f", shared by {attribute.sharers}" if attribute.sharers > 1 else ""
        lines.append(f"  .{attribute.name:<24} {format_bytes(attribute.amortized_bytes):>11}  ({attribute.type_name}{shared})")
    lines.append(f"population distinct bytes: {format_bytes(sized.distinct_bytes)}")
    return "\n".join(lines)


def check(
    tracker: AgentTracker,
    *,
    per_agent: float | None,
    total: float | None,
    leak_per_step: float | None,
    leak_required: bool = True,
) -> AgentMemoryFailure | None:
    """None when every limit holds, else the reasons (budgets exceeded), the problems
    (what kept a limit from being checked) and the per-agent table.

    ``leak_required`` is off when the leak limit is only an ini default: a test that
    never stepped its agents is then not judged on growth."""
    if not tracker.agents:
        return AgentMemoryFailure(
            [], problems=["the test is marked agent_memory but tracked no agents: use fa_mem.track(agents) or return them"]
        )
    try:
        sized = measure_population(tracker.agents)
    except TypeError as error:  # an object the sizer refuses (fa_mem.track checks the usual ones)
        return AgentMemoryFailure([], problems=[f"the tracked agents cannot be sized: {error}"])
    reasons = []
    problems = []
    if per_agent is not None:
        over = [agent for agent in sized.agents if agent.amortized_bytes > per_agent]
        if over:
            worst = max(over, key=lambda agent: agent.amortized_bytes)
            reasons.append(
                f"{len(over)} of {len(sized.agents)} agents over per_agent={format_bytes(per_agent)} "
                f"(largest: agent {worst.index}, {format_bytes(worst.amortized_bytes)} amortized)"
            )
    if total is not None and sized.distinct_bytes > total:
        reasons.append(f"population {format_bytes(sized.distinct_bytes)} over total={format_bytes(total)}")
    if leak_per_step is not None:
        growth = tracker.growth_per_step()
        if growth is None:
            if leak_required:
                problems.append("leak_per_step needs samples over steps: call fa_mem.run(steps) or fa_mem.sample(step)")
        elif growth > leak_per_step:
            reasons.append(
                f"agents grow {format_bytes(growth)} per agent per step, over leak_per_step={format_bytes(leak_per_step)}"
            )
    if not reasons and not problems:
        return None
    return AgentMemoryFailure(reasons, _table(sized), problems=problems)


def release_check(tracker: AgentTracker, retained: float) -> AgentMemoryFailure | None:
    """Let go of every reference the tracker holds to its agents, keeping only a
    ReleaseWatch, and check what survives: None when at most ``retained`` bytes stay
    reachable from the survivors (with 0: when none survived), else the reason and
    the reference paths.

    Call it once the test function has returned and the plugin dropped the value it
    returned, after the agents were sized: the tracker is left without agents."""
    watch = ReleaseWatch(tracker.agents)
    # Rebound, never cleared in place: the test may have kept the list fa_mem.track
    # returned (in a module-level registry, say), and that reference must keep counting.
    tracker.agents = []
    tracker.samples = []
    tracker.last = None
    retention = watch.check(paths=True)
    if retention.retained_bytes <= retained and (retained > 0 or retention.clean):
        return None
    return AgentMemoryFailure(
        [
            f"{len(retention.retained_agents)} of {retention.agents} agents still alive after the test released them: "
            f"{format_bytes(retention.retained_bytes)} retained (retained={format_bytes(retained)})"
        ],
        details=list(retention.paths),
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("fa_mem_budget_per_agent", "default per-agent budget (amortized bytes) for tests marked agent_memory")
    parser.addini("fa_mem_budget_total", "default population budget (distinct bytes) for tests marked agent_memory")
    parser.addini("fa_mem_max_leak", "default growth limit per agent per step for tests marked agent_memory")
    parser.addini(
        "fa_mem_max_retained",
        "default limit (0 allowed) on the bytes still reachable from the agents a test marked agent_memory released",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(per_agent=None, total=None, leak_per_step=None, retained=None): fail the test when the "
        "agents it tracks (fa_mem.track or returned) exceed these budgets (sizes such as '10 MB'), or when more "
        "than retained bytes of them survive the test ('0 B': none may)",
    )


@pytest.fixture
def fa_mem(request: pytest.FixtureRequest) -> AgentTracker:
    """Track a population of agents for the agent_memory marker."""
    tracker = AgentTracker()
    request.node.stash[_TRACKER_KEY] = tracker
    return tracker


def _returned_agents(returned: Any) -> list[Any] | None:
    """The agents a marked test returned (None when it returned None); ConfigurationError
    naming what it returned when that is not a non-empty list or tuple of agents."""
    if returned is None:
        return None
    if not isinstance(returned, (list, tuple)):
        raise ConfigurationError(
            f"the test returned {_shown(returned)} ({type(returned).__name__}); a test marked agent_memory "
            "may return only its agents, as a non-empty list or tuple (or track them with fa_mem.track)"
        )
    if not returned:
        raise ConfigurationError(
            f"the test returned an empty {type(returned).__name__}: there are no agents to check "
            "(return the agents, or track them with fa_mem.track)"
        )
    problem = not_agents(returned)
    if problem is not None:
        raise ConfigurationError(f"the test returned {_shown(returned)}, not agents: {problem}")
    return list(returned)


def _configuration_failure(message: str) -> AgentMemoryFailure:
    return AgentMemoryFailure([], problems=[message], heading="agent_memory configuration error")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """For marked tests, check the marker before the body runs, then call the test
    ourselves to keep a returned list of agents."""
    marker = pyfuncitem.get_closest_marker(MARKER)
    if marker is None:
        return None
    problem = None
    try:
        pyfuncitem.stash[_LIMITS_KEY] = marker_limits(marker, pyfuncitem.config)
    except ConfigurationError as error:
        problem = str(error)
    if problem is not None:  # outside the except: the failure is one line, with no chained exception
        pytest.fail(f"agent_memory configuration error: {problem}", pytrace=False)
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = inspect.signature(pyfuncitem.obj).parameters
    returned = pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names if name in pyfuncitem.funcargs})
    tracker = pyfuncitem.stash.setdefault(_TRACKER_KEY, AgentTracker())
    if tracker.agents:
        return True  # tracked with the fixture: that population is the one checked
    try:
        population = _returned_agents(returned)
        if population is not None:
            tracker.track(population)
    except (ConfigurationError, TypeError) as error:  # TypeError: an object the sizer refuses
        problem = str(error)
    if problem is not None:
        pytest.fail(f"agent_memory configuration error: {problem}", pytrace=False)
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    outcome = yield
    marker = item.get_closest_marker(MARKER)
    if marker is None or outcome.excinfo is not None:
        return
    limits = item.stash.get(_LIMITS_KEY, None)
    if limits is None:  # the body was run by another plugin's pytest_pyfunc_call
        try:
            limits = marker_limits(marker, item.config)
        except ConfigurationError as error:
            item.stash[_RESULT_KEY] = _configuration_failure(str(error))
            return
    tracker = item.stash.get(_TRACKER_KEY, None) or AgentTracker()
    try:
        failure = check(
            tracker,
            per_agent=limits["per_agent"],
            total=limits["total"],
            leak_per_step=limits["leak_per_step"],
            leak_required=marker.kwargs.get("leak_per_step") is not None,
        )
    except Exception as error:  # noqa: BLE001 - sizing failed: say so in one line, not a traceback of fa-mem
        item.stash[_RESULT_KEY] = AgentMemoryFailure(
            [], problems=[f"sizing the agents failed: {type(error).__name__}: {error}"]
        )
        return
    item.stash[_RESULT_KEY] = failure
    # The release: only for agents that could be sized (a failure without a table
    # tracked none, or could not size them). The test function has returned by now
    # and pytest_pyfunc_call, which held what it returned, has too.
    if limits.get("retained") is None or not tracker.agents or (failure is not None and not failure.table):
        return
    try:
        released = release_check(tracker, limits["retained"])
    except Exception as error:  # noqa: BLE001 - as above: one line
        released = AgentMemoryFailure(
            [], problems=[f"checking what survived the test failed: {type(error).__name__}: {error}"]
        )
    if released is None:
        return
    if failure is None:
        item.stash[_RESULT_KEY] = released
    else:
        failure.reasons.extend(released.reasons)
        failure.problems.extend(released.problems)
        failure.details.extend(released.details)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    if call.when != "call":
        return
    failure = item.stash.get(_RESULT_KEY, None)
    if failure is None:
        return
    report = outcome.get_result()
    report.outcome = "failed"
    report.longrepr = failure.text()
    section = failure.section()
    if section:
        report.sections.append(("fa-mem agent memory", section))
