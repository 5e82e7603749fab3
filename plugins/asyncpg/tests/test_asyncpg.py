"""asyncpg plugin against the local PostgreSQL (db ``test``): sanitized statement spans."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import asyncpg
import pytest
from latency_ledger_asyncpg import plugin as published
from latency_ledger_plugin_base import InstrumentorPlugin
from opentelemetry.trace import SpanKind

DSN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def plugin() -> Any:
    plugin = InstrumentorPlugin(
        name=published.name, library=published.library, instrumentor=published.instrumentor
    )
    yield plugin
    plugin.uninstrument()


async def _query() -> Any:
    conn = await asyncpg.connect(DSN)
    try:
        return await conn.fetchval("SELECT 'hunter2' || $1::text", "-param")
    finally:
        await conn.close()


@pytest.mark.postgres
def test_statement_span(spans: Any, plugin: Any) -> None:
    assert plugin.instrument(spans.provider) is True
    assert asyncio.run(_query()) == "hunter2-param"
    (span,) = [s for s in spans.finished() if "db.statement" in (s.attributes or {})]
    attrs = dict(span.attributes or {})
    assert span.kind == SpanKind.CLIENT
    assert attrs["db.system"] == "postgresql"
    assert attrs["db.statement"] == "SELECT ? || $1::text"
    assert "-param" not in str(attrs)


@pytest.mark.postgres
def test_uninstrument_restores(spans: Any, plugin: Any) -> None:
    assert plugin.instrument(spans.provider)
    plugin.uninstrument()
    asyncio.run(_query())
    assert spans.finished() == ()


def test_absent_library(spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0


@pytest.mark.postgres
def test_transactions_and_savepoints_are_spans(spans: Any, plugin: Any) -> None:
    # asyncpg runs BEGIN/COMMIT/SAVEPOINT through Connection.execute, which the
    # instrumentation traces: each is a database span of its own.
    assert plugin.instrument(spans.provider)

    async def run() -> None:
        conn = await asyncpg.connect(DSN)
        try:
            async with conn.transaction():
                await conn.execute("SELECT 1")
                try:
                    async with conn.transaction():
                        raise ZeroDivisionError
                except ZeroDivisionError:
                    pass
        finally:
            await conn.close()

    asyncio.run(run())
    statements = [
        str((s.attributes or {}).get("db.statement")).split()[0].rstrip(";")
        for s in spans.finished()
        if "db.statement" in (s.attributes or {})
    ]
    assert statements == ["BEGIN", "SELECT", "SAVEPOINT", "ROLLBACK", "COMMIT"]
    assert all(s.kind == SpanKind.CLIENT for s in spans.finished())
