from collections import deque

import pytest

from fa_memtool.growth import analyse_growth, slope
from fa_memtool.report import TimelineSample


def _samples(per_agent: list[float], every: int = 5) -> list[TimelineSample]:
    return [TimelineSample(step=i * every, per_agent_bytes=v, distinct_bytes=int(v), rss_bytes=0) for i, v in enumerate(per_agent)]


def test_slope_is_least_squares():
    steps = [0, 1, 2, 3]
    values = [1.0, 3.0, 5.0, 7.0]
    assert slope(steps, values) == pytest.approx(2.0)
    assert slope([0], [5.0]) == 0.0
    assert slope([2, 2], [1.0, 3.0]) == 0.0


def test_linear_growth_is_a_leak_named_by_attribute():
    growth_per_step = 800.0
    series = [1000.0 + growth_per_step * 5 * i for i in range(11)]
    history = [list(range(i)) for i in (3, 3)]
    result = analyse_growth(_samples(series), {"history": series, "weights": [500.0] * 11}, {"history": history})
    assert result.leaking
    assert result.bytes_per_step_per_agent == pytest.approx(growth_per_step)
    assert result.late_bytes_per_step_per_agent == pytest.approx(growth_per_step)
    assert [item.name for item in result.attributes] == ["history"]
    assert not result.attributes[0].bounded
    assert "history" in result.verdict


def test_full_deque_is_bounded_even_when_its_blocks_oscillate():
    values = [760.0, 900.0, 1428.0, 900.0, 1428.0, 900.0, 1428.0, 1428.0, 900.0]
    queues = [deque([1, 2, 3], maxlen=3), deque([4, 5, 6], maxlen=3)]
    result = analyse_growth(_samples(values), {"recent": values}, {"recent": queues})
    assert result.attributes[0].bounded
    assert "maxlen=3" in result.attributes[0].reason
    assert not result.leaking


def test_growth_that_stops_is_bounded():
    values = [0.0, 1000.0, 2000.0, 3000.0, 3000.0, 3000.0, 3000.0, 3000.0, 3000.0]
    result = analyse_growth(_samples(values), {"cache": values}, {"cache": [{}]})
    assert result.attributes[0].bounded
    assert not result.leaking


def test_stable_population():
    values = [5000.0] * 6
    result = analyse_growth(_samples(values), {"weights": values}, {})
    assert not result.leaking
    assert result.attributes == []
    assert result.verdict.startswith("stable")


def test_single_sample_cannot_judge():
    result = analyse_growth(_samples([5000.0]), {"weights": [5000.0]}, {})
    assert not result.leaking
    assert "not enough samples" in result.verdict


def _linear(start: float, per_step: float, count: int = 6, every: int = 5) -> list[float]:
    return [start + per_step * every * index for index in range(count)]


def test_deepest_growth_names_the_growing_children_not_the_wrapper():
    from fa_memtool.growth import deepest_growth

    histories, actions = _linear(0.0, 600.0), _linear(0.0, 40.0)
    wrapper = [10_000.0 + a + b for a, b in zip(histories, actions)]
    series = {
        "agent": wrapper,
        "agent.qs_hist": histories,
        "agent.prev_actions": actions,
        "agent.B": [8000.0] * 6,
    }
    found = deepest_growth(_samples(wrapper), series, {"agent.qs_hist": [[1, 2]], "agent.prev_actions": [[1]]})
    assert sorted(item.name for item in found) == ["agent.prev_actions", "agent.qs_hist"]
    assert {item.name: item.bytes_per_step_per_agent for item in found}["agent.qs_hist"] == pytest.approx(600.0)


def test_deepest_growth_keeps_a_parent_whose_own_growth_is_unexplained():
    from fa_memtool.growth import deepest_growth

    child = _linear(0.0, 100.0)
    parent = [value + own for value, own in zip(child, _linear(0.0, 900.0))]
    found = deepest_growth(_samples(parent), {"state": parent, "state.log": child}, {})
    assert sorted(item.name for item in found) == ["state", "state.log"]


def test_growth_paths_leave_out_item_groups_and_other_rows():
    from types import SimpleNamespace

    from fa_memtool.growth import growth_paths

    rows = [SimpleNamespace(path=path) for path in ("history", "history[*]", "history[*].x", "state (other)", "a.b")]
    assert growth_paths(rows) == ["history", "a.b"]


def test_tree_samples_are_first_last_and_evenly_spaced():
    from fa_memtool.child import TREE_SAMPLES, _tree_sample_steps

    assert _tree_sample_steps(100, 5) == {0, 20, 40, 60, 80, 100}
    assert len(_tree_sample_steps(1000, 7)) == TREE_SAMPLES
    assert {0, 1000} <= _tree_sample_steps(1000, 7)
    assert _tree_sample_steps(3, 1) == {0, 1, 2, 3}


def test_a_table_whose_amortized_share_wobbles_but_ends_smaller_did_not_grow():
    # A constant table holding small objects that other agents come to share: its
    # amortized bytes move by a few bytes and end below where they began.
    values = [731059.6, 731001.2, 731031.0, 731038.9, 731052.4, 731041.3, 731043.0, 731043.1]
    result = analyse_growth(_samples(values), {"env.P": values}, {"env.P": [{}]})
    assert slope([sample.step for sample in _samples(values)], values) > 0.1  # the fit alone would call it growth
    assert result.attributes == []
    assert result.verdict.startswith("stable")


def test_a_value_that_ends_larger_without_rising_over_the_run_is_bounded_not_a_leak():
    # An int that leaves the small-int cache at the first step, then changes value.
    values = [0.0, 28.0, 28.0, 0.0, 28.0, 0.0, 0.0, 28.0, 0.0, 28.0]
    result = analyse_growth(_samples(values), {"state": values}, {"state": [300]})
    assert [item.name for item in result.attributes] == ["state"]
    assert result.attributes[0].bounded
    assert not result.leaking


def test_a_leak_that_has_not_yet_regained_a_freed_start_is_still_named():
    values = [10000.0] + [100.0 * i for i in range(9)]  # a build-time buffer freed, then 20 B per step
    result = analyse_growth(_samples(values), {"log": values}, {"log": [[1, 2]]})
    assert [item.name for item in result.attributes] == ["log"]
    assert not result.attributes[0].bounded
