import pytest

from fa_memtool.report import ScalingPoint
from fa_memtool.runner import default_scaling, fit_scaling


def _point(agents: int, build: int, steps: int) -> ScalingPoint:
    return ScalingPoint(agents=agents, rss_after_build=build, rss_after_steps=steps, uss_after_build=build - 1000,
                        uss_after_steps=steps - 1000, stepping_seconds=1.0)


def test_fit_recovers_fixed_and_per_agent_cost():
    fixed, per_agent, per_agent_steps = 40_000_000, 2_500_000, 3_000_000
    points = [_point(n, fixed + n * per_agent, fixed + n * per_agent_steps) for n in (1, 10, 50)]
    fit = fit_scaling(points)
    assert fit is not None
    assert fit.fixed_bytes == pytest.approx(fixed)
    assert fit.per_agent_bytes == pytest.approx(per_agent)
    assert fit.per_agent_bytes_after_steps == pytest.approx(per_agent_steps)
    assert fit.uss_per_agent_bytes == pytest.approx(per_agent)


def test_fit_needs_two_sizes():
    assert fit_scaling([_point(5, 1, 1)]) is None
    assert fit_scaling([_point(5, 1, 1), _point(5, 2, 2)]) is None


def test_default_scaling_is_half_and_full():
    assert default_scaling(10) == [5, 10]
    assert default_scaling(1) == [1, 2]
    assert default_scaling(3) == [1, 3]
