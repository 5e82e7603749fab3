"""The export path: OTLP JSON lines, rotation, a bounded buffer, failures counted."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from latency_ledger.collect import CollectConfig, Collector, LedgerMiddleware
from latency_ledger.collect.booking import to_model_span
from latency_ledger.collect.encode import encode_traces_data
from latency_ledger.collect.export import CollectorStats, SpanSink
from latency_ledger.collect.files import JsonLinesFileExporter
from latency_ledger.profiles import ProfileAccumulator


def sample_spans() -> Sequence[Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("scope.a", "1.2")
    attributes = {"i": 3, "f": 1.5, "b": True, "s": 'x"y\n', "l": ("a", "b"), "n": (1, 2)}
    with tracer.start_as_current_span(
        "root", kind=trace.SpanKind.SERVER, attributes=attributes
    ) as s:
        s.record_exception(ValueError("bad \u00e9"))
        s.set_status(trace.StatusCode.ERROR, "failed")
        with provider.get_tracer("scope.b").start_as_current_span(
            "SELECT", kind=trace.SpanKind.CLIENT
        ):
            pass
    provider.shutdown()
    return exporter.get_finished_spans()


def normalized(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop the fields the reference encoder adds that carry nothing we read (flags)."""
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            ss.pop("schemaUrl", None)
            for span in ss["spans"]:
                span.pop("flags", None)
                for event in span.get("events", []):
                    event.pop("droppedAttributesCount", None)
    return doc


def test_encoding_matches_the_reference_otlp_json_encoder() -> None:
    spans = sample_spans()
    ours = normalized(json.loads(json.dumps(encode_traces_data(spans))))
    reference = normalized(json.loads(json.dumps(encode_spans(spans).to_dict())))
    assert ours == reference


def flat_spans(doc: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    return sorted(
        (
            json.dumps(rs["resource"], sort_keys=True),
            json.dumps(ss["scope"], sort_keys=True),
            json.dumps(span, sort_keys=True),
        )
        for rs in doc["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    )


def test_encoding_span_by_span_writes_the_same_spans(tmp_path: Path) -> None:
    spans = sample_spans()
    exporter = JsonLinesFileExporter(tmp_path, max_file_bytes=1 << 20)
    encoded = [exporter.encode_one(span) for span in spans]
    result = exporter.export_encoded([g for g, _ in encoded], [d for _, d in encoded])
    exporter.shutdown()
    assert result == SpanExportResult.SUCCESS
    (line,) = exporter.paths[0].read_text().splitlines()
    assert flat_spans(json.loads(line)) == flat_spans(encode_traces_data(spans))


def test_file_exporter_writes_lines_and_rotates(tmp_path: Path) -> None:
    spans = sample_spans()
    line = len(json.dumps(encode_traces_data(spans), separators=(",", ":"))) + 1
    bound = int(line * 2.5)  # two lines fit in a file, a third starts the next
    exporter = JsonLinesFileExporter(tmp_path / "out", max_file_bytes=bound)
    for _ in range(5):
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    files = sorted((tmp_path / "out").glob("*.jsonl"))
    assert [f.read_text().count("\n") for f in files] == [2, 2, 1]
    assert all(f.stat().st_size <= bound for f in files)
    lines = [text for f in files for text in f.read_text().splitlines()]
    assert all(len(json.loads(text)["resourceSpans"]) == 1 for text in lines)


def test_unwritable_directory_fails_the_batch_not_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    exporter = JsonLinesFileExporter(blocker / "traces", max_file_bytes=1 << 20)
    assert exporter.export(sample_spans()) == SpanExportResult.FAILURE


def test_full_disk_fails_the_batch_not_the_caller(tmp_path: Path) -> None:
    exporter = JsonLinesFileExporter(tmp_path, max_file_bytes=1 << 20)
    with open("/dev/full", "ab", buffering=0) as full:  # every write: ENOSPC
        exporter._open = lambda: setattr(exporter, "_file", full)  # type: ignore[method-assign]
        assert exporter.export(sample_spans()) == SpanExportResult.FAILURE


class RaisingExporter:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.exported: list[Any] = []

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self.failures:
            self.failures -= 1
            raise OSError("No space left on device")
        self.exported.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def test_sink_drops_past_its_bound_and_counts() -> None:
    stats = CollectorStats()
    exporter = InMemorySpanExporter()
    sink = SpanSink(exporter, stats=stats, max_spans=3, interval_s=60)
    spans = list(sample_spans())
    sink.put(spans)  # 2
    sink.put(spans)  # 4 > 3: dropped whole
    sink.put(spans[:1])  # 3
    sink.close()
    assert stats.dropped_spans == 2
    assert stats.spans_exported == 3
    assert len(exporter.get_finished_spans()) == 3


def test_sink_counts_a_raising_exporter() -> None:
    stats = CollectorStats()
    sink = SpanSink(RaisingExporter(failures=1), stats=stats, max_spans=100, interval_s=60)
    sink.put(sample_spans())
    sink.drain()
    sink.put(sample_spans())
    sink.close()
    assert stats.export_errors == 1
    assert stats.dropped_spans == 2
    assert stats.spans_exported == 2


def child_spans_app(collector: Collector, children: int) -> Any:
    tracer = collector.provider.get_tracer("test")

    async def many(request: Any) -> PlainTextResponse:
        for _ in range(children):
            with tracer.start_as_current_span(
                "q", kind=trace.SpanKind.CLIENT, attributes={"db.system": "sqlite"}
            ):
                pass
        if request.query_params.get("fail"):
            return PlainTextResponse("no", status_code=503)
        return PlainTextResponse("ok")

    return LedgerMiddleware(Starlette(routes=[Route("/many", many)]), collector=collector)


async def get(app: Any, path: str, query: bytes = b"") -> int:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": []}
    await app(scope, receive, send)
    return int(sent[0]["status"])


def test_app_answers_when_every_export_fails_and_the_next_span_says_so(
    make_collector: Callable[..., Any],
) -> None:
    exporter = RaisingExporter(failures=1)
    collector, _ = make_collector(keep_spans="all", exporter=exporter)
    app = child_spans_app(collector, children=2)

    async def main() -> list[int]:
        first = await get(app, "/many")
        collector.flush()  # the first batch fails here
        second = await get(app, "/many")
        return [first, second]

    assert asyncio.run(main()) == [200, 200]
    collector.flush()
    assert collector.stats.export_errors == 1
    (server,) = [s for s in exporter.exported if s.kind == trace.SpanKind.SERVER]
    assert server.attributes["ledger.collector.export_errors"] == 1
    assert server.attributes["ledger.collector.dropped_spans"] == 3
    assert server.attributes["process.pid"] == os.getpid()  # whose counters they are


def test_unwritable_output_dir_degrades_to_counting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    collector = Collector(
        CollectConfig(output_dir=blocker / "traces", set_global_provider=False), load_plugins=False
    )
    try:
        app = child_spans_app(collector, children=1)
        assert asyncio.run(get(app, "/many")) == 200
        collector.flush()
    finally:
        collector.shutdown()
    assert collector.stats.export_errors >= 1
    assert collector.stats.dropped_spans >= 1


def test_overflowing_buffer_drops_and_counts(make_collector: Callable[..., Any]) -> None:
    collector, exporter = make_collector(keep_spans="all", max_queue_spans=5)
    app = child_spans_app(collector, children=10)
    assert asyncio.run(get(app, "/many")) == 200
    collector.flush()
    assert collector.stats.dropped_spans == 11  # the request's 11 spans exceed 5 at once
    assert exporter.get_finished_spans() == ()


def test_sampled_keeps_failed_and_slowest_so_far_and_books_every_request(
    make_collector: Callable[..., Any],
) -> None:
    collector, exporter = make_collector(keep_spans="sampled", sample_rate=0.0)
    app = child_spans_app(collector, children=3)

    async def main() -> None:
        await get(app, "/many")  # the first of its endpoint in this interval: kept
        await get(app, "/many", b"fail=1")  # 503: kept
        await get(app, "/many")  # faster than the first (warm): not kept

    collector.keeper.slowest.clear()
    asyncio.run(main())
    collector.flush()
    servers = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    kept = [s.attributes["ledger.spans_kept"] for s in servers]
    children = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.CLIENT]
    assert len(servers) == 3  # every request booked
    assert kept[:2] == [True, True]
    assert len(children) == 3 * sum(kept)
    reasons = [
        (s.attributes.get("ledger.keep_reason"), s.attributes.get("ledger.keep_probability"))
        for s in servers
    ]
    assert reasons[:2] == [("slow", 1.0), ("failed", 1.0)]
    assert reasons[2] == ((None, None) if not kept[2] else ("slow", 1.0))
    for span in servers:  # booked in-process even when the children were dropped
        assert span.attributes["ledger.database_ns"] > 0


def test_keep_spans_none_exports_server_spans_only(make_collector: Callable[..., Any]) -> None:
    collector, exporter = make_collector(keep_spans="none")
    app = child_spans_app(collector, children=4)
    assert asyncio.run(get(app, "/many")) == 200
    collector.flush()
    (server,) = exporter.get_finished_spans()
    assert server.attributes["ledger.spans_kept"] is False
    assert server.attributes["ledger.database_ns"] > 0


def test_profiled_request_carries_a_small_bucketed_profile(
    make_collector: Callable[..., Any],
) -> None:
    collector, exporter = make_collector(keep_spans="none", profile_rate=1.0)

    async def burn(request: Any) -> PlainTextResponse:
        total = 0
        for i in range(200_000):
            total += i * i
        json.dumps([list(range(50))] * 500)
        return PlainTextResponse(str(total))

    app = LedgerMiddleware(Starlette(routes=[Route("/burn", burn)]), collector=collector)
    assert asyncio.run(get(app, "/burn")) == 200
    collector.flush()
    (server,) = exporter.get_finished_spans()
    raw = server.attributes["ledger.profile"]
    assert len(raw) < 2048
    profile = json.loads(raw)
    assert profile["samples"] > 0
    assert set(profile["buckets"]) <= {
        "framework",
        "validation_serialization",
        "orm",
        "database_driver",
        "application",
        "other",
    }
    assert profile["buckets"].get("application", 0) > 0
    assert all(isinstance(name, str) and weight > 0 for name, weight in profile["top"])
    assert collector.stats.profiles == 1
    # and the analyzer's reader takes it
    accumulator = ProfileAccumulator()
    model_span = to_model_span(server, "svc")
    accumulator.add(model_span, raw)
    assert not accumulator.errors
    summary = accumulator.summary("svc", "GET /burn")
    assert summary is not None
    assert summary.bucket_fraction["application"] > 0


@pytest.mark.parametrize(
    ("path", "bucket"),
    [
        ("/usr/lib/python3.11/json/encoder.py", "validation_serialization"),
        ("/x/site-packages/starlette/routing.py", "framework"),
        ("/x/site-packages/sqlalchemy/orm/query.py", "orm"),
        ("/x/site-packages/sqlalchemy/engine/base.py", "database_driver"),
        ("/x/site-packages/psycopg/cursor.py", "database_driver"),
        ("/x/site-packages/pydantic/main.py", "validation_serialization"),
        ("/home/me/shop/views.py", "application"),
        ("/x/site-packages/somelib/core.py", "other"),
    ],
)
def test_profile_buckets(path: str, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from latency_ledger.collect import profiling

    monkeypatch.setattr(profiling, "_ROOTS", ("/x/site-packages/", "/usr/lib/python3.11/"))
    assert profiling.bucket_of(path) == bucket
    assert profiling.bucket_of("/usr/lib/python3.11/functools.py") is None  # defers upward


def test_otlp_endpoint_variable_sends_there_instead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    import http.server
    import threading

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[bytes] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    try:
        collector = Collector(
            CollectConfig(output_dir=tmp_path, set_global_provider=False), load_plugins=False
        )
        try:
            assert asyncio.run(get(child_spans_app(collector, children=1), "/many")) == 200
        finally:
            collector.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    request = ExportTraceServiceRequest()
    request.ParseFromString(received[0])
    names = [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(names) == ["GET /many", "q"]
    assert list(tmp_path.iterdir()) == []  # nothing written to files


def test_first_per_interval_profiles_once_per_collapsed_path() -> None:
    from latency_ledger.collect.profiling import ProfileSampler

    sampler = ProfileSampler(rate=0.0, first_per_interval=True, interval_s=60)
    second = 1_000_000_000
    chosen = []
    for now, path in [(0, "/items/1"), (1, "/items/2"), (2, "/other"), (61, "/items/3")]:
        profiler = sampler.start(path, now * second)
        chosen.append(profiler is not None)
        if profiler is not None:
            sampler.stop(profiler)
    # /items/1 and /items/2 are one endpoint; a minute later it is profiled again
    assert chosen == [True, False, True, True]


_TEXT = st.text(max_size=30)
_NS = st.integers(0, 2**62)


@settings(max_examples=200, deadline=None)
@given(
    failed=st.booleans(),
    parent_id=st.one_of(st.none(), st.integers(1, 2**64 - 1)),
    name=_TEXT,
    method=_TEXT,
    path=_TEXT,
    scheme=_TEXT,
    address=st.one_of(st.none(), _TEXT),
    route=_TEXT,
    status=st.one_of(st.none(), st.integers(100, 599)),
    numbers=st.tuples(_NS, _NS, _NS, _NS, _NS, _NS, _NS, _NS, _NS),
    kept=st.booleans(),
    profile=st.one_of(st.none(), _TEXT),
    health=st.one_of(st.none(), st.tuples(_NS, _NS, _NS, _NS)),
    more=st.dictionaries(st.sampled_from(["ledger.native_threads_ns", "x%d"]), _NS),
    plugins=st.one_of(st.none(), st.dictionaries(st.text(min_size=1, max_size=8), _NS)),
    statements=st.one_of(
        st.none(),
        st.tuples(
            st.lists(st.tuples(st.integers(0, 2**63 - 1), st.integers(1, 99), _NS, _NS, _TEXT)),
            st.booleans(),
        ),
    ),
)
def test_server_span_fast_encoding_equals_the_readable_spans(
    failed: bool,
    parent_id: int | None,
    name: str,
    method: str,
    path: str,
    scheme: str,
    address: str | None,
    route: str,
    status: int | None,
    numbers: tuple[int, ...],
    kept: bool,
    profile: str | None,
    health: tuple[int, int, int, int] | None,
    more: dict[str, int],
    plugins: dict[str, int] | None,
    statements: tuple[list[tuple[int, int, int, int, str]], bool] | None,
) -> None:
    # Expected: byte for byte what the general encoder writes for the ReadableSpan the
    # SDK path builds from the same fields (quotes, control characters, surrogates...).
    from opentelemetry.sdk.trace import ReadableSpan

    from latency_ledger.collect.encode import ServerFields, encode_server_json, encode_span_json
    from latency_ledger.collect.spans import ERROR_STATUS, SCOPE, UNSET_STATUS

    cpu, start, end, *parts, overhead = numbers
    fields = ServerFields(
        method=method,
        path=path,
        scheme=scheme,
        address=address,
        route=route,
        status=status,
        cpu_ns=cpu,
        parts=tuple(parts),  # type: ignore[arg-type]
        kept=kept,
        profile=profile,
        health=health,
        overhead_ns=overhead,
        more=tuple(more.items()),
        plugins=plugins,
        statements=None
        if statements is None
        else (
            sum(row[1] for row in statements[0]),
            *(tuple(row[i] for row in statements[0]) for i in range(4)),
            tuple(row[4] for row in statements[0]) if statements[1] else (),
        ),  # type: ignore[arg-type]
    )
    context = trace.SpanContext(trace_id=2**127 + 5, span_id=2**63 + 7, is_remote=False)
    parent = (
        trace.SpanContext(trace_id=2**127 + 5, span_id=parent_id, is_remote=True)
        if parent_id is not None
        else None
    )
    readable = ReadableSpan(
        name=name,
        context=context,
        parent=parent,
        resource=Resource.create({"service.name": "shop"}),
        attributes=fields.attributes(),
        kind=trace.SpanKind.SERVER,
        status=ERROR_STATUS if failed else UNSET_STATUS,
        start_time=start,
        end_time=end,
        instrumentation_scope=SCOPE,
    )
    fast = encode_server_json(
        context.trace_id, context.span_id, parent_id, name, start, end, fields, failed
    )
    assert fast == encode_span_json(readable)
    json.loads(fast)


def test_after_fork_gives_a_new_sink_and_our_exporter_anew(tmp_path: Path) -> None:
    # Expected (what a forked child runs): counters restart, the sink and the exporter we
    # made are new (the file exporter's name carries the pid); an exporter the app gave
    # is kept. A real os.fork() is exercised in plugins/django/tests/test_fork.py.
    config = CollectConfig(output_dir=tmp_path, set_global_provider=False)
    ours = Collector(config, load_plugins=False)
    given = InMemorySpanExporter()
    theirs = Collector(config, exporter=given, load_plugins=False)
    try:
        old_sink, old_exporter = ours.sink, ours.sink.exporter
        ours.stats.requests = 5
        ours.after_fork()
        theirs.after_fork()
        assert ours.stats.requests == 0
        assert ours.sink is not old_sink
        assert type(ours.sink.exporter) is JsonLinesFileExporter
        assert ours.sink.exporter is not old_exporter
        assert theirs.sink.exporter is given
    finally:
        ours.shutdown()
        theirs.shutdown()


class SelfTracingExporter:
    """An exporter whose traffic is recorded by an instrumentation that ignores the
    suppress keys: every export puts a span of its own back into the sink."""

    def __init__(self) -> None:
        self.sink: SpanSink | None = None
        self.exports = 0
        self.suppressed: list[bool] = []

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled

        self.exports += 1
        self.suppressed.append(not is_http_instrumentation_enabled())
        assert self.sink is not None
        self.sink.put(sample_spans()[:1])  # "POST /v1/traces"
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def test_the_sink_never_records_its_own_exports() -> None:
    # Issue 13, defect 1: each export queued another span and drain() looped forever.
    stats = CollectorStats()
    exporter = SelfTracingExporter()
    sink = SpanSink(exporter, stats=stats, max_spans=1000, interval_s=60)
    exporter.sink = sink
    sink.put(sample_spans())
    sink.drain()
    sink.drain()
    sink.close()
    assert exporter.exports == 1
    assert exporter.suppressed == [True]  # contrib instrumentations see "suppressed"
    assert stats.spans_exported == 2
    assert stats.dropped_spans == 0


def test_a_drain_exports_only_what_was_buffered_when_it_started() -> None:
    stats = CollectorStats()
    sink = SpanSink(InMemorySpanExporter(), stats=stats, max_spans=10_000, interval_s=60)
    spans = list(sample_spans())
    sink.put(spans)

    class Busy(InMemorySpanExporter):
        def export(self, batch: Sequence[Any]) -> SpanExportResult:
            # the app keeps putting spans while the export runs (another thread)
            thread = threading.Thread(target=sink.put, args=(spans,))
            thread.start()
            thread.join()
            return super().export(batch)

    sink._exporter = Busy()
    sink.drain()
    assert stats.spans_exported == 2
    assert len(sink._queue) == 2  # the next drain's
    sink.close()


class StuckExporter:
    """Blocks in export until shut down (an OTLP exporter retrying a closed port)."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.released.wait(60)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.released.set()


class DeafExporter(StuckExporter):
    def shutdown(self) -> None:  # ignores shutdown too
        return None


@pytest.mark.parametrize("exporter_type", [StuckExporter, DeafExporter])
def test_close_returns_in_time_whatever_the_exporter_does(exporter_type: type) -> None:
    stats = CollectorStats()
    exporter = exporter_type()
    sink = SpanSink(exporter, stats=stats, max_spans=10_000, interval_s=0.01)
    sink.put(sample_spans())
    time.sleep(0.1)  # the export thread is now stuck in export()
    sink.put(sample_spans())
    started = time.monotonic()
    assert sink.flush(timeout_s=0.2) is False
    sink.close(timeout_s=1.0)
    took = time.monotonic() - started
    assert took < 2.0
    assert stats.dropped_spans >= 2  # the spans it could not write are counted
    exporter.released.set()
