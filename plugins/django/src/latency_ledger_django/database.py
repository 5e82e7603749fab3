"""ORM queries and connection opens as CLIENT database spans, on every database alias.

Contract: while a :class:`QueryTracer` is active, every statement Django runs through a
database connection (ORM, ``connection.cursor().execute``, ``executemany``) is one CLIENT
span named by its operation (``SELECT``), with ``db.system.name``/``db.system``,
``db.query.text`` (literals replaced by ``?``: bind parameters are never recorded) and
the Django alias; every ``BaseDatabaseWrapper.connect()`` is a ``connect`` CLIENT span
marked ``ledger.db.connect="open"`` (opening a new connection: Django keeps none between
requests unless ``CONN_MAX_AGE`` says so, and has no pool), or ``"pool"`` when the alias
uses Django's PostgreSQL pool (``OPTIONS["pool"]``), which the ledger books as a pool
wait. ``commit()`` and ``rollback()`` (``atomic`` blocks leaving, or called by hand) are
``COMMIT``/``ROLLBACK`` spans when a transaction is open (otherwise the driver sends
nothing); ``BEGIN`` and savepoints run through a cursor and are statement spans already;
in autocommit mode each statement commits inside its own span. A failing statement
marks its span as an error and is re-raised unchanged; the tracer's own failures never
reach the app.

Why ``connection.execute_wrappers`` and not the OpenTelemetry dbapi/psycopg
instrumentations: it is Django's public hook, one mechanism for every backend (SQLite,
PostgreSQL, MySQL, Oracle, third-party ones) and every alias, it sees the statement as
the ORM sends it (placeholders, parameters kept apart) plus the alias and vendor, and
costs one function call per query, where the dbapi instrumentation proxies every
connection and cursor and only traces connections opened through a ``connect`` function
it wrapped before they were made. The wrapper is added to a connection when it makes a
cursor (``BaseDatabaseWrapper._prepare_cursor``, which every cursor, plain, debug or
server-side, passes through): so connections opened before tracing started, in any
thread, are covered too, which the ``connection_created`` signal alone would miss (a
worker thread's persistent connection opened before the first request, say).

When the psycopg instrumentation (the psycopg plugin) also traces the same cursor, or
the same commit, its span would count every query twice in N+1 findings; our span is
kept and the inner one suppressed for the length of the call.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from time import thread_time_ns
from typing import Any

from latency_ledger_plugin_base import sanitize_sql
from latency_ledger_plugin_base.tracing import meter_for
from latency_ledger_plugin_base.transactions import (
    CONNECT_ATTRIBUTE,
    idle,
    plain_cursors,
    suppress_instrumentation,
    traced_cursor,
)
from opentelemetry import context as otel_context
from opentelemetry import trace

MAX_STATEMENT_CHARS = 4096  # cut before sanitizing: a huge statement must stay cheap
MAX_CACHED_STATEMENTS = 1024
_CLIENT = trace.SpanKind.CLIENT
_SUPPRESS_KEY = "suppress_instrumentation"  # opentelemetry.instrumentation.utils' key name

# connection.vendor -> (db.system.name, old db.system) per the semantic conventions
_SYSTEMS = {
    "postgresql": ("postgresql", "postgresql"),
    "sqlite": ("sqlite", "sqlite"),
    "mysql": ("mysql", "mysql"),
    "oracle": ("oracle.db", "oracle"),
    "microsoft": ("microsoft.sql_server", "mssql"),
}


def _suppress_key() -> Any:
    try:
        from opentelemetry.instrumentation.utils import (  # type: ignore[attr-defined]
            _SUPPRESS_INSTRUMENTATION_KEY,
        )
    except ImportError:  # the instrumentation package absent: nothing to suppress
        return None
    return _SUPPRESS_INSTRUMENTATION_KEY


def static_attributes(connection: Any) -> dict[str, Any]:
    """Attributes that depend on the connection only (computed once per alias)."""
    vendor = str(getattr(connection, "vendor", "") or "other")
    system, old_system = _SYSTEMS.get(vendor, (vendor, vendor))
    attrs: dict[str, Any] = {
        "db.system.name": system,
        "db.system": old_system,
        "django.db.alias": str(getattr(connection, "alias", "")),
    }
    settings: Mapping[str, Any] = getattr(connection, "settings_dict", None) or {}
    name = settings.get("NAME")
    if name and vendor != "sqlite":  # an SQLite NAME is a local file path, not a namespace
        attrs["db.namespace"] = str(name)[:256]
    host = settings.get("HOST")
    if host:
        attrs["server.address"] = str(host)[:256]
        port = settings.get("PORT")
        if port:
            with contextlib.suppress(TypeError, ValueError):
                attrs["server.port"] = int(port)
    return attrs


def operation_of(statement: str) -> str:
    """The statement's leading keyword (``SELECT``), or ``""``."""
    head = statement[:32].lstrip().split(None, 1)
    word = head[0].upper() if head else ""
    return word if word.isalpha() and word.isascii() else ""


class QueryTracer:
    """Django ``execute_wrapper`` (one object, shared by every connection) and connect hook.

    Stays in a connection's wrapper list once added; while inactive (``tracer`` None) it
    only calls through, so uninstrumenting never has to reach into other threads.
    """

    def __init__(self) -> None:
        self._tracer: Any = None
        # the tracer's hot path for cached clean attributes (a collector's), or None
        self._start_clean: Any = None
        self.meter: Any = meter_for(None)  # the collector's, once tracing (plugin.py)
        self.errors = 0
        self._static: dict[tuple[str, str], dict[str, Any]] = {}
        # (alias, vendor, statement) -> (span name, attributes): never written to
        self._described: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
        # the same for commits, rollbacks and connects: (alias, vendor, what)
        self._calls: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
        self._cursor_kinds: dict[type, bool] = {}
        self._suppress = _suppress_key()

    @property
    def tracer(self) -> Any:
        """The tracer spans are recorded with (None: inactive, calls only go through)."""
        return self._tracer

    @tracer.setter
    def tracer(self, tracer: Any) -> None:
        start_clean = getattr(tracer, "start_clean_span", None)
        self._start_clean = start_clean if callable(start_clean) else None
        self._tracer = tracer

    # -- the execute wrapper ---------------------------------------------------------

    def __call__(
        self,
        execute: Callable[..., Any],
        sql: Any,
        params: Any,
        many: bool,
        context: Mapping[str, Any],
    ) -> Any:
        tracer = self._tracer
        if tracer is None:
            return execute(sql, params, many, context)
        # our CPU around the statement is the collector's cost (1 in N measured)
        meter = self.meter
        sampled = meter.due()
        c0 = thread_time_ns() if sampled else 0
        try:
            span, token = self._start(tracer, sql, params, many, context)
        except Exception:
            self.errors += 1
            return execute(sql, params, many, context)
        if span is None:  # instrumentation suppressed here
            return execute(sql, params, many, context)
        c1 = thread_time_ns() if sampled else 0
        try:
            return execute(sql, params, many, context)
        except BaseException as exc:
            _mark_error(span, exc)
            raise
        finally:
            c2 = thread_time_ns() if sampled else 0
            if token is not None:
                otel_context.detach(token)
            span.end()
            # a collector's light span (``timed``) leaves the measuring to us; any other
            # span measures its own recording, or is not ours to count
            if getattr(span, "timed", False):
                if sampled:
                    meter.record(c1 - c0 + thread_time_ns() - c2)
                tracer.charge(meter.mean_ns)

    def _start(
        self, tracer: Any, sql: Any, params: Any, many: bool, context: Mapping[str, Any]
    ) -> tuple[Any, Any]:
        connection = context["connection"]
        statement = sql if isinstance(sql, str) else str(sql)
        if len(statement) > MAX_STATEMENT_CHARS:
            statement = statement[:MAX_STATEMENT_CHARS]
        key = (getattr(connection, "alias", ""), getattr(connection, "vendor", ""), statement)
        described = self._described.get(key)
        if described is None:
            described = self._describe(key, connection, statement)
        name, attrs = described
        start_clean = self._start_clean
        if many and isinstance(params, (list, tuple)):
            batch = {**attrs, "db.operation.batch.size": len(params)}
            span = tracer.start_span(name, kind=_CLIENT, attributes=batch)
        elif start_clean is not None:
            # the collector's hot path: the dict is shared by every span of the statement
            # (copied only if something writes to a span), no per-span filter
            span = start_clean(name, _CLIENT, attrs)
            if span is None:  # instrumentation suppressed here
                return None, None
        else:
            span = tracer.start_span(name, kind=_CLIENT, attributes=attrs)
        token = None
        # an OpenTelemetry-traced DB-API cursor (psycopg/dbapi instrumentation) under ours
        # (the cursor type's answer looked up here first: a plain one is the usual case)
        raw = getattr(context.get("cursor"), "cursor", None)
        traced = self._cursor_kinds.get(type(raw))
        if traced is None:
            traced = traced_cursor(raw, self._cursor_kinds)
        if traced and self._suppress is not None:
            ctx = trace.set_span_in_context(span)
            token = otel_context.attach(otel_context.set_value(self._suppress, True, ctx))
        return span, token

    def _describe(
        self, key: tuple[str, str, str], connection: Any, statement: str
    ) -> tuple[str, dict[str, Any]]:
        """A statement's span name and attributes: the same for every run of it, so made
        once (sanitizing and parsing it cost more than the rest of the span)."""
        attrs = dict(self._static_for(connection))
        attrs["db.query.text"] = sanitize_sql(statement)
        operation = operation_of(statement)
        if operation:
            attrs["db.operation.name"] = operation
        described = (operation or str(attrs["db.system.name"]), attrs)
        cache = self._described
        if len(cache) >= MAX_CACHED_STATEMENTS:  # literals inlined by raw SQL: unbounded
            cache.clear()
        cache[key] = described
        return described

    def _static_for(self, connection: Any) -> dict[str, Any]:
        key = (str(getattr(connection, "alias", "")), str(getattr(connection, "vendor", "")))
        attrs = self._static.get(key)
        if attrs is None:
            attrs = static_attributes(connection)
            if len(self._static) < 256:  # aliases come from settings: few
                self._static[key] = attrs
        return attrs

    # -- connections -----------------------------------------------------------------

    def wrap_prepare_cursor(self, prepare: Callable[..., Any]) -> Callable[..., Any]:
        """``BaseDatabaseWrapper._prepare_cursor``: every cursor of every connection, opened
        before or after, on any thread, makes sure its connection carries the wrapper."""

        @functools.wraps(prepare)
        def prepare_cursor(wrapper: Any, cursor: Any) -> Any:
            if self.tracer is not None and self not in wrapper.execute_wrappers:
                self.add_to(wrapper)
            return prepare(wrapper, cursor)

        prepare_cursor.__latency_ledger_original__ = prepare  # type: ignore[attr-defined]
        return prepare_cursor

    def add_to(self, connection: Any) -> None:
        try:
            wrappers = connection.execute_wrappers
            if self not in wrappers:
                # Django nests them so the last is innermost: the span times the driver call
                wrappers.append(self)
        except Exception:
            self.errors += 1

    def wrap_connect(self, connect: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``BaseDatabaseWrapper.connect`` timed as a ``connect`` CLIENT span."""

        def describe(wrapper: Any) -> tuple[str, dict[str, Any]]:
            options = getattr(wrapper, "settings_dict", None) or {}
            pooled = bool((options.get("OPTIONS") or {}).get("pool"))
            return self._call(wrapper, "pool" if pooled else "open", _describe_connect)

        @functools.wraps(connect)
        def connect_plain(wrapper: Any) -> Any:
            result = connect(wrapper)
            try:  # our statement spans cover it: no traced cursor per statement (psycopg)
                plain_cursors(getattr(wrapper, "connection", None))
            except Exception:
                self.errors += 1
            return result

        traced = self._span_around(connect_plain, describe, suppress=False)
        traced.__latency_ledger_original__ = connect  # type: ignore[attr-defined]
        return traced

    def wrap_transaction(
        self, method: Callable[[Any], Any], statement: str
    ) -> Callable[[Any], Any]:
        """``BaseDatabaseWrapper.commit``/``rollback`` timed as a ``statement`` span, when
        the connection has a transaction open; a driver plugin's span of it suppressed."""

        def describe(wrapper: Any) -> tuple[str, dict[str, Any]] | None:
            raw = getattr(wrapper, "connection", None)
            if raw is None or idle(raw):
                return None  # nothing is sent
            return self._call(wrapper, statement, _describe_transaction)

        return self._span_around(method, describe, suppress=True)

    def _call(
        self,
        wrapper: Any,
        what: str,
        describe: Callable[[dict[str, Any], str], tuple[str, dict[str, Any]]],
    ) -> tuple[str, dict[str, Any]]:
        """A commit's, rollback's or connect's span name and attributes, made once per
        alias and shared by its spans (never written to)."""
        key = (getattr(wrapper, "alias", ""), getattr(wrapper, "vendor", ""), what)
        described = self._calls.get(key)
        if described is None:
            described = describe(dict(self._static_for(wrapper)), what)
            if len(self._calls) < 256:  # aliases come from settings: few
                self._calls[key] = described
        return described

    def _span_around(
        self,
        method: Callable[[Any], Any],
        describe: Callable[[Any], tuple[str, dict[str, Any]] | None],
        *,
        suppress: bool,
    ) -> Callable[[Any], Any]:
        """``method(wrapper)`` in a CLIENT span that ``describe(wrapper)`` names (None: no
        span); with ``suppress``, instrumentation below it records nothing. Timed and
        charged as the execute wrapper is."""

        @functools.wraps(method)
        def traced(wrapper: Any) -> Any:
            tracer = self._tracer
            if tracer is None:
                return method(wrapper)
            meter = self.meter
            sampled = meter.due()
            c0 = thread_time_ns() if sampled else 0
            try:
                described = describe(wrapper)
                if described is None:
                    return method(wrapper)
                start_clean = self._start_clean
                if start_clean is not None:
                    span = start_clean(described[0], _CLIENT, described[1])
                    if span is None:  # instrumentation suppressed here
                        return method(wrapper)
                else:
                    span = tracer.start_span(described[0], kind=_CLIENT, attributes=described[1])
                token = suppress_instrumentation() if suppress else None
            except Exception:
                self.errors += 1
                return method(wrapper)
            c1 = thread_time_ns() if sampled else 0
            try:
                return method(wrapper)
            except BaseException as exc:
                _mark_error(span, exc)
                raise
            finally:
                c2 = thread_time_ns() if sampled else 0
                if token is not None:
                    otel_context.detach(token)
                span.end()
                if getattr(span, "timed", False):  # see __call__
                    if sampled:
                        meter.record(c1 - c0 + thread_time_ns() - c2)
                    tracer.charge(meter.mean_ns)

        traced.__latency_ledger_original__ = method  # type: ignore[attr-defined]
        return traced


def _describe_connect(attrs: dict[str, Any], how: str) -> tuple[str, dict[str, Any]]:
    attrs["db.operation.name"] = "connect"
    attrs[CONNECT_ATTRIBUTE] = how
    return "connect", attrs


def _describe_transaction(attrs: dict[str, Any], statement: str) -> tuple[str, dict[str, Any]]:
    attrs["db.query.text"] = statement
    attrs["db.operation.name"] = statement
    return statement, attrs


def _mark_error(span: Any, exc: BaseException) -> None:
    try:
        span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
        span.set_attribute("error.type", type(exc).__qualname__)
    except Exception:  # never mask the app's own exception
        return
