"""psycopg plugin against the local PostgreSQL (db ``test``): sanitized statement spans."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import psycopg
import pytest
from latency_ledger_plugin_base import InstrumentorPlugin
from latency_ledger_psycopg import plugin as published
from opentelemetry.trace import SpanKind

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
def plugin() -> Any:
    plugin = InstrumentorPlugin(
        name=published.name, library=published.library, instrumentor=published.instrumentor
    )
    yield plugin
    plugin.uninstrument()


def _statements(spans: Any) -> list[Any]:
    return [
        (s.attributes or {}).get("db.statement")
        for s in spans.finished()
        if "db.statement" in (s.attributes or {})
    ]


@pytest.mark.postgres
def test_sync_and_async_statements(spans: Any, plugin: Any) -> None:
    assert plugin.instrument(spans.provider) is True
    with psycopg.connect(DSN) as conn:
        row = conn.execute("SELECT 'hunter2' || %s, 42", ("-param",)).fetchone()
    assert row == ("hunter2-param", 42)

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(DSN) as aconn:
            cur = await aconn.execute("SELECT 'async-secret'")
            assert await cur.fetchone() == ("async-secret",)

    asyncio.run(run())
    assert _statements(spans) == ["SELECT ? || %s, ?", "SELECT ?"]
    assert all(s.kind == SpanKind.CLIENT for s in spans.finished())
    assert "-param" not in str([dict(s.attributes or {}) for s in spans.finished()])


@pytest.mark.postgres
def test_uninstrument_restores(spans: Any, plugin: Any) -> None:
    assert plugin.instrument(spans.provider)
    plugin.uninstrument()
    with psycopg.connect(DSN) as conn:
        conn.execute("SELECT 1")
    assert spans.finished() == ()


def test_absent_library(spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0
