"""The memory gate: a report compared with a baseline and with budgets.

By default the gate judges deterministic byte counts: the sizer counts the same
objects the same way on every run of unchanged code (the child runs with a fixed
hash seed), so a small tolerance never flakes. Process RSS figures depend on the
allocator and the machine; they are compared with their own, looser tolerance.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fa_memtool.errors import UsageError
from fa_memtool.report import Report, Workload, from_dict, parse_json, read_input, write_atomic
from fa_memtool.paths import top_attribute
from fa_memtool.pathtree import OTHER, flatten
from fa_memtool.summary import attribute_summaries
from fa_memtool.text import visible
from fa_memtool.units import format_bytes

BASELINE_SCHEMA_VERSION = 1
DEFAULT_BASELINE = "fa-mem-baseline.json"


class BaselineError(UsageError):
    """A baseline that is missing, unreadable or recorded for another workload (exit 2)."""


@dataclass(frozen=True)
class Fingerprint:
    """What a baseline was measured on; a baseline only ever compares with the same."""

    module: str
    factory: str
    step_method: str
    agents: int
    steps: int
    seed: int
    fa_mem_version: str
    python: str  # major.minor: object sizes differ between Python versions
    # How the population was read and stepped; baselines recorded before models
    # could be profiled were all of a list of agents stepped one by one.
    stepping: str = "agents"

    def differences(self, other: Fingerprint) -> list[str]:
        found = []
        for item in dataclasses.fields(self):
            mine, theirs = getattr(self, item.name), getattr(other, item.name)
            if mine != theirs:
                found.append(f"{item.name} {theirs} in the baseline, {mine} now")
        return found


def _series(version: str) -> str:
    return ".".join(version.split(".")[:2])


def fingerprint_of(report: Report) -> Fingerprint:
    workload = report.workload
    return Fingerprint(
        module=workload.module,
        factory=workload.factory,
        step_method=workload.step_method,
        agents=report.population.agents,
        steps=workload.steps,
        seed=workload.seed,
        fa_mem_version=_series(report.fa_mem_version),
        python=_series(workload.python),
        stepping=_stepping(workload),
    )


def _stepping(workload: Workload) -> str:
    recorded = ", recorded observations" if workload.observe == "file" else ""
    if workload.agents_from is None:
        return "agents" + recorded
    stepped = f"model.{workload.model_step_method}()" if workload.step_model else "each agent"
    return f"agents from .{workload.agents_from}, {stepped}{recorded}"


METRIC_KINDS = ("bytes", "growth", "rss", "flag")


@dataclass
class Metric:
    name: str
    kind: str  # bytes, growth (bytes per agent per step), rss, flag
    value: float
    label: str
    site: str | None = None


RETAINED_BYTES = "retained_bytes"
RETAINED_OBJECTS = "retained_agents"
PATH_PREFIX = "path:"
PATH_GROWTH_PREFIX = "path-growth:"


def metrics_of(report: Report) -> list[Metric]:
    """The figures a gate compares, all from one report."""
    population = report.population
    metrics = [
        Metric("per_agent_bytes", "bytes", population.per_agent_bytes, "mean amortized bytes per agent"),
        Metric(
            "max_agent_bytes",
            "bytes",
            max((agent.amortized_bytes for agent in report.agents), default=0.0),
            "largest agent (amortized bytes)",
        ),
        Metric("distinct_bytes", "bytes", float(population.distinct_bytes), "population distinct bytes"),
        Metric("growth_per_step", "growth", report.growth.bytes_per_step_per_agent, "growth per agent per step"),
        Metric("leaking", "flag", 1.0 if report.growth.leaking else 0.0, "leak verdict"),
    ]
    for summary in attribute_summaries(report):
        metrics.append(
            Metric(
                f"attribute:{summary.name}",
                "bytes",
                summary.mean_amortized_bytes,
                f"agent.{summary.name} (mean amortized bytes)",
                summary.allocation_site,
            )
        )
    for growth in report.growth.attributes:
        metrics.append(
            Metric(
                f"growth:{growth.name}",
                "growth",
                growth.bytes_per_step_per_agent,
                f"agent.{growth.name} growth per step",
                growth.growth_site,
            )
        )
    # Below the top level, the tree's rows and the deepest growing paths: a regression
    # is named where it is (agent.agent.qs_hist), not only by the attribute holding it.
    for row in flatten(report.paths):
        if row.path != row.name and row.name != OTHER:
            metrics.append(
                Metric(f"{PATH_PREFIX}{row.path}", "bytes", row.amortized_bytes, f"agent.{row.path} (mean amortized bytes)", row.allocation_site)
            )
    for growth in report.growth.paths:
        if growth.name != top_attribute(growth.name):
            metrics.append(
                Metric(f"{PATH_GROWTH_PREFIX}{growth.name}", "growth", growth.bytes_per_step_per_agent, f"agent.{growth.name} growth per step", growth.growth_site)
            )
    if report.retention is not None:
        # What survives the release: a change that stops freeing the population regresses.
        retention = report.retention
        retained = len(retention.retained_agents) + (1 if retention.model_retained else 0)
        metrics.append(Metric(RETAINED_BYTES, "bytes", float(retention.retained_bytes), "bytes retained after release"))
        metrics.append(Metric(RETAINED_OBJECTS, "flag", float(retained), "agents (and model) retained after release"))
    steps_phase = next((phase for phase in report.process if phase.phase == "steps"), None)
    if steps_phase is not None:
        metrics.append(Metric("rss_after_steps", "rss", float(steps_phase.rss_bytes - steps_phase.tracer_bytes), "process RSS after the steps"))
    if population.marginal_rss_per_agent is not None:
        metrics.append(Metric("marginal_rss_per_agent", "rss", population.marginal_rss_per_agent, "marginal RSS per agent"))
    return metrics


@dataclass
class Baseline:
    fa_mem_baseline: int
    fingerprint: Fingerprint
    metrics: list[Metric]
    update_command: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, allow_nan=False) + "\n"


def baseline_from_report(report: Report, *, update_command: str = "") -> Baseline:
    return Baseline(
        fa_mem_baseline=BASELINE_SCHEMA_VERSION,
        fingerprint=fingerprint_of(report),
        metrics=metrics_of(report),
        update_command=update_command,
    )


def save_baseline(baseline: Baseline, path: str | os.PathLike[str]) -> None:
    write_atomic(path, baseline.to_json())


def load_baseline(path: str | os.PathLike[str], *, create_hint: str) -> Baseline:
    location = Path(path)
    if not location.exists():
        raise BaselineError(f"no baseline at {location}; create it with: {create_hint}")
    text = read_input(location, what="baseline", error=BaselineError)
    try:
        data = parse_json(text, source=f"baseline {location}", error=BaselineError, finite=False)
    except BaselineError as error:
        raise BaselineError(f"{error.message}; recreate it with: {create_hint}") from error
    if not isinstance(data, dict) or "fa_mem_baseline" not in data:
        raise BaselineError(f"{location} is not an fa-mem baseline; create one with: {create_hint}")
    if data["fa_mem_baseline"] != BASELINE_SCHEMA_VERSION:
        raise BaselineError(
            f"baseline {location} has format version {data['fa_mem_baseline']!r}; this fa-mem reads "
            f"{BASELINE_SCHEMA_VERSION}; recreate it with: {create_hint}"
        )
    try:
        _check_metric_values(data.get("metrics"))
        baseline = from_dict(Baseline, data)
        _check_types(baseline)
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise BaselineError(f"baseline {location} is incomplete ({error}); recreate it with: {create_hint}") from error
    return baseline


def _check_metric_values(metrics: Any) -> None:
    """Each metric's value, named by the metric: a number, finite, and no size below 0
    (a NaN or Infinity would pass every comparison; true is not 1 B)."""
    if not isinstance(metrics, list):
        return  # the type check names it
    for metric in metrics:
        if not isinstance(metric, dict) or "value" not in metric:
            continue
        name, value = metric.get("name"), metric["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"metric {name!r} has value {json.dumps(value)}, not a number")
        if not math.isfinite(value):
            raise TypeError(f"metric {name!r} has value {value!r}, not a finite number")
        if metric.get("kind") in ("bytes", "rss") and value < 0:
            raise TypeError(f"metric {name!r} has a negative size {value!r}")


def _check_types(baseline: Baseline) -> None:
    """A hand-edited baseline must still hold numbers where numbers belong."""
    if not isinstance(baseline.fingerprint, Fingerprint):
        raise TypeError("fingerprint is not an object")
    for item in dataclasses.fields(Fingerprint):
        value = getattr(baseline.fingerprint, item.name)
        expected = int if item.type in ("int", int) else str
        if not isinstance(value, expected) or isinstance(value, bool):
            raise TypeError(f"fingerprint.{item.name} is {value!r}")
    if not isinstance(baseline.metrics, list):
        raise TypeError("metrics is not a list")
    for metric in baseline.metrics:
        if not isinstance(metric, Metric):
            raise TypeError("a metric is not an object")
        if not isinstance(metric.value, (int, float)) or isinstance(metric.value, bool):
            raise TypeError(f"metric {metric.name!r} has value {metric.value!r}")
        if not math.isfinite(metric.value):
            raise TypeError(f"metric {metric.name!r} has value {metric.value!r}, not a finite number")
        if metric.kind in ("bytes", "rss") and metric.value < 0:
            raise TypeError(f"metric {metric.name!r} has a negative size {metric.value!r}")
        if not isinstance(metric.name, str) or metric.kind not in METRIC_KINDS:
            raise TypeError(f"metric {metric.name!r} has kind {metric.kind!r}")


@dataclass(frozen=True)
class Budgets:
    per_agent: int | None = None  # bytes, against every agent's amortized bytes
    total: int | None = None  # bytes, against the population's distinct bytes
    max_leak: float | None = None  # bytes per agent per step
    max_retained: int | None = None  # bytes still reachable from the population after its release


@dataclass(frozen=True)
class Tolerances:
    bytes_fraction: float = 0.01
    rss_fraction: float = 0.25
    min_change_bytes: int = 1024  # changes smaller than this never fail a byte metric
    growth_slack: float = 16.0  # bytes per agent per step that growth may vary by


@dataclass
class Check:
    metric: str
    label: str
    kind: str
    source: str  # baseline or budget
    baseline: float | None
    now: float
    limit: float
    status: str  # ok, regressed, improved, new, removed
    site: str | None = None

    @property
    def change(self) -> float | None:
        if self.baseline is None:
            return None
        return self.now - self.baseline


@dataclass
class GateResult:
    passed: bool
    checks: list[Check]
    fingerprint: Fingerprint
    baseline_path: str | None
    update_command: str
    tolerances: Tolerances = field(default_factory=Tolerances)

    @property
    def regressions(self) -> list[Check]:
        return [check for check in self.checks if check.status == "regressed"]

    @property
    def improvements(self) -> list[Check]:
        return [check for check in self.checks if check.status in ("improved", "removed")]

    def to_json(self) -> str:
        data: dict[str, Any] = dataclasses.asdict(self)
        data["schema_version"] = 1
        data["regressions"] = [dataclasses.asdict(check) for check in self.regressions]
        data["improvements"] = [dataclasses.asdict(check) for check in self.improvements]
        return json.dumps(data, indent=1, allow_nan=False) + "\n"


def _limits(kind: str, baseline: float, tolerances: Tolerances) -> tuple[float, float]:
    """(upper limit, improvement threshold) for a metric of this kind."""
    if kind == "rss":
        return baseline * (1 + tolerances.rss_fraction), baseline * (1 - tolerances.rss_fraction)
    if kind == "flag":
        return baseline, baseline - 0.5
    slack = tolerances.growth_slack if kind == "growth" else tolerances.min_change_bytes
    upper = max(baseline * (1 + tolerances.bytes_fraction), baseline + slack)
    lower = min(baseline * (1 - tolerances.bytes_fraction), baseline - slack)
    return upper, lower


def compare(
    report: Report,
    baseline: Baseline | None,
    *,
    budgets: Budgets,
    tolerances: Tolerances,
    baseline_path: str | None = None,
    update_command: str = "",
) -> GateResult:
    """Every metric against its baseline value and every budget against its figure."""
    fingerprint = fingerprint_of(report)
    if baseline is not None:
        differences = fingerprint.differences(baseline.fingerprint)
        if differences:
            raise BaselineError(
                f"baseline {baseline_path} was recorded for another workload ({'; '.join(differences)}); "
                f"update it with: {update_command}"
            )
    current = {metric.name: metric for metric in metrics_of(report)}
    checks: list[Check] = []
    if baseline is not None:
        recorded = {metric.name: metric for metric in baseline.metrics}
        if not any(name.startswith((PATH_PREFIX, PATH_GROWTH_PREFIX)) for name in recorded):
            # A baseline recorded before reports had a tree: its paths are not new growth.
            current = {name: metric for name, metric in current.items() if not name.startswith((PATH_PREFIX, PATH_GROWTH_PREFIX))}
        if RETAINED_BYTES not in recorded:
            # Recorded before the release check: what is retained today is not new.
            current = {name: metric for name, metric in current.items() if name not in (RETAINED_BYTES, RETAINED_OBJECTS)}
        for name, metric in current.items():
            before = recorded.get(name)
            if before is None:
                # A new attribute or a new growth: judged against zero.
                upper, _ = _limits(metric.kind, 0.0, tolerances)
                status = "regressed" if metric.kind != "rss" and metric.value > upper else "new"
                checks.append(Check(name, metric.label, metric.kind, "baseline", None, metric.value, upper, status, metric.site))
                continue
            upper, lower = _limits(metric.kind, before.value, tolerances)
            status = "regressed" if metric.value > upper else "improved" if metric.value < lower else "ok"
            checks.append(
                Check(name, metric.label, metric.kind, "baseline", before.value, metric.value, upper, status, metric.site or before.site)
            )
        for name, before in recorded.items():
            if name not in current and before.kind != "rss":
                checks.append(Check(name, before.label, before.kind, "baseline", before.value, 0.0, before.value, "removed", before.site))
    if budgets.per_agent is not None:
        largest = current["max_agent_bytes"].value
        checks.append(
            Check("budget:per_agent", "largest agent vs --budget-per-agent", "bytes", "budget", None, largest,
                  float(budgets.per_agent), "regressed" if largest > budgets.per_agent else "ok")
        )
    if budgets.total is not None:
        total = current["distinct_bytes"].value
        checks.append(
            Check("budget:total", "population distinct bytes vs --budget-total", "bytes", "budget", None, total,
                  float(budgets.total), "regressed" if total > budgets.total else "ok")
        )
    if budgets.max_leak is not None:
        growth = current["growth_per_step"].value
        checks.append(
            Check("budget:max_leak", "growth per agent per step vs --max-leak", "growth", "budget", None, growth,
                  float(budgets.max_leak), "regressed" if growth > budgets.max_leak else "ok")
        )
    if budgets.max_retained is not None:
        if report.retention is None:
            raise UsageError("--max-retained needs a report with the release check (profile it again with this fa-mem)")
        retained_bytes = float(report.retention.retained_bytes)
        checks.append(
            Check("budget:max_retained", "bytes retained after release vs --max-retained", "bytes", "budget", None, retained_bytes,
                  float(budgets.max_retained), "regressed" if retained_bytes > budgets.max_retained else "ok")
        )
    passed = not any(check.status == "regressed" for check in checks)
    return GateResult(passed, checks, fingerprint, baseline_path, update_command, tolerances)


def describe_value(kind: str, value: float | None) -> str:
    if value is None:
        return "-"
    if kind == "flag":
        return "leaking" if value else "no leak"
    if kind == "growth":
        return f"{format_bytes(value)}/step"
    return format_bytes(value)


def describe_change(check: Check) -> str:
    change = check.change
    if change is None:
        return "new" if check.source == "baseline" else ""
    if check.kind == "flag":
        return "now leaking" if change > 0 else "no longer leaking" if change < 0 else ""
    text = format_bytes(change, signed=True) + ("/step" if check.kind == "growth" else "")
    if check.baseline:
        text += f" ({change / check.baseline:+.1%})"
    return text


def annotation_lines(result: GateResult) -> list[str]:
    """GitHub workflow commands (``::error``) for every regression, at its source line when known."""
    lines = []
    for check in result.regressions:
        message = visible(
            f"{check.label}: {describe_value(check.kind, check.baseline)} -> {describe_value(check.kind, check.now)}"
            f" (limit {describe_value(check.kind, check.limit)})"
        ).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        location = ""
        if check.site and ":" in check.site:
            path, _, line = check.site.rpartition(":")
            try:
                path = os.path.relpath(path)
            except ValueError:
                pass
            # Property values: GitHub's escapes, and nothing that ends the command.
            safe_path = visible(path).replace("%", "%25").replace(",", "%2C").replace(":", "%3A")
            location = f" file={safe_path},line={visible(line).replace(',', '%2C')},"
        lines.append(f"::error{location or ' '}title=fa-mem memory regression::{message}")
    return lines
