"""Transactions and connections as spans, through the middleware and the offline ledger."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import path

from latency_ledger.collect.booking import to_model_span
from latency_ledger.findings import POOL_WAIT, FindingsAccumulator, Thresholds
from latency_ledger.ledger import book_trace
from latency_ledger.model import CallKind, Category, Request, Trace

MIDDLEWARE = ["latency_ledger_django.LedgerMiddleware"]


def place_order(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous=FULL")  # an fsync at every commit
        cursor.execute("CREATE TABLE IF NOT EXISTS ll_orders (id INTEGER PRIMARY KEY, n INT)")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO ll_orders (n) VALUES (%s)", [1])
        try:
            with transaction.atomic():  # a savepoint, rolled back
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO ll_orders (n) VALUES (%s)", [2])
                raise ValueError
        except ValueError:
            pass
    return HttpResponse("ok")


def read_only(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok")


URLS = types.ModuleType("ledger_transaction_urls")
URLS.urlpatterns = [  # type: ignore[attr-defined]
    path("order", place_order),
    path("read", read_only),
]


@pytest.fixture
def served(make_collector: Callable[..., Any]) -> Iterator[tuple[Any, Any]]:
    collector, exporter = make_collector()
    from latency_ledger_django import plugin

    settings = {"MIDDLEWARE": MIDDLEWARE, "ROOT_URLCONF": URLS}
    with override_settings(**settings, LATENCY_LEDGER={"collector": collector}):
        yield collector, exporter
    plugin.uninstrument()


def _requests(collector: Any, exported: list[Any]) -> list[Request]:
    spans = tuple(to_model_span(s, "shop") for s in exported)
    traces: dict[str, list[Any]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return [
        request
        for trace_id, members in traces.items()
        for request in book_trace(
            Trace(trace_id=trace_id, spans=tuple(members)), rules=collector.rules
        ).requests
    ]


def test_commit_on_sqlite_with_synchronous_full_is_a_database_span(
    served: tuple[Any, Any], exported: Any
) -> None:
    # Acceptance (issue 9): the endpoint's transaction commits on SQLite with
    # synchronous=FULL; the COMMIT is a database span of the request, and so are the
    # BEGIN and the savepoint's statements.
    collector, exporter = served
    assert Client().get("/order").status_code == 200
    spans = exported(collector, exporter)
    names = [s.name for s in spans if s.kind.name == "CLIENT" and s.name != "connect"]
    assert names == [
        "PRAGMA",
        "CREATE",
        "BEGIN",
        "INSERT",
        "SAVEPOINT",
        "INSERT",
        "ROLLBACK",  # ROLLBACK TO SAVEPOINT
        "RELEASE",
        "COMMIT",
    ]
    (request,) = _requests(collector, spans)
    commits = [c for c in request.calls if c.target == "COMMIT"]
    assert len(commits) == 1
    assert commits[0].category == Category.DATABASE
    assert commits[0].kind == CallKind.QUERY
    assert commits[0].booked_ns > 0
    assert request.ledger.database_ns >= commits[0].booked_ns


def test_a_connection_per_request_is_a_connect_not_a_pool_wait(
    served: tuple[Any, Any], exported: Any
) -> None:
    # CONN_MAX_AGE = 0: Django opens a new SQLite connection for every request and closes
    # it after (the test client keeps it open, so it is closed here as the request_finished
    # signal would). There is no pool, so no pool-wait finding, however low the bar.
    collector, exporter = served
    for _ in range(3):
        connection.close()
        assert Client().get("/read").status_code == 200
    requests = _requests(collector, exported(collector, exporter))
    assert len(requests) == 3
    connects = [c for r in requests for c in r.calls if c.target == "connect"]
    assert len(connects) == 3
    assert {c.kind for c in connects} == {CallKind.CONNECT}
    findings = FindingsAccumulator(Thresholds(pool_wait_min_ns=0))
    for request in requests:
        findings.add(request)
    assert POOL_WAIT not in {f.kind for f in findings.findings("shop", "GET read", 3)}
