"""SQLAlchemy plugin against real SQLite: statement and pool-wait spans, before and after."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import latency_ledger_sqlalchemy
import pytest
import sqlalchemy
from latency_ledger_sqlalchemy import SQLAlchemyPlugin
from sqlalchemy import create_engine as create_engine_imported_early
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from latency_ledger.model import CallKind, Category, Span, SpanKind


@pytest.fixture
def plugin() -> Any:
    plugin = SQLAlchemyPlugin()
    yield plugin
    plugin.uninstrument()


@pytest.fixture
def every_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Record every checkout as a ``connect`` span, however short."""
    monkeypatch.setattr(latency_ledger_sqlalchemy, "POOL_WAIT_MIN_NS", 0)


def _statements(spans: Any) -> list[str]:
    return [
        str((s.attributes or {}).get("db.statement"))
        for s in spans.finished()
        if s.name != "connect"
    ]


@pytest.mark.usefixtures("every_connect")
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


@pytest.mark.usefixtures("every_connect")
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


def test_short_checkouts_make_no_span(
    spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Expected: with the threshold above any checkout here, statements are traced and the
    # only connect span is the first checkout's, which opened the connection (a checkout
    # that did not wait is CPU, not a pool wait).
    monkeypatch.setattr(latency_ledger_sqlalchemy, "POOL_WAIT_MIN_NS", 10**12)
    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    for _ in range(3):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert _statements(spans) == ["SELECT ?"] * 3
    (opened,) = spans.named("connect")
    assert (opened.attributes or {})["ledger.db.connect"] == "open"


def test_engine_gets_no_event_listeners(spans: Any, plugin: Any) -> None:
    # Expected: statements are traced through the dialect, so SQLAlchemy never switches
    # the engine to its event-dispatching path (the cost this plugin avoids).
    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _statements(spans) == ["SELECT ?"]
    assert engine._has_events is False
    assert not list(engine.pool.dispatch.checkout)
    assert engine.dialect._has_events is False


def test_uninstrument_restores(spans: Any, plugin: Any) -> None:
    original = Engine.__dict__["connect"]
    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    assert Engine.__dict__["connect"] is not original
    plugin.uninstrument()
    assert Engine.__dict__["connect"] is original
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


def test_instrumented_by_someone_else_is_left_alone(spans: Any, plugin: Any) -> None:
    # Expected: with the upstream instrumentor already on (opentelemetry-instrument), its
    # spans stand and ours are not added: each statement is recorded once.
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    original = Engine.__dict__["connect"]
    SQLAlchemyInstrumentor().instrument(tracer_provider=spans.provider)
    try:
        assert plugin.instrument(spans.provider) is True
        with sqlalchemy.create_engine("sqlite://").connect() as conn:
            conn.execute(text("SELECT 1"))
        plugin.uninstrument()
    finally:
        SQLAlchemyInstrumentor().uninstrument()
    assert [s.attributes.get("db.statement") for s in spans.finished() if s.name != "connect"] == [
        "SELECT 1"  # upstream's own span: not sanitized, which is how we know it is theirs
    ]
    assert Engine.__dict__["connect"] is original


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


def _statement_spans(spans: Any, url: str) -> list[Any]:
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        for _ in range(2):  # ours: the second time from the cache
            conn.execute(text("SELECT 'secret' AS a, 42 WHERE 1 = :one"), {"one": 1})
        conn.exec_driver_sql("SELECT 1")  # do_execute_no_params
    engine.dispose()
    found = [s for s in spans.finished() if s.name != "connect"]
    spans.exporter.clear()
    return found


def test_statement_spans_equal_the_instrumentations(spans: Any, plugin: Any, tmp_path: Any) -> None:
    # Expected: name, kind, attributes and parent as opentelemetry-instrumentation-
    # sqlalchemy records them through the same sanitizing provider.
    from latency_ledger_plugin_base import SanitizingTracerProvider
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    assert plugin.instrument(spans.provider)
    ours = _statement_spans(spans, url)
    plugin.uninstrument()
    SQLAlchemyInstrumentor().instrument(tracer_provider=SanitizingTracerProvider(spans.provider))
    try:
        theirs = _statement_spans(spans, url)
    finally:
        SQLAlchemyInstrumentor().uninstrument()
    assert len(ours) == len(theirs) == 3
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.name == reference.name
        assert mine.kind == reference.kind
        assert dict(mine.attributes or {}) == dict(reference.attributes or {})
        assert mine.parent == reference.parent
    assert dict(ours[0].attributes or {})["db.statement"] == "SELECT ? AS a, ? WHERE ? = ?"


def test_dialect_methods_wrapped_and_restored(spans: Any, plugin: Any) -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert "do_execute" in engine.dialect.__dict__
    plugin.uninstrument()
    assert "do_execute" not in engine.dialect.__dict__
    with engine.connect() as conn:
        conn.execute(text("SELECT 2"))
    assert _statements(spans) == ["SELECT ?"]


def test_failed_statement_span_ends_in_error(spans: Any, plugin: Any) -> None:
    engine = sqlalchemy.create_engine("sqlite://")
    assert plugin.instrument(spans.provider)
    with engine.connect() as conn, pytest.raises(sqlalchemy.exc.OperationalError):
        conn.execute(text("SELECT * FROM missing_table"))
    (failed,) = [s for s in spans.finished() if s.name != "connect"]
    assert failed.status.status_code.name == "ERROR"
    assert failed.end_time is not None


def _with_full_sync(engine: Any) -> None:
    @sqlalchemy.event.listens_for(engine, "connect")
    def full_sync(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=FULL")


def test_commit_on_sqlite_with_synchronous_full_is_a_database_span(
    spans: Any, plugin: Any, tmp_path: Any
) -> None:
    # Acceptance (issue 9): a transaction that commits on SQLite with synchronous=FULL
    # (an fsync per commit) shows the COMMIT as a database span. No span where the
    # driver sends nothing: the DDL ran outside a transaction (sqlite3 opens one before
    # DML only), and a read-only connection given back to the pool has none to roll back.
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    _with_full_sync(engine)
    assert plugin.instrument(spans.provider)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)"))
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO orders (total) VALUES (42)"))
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM orders"))
    names = [s.name for s in spans.finished() if s.name != "connect"]
    assert [n.split()[0] for n in names] == ["CREATE", "INSERT", "COMMIT", "SELECT"]
    commit = spans.named(names[2])[-1]
    assert dict(commit.attributes or {})["db.statement"] == "COMMIT"
    assert dict(commit.attributes or {})["db.system"] == "sqlite"
    classified = plugin.classify_rules()[0](_model(commit)) or _standard(_model(commit))
    assert classified[0] == "database"
    assert classified[1] == "query"


def _model(span: Any) -> Span:
    return Span(
        trace_id="0" * 32,
        span_id="1" * 16,
        parent_span_id="",
        name=span.name,
        kind=SpanKind.CLIENT,
        start_ns=span.start_time,
        end_ns=span.end_time,
        is_error=False,
        attributes=dict(span.attributes or {}),
        service="s",
    )


def _standard(span: Span) -> Any:
    from latency_ledger.classify import standard_fields

    return standard_fields(span)


def test_rollback_and_savepoints_are_spans(spans: Any, plugin: Any, tmp_path: Any) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    assert plugin.instrument(spans.provider)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    with Session(engine) as session:
        session.execute(text("INSERT INTO t VALUES (1)"))
        nested = session.begin_nested()
        session.execute(text("INSERT INTO t VALUES (2)"))
        nested.rollback()
        session.rollback()
    names = [s.name.split()[0] for s in spans.finished() if s.name != "connect"]
    assert names[1:] == ["INSERT", "SAVEPOINT", "INSERT", "ROLLBACK", "ROLLBACK"]
    statements = [str((s.attributes or {}).get("db.statement")) for s in spans.finished()]
    assert "ROLLBACK TO SAVEPOINT sa_savepoint_1" in statements


def test_opening_a_connection_is_not_a_pool_wait(spans: Any, plugin: Any, tmp_path: Any) -> None:
    # NullPool opens a new connection for every checkout: each checkout's span says
    # "open", and offline it is a connect, not a pool wait.
    engine = sqlalchemy.create_engine(
        f"sqlite:///{tmp_path / 'x.db'}", poolclass=sqlalchemy.pool.NullPool
    )
    assert plugin.instrument(spans.provider)
    for _ in range(2):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    opened = spans.named("connect")
    assert [dict(s.attributes or {})["ledger.db.connect"] for s in opened] == ["open", "open"]
    rule = plugin.classify_rules()[0]
    assert rule(_model(opened[0])).kind == CallKind.CONNECT


def test_suppressed_instrumentation_records_no_statement_or_commit(spans: Any, plugin: Any) -> None:
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    assert plugin.instrument(spans.provider) is True
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    recorded = len(spans.finished())
    with suppress_instrumentation(), engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert len(spans.finished()) == recorded  # neither the INSERT nor its COMMIT
    with engine.begin() as conn:  # the same, not suppressed
        conn.execute(text("INSERT INTO t VALUES (2)"))
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 2
    assert [s.name for s in spans.finished()[recorded:]] == ["INSERT", "SELECT", "COMMIT"]
