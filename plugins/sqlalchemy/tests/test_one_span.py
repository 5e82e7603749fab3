"""One statement, one span: SQLAlchemy over a driver whose own plugin traces it too.

Truth is PostgreSQL's own count: every statement of the loop calls ``nextval`` on a
sequence made for the test, so the sequence's value is how many times the database ran
it; the database spans recorded for it must number exactly that, and so must COMMITs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy
from latency_ledger_asyncpg import plugin as asyncpg_published
from latency_ledger_plugin_base import InstrumentorPlugin
from latency_ledger_psycopg import PsycopgPlugin
from latency_ledger_sqlalchemy import SQLAlchemyPlugin
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

PG = "postgres@127.0.0.1:5432/test"
SEQUENCE = "ll_one_span_calls"
RUNS = 7


@pytest.fixture
def sequence() -> Iterator[None]:
    with psycopg.connect(f"postgresql://{PG}", autocommit=True) as conn:
        conn.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")
        conn.execute(f"CREATE SEQUENCE {SEQUENCE}")
    yield
    with psycopg.connect(f"postgresql://{PG}", autocommit=True) as conn:
        conn.execute(f"DROP SEQUENCE IF EXISTS {SEQUENCE}")


def _database_ran() -> int:
    with psycopg.connect(f"postgresql://{PG}", autocommit=True) as conn:
        row = conn.execute(f"SELECT last_value, is_called FROM {SEQUENCE}").fetchone()
    assert row is not None
    return int(row[0]) if row[1] else 0


def _spans_of(spans: Any, word: str) -> list[Any]:
    return [
        s
        for s in spans.finished()
        if word in str((s.attributes or {}).get("db.statement", ""))
        or word in str((s.attributes or {}).get("db.query.text", ""))
    ]


@pytest.fixture
def plugins(spans: Any) -> Iterator[list[Any]]:
    made = [
        SQLAlchemyPlugin(),
        PsycopgPlugin(),
        InstrumentorPlugin(
            name=asyncpg_published.name,
            library=asyncpg_published.library,
            instrumentor=asyncpg_published.instrumentor,
        ),
    ]
    for plugin in made:
        assert plugin.instrument(spans.provider)
    yield made
    for plugin in made:
        plugin.uninstrument()


@pytest.mark.postgres
@pytest.mark.usefixtures("sequence")
def test_sqlalchemy_over_psycopg_counts_each_statement_once(spans: Any, plugins: Any) -> None:
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://{PG}")
    with engine.begin() as conn:
        for _ in range(RUNS):
            conn.execute(text(f"SELECT nextval('{SEQUENCE}')"))
    engine.dispose()
    ran = _database_ran()
    assert ran == RUNS
    statements = _spans_of(spans, "nextval")
    assert len(statements) == ran
    assert {s.instrumentation_scope.name for s in statements} == {
        "opentelemetry.instrumentation.sqlalchemy"  # the richer one: ORM's, kept
    }
    assert len(_spans_of(spans, "COMMIT")) == 1


@pytest.mark.postgres
@pytest.mark.usefixtures("sequence")
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_async_sqlalchemy_over_its_driver_counts_each_statement_once(
    spans: Any, plugins: Any, driver: str
) -> None:
    async def run() -> None:
        engine = create_async_engine(f"postgresql+{driver}://{PG}")
        async with engine.begin() as conn:
            for _ in range(RUNS):
                await conn.execute(text(f"SELECT nextval('{SEQUENCE}')"))
        await engine.dispose()

    asyncio.run(run())
    ran = _database_ran()
    assert ran == RUNS
    assert len(_spans_of(spans, "nextval")) == ran
    assert len(_spans_of(spans, "COMMIT")) == 1
