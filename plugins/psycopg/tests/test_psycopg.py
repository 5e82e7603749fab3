"""psycopg plugin against the local PostgreSQL (db ``test``): sanitized statement spans."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import psycopg
import pytest
from latency_ledger_psycopg import PsycopgPlugin
from opentelemetry.trace import SpanKind

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@pytest.fixture
def plugin() -> Any:
    plugin = PsycopgPlugin()
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
    # leaving ``with connect()`` commits the transaction the SELECT opened: a span too
    assert _statements(spans) == ["SELECT ? || %s, ?", "COMMIT", "SELECT ?", "COMMIT"]
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


def _names(spans: Any) -> list[str]:
    return [s.name for s in spans.finished()]


@pytest.fixture
def table() -> Any:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS ll_psycopg_tx")
        conn.execute("CREATE TABLE ll_psycopg_tx (id int)")
    yield "ll_psycopg_tx"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS ll_psycopg_tx")


@pytest.mark.postgres
def test_commit_rollback_and_transaction_blocks_are_spans(
    spans: Any, plugin: Any, table: str
) -> None:
    assert plugin.instrument(spans.provider)
    with psycopg.connect(DSN) as conn:
        conn.commit()  # nothing open: psycopg sends nothing, so no span
        conn.execute(f"INSERT INTO {table} VALUES (1)")
        conn.commit()
        conn.execute(f"INSERT INTO {table} VALUES (2)")
        conn.rollback()
    with psycopg.connect(DSN, autocommit=True) as conn, conn.transaction():
        conn.execute(f"INSERT INTO {table} VALUES (3)")
        try:
            with conn.transaction():
                conn.execute(f"INSERT INTO {table} VALUES (4)")
                raise ZeroDivisionError
        except ZeroDivisionError:
            pass

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(DSN) as aconn:
            await aconn.execute(f"INSERT INTO {table} VALUES (5)")
            await aconn.commit()

    asyncio.run(run())
    assert _names(spans) == [
        "INSERT",
        "COMMIT",
        "INSERT",
        "ROLLBACK",
        "BEGIN",
        "INSERT",
        "SAVEPOINT",
        "INSERT",
        "ROLLBACK TO SAVEPOINT",
        "COMMIT",
        "INSERT",
        "COMMIT",
    ]
    commit = spans.named("COMMIT")[0]
    assert commit.kind == SpanKind.CLIENT
    assert dict(commit.attributes or {})["db.system"] == "postgresql"
    with psycopg.connect(DSN) as conn:  # what PostgreSQL kept: 1, 3 and 5
        rows = conn.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()
    assert rows == [(1,), (3,), (5,)]


@pytest.mark.postgres
def test_uninstrument_restores_transactions(spans: Any, plugin: Any, table: str) -> None:
    assert plugin.instrument(spans.provider)
    plugin.uninstrument()
    with psycopg.connect(DSN) as conn, conn.transaction():
        conn.execute(f"INSERT INTO {table} VALUES (1)")
    assert spans.finished() == ()
