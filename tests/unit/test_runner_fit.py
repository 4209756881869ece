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


def test_fit_with_one_stepped_point_adds_its_growth_per_agent():
    fixed, per_agent, growth = 40_000_000, 2_500_000, 600_000
    built = ScalingPoint(agents=5, rss_after_build=fixed + 5 * per_agent, rss_after_steps=None, uss_after_build=None,
                         uss_after_steps=None, stepping_seconds=0.0, source="build")
    measured = _point(10, fixed + 10 * per_agent, fixed + 10 * (per_agent + growth))
    fit = fit_scaling([built, measured])
    assert fit is not None
    assert fit.after_steps_from == "growth"
    assert fit.per_agent_bytes == pytest.approx(per_agent)
    assert fit.per_agent_bytes_after_steps == pytest.approx(per_agent + growth)
    assert fit.fixed_bytes_after_steps == fit.fixed_bytes
    assert fit.uss_per_agent_bytes is None  # the build-only point read no USS


def test_fit_without_a_stepped_point_is_none():
    built = [ScalingPoint(agents=n, rss_after_build=n, rss_after_steps=None, uss_after_build=None, uss_after_steps=None,
                          stepping_seconds=0.0, source="build") for n in (1, 2)]
    assert fit_scaling(built) is None
