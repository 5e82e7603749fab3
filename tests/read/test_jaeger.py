"""Jaeger JSON details the shape tests in test_formats_agree.py do not reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latency_ledger.model import Span, SpanKind, Trace
from latency_ledger.read import ReadStats, read_traces

TRACE = "a3c4e5f60718293a"
T0 = 1_700_000_000_000_000  # us


def _read(tmp_path: Path, doc: object) -> tuple[list[Trace], ReadStats]:
    path = tmp_path / "j.json"
    path.write_text(json.dumps(doc))
    stats = ReadStats()
    return list(read_traces([path], stats=stats)), stats


def span(span_id: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceID": TRACE,
        "spanID": span_id,
        "operationName": "op",
        "references": [],
        "startTime": T0,
        "duration": 1000,
        "tags": [],
        "process": {"serviceName": "svc", "tags": []},
    }
    out.update(fields)
    return out


def _by_id(traces: list[Trace]) -> dict[str, Span]:
    return {s.span_id: s for t in traces for s in t.spans}


def test_parent_is_the_first_child_of_then_follows_from_then_parent_span_id(
    tmp_path: Path,
) -> None:
    follows = [{"refType": "FOLLOWS_FROM", "traceID": TRACE, "spanID": "b"}]
    both = [*follows, {"refType": "CHILD_OF", "traceID": TRACE, "spanID": "c"}]
    doc = [
        span("1", references=both),
        span("2", references=follows),
        span("3", parentSpanID="d"),
    ]
    traces, stats = _read(tmp_path, doc)
    assert stats.spans == 3
    parents = {k: s.parent_span_id for k, s in _by_id(traces).items()}
    assert parents == {
        "0000000000000001": "000000000000000c",
        "0000000000000002": "000000000000000b",
        "0000000000000003": "000000000000000d",
    }


def test_tag_types(tmp_path: Path) -> None:
    tags = [
        {"key": "i", "type": "int64", "value": "42"},
        {"key": "f", "type": "float64", "value": "0.5"},
        {"key": "b", "type": "bool", "value": "true"},
        {"key": "bin", "type": "binary", "value": "Af8="},
        {"key": "s", "type": "string", "value": "x"},
        {"key": "nested", "type": "string", "value": {"a": 1}},
        {"type": "string", "value": "no key"},
        "not a tag",
        {"key": "span.kind", "type": "string", "value": "PRODUCER"},
        {"key": "otel.status_code", "type": "string", "value": "ERROR"},
    ]
    traces, _ = _read(tmp_path, [span("1", tags=tags)])
    [s] = traces[0].spans
    assert s.attributes == {"i": 42, "f": 0.5, "b": True, "bin": "01ff", "s": "x", "nested": None}
    assert (s.kind, s.is_error) == (SpanKind.PRODUCER, True)


def test_api_v2_tags_and_times(tmp_path: Path) -> None:
    v2 = {
        "traceId": "AAAAAAAAAACjxOX2BxgpOg==",
        "spanId": "AAAAAAAAAAE=",
        "operationName": "op",
        "startTime": "2023-11-14T22:13:20.000000123Z",
        "duration": "0.000001500s",
        "tags": [
            {"key": "s", "vStr": "x"},
            {"key": "i", "vType": "INT64", "vInt64": "-7"},
            {"key": "d", "vType": "FLOAT64", "vFloat64": 1.25},
            {"key": "t", "vType": "BOOL", "vBool": True},
            {"key": "bin", "vType": "BINARY", "vBinary": "Af8="},
        ],
        "process": {"serviceName": "svc"},
    }
    traces, stats = _read(tmp_path, {"result": {"spans": [v2]}})
    assert dict(stats.skipped) == {}
    [s] = traces[0].spans
    assert (s.trace_id, s.span_id) == ("0" * 16 + TRACE, "0000000000000001")
    assert (s.start_ns, s.end_ns) == (1_700_000_000_000_000_123, 1_700_000_000_000_001_623)
    assert s.attributes == {"s": "x", "i": -7, "d": 1.25, "t": True, "bin": "01ff"}


def test_unknown_process_and_bad_spans_are_noted(tmp_path: Path) -> None:
    trace = {
        "traceID": TRACE,
        "spans": [
            {**span("1"), "processID": "p9", "process": None},
            span("zz-not-hex"),
            span("3", startTime=None),
            span("4", duration="long"),
            span("5", duration=-1),
            7,
        ],
        "processes": {"p1": {"serviceName": "a"}},
    }
    traces, stats = _read(tmp_path, {"data": [trace, "junk"]})
    assert [s.service for t in traces for s in t.spans] == ["unknown_service"]
    assert dict(stats.skipped) == {
        "invalid_id": 1,
        "span_without_start_time": 1,
        "span_without_end_time": 1,
        "end_before_start": 1,
        "invalid_span": 2,
    }


def test_processes_are_shared_resources(tmp_path: Path) -> None:
    process = {"serviceName": "svc", "tags": [{"key": "telemetry.sdk.language", "value": "go"}]}
    traces, _ = _read(tmp_path, [span("1", process=process), span("2", process=dict(process))])
    one, two = traces[0].spans
    assert one.resource == {"service.name": "svc", "telemetry.sdk.language": "go"}
    assert one.resource is two.resource
