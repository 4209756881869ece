"""Growth over the steps: per-step slopes, per-attribute growth and the leak verdict.

Growth is fitted per agent per step, by least squares over the samples, never per
second. An attribute whose growth stopped (a deque that reached ``maxlen``, a cache
whose keys stopped arriving) is bounded; one still growing over the second half
of the run is not.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from fa_memtool.report import AttributeGrowth, Growth, TimelineSample
from fa_memtool.paths import is_under
from fa_memtool.units import format_bytes

# Deep sizes are deterministic, so any sustained positive slope is real growth; this
# only keeps float round-off from being called a leak.
LEAK_THRESHOLD_BYTES_PER_STEP = 1.0
NOISE_BYTES_PER_AGENT = 1.0


def slope(steps: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against ``steps`` (0 for fewer than two points)."""
    count = len(steps)
    if count < 2:
        return 0.0
    mean_step = sum(steps) / count
    mean_value = sum(values) / count
    spread = sum((step - mean_step) ** 2 for step in steps)
    if spread == 0:
        return 0.0
    return sum((step - mean_step) * (value - mean_value) for step, value in zip(steps, values)) / spread


def _fit_window(steps: list[int]) -> int:
    """First sample index of the fit: skip the sample taken before the first step
    (lazy set-up happens on the first step), when enough samples remain."""
    return 1 if len(steps) >= 3 and steps[0] == 0 else 0


def _late_window(steps: list[int]) -> int:
    """First sample index of the second half of the run."""
    if len(steps) < 3:
        return 0
    middle = (steps[0] + steps[-1]) / 2
    for index, step in enumerate(steps):
        if step >= middle:
            return min(index, len(steps) - 2)
    return len(steps) - 2


def _full_deque(values: list[Any]) -> int | None:
    """``maxlen`` when every agent's value is a deque that has reached it."""
    if values and all(isinstance(value, deque) and value.maxlen is not None for value in values):
        if all(len(value) == value.maxlen for value in values):
            return values[0].maxlen
    return None


def analyse_growth(
    samples: list[TimelineSample],
    attribute_series: dict[str, list[float]],
    final_values: dict[str, list[Any]],
) -> Growth:
    """Slopes, growing attributes and the verdict.

    ``attribute_series`` maps an attribute name to its mean amortized bytes per agent
    at each sample; ``final_values`` to the live values of that attribute at the end.
    """
    steps = [sample.step for sample in samples]
    start = _fit_window(steps)
    late = _late_window(steps)
    per_agent = [sample.per_agent_bytes for sample in samples]
    overall = slope(steps[start:], per_agent[start:])
    late_slope = slope(steps[late:], per_agent[late:])
    rss_slope = slope(steps[start:], [float(sample.rss_bytes) for sample in samples[start:]])

    growing: list[AttributeGrowth] = []
    for name, series in attribute_series.items():
        if len(series) != len(samples) or len(series) < 2:
            continue
        attribute_slope = slope(steps[start:], series[start:])
        gained = series[-1] - series[0]
        attribute_late = slope(steps[late:], series[late:])
        # A path that ends no larger than it began (less than a byte per agent more:
        # the amortized share of a shared object moves by a few bytes as other agents
        # come to hold it) and is not rising at the end did not grow, whatever its
        # fitted slope.
        if gained < NOISE_BYTES_PER_AGENT and attribute_late < LEAK_THRESHOLD_BYTES_PER_STEP:
            continue
        attribute_early = slope(steps[start : late + 1], series[start : late + 1])
        # Containers grow in steps (list over-allocation, deque blocks), so "stopped"
        # means the late slope is small next to the early one, not exactly zero.
        stopped = attribute_late < max(LEAK_THRESHOLD_BYTES_PER_STEP, 0.05 * abs(attribute_early))
        maxlen = _full_deque(final_values.get(name, []))
        if maxlen is not None:
            bounded, reason = True, f"deque reached maxlen={maxlen}"
        elif stopped or attribute_slope <= LEAK_THRESHOLD_BYTES_PER_STEP / 10:
            # Larger at the end than at the start, but not rising over the run (an int
            # that left the small-int cache, a value that was replaced by a larger one).
            bounded, reason = True, "growth stopped before the second half of the run"
        else:
            bounded = False
            kinds = {type(value).__name__ for value in final_values.get(name, [])}
            kind = "/".join(sorted(kinds)) or "value"
            reason = f"{kind} still growing at the end of the run"
        growing.append(
            AttributeGrowth(
                name=name,
                start_bytes=series[0],
                end_bytes=series[-1],
                bytes_per_step_per_agent=attribute_slope,
                bounded=bounded,
                reason=reason,
            )
        )
    growing.sort(key=lambda item: item.bytes_per_step_per_agent, reverse=True)
    unbounded = [item for item in growing if not item.bounded]
    leaking = late_slope >= LEAK_THRESHOLD_BYTES_PER_STEP and bool(unbounded)
    if len(samples) < 2:
        verdict = "not enough samples to judge growth (run more steps)"
    elif leaking:
        verdict = _leak_text(late_slope, unbounded)
    elif growing:
        verdict = "bounded growth: " + ", ".join(f"{item.name} ({item.reason})" for item in growing[:3])
    else:
        verdict = "stable: no growth over the run"
    return Growth(
        samples=samples,
        bytes_per_step_per_agent=overall,
        late_bytes_per_step_per_agent=late_slope,
        rss_bytes_per_step=rss_slope,
        leaking=leaking,
        verdict=verdict,
        attributes=growing,
    )


def growth_paths(path_rows: list[Any]) -> list[str]:
    """The paths of a tree whose growth is worth fitting: named objects, not the
    ``[*]`` groups (their items come and go; the container holding them grows) nor
    ``(other)`` rows."""
    return [row.path for row in path_rows if "[*]" not in row.path and not row.path.endswith(")")]


def deepest_growth(
    samples: list[TimelineSample],
    path_series: dict[str, list[float]],
    final_values: dict[str, list[Any]],
) -> list[AttributeGrowth]:
    """Growth attributed to the deepest paths that grow.

    Every path is fitted as attributes are (``analyse_growth``); a growing path is
    reported in its own name only when what its growing descendants explain leaves
    a real part of its growth unexplained, so ``agent`` growing because
    ``agent.qs_hist`` and ``agent.prev_actions`` grow is reported as those two.
    """
    growing = analyse_growth(samples, path_series, final_values).attributes
    by_path = {item.name: item for item in growing}
    reported: list[AttributeGrowth] = []
    for item in growing:
        descendants = [other for other in by_path if other != item.name and is_under(other, item.name)]
        # Only the outermost growing descendants: a grandchild's growth is inside its parent's.
        outermost = [path for path in descendants if not any(is_under(path, other) for other in descendants if other != path)]
        explained = sum(max(by_path[path].bytes_per_step_per_agent, 0.0) for path in outermost)
        unexplained = item.bytes_per_step_per_agent - explained
        if not outermost or unexplained > max(LEAK_THRESHOLD_BYTES_PER_STEP, 0.1 * item.bytes_per_step_per_agent):
            reported.append(item)
    return reported


def _leak_text(late_slope: float, unbounded: list[AttributeGrowth]) -> str:
    names = ", ".join(item.name for item in unbounded[:3])
    return f"leaking {format_bytes(late_slope, signed=True)} per agent per step ({names})"


def name_deepest(growth: Growth) -> None:
    """Name the deepest growing paths (``growth.paths``) in a leak verdict."""
    unbounded = [item for item in growth.paths if not item.bounded]
    if growth.leaking and unbounded:
        growth.verdict = _leak_text(growth.late_bytes_per_step_per_agent, unbounded)
