"""The ClickHouse path gives the file path's report: same spans, read from the table.

The truth is the report ``analyze`` writes from the files themselves; the table holds
the same spans as the Collector's exporter stores them (every attribute a string, kinds
and statuses as names), so any difference is the ClickHouse path's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from latency_ledger.analyze import AnalyzeOptions, analyze
from latency_ledger.render.json import report_to_json
from latency_ledger.request_filter import RequestFilter

from .conftest import EXAMPLES, THIRD_PARTY, LoadDir

MS = 1_000_000


def _report(inputs: list[str], select: RequestFilter | None = None) -> dict[str, Any]:
    """The JSON report, less how many requests ClickHouse booked (kept in ``BOOKED``)."""
    options = AnalyzeOptions(select=select or RequestFilter())
    report = analyze(inputs, options=options)
    assert "unreadable_source" not in report.inputs.skipped, report.inputs.problems
    out = report_to_json(report)
    BOOKED[0] = out["inputs"].pop("booked_in_database", 0)
    return out


BOOKED = [0]


def _without_read_problems(report: dict[str, Any]) -> dict[str, Any]:
    """The report less what the file readers skipped (the table holds accepted spans only)
    and the count of inputs (15 files, one table)."""
    inputs = dict(report["inputs"])
    for key in ("files", "problems", "problem_count", "skipped"):
        inputs.pop(key, None)
    return {**report, "inputs": inputs}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("old_names", [False, True], ids=["current", "old-names"])
def test_example_traces_same_report(load_dir: LoadDir, path: Path, old_names: bool) -> None:
    url = load_dir([path], old_names=old_names)
    from_files = _report([str(path)])
    assert from_files["inputs"]["requests"] > 50  # the example really has requests
    assert _report([url]) == from_files
    # the collector's totals-only requests and its kept trees, all but profiled ones
    assert 0.9 < BOOKED[0] / from_files["inputs"]["requests"] < 1


def test_generated_traces_same_report(load_dir: LoadDir, gen: Any, tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    gen.write_otlp_jsonl(path, requests=400, spans_per_request=12, seed=11)
    url = load_dir([path])
    from_files = _report([str(path)])
    assert from_files["inputs"]["requests"] == 400
    assert _report([url]) == from_files
    assert BOOKED[0] == 400  # every generated trace is one SERVER span over its calls


def test_third_party_traces_same_report(load_dir: LoadDir) -> None:
    files = sorted(str(p) for p in THIRD_PARTY.rglob("*") if p.is_file() and p.suffix != ".md")
    url = load_dir(files)
    from_files = _report(files)
    assert from_files["inputs"]["requests"] > 10
    assert _without_read_problems(_report([url])) == _without_read_problems(from_files)
    assert 10 < BOOKED[0] < 100  # most are multi-service traces: booked in Python


def test_filters_same_as_on_files(load_dir: LoadDir, gen: Any, tmp_path: Path) -> None:
    """--since/--until/--service keep the same requests whether pushed into SQL or not."""
    path = tmp_path / "gen.jsonl"
    gen.write_otlp_jsonl(path, requests=300, spans_per_request=6, seed=5)
    url = load_dir([path])
    start = gen.START_NS
    select = RequestFilter(
        since_ns=start + 50 * MS, until_ns=start + 200 * MS, services=frozenset({"shop"})
    )
    everything = _report([str(path)])
    chosen = _report([str(path)], select)
    assert 0 < chosen["inputs"]["requests"] < everything["inputs"]["requests"]
    assert {e["service"] for e in chosen["endpoints"]} == {"shop"}
    from_table = _report([url], select)
    # The table's query fetches only traces the filter may keep: fewer spans read.
    assert from_table["inputs"]["spans"] < everything["inputs"]["spans"]
    for key in ("overall", "endpoints", "streams", "services"):
        assert from_table[key] == chosen[key]
    assert from_table["inputs"]["requests"] == chosen["inputs"]["requests"]
