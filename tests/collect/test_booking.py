"""In-app booking agrees with the offline analyzer on the same request, kept or not.

A request with overlapping DB and HTTP client spans is booked in the app (``ledger.*`` on
its SERVER span); the JSON lines it wrote are then read back with ``latency_ledger.read``
and booked with ``latency_ledger.ledger``, from the children when they were kept and from
the totals when they were not. Both must give the same ledger, to the nanosecond.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.collect import CollectConfig, Collector, LedgerMiddleware
from latency_ledger.collect.booking import book_without_children
from latency_ledger.ledger import book_trace, split_own_time
from latency_ledger.read import ReadStats, read_traces

MS = 1_000_000
TENTH_MS = 100_000


def burn_cpu(ms: float) -> None:
    end = time.thread_time_ns() + int(ms * MS)
    while time.thread_time_ns() < end:
        pass


def app_with_waits(collector: Collector) -> Any:
    tracer = collector.provider.get_tracer("test")

    async def page(request: Any) -> PlainTextResponse:
        # Spans with explicit times inside the first 1.2 ms of the request, made after
        # 3 ms of CPU so they lie in its past: a 0.6 ms query, a call overlapping it,
        # and a second query. No sleeping, and the request surely covers them. More than
        # 1 ms past (processor.py's _NOW_NS), so no clock read when the processor saw
        # them is taken for theirs: a CPU wait meanwhile (1.5 ms of CPU left the last
        # query within 1 ms, and under load 17 us of wait came off its 0.2 ms) is not
        # inside them.
        start = time.time_ns()
        burn_cpu(3)
        plan = [
            ("SELECT 1", {"db.system": "postgresql", "db.statement": "SELECT 1"}, 1, 7),
            ("GET", {"http.request.method": "GET", "url.full": "http://x/y"}, 5, 9),
            ("SELECT 2", {"db.system": "postgresql", "db.statement": "SELECT 2"}, 10, 12),
        ]
        for name, attributes, start_u, end_u in plan:
            span = tracer.start_span(
                name,
                kind=trace.SpanKind.CLIENT,
                attributes=attributes,
                start_time=start + start_u * TENTH_MS,
            )
            span.end(end_time=start + end_u * TENTH_MS)
        return PlainTextResponse("ok")

    return LedgerMiddleware(Starlette(routes=[Route("/page", page)]), collector=collector)


async def get(app: Any) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app({"type": "http", "method": "GET", "path": "/page", "headers": []}, receive, send)


@pytest.mark.parametrize("keep_spans", ["all", "none"])
def test_offline_booking_agrees_with_the_app(tmp_path: Path, keep_spans: str) -> None:
    collector = Collector(
        CollectConfig(output_dir=tmp_path, keep_spans=keep_spans, set_global_provider=False),
        load_plugins=False,
    )
    try:
        app = app_with_waits(collector)

        async def main() -> None:
            for _ in range(3):
                await get(app)

        asyncio.run(main())
    finally:
        collector.shutdown()
    requests = [
        request
        for t in read_traces([tmp_path], stats=ReadStats())
        for request in book_trace(t, rules=DEFAULT_RULES).requests
    ]
    assert len(requests) == 3
    for request in requests:
        assert request.from_totals is (keep_spans == "none")
        ledger = request.ledger
        # expected, by the overlap rule: the call ends last, so it takes 0.5-0.9 ms (0.4);
        # the database keeps 0.1-0.5 and 1.0-1.2 ms (0.6)
        assert (ledger.database_ns, ledger.network_ns) == (
            4 * TENTH_MS + 2 * TENTH_MS,
            4 * TENTH_MS,
        )
        assert ledger.cpu_measured
        assert ledger.total_ns == request.wall_ns


def test_apps_totals_equal_the_offline_booking_from_children(tmp_path: Path) -> None:
    collector = Collector(
        CollectConfig(output_dir=tmp_path, keep_spans="all", set_global_provider=False),
        load_plugins=False,
    )
    try:
        asyncio.run(get(app_with_waits(collector)))
    finally:
        collector.shutdown()
    (t,) = list(read_traces([tmp_path], stats=ReadStats()))
    (request,) = book_trace(t, rules=DEFAULT_RULES).requests
    assert not request.from_totals
    (server,) = [s for s in t.spans if s.span_id == request.span_id]
    attrs = server.attributes
    offline = request.ledger
    assert (
        attrs["ledger.database_ns"],
        attrs["ledger.network_ns"],
        attrs["ledger.interpreter_ns"],
        attrs["ledger.waiting_ns"],
        attrs["ledger.queueing_ns"],
    ) == (
        offline.database_ns,
        offline.network_ns,
        # the collector's total is all own CPU; a profiled request's split is offline's
        offline.interpreter_ns + offline.native_ns - offline.native_threads_booked_ns,
        offline.waiting_ns + offline.native_threads_booked_ns,
        offline.queueing_ns,
    )


@pytest.mark.parametrize(
    ("wall", "cpu", "queueing"),
    [(10, 4, 3), (10, 12, 0), (10, 0, 50), (0, 5, 5), (1_000_000, 999_999, 1)],
)
def test_no_children_shortcut_is_the_ledgers_rule(wall: int, cpu: int, queueing: int) -> None:
    attrs = {"ledger.cpu_ns": cpu, "ledger.queueing_ns": queueing}
    assert book_without_children(wall, cpu, queueing) == split_own_time(attrs, 0, 0, wall)
