import dataclasses
import errno
import json
import os

import pytest

from fa_memtool.errors import OutputError, ReportError, UsageError
from fa_memtool.report import (
    SCHEMA_VERSION,
    Allocations,
    GCReport,
    Growth,
    Population,
    Report,
    Timing,
    Workload,
    load_report,
    report_from_json,
    save_report,
    write_atomic,
)
from fa_memtool.sizing import SharedGroup


def _report() -> Report:
    return Report(
        schema_version=SCHEMA_VERSION,
        fa_mem_version="0",
        complete=True,
        workload=Workload("m.py", "m", "m.create_agents", "step", "default", 2, 3, 0, 1, True, "tracemalloc", "3.11", "linux"),
        population=Population(2, 3, 100, 50.0, 40.0, 80, 20, 0, 7, None, 0),
        agents=[],
        shared=[SharedGroup(2, 20, 1, True, ["table"], "ndarray float64 (2,)", 20)],
        growth=Growth([], 0.0, 0.0, 0.0, False, "stable"),
        allocations=Allocations("tracemalloc", 10),
        gc=GCReport([1, 0, 0], 0.001, 1.0, 0.01),
        timing=Timing(0.1, 50.0, 1.0, 2.0, 3.0, 1.0, 1.1, 0.1, None, None, 0.1),
        process=[],
    )


def test_round_trip_through_json(tmp_path):
    report = _report()
    path = tmp_path / "r.json"
    save_report(report, path)
    loaded = load_report(path)
    assert dataclasses.asdict(loaded) == dataclasses.asdict(report)
    assert isinstance(loaded.shared[0], SharedGroup)


def test_unknown_fields_from_a_newer_version_are_ignored():
    data = json.loads(_report().to_json())
    data["population"]["something_new"] = 1
    data["brand_new_section"] = {}
    assert report_from_json(json.dumps(data)).population.distinct_bytes == 100


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{", "not valid JSON"),
        ("[]", "not an fa-mem report"),
        (json.dumps({"schema_version": 999}), "schema_version 999"),
        (json.dumps({"schema_version": SCHEMA_VERSION}), "not a complete"),
    ],
)
def test_bad_reports_are_refused_with_one_reason(text, fragment):
    with pytest.raises(ReportError, match=fragment):
        report_from_json(text)


def test_missing_report(tmp_path):
    with pytest.raises(ReportError, match="no report at"):
        load_report(tmp_path / "absent.json")


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "baseline.json"
    path.write_text("old")

    def broken_fsync(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OutputError, match="No space left on device; the file that was there is kept") as raised:
        write_atomic(path, "new")
    assert raised.value.exit_code == 74
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["baseline.json"]


def test_write_atomic_into_a_missing_directory(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        write_atomic(tmp_path / "nope" / "r.json", "x")


def test_accelerator_bytes_round_trip_and_get_their_own_columns():
    """Bytes on accelerators travel through the JSON as per-device maps and are shown
    apart from the host bytes: in the summary, per agent and per path."""
    import io

    from rich.console import Console

    from fa_memtool.pathtree import PathNode
    from fa_memtool.renderers.terminal import render
    from fa_memtool.report import AgentReport

    report = _report()
    report.population.device_bytes = {"cuda:0": 8_000_000}
    report.agents = [AgentReport(index, "Agent", 30, 20, 40.0, 0, device_bytes={"cuda:0": 4_000_000.0}) for index in range(2)]
    weight = PathNode("[0]", "policy[0]", "Linear", 40.0, 40.0, 40.0, device_bytes=4_000_000.0, device="cuda:0")
    report.paths = [PathNode("policy", "policy", "Sequential", 50.0, 50.0, 50.0, device_bytes=4_000_000.0, children=[weight])]
    again = report_from_json(report.to_json())
    assert again.population.device_bytes == {"cuda:0": 8_000_000}
    assert again.agents[0].device_bytes == {"cuda:0": 4_000_000.0}
    assert again.paths[0].children[0].device == "cuda:0"
    out = io.StringIO()
    render(again, Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert "on accelerators" in text and "cuda:0 8 MB distinct (not in host bytes or RSS)" in text
    assert "cuda:0 4 MB" in text  # per agent
    assert "4 MB cuda:0" in text  # the path row


def test_errors_cross_processes_as_their_own_class_or_their_exit_codes():
    from fa_memtool.errors import (
        InternalError,
        OutputError,
        ResourceLimitExceeded,
        StepError,
        StepFailed,
        WorkloadError,
        error_from_record,
        error_record,
    )

    for error in (WorkloadError("no factory"), ResourceLimitExceeded("too big"), OutputError("disk full"), InternalError("bug")):
        again = error_from_record(error_record(error))
        assert type(again) is type(error) and again.message == error.message and again.exit_code == error.exit_code
    # A class that needs more than a message comes back as the class of its exit code.
    step = error_from_record(error_record(StepError("agent 3 raised", step=2, agent=3)))
    assert type(step) is StepFailed and step.exit_code == 4
    unknown = error_from_record({"class": "Nope", "message": "m", "exit_code": 99})
    assert type(unknown) is InternalError and unknown.exit_code == 70


def test_a_tree_of_paths_nested_too_deeply_is_refused_not_a_crash():
    """JSON that parses but nests the tree of paths deeper than it can be read."""
    depth = 400  # the parser takes it; building dataclasses (several frames per level) does not
    row = '{"name": "[0]", "path": "x", "type_name": "list", "deep_bytes": 0, "exclusive_bytes": 0, "amortized_bytes": 0, "children": ['
    nested = row * depth + "]}" * depth
    text = _report().to_json()
    text = text[: text.rindex("}")] + f', "paths": [{nested}]' + "}"
    json.loads(text)  # valid JSON
    with pytest.raises(ReportError, match="nested too deeply"):
        report_from_json(text)
