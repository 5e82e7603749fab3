"""Classification: which spans are waits, and on what (DESIGN.md, "The ledger").

Contract: a rule is ``Span -> Classification | None``; :func:`classify_span` returns the
first non-None answer. Callers pass plugin rules first, then :data:`DEFAULT_RULES`.
A *wait span* is DATABASE (statements, connection checkout) or NETWORK (outgoing HTTP,
RPC, messaging, caches, the request's own ASGI receive/send, any other CLIENT/PRODUCER
span). Everything else (INTERNAL spans, unrecognized attributes) is not a wait and its
time is the request's own. Old and new semantic conventions are both read.

Rules never raise on odd attribute types (trace content is attacker-controlled): a
value that is not the expected type counts as absent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

from latency_ledger.endpoint import attr_port, attr_str, collapse_path, http_method, split_url
from latency_ledger.model import CallKind, Category, Span, SpanKind
from latency_ledger.plugins import Classification, ClassifyRule

# db.system values that are caches: waiting on them is network, not database (DESIGN table).
CACHE_SYSTEMS = frozenset(
    {"redis", "memcached", "valkey", "keydb", "dragonfly", "hazelcast", "geode", "coherence"}
)
# Names a database, cache or broker goes by, as a peer (peer.service, server.address...)
# or as the service.name of its own spans (Jaeger's HotROD reports its MySQL and Redis
# calls under services "mysql" and "redis"), -> the db.system / messaging.system value.
# Matched against the whole name and against its first word ("redis-master",
# "postgres.prod.svc"), never any word: "user-db" or "my-cache-api" say nothing.
KNOWN_DATABASES: Mapping[str, str] = {
    "mysql": "mysql",
    "mariadb": "mariadb",
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "mssql": "mssql",
    "sqlserver": "mssql",
    "oracle": "oracle",
    "sqlite": "sqlite",
    "mongodb": "mongodb",
    "mongo": "mongodb",
    "cassandra": "cassandra",
    "scylla": "cassandra",
    "scylladb": "cassandra",
    "elasticsearch": "elasticsearch",
    "opensearch": "opensearch",
    "couchbase": "couchbase",
    "couchdb": "couchdb",
    "dynamodb": "dynamodb",
    "clickhouse": "clickhouse",
    "cockroachdb": "cockroachdb",
    "neo4j": "neo4j",
    "influxdb": "influxdb",
    "hbase": "hbase",
    "solr": "solr",
    "db2": "db2",
    "h2": "h2",
    "hsqldb": "hsqldb",
    "spanner": "spanner",
    "cosmosdb": "cosmosdb",
    "trino": "trino",
    "presto": "presto",
    "redis": "redis",
    "memcached": "memcached",
    "memcache": "memcached",
    "valkey": "valkey",
    "keydb": "keydb",
    "dragonfly": "dragonfly",
    "hazelcast": "hazelcast",
}
KNOWN_BROKERS: Mapping[str, str] = {
    "kafka": "kafka",
    "rabbitmq": "rabbitmq",
    "rabbit": "rabbitmq",
    "activemq": "activemq",
    "artemis": "activemq",
    "nats": "nats",
    "pulsar": "pulsar",
    "sqs": "aws_sqs",
    "sns": "aws_sns",
    "kinesis": "aws_kinesis",
}
# Well-known ports, for a peer known only by address and port (and no HTTP/RPC).
KNOWN_PORTS: Mapping[str, str] = {
    "3306": "mysql",
    "5432": "postgresql",
    "1433": "mssql",
    "1521": "oracle",
    "27017": "mongodb",
    "9042": "cassandra",
    "9200": "elasticsearch",
    "6379": "redis",
    "11211": "memcached",
}
# Statements under vendor keys (Brave/Zipkin, OpenTracing contrib), after the semconv ones,
# with the system each implies.
_STATEMENT_KEYS: tuple[tuple[str, str], ...] = (
    ("db.query.text", ""),
    ("db.statement", ""),
    ("sql.query", ""),
    ("cassandra.query", "cassandra"),
)
# Where a CLIENT span names its peer, most specific first.
_PEER_KEYS = ("peer.service", "db.instance", "server.address", "net.peer.name", "out.host")
_WORD = re.compile(r"[^a-z0-9]+")
# Outgoing-call kinds; INTERNAL spans are the app's own code.
_OUTGOING = frozenset({SpanKind.CLIENT, SpanKind.PRODUCER})
# A SERVER span is a request and a CONSUMER span is work done on a received message:
# neither is a wait, whatever attributes they carry.
_NOT_DB = frozenset({SpanKind.SERVER, SpanKind.CONSUMER})
_DEFAULT_PORTS = frozenset({"80", "443"})
# Methods already in canonical form skip endpoint.http_method's normalization.
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER"}
)
# Enum members bound once: attribute access on an Enum class costs ~0.1 us on
# CPython 3.11, and these are used per span.
_CLIENT = SpanKind.CLIENT
_DATABASE = Category.DATABASE
_NETWORK = Category.NETWORK
_QUERY, _POOL, _CACHE = CallKind.QUERY, CallKind.POOL, CallKind.CACHE
_CONNECT = CallKind.CONNECT
# On a ``connect`` span: "open" (a new connection was opened) or "pool" (a checkout from a
# pool that waited). Without it, a ``connect`` span is SQLAlchemy's checkout (its
# instrumentation's name for ``Engine.connect``), except Django's, which opens one.
CONNECT_ATTRIBUTE = "ledger.db.connect"
_HTTP, _RPC, _MESSAGING = CallKind.HTTP, CallKind.RPC, CallKind.MESSAGING
_CLIENT_IO, _OTHER = CallKind.CLIENT_IO, CallKind.OTHER
MAX_TARGET_CHARS = 4096  # statements are kept whole up to this; findings normalize them


# (category, kind, system, target): a Classification's fields. The built-in rule builds
# these plain tuples and the ledger reads them directly: a frozen record per span costs
# more than the rest of the classification.
ClassifiedFields = tuple[Category, CallKind, str, str]


# Attribute values are fetched inline below (``attrs.get(a) or attrs.get(b)`` and a type
# check) rather than through endpoint.attr_str: this runs per span, and a Python call
# costs more than the lookups themselves.


def _database(span: Span, system: str, statement: str) -> ClassifiedFields:
    attrs = span.attributes
    operation = attrs.get("db.operation.name") or attrs.get("db.operation")
    if not isinstance(operation, str):
        operation = ""
    if system in CACHE_SYSTEMS:
        target = statement or operation or span.name
        return _NETWORK, _CACHE, system, target[:MAX_TARGET_CHARS]
    # SQLAlchemy's instrumentation names its checkout/connect span "connect".
    name = span.name
    pool = (len(name) == 7 and name.lower() == "connect") or (
        len(operation) == 7 and operation.lower() == "connect"
    )
    kind = _QUERY
    if pool:
        how = attrs.get(CONNECT_ATTRIBUTE)
        opened = how == "open" or (how is None and "django.db.alias" in attrs)
        kind = _CONNECT if opened else _POOL
    return _DATABASE, kind, system, (statement or name)[:MAX_TARGET_CHARS]


def http_client_target(span: Span, method: str) -> str:
    """``"GET api.example.com:8080/orders/{id}"``: host and route, never ids or a query."""
    attrs = span.attributes
    host = attrs.get("server.address") or attrs.get("net.peer.name")
    if isinstance(host, str):
        host = host.lower()
        if attrs.get("server.port") is not None or attrs.get("net.peer.port") is not None:
            port = attr_port(attrs, "server.port", "net.peer.port")
            if port and port not in _DEFAULT_PORTS:
                host = f"{host}:{port}"
    else:
        host = ""
    route = attrs.get("url.template") or attrs.get("http.route")
    path = ""
    if not (isinstance(route, str) and route):
        route = ""
        raw_path = attrs.get("url.path") or attrs.get("http.target")
        if isinstance(raw_path, str):
            path = raw_path
    if not host or not (route or path):
        url = attrs.get("url.full") or attrs.get("http.url")
        if isinstance(url, str):
            url_host, url_path = split_url(url)
            host = host or url_host
            path = path or url_path
    if not route:
        route = collapse_path(path) if path else ""
    if route and route[0] != "/":
        route = "/" + route
    return f"{method} {host}{route[:MAX_TARGET_CHARS]}"


@functools.lru_cache(maxsize=4096)
def _named(name: str) -> tuple[str, str]:
    """(database or cache system, broker system) a name stands for; "" for none.

    Cached: peer and service names repeat on every span of a trace file, and this runs
    for most CLIENT spans; the bound keeps hostile names from growing it.
    """
    low = name.lower()
    first = _WORD.split(low, 1)[0]
    return (
        KNOWN_DATABASES.get(low) or KNOWN_DATABASES.get(first, ""),
        KNOWN_BROKERS.get(low) or KNOWN_BROKERS.get(first, ""),
    )


def known_system(name: object, broker: bool = False) -> str:
    """The database or cache (``broker``: message broker) system a peer or service name
    stands for ("" when none)."""
    if name.__class__ is not str or not name or len(name) > 253:
        return ""
    return _named(name)[broker]


def _peer_system(span: Span, broker: bool = False) -> str:
    """What the span's peer (``peer.service``, ``server.address``...) names."""
    attrs = span.attributes
    for key in _PEER_KEYS:
        value = attrs.get(key)
        if value is not None:
            found = known_system(value, broker)
            if found:
                return found
    return ""


def _client_database(span: Span) -> ClassifiedFields | None:
    """A CLIENT span that is a database call without ``db.system``: a statement under a
    semconv or vendor key, or OpenTracing's ``db.type``."""
    attrs = span.attributes
    statement = implied = ""
    for key, system in _STATEMENT_KEYS:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            statement, implied = value, system
            break
    db_type = attrs.get("db.type")
    if isinstance(db_type, str) and db_type:
        return _database(span, known_system(db_type) or db_type.lower(), statement)
    if statement:
        system = implied or _peer_system(span) or known_system(span.service)
        return _database(span, system or "unknown", statement)
    return None


def _outgoing(span: Span) -> ClassifiedFields:
    """A CLIENT/PRODUCER span that is not a database by its attributes (see
    :func:`classify_standard` for the order)."""
    attrs = span.attributes
    client = span.kind == _CLIENT
    if client:
        system = _peer_system(span)
        if system:
            return _database(span, system, "")
    raw_method = attrs.get("http.request.method") or attrs.get("http.method")
    if isinstance(raw_method, str):
        method = raw_method if raw_method in _KNOWN_METHODS else http_method(attrs)
        return _NETWORK, _HTTP, "http", http_client_target(span, method)
    system = attr_str(attrs, "rpc.system", "rpc.system.name")
    if system:
        service = attr_str(attrs, "rpc.service")
        rpc_method = attr_str(attrs, "rpc.method")
        target = f"{service}/{rpc_method}" if service or rpc_method else span.name
        return _NETWORK, _RPC, system.lower(), target[:MAX_TARGET_CHARS]
    system = attr_str(attrs, "messaging.system")
    if system:
        operation = attr_str(attrs, "messaging.operation.type", "messaging.operation")
        destination = attr_str(attrs, "messaging.destination.name", "messaging.destination")
        target = " ".join(part for part in (operation, destination) if part) or span.name
        return _NETWORK, _MESSAGING, system.lower(), target[:MAX_TARGET_CHARS]
    if client:
        # Nothing says what the call is: the service reporting it may be the database
        # (HotROD's "mysql"), or its port may, or a db.* attribute (db.name...) does.
        system = known_system(span.service) or KNOWN_PORTS.get(
            attr_port(attrs, "server.port", "net.peer.port"), ""
        )
        if system or any(key.startswith("db.") for key in attrs):
            return _database(span, system or "unknown", "")
    system = _peer_system(span, broker=True) or known_system(span.service, broker=True)
    if system:
        return _NETWORK, _MESSAGING, system, span.name[:MAX_TARGET_CHARS]
    return _NETWORK, _OTHER, "", span.name[:MAX_TARGET_CHARS]


def answered_fields(span: Span, answering: Sequence[Span]) -> ClassifiedFields | None:
    """A CLIENT span's call as a database wait when a SERVER span answering it (a child
    of it) belongs to a service named as a known database or cache; else None."""
    for child in answering:
        if child.kind == SpanKind.SERVER:
            system = known_system(child.service)
            if system:
                return _database(span, system, "")
    return None


def standard_fields(span: Span) -> ClassifiedFields | None:
    """The DESIGN table in one pass over the attributes; see :func:`classify_standard`."""
    attrs = span.attributes
    event = attrs.get("asgi.event.type")
    if isinstance(event, str) and event:
        return _NETWORK, _CLIENT_IO, "asgi", event[:MAX_TARGET_CHARS]
    kind = span.kind
    if kind in _NOT_DB:
        return None
    system = attrs.get("db.system.name") or attrs.get("db.system")
    if isinstance(system, str) and system:
        statement = attrs.get("db.query.text") or attrs.get("db.statement")
        return _database(span, system.lower(), statement if isinstance(statement, str) else "")
    if kind not in _OUTGOING:
        return None
    if kind == _CLIENT:
        # Go's database/sql auto-instrumentation records statements without db.system;
        # Brave's p6spy and cassandra ones under sql.query / cassandra.query.
        found = _client_database(span)
        if found is not None:
            return found
    return _outgoing(span)


def classify_standard(span: Span) -> Classification | None:
    """The DESIGN table as one rule.

    In order: ASGI receive/send spans (``asgi.event.type``, any kind) are the request's
    client I/O (network). ``db.system(.name)`` on any kind but SERVER/CONSUMER is a
    database wait (network for cache systems), so a database client speaking HTTP
    (Elasticsearch) stays a database. A CLIENT span with a statement (``db.query.text``,
    ``db.statement``, ``sql.query``, ``cassandra.query``) or OpenTracing's ``db.type`` is
    a database wait too. Then CLIENT/PRODUCER spans:

    1. CLIENT whose peer (``peer.service``, ``db.instance``, ``server.address``,
       ``net.peer.name``, ``out.host``) names a database or cache
       (:data:`KNOWN_DATABASES`): database (network for caches), even over HTTP or RPC;
    2. HTTP (a request method), RPC (``rpc.system`` / ``rpc.system.name``), messaging
       (``messaging.system``);
    3. CLIENT with none of those whose own service name or well-known port
       (:data:`KNOWN_PORTS`) names a database or cache (HotROD reports its MySQL calls
       under service "mysql"), or that has any ``db.*`` attribute;
    4. a peer or service that names a broker (:data:`KNOWN_BROKERS`): messaging;
    5. else other network.

    The ledger adds one rule that needs the trace (:func:`answered_fields`).
    """
    found = standard_fields(span)
    if found is None:
        return None
    category, kind, system, target = found
    return Classification(category=category, kind=kind, system=system, target=target)


DEFAULT_RULES: tuple[ClassifyRule, ...] = (classify_standard,)


def classify_span(span: Span, rules: Sequence[ClassifyRule]) -> Classification | None:
    """The first rule's answer that is not None; None means "not a wait"."""
    for rule in rules:
        found = rule(span)
        if found is not None:
            return found
    return None
