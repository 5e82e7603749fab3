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

from collections.abc import Sequence

from latency_ledger.endpoint import attr_port, attr_str, collapse_path, http_method, split_url
from latency_ledger.model import CallKind, Category, Span, SpanKind
from latency_ledger.plugins import Classification, ClassifyRule

# db.system values that are caches: waiting on them is network, not database (DESIGN table).
CACHE_SYSTEMS = frozenset(
    {"redis", "memcached", "valkey", "keydb", "dragonfly", "hazelcast", "geode", "coherence"}
)
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
    return _DATABASE, _POOL if pool else _QUERY, system, (statement or name)[:MAX_TARGET_CHARS]


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


def _outgoing(span: Span) -> ClassifiedFields:
    """A CLIENT/PRODUCER span that is not a database: HTTP, RPC, messaging or other."""
    attrs = span.attributes
    raw_method = attrs.get("http.request.method") or attrs.get("http.method")
    if isinstance(raw_method, str):
        method = raw_method if raw_method in _KNOWN_METHODS else http_method(attrs)
        return _NETWORK, _HTTP, "http", http_client_target(span, method)
    system = attr_str(attrs, "rpc.system")
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
    return _NETWORK, _OTHER, "", span.name[:MAX_TARGET_CHARS]


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
        # Go's database/sql auto-instrumentation records statements without db.system.
        statement = attrs.get("db.query.text") or attrs.get("db.statement")
        if isinstance(statement, str) and statement:
            return _database(span, "unknown", statement)
    return _outgoing(span)


def classify_standard(span: Span) -> Classification | None:
    """The DESIGN table as one rule.

    In order: ASGI receive/send spans (``asgi.event.type``, any kind) are the request's
    client I/O (network). ``db.system(.name)`` on any kind but SERVER/CONSUMER is a
    database wait (network for cache systems), so a database client speaking HTTP
    (Elasticsearch) stays a database; a CLIENT span with a statement but no system is a
    database wait too. Then CLIENT/PRODUCER spans: HTTP (a request method), RPC
    (``rpc.system``), messaging (``messaging.system``), else other network.
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
