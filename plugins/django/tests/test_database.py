"""Database spans through Django's execute wrappers: every alias, every thread, sanitized."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
from django.db import OperationalError, connection, connections
from latency_ledger_django import plugin as published
from latency_ledger_django.database import QueryTracer, operation_of, static_attributes
from opentelemetry.trace import SpanKind, StatusCode


@pytest.fixture
def plugin() -> Iterator[Any]:
    yield published
    published.uninstrument()


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_statement_sanitized_and_described(spans: Any, plugin: Any) -> None:
    connection.ensure_connection()  # opened before: gets the wrapper when tracing starts
    assert plugin.instrument(spans.provider) is True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'card 4111-1111', 42, %s -- the caller's note", ["secret"])
        assert cursor.fetchone() == ("card 4111-1111", 42, "secret")
    (span,) = spans.finished()
    attrs = _attrs(span)
    assert span.name == "SELECT"
    assert span.kind == SpanKind.CLIENT
    assert attrs["db.query.text"] == "SELECT ?, ?, %s"
    assert attrs["db.operation.name"] == "SELECT"
    assert attrs["db.system.name"] == attrs["db.system"] == "sqlite"
    assert attrs["django.db.alias"] == "default"
    assert "db.namespace" not in attrs  # an SQLite NAME is a file path
    assert not any("secret" in str(value) for value in attrs.values())


def test_executemany_is_one_span(spans: Any, plugin: Any) -> None:
    plugin.instrument(spans.provider)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS t_many (x integer)")
        cursor.executemany("INSERT INTO t_many (x) VALUES (%s)", [(1,), (2,), (3,)])
        cursor.execute("DROP TABLE t_many")
    names = [s.name for s in spans.finished()]
    assert names == ["CREATE", "INSERT", "DROP"]
    assert _attrs(spans.named("INSERT")[0])["db.operation.batch.size"] == 3


def test_failing_statement_marks_error_and_reraises(spans: Any, plugin: Any) -> None:
    plugin.instrument(spans.provider)
    with pytest.raises(OperationalError, match="no such table"), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    (span,) = spans.finished()
    assert span.status.status_code == StatusCode.ERROR
    assert _attrs(span)["error.type"] == "OperationalError"


def test_other_alias_opened_later_in_another_thread(spans: Any, plugin: Any) -> None:
    plugin.instrument(spans.provider)
    seen: list[Any] = []

    def work() -> None:
        other = connections["other"]
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT 1")
                seen.append(cursor.fetchone())
        finally:
            other.close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [(1,)]
    connect, select = spans.finished()
    assert (connect.name, select.name) == ("connect", "SELECT")
    assert _attrs(connect)["db.operation.name"] == "connect"
    assert _attrs(connect)["django.db.alias"] == _attrs(select)["django.db.alias"] == "other"
    assert connect.end_time <= select.start_time


def test_uninstrument_leaves_a_silent_wrapper(spans: Any, plugin: Any) -> None:
    plugin.instrument(spans.provider)
    connection.ensure_connection()
    plugin.uninstrument()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert spans.finished() == ()
    assert connection.execute_wrappers.count(plugin.queries) <= 1
    plugin.instrument(spans.provider)  # again: the same wrapper, never twice
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert connection.execute_wrappers.count(plugin.queries) == 1
    assert [s.name for s in spans.finished()] == ["connect", "SELECT"]


def test_hook_failure_runs_the_query(spans: Any) -> None:
    class Broken:
        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("tracer bug")

    tracer = QueryTracer()
    tracer.tracer = Broken()
    calls: list[Any] = []

    def execute(sql: str, params: Any, many: bool, context: Any) -> str:
        calls.append(sql)
        return "rows"

    context = {"connection": connection, "cursor": None}
    assert tracer(execute, "SELECT 1", None, False, context) == "rows"
    assert calls == ["SELECT 1"]
    assert tracer.errors == 1


class _Conn:
    vendor = "postgresql"
    alias = "replica"
    settings_dict: ClassVar[dict[str, str]] = {
        "NAME": "shop",
        "HOST": "db.internal",
        "PORT": "6432",
    }


def test_static_attributes_for_a_network_database() -> None:
    assert static_attributes(_Conn()) == {
        "db.system.name": "postgresql",
        "db.system": "postgresql",
        "django.db.alias": "replica",
        "db.namespace": "shop",
        "server.address": "db.internal",
        "server.port": 6432,
    }


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("  select 1", "SELECT"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
        ("(SELECT 1) UNION (SELECT 2)", ""),
        ("", ""),
        ("SÉLECT 1", ""),
    ],
)
def test_operation_of(statement: str, operation: str) -> None:
    assert operation_of(statement) == operation


def test_connection_opened_before_in_another_thread(spans: Any, plugin: Any) -> None:
    # a worker thread's persistent connection, opened before tracing started: no
    # connection_created will ever fire for it again, yet its queries are traced
    with ThreadPoolExecutor(max_workers=1) as worker:

        def query() -> Any:
            with connections["other"].cursor() as cursor:
                cursor.execute("SELECT 2")
                return cursor.fetchone()

        assert worker.submit(query).result() == (2,)
        plugin.instrument(spans.provider)
        assert worker.submit(query).result() == (2,)
        worker.submit(lambda: connections["other"].close()).result()
    (span,) = spans.finished()
    assert span.name == "SELECT"
    assert _attrs(span)["django.db.alias"] == "other"
