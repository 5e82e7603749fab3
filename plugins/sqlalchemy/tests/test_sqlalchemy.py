"""SQLAlchemy plugin against real SQLite: statement and pool-wait spans, before and after."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest
import sqlalchemy
from latency_ledger_sqlalchemy import SQLAlchemyPlugin
from sqlalchemy import create_engine as create_engine_imported_early
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from latency_ledger.model import CallKind, Category, Span, SpanKind


@pytest.fixture
def plugin() -> Any:
    plugin = SQLAlchemyPlugin()
    yield plugin
    plugin.uninstrument()


def _statements(spans: Any) -> list[str]:
    return [
        str((s.attributes or {}).get("db.statement"))
        for s in spans.finished()
        if s.name != "connect"
    ]


def test_engines_before_and_after_are_traced_and_sanitized(spans: Any, plugin: Any) -> None:
    before = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider) is True
    after = sqlalchemy.create_engine("sqlite://")
    after_via_early_name = create_engine_imported_early("sqlite://")
    for engine in (before, after, after_via_early_name):
        with engine.connect() as conn:
            conn.execute(text("SELECT 'hunter2', 42 WHERE 1 = :one"), {"one": 1})
    assert _statements(spans) == ["SELECT ?, ? WHERE ? = ?"] * 3
    connects = spans.named("connect")
    assert len(connects) == 3
    assert all((s.attributes or {}).get("db.system") == "sqlite" for s in connects)


def test_orm_session_and_async_engine(spans: Any, plugin: Any) -> None:
    async_before = create_async_engine("sqlite+aiosqlite://")
    sync_engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    with Session(sync_engine) as session:
        session.execute(text("SELECT 1"))

    async def run() -> None:
        async with async_before.connect() as conn:
            await conn.execute(text("SELECT 'async'"))
        await async_before.dispose()

    asyncio.run(run())
    assert _statements(spans) == ["SELECT ?", "SELECT ?"]
    assert len(spans.named("connect")) == 2


def test_connect_span_covers_the_pool_wait(spans: Any, plugin: Any) -> None:
    # Expected: with the only connection checked out, a second connect waits the whole
    # pool_timeout (50 ms) inside the "connect" span, which ends in error.
    engine = sqlalchemy.create_engine(
        "sqlite://", poolclass=sqlalchemy.QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.05
    )
    assert plugin.instrument(spans.provider)
    with engine.connect(), pytest.raises(sqlalchemy.exc.TimeoutError):
        engine.connect()
    waited = spans.named("connect")[-1]
    assert waited.status.status_code.name == "ERROR"
    assert waited.end_time is not None
    assert waited.start_time is not None
    assert waited.end_time - waited.start_time >= 50_000_000


def test_uninstrument_restores(spans: Any, plugin: Any) -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    assert event.contains(Engine, "engine_connect", plugin._on_engine_connect)
    plugin.uninstrument()
    assert not event.contains(Engine, "engine_connect", plugin._on_engine_connect)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    with sqlalchemy.create_engine("sqlite://").connect() as conn:
        conn.execute(text("SELECT 2"))
    assert spans.finished() == ()
    assert plugin.instrument(spans.provider), "can be switched on again"
    with engine.connect() as conn:
        conn.execute(text("SELECT 3"))
    assert _statements(spans) == ["SELECT ?"]


def test_absent_library(spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0


def test_version_outside_declared_range_still_traced_and_loud(
    spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Simulates SQLAlchemy 2.1 (the instrumentation declares < 2.1): spans must still flow.
    from opentelemetry.instrumentation.dependencies import DependencyConflict
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    conflict = DependencyConflict("sqlalchemy >= 1.0.0, < 2.1.0", "sqlalchemy 2.1.9")
    monkeypatch.setattr(SQLAlchemyInstrumentor, "_check_dependency_conflicts", lambda _: conflict)
    with caplog.at_level(logging.WARNING, logger="latency_ledger.plugins"):
        assert plugin.instrument(spans.provider) is True
    assert "sqlalchemy 2.1.9" in caplog.text
    assert "anyway" in caplog.text
    with sqlalchemy.create_engine("sqlite://").connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _statements(spans) == ["SELECT ?"]


def _span(name: str, attributes: dict[str, Any]) -> Span:
    return Span(
        trace_id="1" * 32,
        span_id="2" * 16,
        parent_span_id="",
        name=name,
        kind=SpanKind.CLIENT,
        start_ns=0,
        end_ns=1,
        is_error=False,
        attributes=attributes,
        service="shop",
    )


def test_classify_rules_mark_connect_as_pool_wait(plugin: Any) -> None:
    (rule,) = plugin.classify_rules()
    pool = rule(_span("connect", {"db.system": "postgresql"}))
    assert pool is not None
    assert (pool.category, pool.kind, pool.system) == (
        Category.DATABASE,
        CallKind.POOL,
        "postgresql",
    )
    assert rule(_span("SELECT shop", {"db.system": "sqlite", "db.statement": "SELECT ?"})) is None
    assert rule(_span("connect", {})) is None


def _traced_statement_spans(spans: Any, plugin: Any, url: str) -> list[Any]:
    engine = sqlalchemy.create_engine(url)
    assert plugin.instrument(spans.provider)
    with engine.connect() as conn:
        for _ in range(2):  # the second time from the cache
            conn.execute(text("SELECT 'secret' AS a, 42 WHERE 1 = :one"), {"one": 1})
    plugin.uninstrument()
    return [s for s in spans.finished() if s.name != "connect"]


def test_cached_statement_spans_equal_the_instrumentations(
    spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    ours = _traced_statement_spans(spans, plugin, url)
    spans.exporter.clear()
    with monkeypatch.context() as patched:
        patched.setattr(SQLAlchemyPlugin, "_swap_statement_listener", lambda self, engine: None)
        theirs = _traced_statement_spans(spans, plugin, url)
    assert len(ours) == len(theirs) == 2
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.name == reference.name
        assert mine.kind == reference.kind
        assert dict(mine.attributes or {}) == dict(reference.attributes or {})
        assert mine.parent == reference.parent
    assert dict(ours[0].attributes or {})["db.statement"] == "SELECT ? AS a, ? WHERE ? = ?"


def test_statement_listener_is_swapped_and_removed(spans: Any, plugin: Any) -> None:
    from latency_ledger_sqlalchemy import _StatementSpans

    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    listeners = list(engine.dispatch.before_cursor_execute)
    assert sum(isinstance(fn, _StatementSpans) for fn in listeners) == 1
    plugin.uninstrument()
    assert not any(isinstance(fn, _StatementSpans) for fn in engine.dispatch.before_cursor_execute)


def test_failed_statement_span_ends_in_error(spans: Any, plugin: Any) -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    with engine.connect() as conn, pytest.raises(sqlalchemy.exc.OperationalError):
        conn.execute(text("SELECT * FROM missing_table"))
    (failed,) = [s for s in spans.finished() if s.name != "connect"]
    assert failed.status.status_code.name == "ERROR"
    assert failed.end_time is not None
