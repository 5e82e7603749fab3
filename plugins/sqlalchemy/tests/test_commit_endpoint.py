"""Acceptance (issue 9): an endpoint whose transaction commits on SQLite with
``PRAGMA synchronous=FULL`` shows the COMMIT as a database span, booked as database by
the collector in-process (light spans) and by the offline ledger alike."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy
from latency_ledger_sqlalchemy import SQLAlchemyPlugin
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from latency_ledger.collect import CollectConfig, Collector, LedgerMiddleware
from latency_ledger.collect.booking import to_model_span
from latency_ledger.ledger import book_trace
from latency_ledger.model import CallKind, Category, Trace


async def get(app: Any, path: str) -> int:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": path, "headers": []}, receive, send)
    return int(sent[0]["status"])


def test_commit_of_an_endpoint_is_a_database_span(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")

    @sqlalchemy.event.listens_for(engine, "connect")
    def full_sync(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=FULL")  # an fsync at every commit

    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)"))

    def place(request: Any) -> PlainTextResponse:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO orders (total) VALUES (:t)"), {"t": 42})
        return PlainTextResponse("ok")

    exporter = InMemorySpanExporter()
    collector = Collector(
        CollectConfig(output_dir=tmp_path, keep_spans="all", set_global_provider=False),
        exporter=exporter,
        load_plugins=False,
    )
    plugin = SQLAlchemyPlugin()
    try:
        assert plugin.instrument(collector.span_provider)
        app = LedgerMiddleware(
            Starlette(routes=[Route("/orders", place, methods=["POST"])]), collector=collector
        )
        assert asyncio.run(get(app, "/orders")) == 200
        collector.flush()
    finally:
        plugin.uninstrument()
        collector.shutdown()
    spans = list(exporter.get_finished_spans())
    (server,) = [s for s in spans if s.kind == trace.SpanKind.SERVER]
    commits = [s for s in spans if s.name.split()[0] == "COMMIT"]
    assert len(commits) == 1
    commit = commits[0]
    assert commit.kind == trace.SpanKind.CLIENT
    assert commit.parent is not None
    assert commit.parent.span_id == server.context.span_id
    assert commit.end_time is not None
    assert commit.start_time is not None
    # the span's length less what it spent waiting for Python or a CPU after the I/O
    # (collect/tails.py: its tail and OS delay, on it as attributes when measured)
    attrs = commit.attributes or {}
    waited = int(attrs.get("ledger.queueing_ns", 0)) + int(attrs.get("ledger.unattributed_ns", 0))
    commit_ns = commit.end_time - commit.start_time - waited
    # booked as database in-process (the SERVER span's totals) ...
    assert server.attributes is not None
    assert int(server.attributes["ledger.database_ns"]) >= commit_ns
    # ... and offline, as a statement of the request
    model = tuple(to_model_span(s, "shop") for s in spans)
    (request,) = book_trace(
        Trace(trace_id=model[0].trace_id, spans=model), rules=collector.rules
    ).requests
    (call,) = [c for c in request.calls if c.target == "COMMIT"]
    assert call.category == Category.DATABASE
    assert call.kind == CallKind.QUERY
    assert call.booked_ns == commit_ns
    assert request.ledger.database_ns == int(server.attributes["ledger.database_ns"])
