"""Zipkin v2 JSON: ids of both widths, shared spans, late halves, v1 refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latency_ledger.model import Span, SpanKind, Trace
from latency_ledger.read import ReadStats, read_traces

T0 = 1_700_000_000_000_000  # us
LOW = "a3c4e5f60718293a"
WIDE = "00f067aa0ba902b7" + LOW


def _read(tmp_path: Path, doc: object, name: str = "z.json") -> tuple[list[Trace], ReadStats]:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    stats = ReadStats()
    return list(read_traces([path], stats=stats)), stats


def span(id_: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": WIDE,
        "id": id_,
        "name": "op",
        "timestamp": T0,
        "duration": 1000,
        "localEndpoint": {"serviceName": "a"},
    }
    out.update(fields)
    return out


def _by_id(traces: list[Trace]) -> dict[str, Span]:
    return {s.span_id: s for t in traces for s in t.spans}


def test_64_bit_trace_ids_are_widened(tmp_path: Path) -> None:
    traces, stats = _read(tmp_path, [span("0000000000000001", traceId=LOW)])
    assert stats.spans == 1
    assert traces[0].trace_id == "0" * 16 + LOW


def test_a_64_bit_id_joins_the_128_bit_trace_it_is_the_low_half_of(tmp_path: Path) -> None:
    doc = [
        span("0000000000000001", kind="SERVER"),
        span("0000000000000002", traceId=LOW.upper(), parentId="0000000000000001"),
    ]
    traces, stats = _read(tmp_path, doc)
    assert (stats.spans, stats.traces) == (2, 1)
    assert traces[0].trace_id == WIDE


def test_a_list_of_traces_as_api_v2_traces_answers(tmp_path: Path) -> None:
    other = "1" * 32
    doc = [[span("0000000000000001")], [span("0000000000000002", traceId=other)]]
    traces, stats = _read(tmp_path, doc)
    assert (stats.spans, stats.traces) == (2, 2)
    assert {t.trace_id for t in traces} == {WIDE, other}


def test_shared_span_becomes_a_client_and_a_server_below_it(tmp_path: Path) -> None:
    shared = "00000000000000c1"
    doc = [
        span("00000000000000a1", kind="SERVER", duration=10_000),
        span(shared, parentId="00000000000000a1", kind="CLIENT", timestamp=T0 + 1000,
             duration=6000, remoteEndpoint={"serviceName": "b", "ipv4": "10.0.0.2", "port": 80}),
        span(shared, parentId="00000000000000a1", kind="SERVER", shared=True,
             timestamp=T0 + 2000, duration=4000, localEndpoint={"serviceName": "b"}),
        # b's own work under the shared id, and a child the client side reported.
        span("00000000000000d1", parentId=shared, timestamp=T0 + 3000,
             localEndpoint={"serviceName": "b"}),
        span("00000000000000d2", parentId=shared, timestamp=T0 + 1500),
    ]  # fmt: skip
    traces, stats = _read(tmp_path, doc)
    assert (stats.spans, dict(stats.skipped)) == (5, {})
    spans = _by_id(traces)
    client = spans[shared]
    [server] = [s for s in spans.values() if s.kind is SpanKind.SERVER and s.service == "b"]
    assert server.span_id not in (shared, "00000000000000a1")
    assert (client.kind, client.service, client.parent_span_id) == (
        SpanKind.CLIENT,
        "a",
        "00000000000000a1",
    )
    assert client.attributes == {
        "peer.service": "b",
        "network.peer.address": "10.0.0.2",
        "network.peer.port": 80,
    }
    assert server.parent_span_id == shared
    assert (server.start_ns, server.end_ns) == ((T0 + 2000) * 1000, (T0 + 6000) * 1000)
    assert spans["00000000000000d1"].parent_span_id == server.span_id  # b's work
    assert spans["00000000000000d2"].parent_span_id == shared  # a's, under its client span


def test_shared_pair_without_the_shared_flag_is_told_apart_by_kind(tmp_path: Path) -> None:
    doc = [
        span("00000000000000c1", kind="CLIENT"),
        span("00000000000000c1", kind="SERVER", localEndpoint={"serviceName": "b"}),
    ]
    traces, _ = _read(tmp_path, doc)
    kinds = {s.service: (s.kind, s.parent_span_id) for s in traces[0].spans}
    assert kinds == {"a": (SpanKind.CLIENT, ""), "b": (SpanKind.SERVER, "00000000000000c1")}


def test_late_reports_of_one_span_are_merged(tmp_path: Path) -> None:
    doc = [
        span("00000000000000a1", kind="SERVER", timestamp=T0, duration=5000,
             tags={"http.method": "GET"}),
        span("00000000000000a1", kind="SERVER", timestamp=T0 + 1000, duration=7000,
             tags={"http.status_code": "200", "http.method": "POST"}),
    ]  # fmt: skip
    traces, stats = _read(tmp_path, doc)
    assert stats.spans == 1
    [merged] = traces[0].spans
    assert (merged.start_ns, merged.end_ns) == (T0 * 1000, (T0 + 8000) * 1000)
    assert merged.attributes == {"http.method": "GET", "http.status_code": "200"}


def test_error_tags_and_resource_tags(tmp_path: Path) -> None:
    tags = {
        "error": "boom",
        "otel.status_description": "boom",
        "telemetry.sdk.language": "java",
        "process.runtime.name": "OpenJDK Runtime Environment",
        "http.method": "GET",
    }
    traces, _ = _read(tmp_path, [span("00000000000000a1", tags=tags)])
    [s] = traces[0].spans
    assert s.is_error
    assert s.attributes == {"http.method": "GET"}
    assert s.resource == {
        "service.name": "a",
        "telemetry.sdk.language": "java",
        "process.runtime.name": "OpenJDK Runtime Environment",
    }
    assert s.kind is SpanKind.INTERNAL  # no kind given


def test_unusable_spans_are_noted_one_by_one(tmp_path: Path) -> None:
    doc = [
        span("00000000000000a1"),
        span("zz", name="bad-id"),
        span("00000000000000a3", duration=None),
        span("00000000000000a4", timestamp="soon"),
        span("00000000000000a5", duration=-5),
        "not a span",
    ]
    _, stats = _read(tmp_path, doc)
    assert stats.spans == 1
    assert dict(stats.skipped) == {
        "invalid_id": 1,
        "span_without_end_time": 1,
        "span_without_start_time": 1,
        "end_before_start": 1,
        "invalid_span": 1,
    }
    assert any("'bad-id' has an invalid span id" in p for p in stats.problems)


def test_zipkin_v1_is_refused_with_a_hint(tmp_path: Path) -> None:
    v1 = [
        {
            "traceId": LOW,
            "id": LOW,
            "name": "get",
            "annotations": [{"timestamp": T0, "value": "sr", "endpoint": {"serviceName": "a"}}],
            "binaryAnnotations": [],
        }
    ]
    traces, stats = _read(tmp_path, v1)
    assert (traces, dict(stats.skipped)) == ([], {"unsupported_format": 1})
    assert "Zipkin v1 JSON (Zipkin v2 JSON is read" in stats.problems[0]


def test_pretty_printed_zipkin_in_json_lines_position(tmp_path: Path) -> None:
    """The shape is decided from the document, however its first line looks."""
    path = tmp_path / "z.json"
    path.write_text("[\n" + json.dumps(span("00000000000000a1")) + "\n]\n")
    stats = ReadStats()
    assert len(list(read_traces([path], stats=stats))) == 1
    assert dict(stats.skipped) == {}
