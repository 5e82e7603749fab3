"""Span times are judged once, in the reader (issue 13, defects 3 and 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from latency_ledger.analyze import analyze
from latency_ledger.read import ReadLimits, ReadStats, read_traces
from latency_ledger.read.limits import MAX_TIME_NS, WALL_CLOCK_NS, TimeCheck

T0 = 1_700_000_000_000_000_000
U64_MAX = (1 << 64) - 1


def span(n: int, start: int, end: int, **fields: Any) -> dict[str, Any]:
    return {
        "traceId": "ab" * 16,
        "spanId": f"{n:016x}",
        "name": f"s{n}",
        "kind": 3,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
    } | fields


def write(path: Path, *spans: dict[str, Any]) -> Path:
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}
    path.write_text(json.dumps(doc) + "\n")
    return path


def read(path: Path, **limits: Any) -> tuple[list[str], ReadStats]:
    stats = ReadStats()
    traces = list(read_traces([path], stats=stats, limits=ReadLimits(**limits)))
    return sorted(s.name for t in traces for s in t.spans), stats


@pytest.mark.parametrize(
    ("start", "end", "reason"),
    [
        (T0, U64_MAX, "time_out_of_range"),  # a valid uint64, not a clock reading
        (T0, MAX_TIME_NS + 1, "time_out_of_range"),
        (1, T0, "implausible_duration"),  # a 57-year request
        (T0, T0 + 2 * 86_400 * 10**9, "implausible_duration"),
        (T0, T0 - 1, "end_before_start"),
        (0, T0, "span_without_start_time"),
        (T0, 0, "span_without_end_time"),
        (-5, T0, "time_out_of_range"),
    ],
)
def test_unusable_times_are_counted_skips(
    tmp_path: Path, start: int, end: int, reason: str
) -> None:
    path = write(tmp_path / "t.jsonl", span(1, T0, T0 + 1000), span(2, start, end))
    names, stats = read(path)
    assert names == ["s1"]
    assert dict(stats.skipped) == {reason: 1}
    assert stats.problems[0].startswith(f"{path}:1: span 0000000000000002 's2' ")


def test_a_zeroed_clock_among_wall_clock_spans_is_implausible(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.jsonl", span(1, T0, T0 + 1000), span(2, 1000, 5000), span(3, T0, T0 + 5)
    )
    names, stats = read(path)
    assert names == ["s1", "s3"]
    assert dict(stats.skipped) == {"implausible_time": 1}
    assert "before 2000" in stats.problems[0]


def test_small_times_alone_are_fine(tmp_path: Path) -> None:
    # Hand-written examples use small numbers; with no wall-clock span they are consistent.
    path = write(tmp_path / "t.jsonl", span(1, 1000, 5000), span(2, 2000, 3000))
    names, stats = read(path)
    assert names == ["s1", "s2"]
    assert not stats.skipped


def test_the_span_length_limit_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", span(1, T0, T0 + 10**9), span(2, T0, T0 + 10**6))
    names, stats = read(path, max_span_ns=10**8)
    assert names == ["s2"]
    assert dict(stats.skipped) == {"implausible_duration": 1}


def test_protobuf_fixed64_at_its_maximum(tmp_path: Path) -> None:
    data = TracesData()
    scope = data.resource_spans.add().scope_spans.add()
    for n, end in ((1, T0 + 1000), (2, U64_MAX)):
        s = scope.spans.add()
        s.trace_id = b"\xab" * 16
        s.span_id = n.to_bytes(8, "big")
        s.name = f"s{n}"
        s.start_time_unix_nano = T0
        s.end_time_unix_nano = end
    path = tmp_path / "t.pb"
    path.write_bytes(data.SerializeToString())
    names, stats = read(path)
    assert names == ["s1"]
    assert dict(stats.skipped) == {"time_out_of_range": 1}


def test_a_uint64_end_does_not_overflow_the_analysis(tmp_path: Path) -> None:
    # Before the fix: OverflowError in findings.py (array('q')), exit 1 with a traceback.
    server = span(1, T0, T0 + 10**7, kind=2, name="GET /x")
    query = span(
        2,
        T0 + 1000,
        U64_MAX,
        parentSpanId=f"{1:016x}",
        attributes=[{"key": "db.system", "value": {"stringValue": "postgresql"}}],
    )
    path = write(tmp_path / "t.jsonl", server, query)
    report = analyze([path])
    assert report.inputs.requests == 1
    assert report.inputs.skipped == {"time_out_of_range": 1}


def test_time_check_accepts_and_raises_its_floor() -> None:
    check = TimeCheck(ReadLimits())
    assert check.problem(1000, 2000) is None
    assert check.floor == 1
    assert check.problem(WALL_CLOCK_NS, WALL_CLOCK_NS + 1) is None
    assert check.floor == WALL_CLOCK_NS
    assert check.problem(1000, 2000) == (
        "implausible_time",
        "starts at 1000 ns, before 2000 while the file's spans are wall-clock times",
    )
