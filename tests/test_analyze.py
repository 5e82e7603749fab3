"""Known answers end to end: generated OTLP JSON-lines files -> analyze() -> verdicts, findings.

Each scenario writes its traces as a real exporter would (one ExportTraceServiceRequest
per line, ids in hex, int64 as strings) and states the expected split before analyzing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from latency_ledger.analyze import AnalyzeOptions, analyze
from latency_ledger.model import EndpointStats, Report

MS = 1_000_000
T0 = 1_750_000_000_000_000_000
REQUESTS = 120


def _attrs(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in values.items():
        if isinstance(value, bool):
            out.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        else:
            out.append({"key": key, "value": {"stringValue": str(value)}})
    return out


class TraceWriter:
    """Writes one OTLP JSON line per request, the shape the Collector's file exporter uses."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._next = 1

    def _id(self, width: int) -> str:
        self._next += 1
        return f"{self._next:0{width}x}"

    def request(
        self,
        *,
        service: str,
        route: str,
        wall_ns: int,
        cpu_ns: int | None,
        children: list[tuple[int, int, dict[str, Any]]],
        index: int,
        overhead_ns: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """``children``: (start offset ns, duration ns, attributes) of CLIENT spans."""
        trace_id = self._id(32)
        root_id = self._id(16)
        start = T0 + index * 10 * wall_ns
        attrs: dict[str, Any] = {
            "http.request.method": "GET",
            "http.route": route,
            "http.response.status_code": 200,
        }
        if cpu_ns is not None:
            attrs |= {"ledger.cpu_ns": cpu_ns, "ledger.queueing_ns": 0}
        if overhead_ns is not None:
            attrs["ledger.overhead_ns"] = overhead_ns
        attrs |= extra or {}
        spans = [
            {
                "traceId": trace_id,
                "spanId": root_id,
                "name": f"GET {route}",
                "kind": 2,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + wall_ns),
                "attributes": _attrs(attrs),
            }
        ]
        for offset, duration, child_attrs in children:
            spans.append(
                {"traceId": trace_id, "spanId": self._id(16), "parentSpanId": root_id,
                 "name": "SELECT", "kind": 3, "startTimeUnixNano": str(start + offset),
                 "endTimeUnixNano": str(start + offset + duration),
                 "attributes": _attrs(child_attrs)}
            )  # fmt: skip
        doc = {
            "resourceSpans": [
                {"resource": {"attributes": _attrs({"service.name": service})},
                 "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}
            ]
        }  # fmt: skip
        self.lines.append(json.dumps(doc))

    def write(self, path: Path) -> Path:
        path.write_text("\n".join(self.lines) + "\n")
        return path


def _select(sql: str) -> dict[str, Any]:
    return {"db.system.name": "postgresql", "db.query.text": sql}


def _endpoint(report: Report, service: str) -> EndpointStats:
    return next(e for e in report.endpoints if e.service == service)


def _scenarios(writer: TraceWriter) -> Iterator[None]:
    for i in range(REQUESTS):
        # A: 100 ms, one 92 ms query, 8 ms of measured CPU.
        writer.request(service="db-bound", route="/report", wall_ns=100 * MS, cpu_ns=8 * MS,
                       children=[(4 * MS, 92 * MS, _select("SELECT * FROM big WHERE x = 1"))],
                       index=i)  # fmt: skip
        # B: 100 ms, one 15 ms query, 80 ms of measured CPU.
        writer.request(service="cpu-bound", route="/score", wall_ns=100 * MS, cpu_ns=80 * MS,
                       children=[(0, 15 * MS, _select("SELECT * FROM users WHERE id = 7"))],
                       index=i)  # fmt: skip
        # C: 60 ms, 20 sequential 2 ms selects differing only in their literal.
        writer.request(service="n1-seq", route="/orders/{id}", wall_ns=60 * MS, cpu_ns=15 * MS,
                       children=[(k * 2 * MS + MS, 2 * MS,
                                  _select(f"SELECT * FROM items WHERE id = {k}"))
                                 for k in range(20)],
                       index=i)  # fmt: skip
        # D: the same 20 selects run concurrently, each starting 0.1 ms after the last:
        # union = 19 x 0.1 + 2 = 3.9 ms.
        writer.request(service="n1-gather", route="/orders/{id}", wall_ns=30 * MS,
                       cpu_ns=15 * MS,
                       children=[(MS + k * MS // 10, 2 * MS,
                                  _select(f"SELECT * FROM items WHERE id = {k}"))
                                 for k in range(20)],
                       index=i)  # fmt: skip
        # E: no CPU measurement (a plain OpenTelemetry app): 50 ms, 10 ms in the database.
        writer.request(service="plain-otel", route="/things", wall_ns=50 * MS, cpu_ns=None,
                       children=[(0, 10 * MS, _select("SELECT 1"))], index=i)  # fmt: skip
    yield None


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    writer = TraceWriter()
    list(_scenarios(writer))
    path = writer.write(tmp_path_factory.mktemp("traces") / "traces.jsonl")
    return analyze([path], options=AnalyzeOptions(rules=None))


def test_every_request_is_read_and_booked(report: Report) -> None:
    assert report.inputs.requests == 5 * REQUESTS
    assert report.inputs.spans == REQUESTS * (2 + 2 + 21 + 21 + 2)
    assert sum(report.inputs.skipped.values()) == 0


def test_92_percent_database_wait_is_dont_migrate_with_node_under_8_percent(
    report: Report,
) -> None:
    stats = _endpoint(report, "db-bound")
    assert stats.cpu_measured
    assert stats.ledger_ns["p50"] == {
        "database": 92 * MS, "network": 0, "interpreter": 8 * MS, "native": 0, "waiting": 0,
    }  # fmt: skip
    assert stats.verdict is not None
    assert stats.verdict.label == "dont_migrate"
    node = next(p for p in stats.verdict.projections if p.target.name == "node")
    assert node.p50_saving_fraction < 0.08
    assert node.p50_saving_ns == pytest.approx(8 * MS * (1 - 1 / 5), abs=1)


def test_80_percent_interpreter_time_could_pay(report: Report) -> None:
    stats = _endpoint(report, "cpu-bound")
    assert stats.ledger_ns["p50"]["interpreter"] == 80 * MS
    assert stats.verdict is not None
    assert stats.verdict.label == "migration_could_pay"
    assert not stats.verdict.upper_bound


@pytest.mark.parametrize(
    ("service", "cost_ns", "concurrent"),
    [("n1-seq", 40 * MS, False), ("n1-gather", 39 * MS // 10, True)],
)
def test_n_plus_one_found_sequential_and_concurrent_with_its_cost(
    report: Report, service: str, cost_ns: int, concurrent: bool
) -> None:
    stats = _endpoint(report, service)
    (finding,) = [f for f in stats.findings if f.kind == "n_plus_one"]
    assert finding.target == "SELECT * FROM items WHERE id = ?"
    assert finding.count_per_request == 20
    assert finding.ns_per_request == pytest.approx(cost_ns, abs=1000)
    assert finding.requests_fraction == 1.0
    assert finding.concurrent is concurrent
    assert stats.ledger_ns["p50"]["database"] == pytest.approx(cost_ns, abs=1000)


def test_cpu_not_measured_is_an_upper_bound(report: Report) -> None:
    stats = _endpoint(report, "plain-otel")
    assert not stats.cpu_measured
    assert stats.ledger_ns["p50"] == {"database": 10 * MS, "network": 0, "app": 40 * MS}
    assert stats.verdict is not None
    assert stats.verdict.upper_bound
    assert "upper bound" in stats.verdict.summary


def test_collector_overhead_is_the_mean_over_requests_that_recorded_it(tmp_path: Path) -> None:
    # Expected: (100 + 300) / 2 us; the request with no ledger.overhead_ns is not counted.
    writer = TraceWriter()
    for index, overhead in enumerate((100_000, 300_000, None)):
        writer.request(service="svc", route="/x", wall_ns=MS, cpu_ns=MS // 2, children=[],
                       index=index, overhead_ns=overhead)  # fmt: skip
    report = analyze([writer.write(tmp_path / "t.jsonl")])
    assert report.inputs.collector_overhead_ns == 200_000


def test_collector_counters_are_summed_over_the_processes_that_counted_them(
    tmp_path: Path,
) -> None:
    # Expected: each process's counters are cumulative, so its largest value counts once
    # and processes add up: pid 11 dropped 5 then 7 spans, pid 12 dropped 3 (10 in all);
    # counters that name no process are one process's (4).
    writer = TraceWriter()
    seen = [(11, 5), (11, 7), (12, 3), (None, 4), (None, 2)]
    for index, (pid, dropped) in enumerate(seen):
        extra: dict[str, Any] = {"ledger.collector.dropped_spans": dropped}
        if pid is not None:
            extra["process.pid"] = pid
        writer.request(service="svc", route="/x", wall_ns=MS, cpu_ns=MS // 2, children=[],
                       index=index, extra=extra)  # fmt: skip
    report = analyze([writer.write(tmp_path / "t.jsonl")])
    assert report.inputs.collector == {"dropped_spans": 7 + 3 + 4}


def test_each_plugins_cost_is_its_mean_over_the_same_requests(tmp_path: Path) -> None:
    # Expected, over the 3 requests that recorded a cost: sqlalchemy (30 + 0 + 60) / 3 us,
    # psycopg 9 / 3 us; an attribute not of the plugin cost's shape is no plugin.
    writer = TraceWriter()
    costs = [
        {"ledger.plugin.sqlalchemy.overhead_ns": 30_000},
        {"ledger.plugin.psycopg.overhead_ns": 9_000},
        {"ledger.plugin.sqlalchemy.overhead_ns": 60_000, "ledger.plugin.x.other_ns": 5},
    ]
    for index, extra in enumerate(costs):
        writer.request(service="svc", route="/x", wall_ns=MS, cpu_ns=MS // 2, children=[],
                       index=index, overhead_ns=100_000, extra=extra)  # fmt: skip
    report = analyze([writer.write(tmp_path / "t.jsonl")])
    assert report.inputs.plugin_overhead_ns == {"psycopg": 3_000, "sqlalchemy": 30_000}


THIRD_PARTY = Path(__file__).resolve().parent / "data" / "traces"


def test_zipkin_sql_query_spans_are_booked_as_database() -> None:
    # Brave's p6spy spans: CLIENT, sql.query, remote service "app_db". Four calls of
    # 2033 + 2414 + 6051 + 1118 us, none overlapping, inside one 252016 us POST /book.
    report = analyze([THIRD_PARTY / "zipkin-json" / "zipkin__simple-db-p6.json"])
    [endpoint] = report.endpoints
    assert (endpoint.service, endpoint.count) == ("bootifulmeters", 1)
    assert endpoint.ledger_ns["p50"] == {
        "database": 11_616_000,
        "network": 0,
        "app": 252_016_000 - 11_616_000,
    }


def test_nextjs_handler_span_is_not_a_second_request() -> None:
    report = analyze([THIRD_PARTY / "otlp-json" / "highlight__nextjs.json"])
    assert report.inputs.requests == 1
    assert report.inputs.skipped.get("span_outside_any_request", 0) == 0


def test_grpc_streams_are_listed_apart_and_out_of_every_figure() -> None:
    # The OTel demo's flagd keeps EventStream calls open for 30-49 s (three of them).
    report = analyze([THIRD_PARTY / "otlp-json" / "otel-tui__test_data.json"])
    assert [(s.service, s.endpoint, s.kind, s.count) for s in report.streams] == [
        ("flagd", "flagd.evaluation.v1.Service/EventStream", "grpc stream", 1),
        ("flagd", "schema.v1.Service/EventStream", "grpc stream", 2),
    ]
    assert report.streams[1].max_ns == 48_510_395_614
    assert not [e for e in report.endpoints if "EventStream" in e.endpoint]
    assert report.overall.latency_ns["p99"] < 30 * 1_000_000_000
    assert report.overall.count == report.inputs.requests == sum(e.count for e in report.endpoints)


def _profile(native_s: float, function: str) -> str:
    return json.dumps(
        {"samples": 60, "buckets": {"application": 0.07}, "top": [["login (app.py)", 0.07]],
         "cpu": 0.07, "native": native_s, "native_max": native_s + 0.001,
         "native_top": [[function, native_s]] if native_s else []}
    )  # fmt: skip


def test_native_cpu_is_booked_native_and_a_port_does_not_shrink_it(tmp_path: Path) -> None:
    # Two endpoints, 200 requests each, 72 ms wall and 70 ms of CPU, one in ten profiled:
    # /login's profiles see 65 ms of native CPU (hashpw) under 70 ms: its unprofiled
    # requests book 65/70 of their CPU native (the profiled ones their own 65 ms), so
    # p50 books interpreter 5, native 65, waiting 2. Go at 10x saves 5 x 0.9 = 4.5 ms
    # (6%): don't migrate, and the native_cpu finding says why. /burn's profiles see no
    # native CPU: interpreter 70, and Go saves 63 ms: migration could pay.
    writer = TraceWriter()
    for i in range(200):
        for route, native_s, function in (("/login", 0.065, "hashpw"), ("/burn", 0.0, "")):
            profile = {"ledger.profile": _profile(native_s, function)} if i % 10 == 0 else {}
            writer.request(
                service="auth", route=route, wall_ns=72 * MS, cpu_ns=70 * MS, children=[],
                index=i, extra=profile,
            )  # fmt: skip
    report = analyze([writer.write(tmp_path / "t.jsonl")], options=AnalyzeOptions(rules=None))
    by_route = {e.endpoint: e for e in report.endpoints}
    login, burn = by_route["GET /login"], by_route["GET /burn"]
    assert dict(login.ledger_ns["p50"]) == {
        "database": 0, "network": 0, "interpreter": 5 * MS, "native": 65 * MS, "waiting": 2 * MS,
    }  # fmt: skip
    assert login.native is not None
    assert (login.native.profiled, login.native.estimated) == (20, 180)
    assert login.native.cpu_fraction == pytest.approx(65 / 70)
    assert login.verdict is not None
    go = next(p for p in login.verdict.projections if p.target.name == "go")
    assert go.p50_saving_ns == pytest.approx(4.5 * MS, abs=2)
    assert login.verdict.label == "dont_migrate"
    (native,) = [f for f in login.findings if f.kind == "native_cpu"]
    assert native.target == "hashpw"
    assert "93% native code (hashpw)" in native.detail
    assert "cost factor" in native.detail
    assert burn.ledger_ns["p50"]["native"] == 0
    assert burn.ledger_ns["p50"]["interpreter"] == 70 * MS
    assert burn.verdict is not None
    assert burn.verdict.label == "migration_could_pay"
    assert not [f for f in burn.findings if f.kind == "native_cpu"]


CMS_ROUTE = r"^((?:[\w\-]+/)*)$"  # one view serves every page (Wagtail's pattern)


def test_a_catch_all_route_is_split_into_its_pages(tmp_path: Path) -> None:
    # Known answer: the home page burns 31 ms of CPU in 40 ms, the about page 8 ms in 12.
    # As one endpoint they would blend into one p50; split, each keeps its own.
    writer = TraceWriter()
    for i in range(REQUESTS):
        writer.request(service="cms", route=CMS_ROUTE, wall_ns=40 * MS, cpu_ns=31 * MS,
                       children=[], index=2 * i, extra={"url.path": "/"})  # fmt: skip
        writer.request(service="cms", route=CMS_ROUTE, wall_ns=12 * MS, cpu_ns=8 * MS,
                       children=[], index=2 * i + 1, extra={"url.path": "/about/"})  # fmt: skip
    report = analyze([writer.write(tmp_path / "cms.jsonl")])
    by_name = {e.endpoint: e for e in report.endpoints}
    assert set(by_name) == {"GET /{path} → /", "GET /{path} → /about/"}
    assert all("^" not in name and "(?" not in name for name in by_name)
    home, about = by_name["GET /{path} → /"], by_name["GET /{path} → /about/"]
    assert (home.count, about.count) == (REQUESTS, REQUESTS)
    assert home.ledger_ns["p50"]["interpreter"] == 31 * MS
    assert about.ledger_ns["p50"]["interpreter"] == 8 * MS


def test_a_catch_all_gets_at_most_max_splits_endpoints(tmp_path: Path) -> None:
    from latency_ledger.endpoint import MAX_SPLITS

    writer = TraceWriter()
    pages = MAX_SPLITS + 5
    for i in range(pages * 2):
        writer.request(service="cms", route="/{path:path}", wall_ns=10 * MS, cpu_ns=5 * MS,
                       children=[], index=i,
                       extra={"url.path": f"/page-{chr(97 + i % pages)}/"})  # fmt: skip
    report = analyze([writer.write(tmp_path / "many.jsonl")])
    names = [e.endpoint for e in report.endpoints]
    assert len(names) == MAX_SPLITS + 1
    other = next(e for e in report.endpoints if e.endpoint.endswith("(other pages)"))
    assert other.count == 5 * 2
    assert sum(e.count for e in report.endpoints) == pages * 2


def test_repeated_calls_with_no_attributes_are_found_end_to_end(tmp_path: Path) -> None:
    # 13 sequential CLIENT spans with no http/rpc/messaging/db attributes (a Redis client
    # that records only a span name), 17 ms each, cover 221 of a 226 ms request. Known
    # answer: a repeated-call finding costing 221 ms, of which batching removes 204 ms
    # (one 17 ms call remains), in every request.
    writer = TraceWriter()
    for i in range(REQUESTS):
        writer.request(service="cart", route="/cart", wall_ns=226 * MS, cpu_ns=3 * MS,
                       children=[(2 * MS + k * 17 * MS, 17 * MS, {}) for k in range(13)],
                       index=i)  # fmt: skip
    report = analyze([writer.write(tmp_path / "redis.jsonl")])
    (cart,) = report.endpoints
    finding = next(f for f in cart.findings if f.kind == "chatty_calls")
    assert finding.count_per_request == 13
    assert finding.ns_per_request == 221 * MS
    assert finding.fixable_ns_per_request == 204 * MS
    assert finding.requests_fraction == 1.0
    assert finding.saving_ns_per_request == 204 * MS
    assert cart.verdict is not None
    assert cart.verdict.fixes[0] == finding


def test_distinct_endpoints_past_the_cap_fold_into_one_counted_row(tmp_path: Path) -> None:
    # Issue 13, defect 7: 100k distinct routes took 2.8 GB, 98 s and a 410 MB report.
    writer = TraceWriter()
    for index in range(300):
        route = "/hot" if index % 3 == 0 else f"/r{index}"
        writer.request(service="svc", route=route, wall_ns=MS, cpu_ns=MS // 2, children=[],
                       index=index)  # fmt: skip
    report = analyze([writer.write(tmp_path / "t.jsonl")], options=AnalyzeOptions(max_endpoints=20))
    rows = {e.endpoint: e.count for e in report.endpoints}
    assert len(rows) == 21
    assert rows["GET /hot"] == 100  # seen first: never folded
    # 20 endpoints kept (/hot and the first 19 others); 181 further ones, 181 requests.
    assert rows["(other endpoints)"] == 300 - 100 - 19
    assert sum(rows.values()) == report.inputs.requests == 300
    assert report.inputs.problems[0] == (
        "more than 20 endpoints: 181 further endpoints (181 requests) are one row "
        "'(other endpoints)' (raise the limit with --max-endpoints)"
    )
