"""Every third-party file in tests/data/traces: read, with concrete facts about each.

The expected numbers were counted from the raw files with ``json.loads`` (and base64 by
hand for Kiali's ids), independently of the reader.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from latency_ledger.model import Span, SpanKind, Trace
from latency_ledger.read import ReadStats, read_traces


def _read(path: Path) -> tuple[list[Trace], ReadStats]:
    stats = ReadStats()
    return list(read_traces([path], stats=stats)), stats


def _spans(traces: list[Trace]) -> dict[str, Span]:
    return {s.span_id: s for t in traces for s in t.spans}


def _kinds(traces: list[Trace]) -> Counter[SpanKind]:
    return Counter(s.kind for t in traces for s in t.spans)


def test_opentelemetry_proto_example_json(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "otlp-json/opentelemetry-proto__trace.json")
    assert (stats.files, stats.spans, stats.traces, dict(stats.skipped)) == (1, 1, 1, {})
    # Upper-case hex ids in the file come out lower-case.
    span = _spans(traces)["eee19b7ec3c1b174"]
    assert span == Span(
        trace_id="5b8efff798038103d269b633813fc60c",
        span_id="eee19b7ec3c1b174",
        parent_span_id="eee19b7ec3c1b173",
        name="I'm a server span",
        kind=SpanKind.SERVER,
        start_ns=1544712660000000000,
        end_ns=1544712661000000000,
        is_error=False,
        attributes={"my.span.attr": "some value"},
        service="my.service",
        resource={"service.name": "my.service"},
    )


@pytest.mark.parametrize(
    "name", ["opentelemetry-proto__trace.protobuf-bin", "opentelemetry-proto__trace.protobuf-text"]
)
def test_opentelemetry_proto_example_protobuf_matches_json(shared_traces: Path, name: str) -> None:
    from_json, _ = _read(shared_traces / "otlp-json/opentelemetry-proto__trace.json")
    traces, stats = _read(shared_traces / "otlp-proto" / name)
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (1, 1, {})
    assert traces == from_json


def test_highlight_nextjs(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "otlp-json/highlight__nextjs.json")
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (8, 1, {})
    assert _kinds(traces) == {SpanKind.CLIENT: 3, SpanKind.INTERNAL: 3, SpanKind.SERVER: 2}
    spans = _spans(traces)
    assert sum(s.is_error for s in spans.values()) == 2
    server = spans["38c100c79c6b9943"]
    assert server.name == "GET /api/app-directory-test?success=false"
    assert server.kind is SpanKind.SERVER
    assert server.parent_span_id == "5e66c7bc054bfad5"
    assert (server.start_ns, server.end_ns) == (1692652030505000000, 1692652030527231000)
    assert server.attributes["http.status_code"] == 500  # intValue "500" -> int
    assert server.attributes["http.method"] == "GET"
    assert server.service == "unknown_service:/home/vkorolik/.local/share/nvm/v18.16.0/bin/node"
    # The resource travels with every span: the runtime is read from it.
    assert server.resource == {
        "service.name": server.service,
        "telemetry.sdk.language": "nodejs",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.15.2",
        "highlight.project_id": "1",
    }
    assert all(s.resource is server.resource for s in spans.values())  # one shared dict


@pytest.mark.parametrize(
    "path",
    ["otlp-json/kiali__responseTrace.json", "otlp-proto/DERIVED__kiali__responseTrace.binpb"],
)
def test_kiali_tempo_batches_with_base64_ids(shared_traces: Path, path: str) -> None:
    traces, stats = _read(shared_traces / path)
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (8, 1, {})
    assert traces[0].trace_id == "3ba55609c3cde49649cd77d1f9dcd936"  # O6VWCcPN5JZJzXfR+dzZNg==
    assert _kinds(traces) == {SpanKind.CLIENT: 4, SpanKind.SERVER: 4}  # "SPAN_KIND_*" names
    spans = _spans(traces)
    root = spans["49cd77d1f9dcd936"]  # Sc130fnc2TY=
    assert root.parent_span_id == ""
    assert root.service == "istio-ingressgateway.istio-system"
    server = spans["84756b1dab0856fa"]  # hHVrHasIVvo=
    assert server.kind is SpanKind.SERVER
    assert server.parent_span_id == "49cd77d1f9dcd936"
    assert (server.start_ns, server.end_ns) == (1701779876571116000, 1701779876582555000)
    assert server.attributes["http.method"] == "GET"
    assert server.attributes["http.status_code"] == "200"  # a stringValue stays a string
    assert server.service == "productpage.bookinfo"


def test_opentelemetry_rust(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "otlp-json/opentelemetry-rust__serialized_traces.json")
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (2, 1, {})
    spans = _spans(traces)
    child = spans["cd7cf7bf939930b7"]
    assert child.name == "Sub operation..."
    assert child.kind is SpanKind.INTERNAL
    assert child.parent_span_id == "d58cf2d702a061e0"
    assert (child.start_ns, child.end_ns) == (1703985537070566698, 1703985537070572718)
    assert child.attributes == {"lemons": "five"}
    assert spans["d58cf2d702a061e0"].parent_span_id == ""
    assert child.service == "basic-otlp-tracing-example"


def test_otel_tui_jsonl_mixed_with_logs_and_metrics(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "otlp-json/otel-tui__test_data.json")
    # 97 lines: 41 resourceSpans, 40 resourceMetrics, 16 resourceLogs.
    assert (stats.spans, stats.traces, stats.skipped["non_trace_line"]) == (547, 141, 56)
    assert set(stats.skipped) == {"non_trace_line"}
    assert len(stats.problems) == 1
    assert "skipped 56 lines of logs/metrics" in stats.problems[0]
    assert _kinds(traces) == {SpanKind.SERVER: 277, SpanKind.CLIENT: 243, SpanKind.INTERNAL: 27}
    flag = _spans(traces)["c0840114fe7c0667"]
    assert flag.name == "flagSync"
    assert flag.trace_id == "b0a6f062c2099ee37591d62d1cefbb49"
    assert (flag.start_ns, flag.end_ns) == (1730291040218138154, 1730291040221353061)
    assert flag.attributes["feature_flag.change_count"] == 11
    assert flag.service == "flagd"


def test_go_instrumentation_fixture_has_masked_ids_and_no_times(shared_traces: Path) -> None:
    # An e2e "expected output" file: ids are "xxxxx" and times are stripped, so no span
    # is usable; each is refused with its own line.
    path = shared_traces / "otlp-json/opentelemetry-go-instrumentation__databasesql-traces.json"
    traces, stats = _read(path)
    assert (traces, stats.spans, dict(stats.skipped)) == ([], 0, {"invalid_id": 18})
    assert stats.problems[0] == (
        f"{path}: span 'xxxxx' 'SELECT contacts' has an invalid trace id 'xxxxx'"
    )


def test_jaeger_download_with_leading_zeros_dropped(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "jaeger-json/jaeger-analytics-java__ui-trace.json")
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (2, 1, {})
    # "2db17286b3e6b148" is a 64-bit trace id: widened with zeros, as the Collector does.
    assert traces[0].trace_id == "0" * 16 + "2db17286b3e6b148"
    spans = _spans(traces)
    root = spans["2db17286b3e6b148"]
    assert (root.kind, root.parent_span_id, root.name) == (
        SpanKind.SERVER,
        "",
        "/api/services/{service}/operations",
    )
    assert (root.start_ns, root.end_ns) == (1571326774777373000, 1571326774781572000)
    assert root.attributes["http.status_code"] == 200  # "int64" tag
    assert root.attributes["sampler.param"] == 1
    assert "span.kind" not in root.attributes  # consumed as the kind
    child = spans["0ec2b4e0bcea566d"]  # "ec2b4e0bcea566d" in the file
    assert (child.kind, child.parent_span_id) == (SpanKind.INTERNAL, "2db17286b3e6b148")
    assert root.service == child.service == "jaeger-query"
    assert root.resource == {
        "service.name": "jaeger-query",
        "client-uuid": "46d69fcdf947a814",
        "hostname": "simple-streaming-query-66f49db66-8x9hd",
        "ip": "10.129.2.13",
        "jaeger.version": "Go-2.15.1dev",
    }


def test_jaeger_bare_trace_of_two_services(shared_traces: Path) -> None:
    path = "jaeger-json/jaeger-ui__spanAmongEachOtherGroupedAndSpans.json"
    traces, stats = _read(shared_traces / path)
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (17, 1, {})
    assert traces[0].trace_id == "0df84e36b9e2ee3815d07f0867a5be1f"  # 31 digits in the file
    assert _kinds(traces) == {SpanKind.INTERNAL: 14, SpanKind.SERVER: 2, SpanKind.CLIENT: 1}
    spans = _spans(traces)
    assert spans["0a68c6983a6d81a2"].parent_span_id == "6f9bbe751e5fd944"
    assert spans["6f9bbe751e5fd944"].service == "customers-service"
    assert spans["6962df17f54c3741"].service == "api-gateway"


def test_zipkin_v1_is_refused_with_one_line(shared_traces: Path) -> None:
    path = "zipkin-json/opentelemetry-collector__zipkin_v1_single_batch.json"
    traces, stats = _read(shared_traces / path)
    assert (traces, stats.spans, dict(stats.skipped)) == ([], 0, {"unsupported_format": 1})
    assert stats.problems == [
        f"{shared_traces / path}: unsupported format: Zipkin v1 JSON "
        "(Zipkin v2 JSON is read: fetch it from Zipkin's /api/v2/trace/{id})"
    ]


def test_zipkin_envoy_shared_server_span_without_its_client(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "zipkin-json/zipkin__envoy.json")
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (1, 1, {})
    [span] = traces[0].spans
    # No client half in the file: the shared span keeps its id.
    assert (span.span_id, span.kind, span.parent_span_id) == (
        "978883983d506fa5",
        SpanKind.SERVER,
        "",
    )
    assert (span.start_ns, span.end_ns) == (1570523661059232000, 1570523661186347000)
    assert span.attributes["http.status_code"] == "200"  # Zipkin tags are strings
    assert span.service == "unknown_service"  # localEndpoint has no serviceName


def test_zipkin_kafka(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "zipkin-json/zipkin__messaging-kafka.json")
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (28, 1, {})
    counts = _kinds(traces)
    assert counts == {SpanKind.INTERNAL: 12, SpanKind.PRODUCER: 9, SpanKind.CONSUMER: 7}
    assert {s.service for t in traces for s in t.spans} == {"servicea", "serviceb"}


def test_zipkin_sql_spans_name_their_peer(shared_traces: Path) -> None:
    traces, stats = _read(shared_traces / "zipkin-json/zipkin__simple-db-p6.json")
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (5, 1, {})
    assert _kinds(traces) == {SpanKind.CLIENT: 4, SpanKind.SERVER: 1}
    call = _spans(traces)["8b1e63c0f49a81f7"]
    assert call.attributes == {
        "sql.query": "call next value for hibernate_sequence",
        "peer.service": "app_db",  # remoteEndpoint.serviceName
    }
    assert call.parent_span_id == "19f84f102048e047"
    assert call.service == "bootifulmeters"


def test_whole_directory(shared_traces: Path) -> None:
    stats = ReadStats()
    traces = list(read_traces([shared_traces], stats=stats))
    # 547 + 8 + 8 + 8 + 1 + 1 + 1 + 2 spans from the OTLP files, 2 + 17 from Jaeger,
    # 1 + 28 + 5 from Zipkin v2.
    assert stats.spans == 629 == sum(len(t.spans) for t in traces)
    assert stats.files == 16  # 15 trace files and the README
    assert stats.skipped["unsupported_format"] == 1  # Zipkin v1
    assert stats.skipped["not_trace_data"] == 1  # README.md
