"""Classification rules: which spans are database or network waits."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from latency_ledger.classify import DEFAULT_RULES, classify_span
from latency_ledger.model import AttributeValue, CallKind, Category, Span, SpanKind
from latency_ledger.plugins import Classification


def span(
    kind: SpanKind, attrs: Mapping[str, AttributeValue], name: str = "op", service: str = "shop"
) -> Span:
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
        service=service,
    )


def classify(
    kind: SpanKind, attrs: Mapping[str, AttributeValue], name: str = "op", service: str = "shop"
) -> tuple[str, str, str, str] | None:
    found = classify_span(span(kind, attrs, name, service), DEFAULT_RULES)
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
        # Opening a new connection is not a pool wait: said by the plugin, or Django's
        # connect span (Django opens a connection per request unless it keeps one).
        (
            CLIENT,
            {"db.system": "postgresql", "ledger.db.connect": "open"},
            "connect",
            ("database", "connect", "postgresql", "connect"),
        ),
        (
            CLIENT,
            {"db.system": "sqlite", "django.db.alias": "default"},
            "connect",
            ("database", "connect", "sqlite", "connect"),
        ),
        (
            CLIENT,
            {"db.system": "postgresql", "django.db.alias": "default", "ledger.db.connect": "pool"},
            "connect",
            ("database", "pool", "postgresql", "connect"),
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


# What real exports carry beyond the semantic conventions (issue 10): vendor statement
# keys, OpenTracing's db.type, new rpc names, and peers or services that name a database.
@pytest.mark.parametrize(
    ("kind", "attrs", "service", "expected"),
    [
        # Brave / Zipkin: sql.query on a CLIENT span, the peer only a made-up name.
        (
            CLIENT,
            {"sql.query": "select 1", "peer.service": "app_db"},
            "shop",
            ("database", "query", "unknown", "select 1"),
        ),
        # HotROD: the call is reported under service "mysql", the statement as sql.query.
        (CLIENT, {"sql.query": "SELECT *"}, "mysql", ("database", "query", "mysql", "SELECT *")),
        # HotROD's Redis calls: no attributes at all, service "redis".
        (CLIENT, {"param.driverID": "T7"}, "redis", ("network", "cache", "redis", "op")),
        (
            CLIENT,
            {"cassandra.query": "SELECT x"},
            "shop",
            ("database", "query", "cassandra", "SELECT x"),
        ),
        (
            CLIENT,
            {"db.type": "sql", "db.statement": "q"},
            "shop",
            ("database", "query", "sql", "q"),
        ),
        (CLIENT, {"db.type": "redis"}, "shop", ("network", "cache", "redis", "op")),
        (CLIENT, {"db.name": "orders"}, "shop", ("database", "query", "unknown", "op")),
        # A peer that names a database or cache, in any of the keys, even over HTTP.
        (CLIENT, {"peer.service": "MySQL"}, "shop", ("database", "query", "mysql", "op")),
        (
            CLIENT,
            {"server.address": "redis-master.cache.svc"},
            "shop",
            ("network", "cache", "redis", "op"),
        ),
        (CLIENT, {"net.peer.name": "postgres"}, "shop", ("database", "query", "postgresql", "op")),
        (
            CLIENT,
            {
                "http.request.method": "POST",
                "server.address": "elasticsearch",
                "url.path": "/i/_search",
            },
            "shop",
            ("database", "query", "elasticsearch", "op"),
        ),
        # Only the first word counts: "user-db" or "my-redis-api" say nothing.
        (CLIENT, {"peer.service": "user-db"}, "shop", ("network", "other", "", "op")),
        (CLIENT, {"server.address": "my-redis-api"}, "shop", ("network", "other", "", "op")),
        # A well-known port, when nothing else says what the call is; never over HTTP.
        (
            CLIENT,
            {"server.address": "10.0.0.5", "server.port": 3306},
            "shop",
            ("database", "query", "mysql", "op"),
        ),
        (
            CLIENT,
            {
                "http.method": "GET",
                "net.peer.name": "10.0.0.5",
                "net.peer.port": 6379,
                "http.target": "/",
            },
            "shop",
            ("network", "http", "http", "GET 10.0.0.5:6379/"),
        ),
        # A service named like a database that makes HTTP calls is still making HTTP calls.
        (
            CLIENT,
            {"http.request.method": "GET", "url.full": "http://pay/x"},
            "mongo-gateway",
            ("network", "http", "http", "GET pay/x"),
        ),
        # New RPC convention; a broker peer without messaging.* (Brave's Kafka spans).
        (
            CLIENT,
            {"rpc.system.name": "grpc", "rpc.method": "Get"},
            "shop",
            ("network", "rpc", "grpc", "/Get"),
        ),
        (
            SpanKind.PRODUCER,
            {"peer.service": "kafka", "kafka.topic": "t"},
            "shop",
            ("network", "messaging", "kafka", "op"),
        ),
    ],
)
def test_what_real_exports_carry(
    kind: SpanKind,
    attrs: Mapping[str, AttributeValue],
    service: str,
    expected: tuple[str, str, str, str],
) -> None:
    assert classify(kind, attrs, service=service) == expected


def test_a_database_peer_does_not_make_a_server_or_internal_span_a_wait() -> None:
    assert classify(SpanKind.SERVER, {"peer.service": "mysql"}, service="mysql") is None
    assert classify(SpanKind.INTERNAL, {"sql.query": "select 1"}, service="mysql") is None
