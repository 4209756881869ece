"""The pytest plugin's ``retained=`` limit: what survives a marked test once it returned.

Inner pytest sessions (``pytester``, in this process) with small agents, so each runs in
well under a second. Ground truth: an agent appended to a module-level list is still
alive after the test, reachable as ``<module>.REGISTRY[0]``; agents only the test's
locals, the ``fa_mem`` fixture and the returned value held are not.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

pytest_plugins = ["pytester"]

COMMON = '''
import numpy as np
import pytest

REGISTRY = []


class Agent:
    def __init__(self, size=1_000):
        self.weights = np.zeros(size)

    def step(self, observation):
        return 0
'''

OVER_BUDGET = "agent memory over budget:"
CONFIGURATION_ERROR = "agent_memory configuration error"
SECTION = "fa-mem agent memory"


def _reports(reprec: Any) -> dict[str, Any]:
    """The call-phase report of each test, by its name."""
    return {
        report.nodeid.split("::")[-1]: report
        for report in reprec.getreports("pytest_runtest_logreport")
        if report.when == "call"
    }


def _section(report: Any) -> str:
    return "\n".join(text for title, text in report.sections if title == SECTION)


def test_agents_kept_in_a_module_list_fail_retained_0_with_the_path(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_leaks=COMMON
        + '''

@pytest.mark.agent_memory(retained=0)
def test_registers_two(fa_mem):
    agents = fa_mem.track([Agent() for _ in range(5)])
    fa_mem.run(2)
    REGISTRY.append(agents[0])
    REGISTRY.append(agents[3])


@pytest.mark.agent_memory(retained="0 B")
def test_returns_and_keeps_one():
    agents = [Agent(), Agent()]
    REGISTRY.append(agents[1])
    return agents


KEPT = []


@pytest.mark.agent_memory(retained=0)
def test_keeps_the_tracked_list(fa_mem):
    KEPT.append(fa_mem.track([Agent(), Agent()]))
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=0, failed=3)
    reports = _reports(reprec)

    text = reports["test_registers_two"].longreprtext
    lines = text.splitlines()
    assert lines[0] == OVER_BUDGET, text
    assert re.fullmatch(
        r"  2 of 5 agents still alive after the test released them: [0-9.]+ (B|kB) retained \(retained=0 B\)", lines[1]
    ), text
    assert len(lines) == 2, text
    section = _section(reports["test_registers_two"])
    assert "test_leaks.REGISTRY[0] -> agent 0" in section, section
    assert "test_leaks.REGISTRY[1] -> agent 3" in section, section

    returned = reports["test_returns_and_keeps_one"]
    assert "1 of 2 agents still alive" in returned.longreprtext, returned.longreprtext
    assert "REGISTRY[" in _section(returned) and "-> agent 1" in _section(returned), _section(returned)

    # The plugin let go of its own reference without emptying the list the test kept.
    kept = reports["test_keeps_the_tracked_list"]
    assert "2 of 2 agents still alive" in kept.longreprtext, kept.longreprtext
    assert "test_leaks.KEPT[0][0] -> agent 0" in _section(kept), _section(kept)


def test_a_clean_test_passes_retained_0(pytester: pytest.Pytester) -> None:
    """Nothing but the test's locals, the fixture, its samples and the returned value
    held the agents: all released."""
    pytester.makepyfile(
        test_clean=COMMON
        + '''

@pytest.mark.agent_memory(per_agent="1 MB", leak_per_step="1 kB", retained=0)
def test_tracked_and_stepped(fa_mem):
    agents = fa_mem.track([Agent() for _ in range(5)])
    fa_mem.run(3)
    fa_mem.sample(3)
    local_view = agents[:2]


@pytest.mark.agent_memory(retained="0 B")
def test_returned():
    return [Agent(), Agent()]


@pytest.mark.agent_memory(retained=0)
def test_cycle_between_agents(fa_mem):
    first, second = Agent(), Agent()
    first.peer, second.peer = second, first
    fa_mem.track([first, second])
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=3, failed=0)


def test_a_small_leak_under_the_limit_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_small=COMMON
        + '''

@pytest.mark.agent_memory(retained="1 MB")
def test_small_leak(fa_mem):
    agents = fa_mem.track([Agent(), Agent(), Agent()])
    REGISTRY.append(agents[0])


@pytest.mark.agent_memory(retained="1 kB")
def test_same_leak_over_a_smaller_limit(fa_mem):
    agents = fa_mem.track([Agent(), Agent(), Agent()])
    REGISTRY.append(agents[0])
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=1, failed=1)
    text = _reports(reprec)["test_same_leak_over_a_smaller_limit"].longreprtext
    assert "1 of 3 agents still alive" in text and "(retained=1 kB)" in text, text


# marker source -> (how the message shows it, why it is refused)
BAD_VALUES = {
    "-1": ("retained=-1)", "it must be 0 bytes or more"),
    "True": ("retained=True)", "is not a budget"),
    '"x"': ("retained='x')", "cannot read 'x' as a size"),
}


def test_bad_retained_values_are_configuration_errors(pytester: pytest.Pytester) -> None:
    """One inner session: each bad marker value, and a bad ini default (used by the marked
    test that gives no retained=), fails before the body runs, in the plugin's one
    configuration-error line; 0 in every spelling is a budget."""
    pytester.makeini("[pytest]\nfa_mem_max_retained = lots\n")
    bad = "".join(
        f"""

@pytest.mark.agent_memory(retained={value})
def test_bad_{index}(fa_mem):
    raise AssertionError("the body ran")
"""
        for index, value in enumerate(BAD_VALUES)
    )
    zero = "".join(
        f"""

@pytest.mark.agent_memory(retained={value})
def test_zero_{index}(fa_mem):
    fa_mem.track([Agent()])
"""
        for index, value in enumerate(["0", "0.0", '"0 B"', '"0 MB"'])
    )
    pytester.makepyfile(
        test_bad=COMMON
        + bad
        + zero
        + '''

@pytest.mark.agent_memory(per_agent="1 MB")
def test_bad_ini_default(fa_mem):
    raise AssertionError("the body ran")
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=4, failed=len(BAD_VALUES) + 1)
    reports = _reports(reprec)
    expected = {
        f"test_bad_{index}": (f"agent_memory({shown}", why) for index, (shown, why) in enumerate(BAD_VALUES.values())
    }
    expected["test_bad_ini_default"] = ("ini option fa_mem_max_retained = 'lots'", "cannot read 'lots' as a size")
    for name, fragments in expected.items():
        text = reports[name].longreprtext.strip()
        assert len(text.splitlines()) == 1, text
        assert text.startswith(f"{CONFIGURATION_ERROR}: "), text
        assert "over budget" not in text and "the body ran" not in text, text
        for fragment in fragments:
            assert fragment in text, (fragment, text)


def test_the_ini_default_and_a_size_failure_beside_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfa_mem_max_retained = 0 B\n")
    pytester.makepyfile(
        test_ini=COMMON
        + '''

@pytest.mark.agent_memory
def test_default_leak(fa_mem):
    REGISTRY.extend(fa_mem.track([Agent()]))


@pytest.mark.agent_memory(retained="1 MB")
def test_marker_wins(fa_mem):
    REGISTRY.extend(fa_mem.track([Agent()]))


@pytest.mark.agent_memory(per_agent="1 kB")
def test_over_per_agent_and_leaking(fa_mem):
    REGISTRY.extend(fa_mem.track([Agent()]))


def test_unmarked_is_not_checked(fa_mem):
    REGISTRY.extend(fa_mem.track([Agent()]))
'''
    )
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    reprec.assertoutcome(passed=2, failed=2)
    reports = _reports(reprec)
    assert "1 of 1 agents still alive" in reports["test_default_leak"].longreprtext
    both = reports["test_over_per_agent_and_leaking"]
    reasons = both.longreprtext.splitlines()
    assert reasons[0] == OVER_BUDGET and "over per_agent=1 kB" in reasons[1] and "still alive" in reasons[2], reasons
    section = _section(both)
    assert section.index("largest agent") < section.index("test_ini.REGISTRY["), section
