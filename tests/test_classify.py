"""Classification rules: which spans are database or network waits."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from latency_ledger.classify import DEFAULT_RULES, classify_span
from latency_ledger.model import AttributeValue, CallKind, Category, Span, SpanKind
from latency_ledger.plugins import Classification


def span(kind: SpanKind, attrs: Mapping[str, AttributeValue], name: str = "op") -> Span:
    return Span(
        trace_id="t",
        span_id="s",
        parent_span_id="p",
        name=name,
        kind=kind,
        start_ns=0,
        end_ns=1,
        is_error=False,
        attributes=dict(attrs),
        service="shop",
    )


def classify(
    kind: SpanKind, attrs: Mapping[str, AttributeValue], name: str = "op"
) -> tuple[str, str, str, str] | None:
    found = classify_span(span(kind, attrs, name), DEFAULT_RULES)
    if found is None:
        return None
    return (found.category.value, found.kind.value, found.system, found.target)


CLIENT = SpanKind.CLIENT


@pytest.mark.parametrize(
    ("kind", "attrs", "name", "expected"),
    [
        # Database, new and old conventions; the statement is the target, else the name.
        (
            CLIENT,
            {"db.system.name": "postgresql", "db.query.text": "SELECT 1"},
            "q",
            ("database", "query", "postgresql", "SELECT 1"),
        ),
        (
            CLIENT,
            {"db.system": "sqlite", "db.statement": "SELECT 2"},
            "q",
            ("database", "query", "sqlite", "SELECT 2"),
        ),
        (
            CLIENT,
            {"db.system": "mysql"},
            "SELECT shop.orders",
            ("database", "query", "mysql", "SELECT shop.orders"),
        ),
        # SQLAlchemy's connection checkout span, and the new-convention operation name.
        (
            CLIENT,
            {"db.system": "postgresql"},
            "connect",
            ("database", "pool", "postgresql", "connect"),
        ),
        (
            CLIENT,
            {"db.system.name": "postgresql", "db.operation.name": "connect"},
            "x",
            ("database", "pool", "postgresql", "x"),
        ),
        # Go auto-instrumentation: a statement but no db.system.
        (
            CLIENT,
            {"db.query.text": "SELECT * FROM contacts"},
            "SELECT contacts",
            ("database", "query", "unknown", "SELECT * FROM contacts"),
        ),
        # Caches are network.
        (
            CLIENT,
            {"db.system": "redis", "db.statement": "GET ?"},
            "GET",
            ("network", "cache", "redis", "GET ?"),
        ),
        (
            CLIENT,
            {"db.system.name": "memcached", "db.operation.name": "get"},
            "get",
            ("network", "cache", "memcached", "get"),
        ),
        # Outgoing HTTP, new convention: host, port, template; never the query.
        (
            CLIENT,
            {
                "http.request.method": "GET",
                "server.address": "API.example",
                "server.port": 8443,
                "url.full": "https://api.example:8443/orders/12?token=s3cret",
                "url.template": "/orders/{id}",
            },
            "GET",
            ("network", "http", "http", "GET api.example:8443/orders/{id}"),
        ),
        # Old convention, no template: the path from the URL with ids collapsed, no userinfo.
        (
            CLIENT,
            {"http.method": "post", "http.url": "http://user:pw@pay.example/charge/991?x=1"},
            "POST",
            ("network", "http", "http", "POST pay.example/charge/{id}"),
        ),
        (
            CLIENT,
            {
                "http.method": "GET",
                "net.peer.name": "stock",
                "net.peer.port": "80",
                "http.target": "/items/5",
            },
            "GET",
            ("network", "http", "http", "GET stock/items/{id}"),
        ),
        (
            CLIENT,
            {"rpc.system": "grpc", "rpc.service": "shop.Stock", "rpc.method": "Get"},
            "x",
            ("network", "rpc", "grpc", "shop.Stock/Get"),
        ),
        (
            SpanKind.PRODUCER,
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": "orders",
            },
            "x",
            ("network", "messaging", "kafka", "send orders"),
        ),
        (
            SpanKind.INTERNAL,
            {"asgi.event.type": "http.response.start", "http.status_code": 200},
            "GET /orders/12 http send",
            ("network", "client_io", "asgi", "http.response.start"),
        ),
        (CLIENT, {}, "smtp.send", ("network", "other", "", "smtp.send")),
        # Database clients speaking HTTP are still databases.
        (
            CLIENT,
            {"db.system": "elasticsearch", "http.request.method": "GET"},
            "search",
            ("database", "query", "elasticsearch", "search"),
        ),
    ],
)
def test_waits(
    kind: SpanKind,
    attrs: Mapping[str, AttributeValue],
    name: str,
    expected: tuple[str, str, str, str],
) -> None:
    assert classify(kind, attrs, name) == expected


@pytest.mark.parametrize(
    ("kind", "attrs"),
    [
        (SpanKind.INTERNAL, {}),
        (SpanKind.INTERNAL, {"http.request.method": "GET", "url.full": "http://x/"}),
        (SpanKind.INTERNAL, {"rpc.system": "grpc"}),
        (SpanKind.SERVER, {"http.request.method": "GET", "db.system": "postgresql"}),
        (SpanKind.CONSUMER, {"messaging.system": "kafka"}),
        (SpanKind.INTERNAL, {"db.query.text": "SELECT 1"}),  # no system and not a client
        (SpanKind.INTERNAL, {"db.system": 42}),  # wrong type counts as absent
        (SpanKind.UNSPECIFIED, {"asgi.event.type": ""}),
    ],
)
def test_not_waits(kind: SpanKind, attrs: Mapping[str, AttributeValue]) -> None:
    assert classify(kind, attrs) is None


def test_first_rule_wins_and_no_rules_classify_nothing() -> None:
    def mine(s: Span) -> Classification | None:
        return Classification(category=Category.NETWORK, kind=CallKind.RPC, system="x", target="y")

    db_span = span(CLIENT, {"db.system": "postgresql"})
    assert classify_span(db_span, (mine, *DEFAULT_RULES)) == Classification(
        category=Category.NETWORK, kind=CallKind.RPC, system="x", target="y"
    )
    assert classify_span(db_span, ()) is None


def test_long_statement_is_capped() -> None:
    found = classify_span(
        span(CLIENT, {"db.system": "postgresql", "db.statement": "S" * 100_000}), DEFAULT_RULES
    )
    assert found is not None
    assert len(found.target) == 4096
