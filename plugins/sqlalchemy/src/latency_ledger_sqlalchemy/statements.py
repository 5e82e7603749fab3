"""Statement spans from a dialect's execute methods, described by the instrumentation.

Contract: :class:`StatementSpans` (one per engine) wraps a dialect's ``do_execute``-style
method so each cursor execution is one CLIENT span, named and attributed exactly as
opentelemetry-instrumentation-sqlalchemy's ``EngineTracer`` would (its own functions:
``_operation_name``, ``_set_db_client_span_attributes``, the URL and cursor helpers),
sanitized by the plugin's tracer. The description depends only on the engine and the
statement text, so it is computed once per statement, sanitized once, and shared by
every span of that statement (``start_clean_span``). A failed execution's span ends with
status ERROR. Nothing here raises into the app: a failure to describe or start a span
is counted on the plugin and the statement runs untraced.

:func:`describe_connect` gives a ``connect`` span the attributes the instrumentation's
``Engine.connect`` wrapper sets.
"""

from __future__ import annotations

from collections.abc import Callable
from time import thread_time_ns
from typing import Any

from latency_ledger_plugin_base.tracing import (
    charger,
    clean_attributes,
    clean_span_starter,
    meter_for,
)
from latency_ledger_plugin_base.transactions import idle, traced_cursor
from latency_ledger_plugin_base.transactions import suppress_instrumentation as suppress_driver
from opentelemetry.context import detach

MAX_CACHED_STATEMENTS = 1024  # per engine; raw statements with inlined literals are unbounded


def _modes() -> tuple[Any, Any]:
    """The database and HTTP semantic-convention modes the instrumentation would use."""
    from opentelemetry.instrumentation import _semconv

    stability: Any = _semconv._OpenTelemetrySemanticConventionStability  # untyped upstream
    signal: Any = _semconv._OpenTelemetryStabilitySignalType
    stability._initialize()
    return (
        stability._get_opentelemetry_stability_opt_in_mode(signal.DATABASE),
        stability._get_opentelemetry_stability_opt_in_mode(signal.HTTP),
    )


def describe_connect(engine: Any) -> dict[str, Any]:
    """The attributes of the instrumentation's ``connect`` span for ``engine``."""
    from opentelemetry.instrumentation.sqlalchemy import engine as otel_engine

    upstream: Any = otel_engine  # untyped upstream helpers
    db_mode, http_mode = _modes()
    attrs, _ = upstream._get_attributes_from_url(engine.url, db_mode, http_mode)
    upstream._set_db_system(attrs, upstream._normalize_vendor(engine.name), db_mode)
    return clean_attributes(attrs)


class _Recorder:
    """Collects what ``EngineTracer`` would set on a span, to cache it."""

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


class _Connection:
    """What the instrumentation's helpers read from a ``Connection``: its engine."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine


def _describer(engine: Any) -> Any:
    """An ``EngineTracer`` for its describing methods only: built without ``__init__``,
    which would add event listeners to ``engine`` (the cost we avoid, see the package
    docstring). Holds what those methods read, set as ``__init__`` sets it."""
    import re

    from opentelemetry.instrumentation.sqlalchemy import engine as otel_engine

    upstream: Any = otel_engine
    tracer = object.__new__(upstream.EngineTracer)
    tracer._sem_conv_opt_in_mode_db, tracer._sem_conv_opt_in_mode_http = _modes()
    tracer.vendor = upstream._normalize_vendor(engine.name)
    tracer._leading_comment_remover = re.compile(r"^/\*.*?\*/")
    return tracer


class StatementSpans:
    """One engine's statement spans (see the module docstring)."""

    def __init__(self, tracer: Any, engine: Any, plugin: Any) -> None:
        from opentelemetry.instrumentation.sqlalchemy import engine as otel_engine
        from opentelemetry.instrumentation.utils import is_instrumentation_enabled
        from opentelemetry.trace import SpanKind, Status, StatusCode

        upstream: Any = otel_engine
        self._engine = engine
        self._plugin = plugin
        self._describer = _describer(engine)
        self._from_url = upstream._get_attributes_from_url
        self._from_cursor = upstream._get_attributes_from_cursor_or_conn
        self._db_name = upstream._get_db_name_from_cursor_or_conn
        self._enabled = is_instrumentation_enabled
        self._client = SpanKind.CLIENT
        self._error = StatusCode.ERROR
        self._status = Status
        # our sanitizing tracer's hot path (None when instrumentation is suppressed)
        self._start: Callable[[str, Any, dict[str, Any]], Any] = clean_span_starter(tracer)
        self.cache: dict[str, tuple[str, dict[str, Any]]] = {}
        driver = getattr(engine.dialect, "driver", "")
        self._driver_traced = driver_instrumentation(driver)
        # sync psycopg: the cursor says whether the driver's instrumentation sees the
        # statement (a connection we opened has plain cursors, see plain_cursors); any
        # other driver is instrumented below the cursor we are given, so always suppress
        sync_psycopg = driver == "psycopg" and not getattr(engine.dialect, "is_async", True)
        self._plain_kinds: dict[type, bool] | None = {} if sync_psycopg else None
        # the collector's meter of this plugin's own time (collect/selfcost.py) and where
        # the cost is charged (the request, the plugin)
        self._charge = charger(tracer)
        self._meter = meter_for(tracer)

    def describe(self, cursor: Any, statement: str, context: Any) -> tuple[str, dict[str, Any]]:
        """The span name and clean attributes the instrumentation would give ``statement``."""
        tracer = self._describer
        db_mode, http_mode = tracer._sem_conv_opt_in_mode_db, tracer._sem_conv_opt_in_mode_http
        conn = getattr(context, "root_connection", None) or _Connection(self._engine)
        attrs, found = self._from_url(self._engine.url, db_mode, http_mode)
        if not found:
            attrs = self._from_cursor(tracer.vendor, conn, cursor, attrs, db_mode, http_mode)
        db_name = self._db_name(tracer.vendor, conn, cursor)
        recorder = _Recorder()
        tracer._set_db_client_span_attributes(recorder, statement, db_name, attrs)
        return tracer._operation_name(db_name, statement), clean_attributes(recorder.attributes)

    def _describe_cached(self, cursor: Any, statement: Any, context: Any) -> Any:
        described = self.describe(cursor, statement, context)
        if len(self.cache) >= MAX_CACHED_STATEMENTS:
            self.cache.clear()
        self.cache[statement] = described
        return described

    def wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """``method`` (a dialect's bound ``do_execute*``) recording one span per call.

        All three take ``(cursor, statement, ...)`` first and ``context`` last. (A
        ``DialectEvents.do_execute`` listener that runs the statement itself bypasses these
        methods, so its statements are not traced.) Written as one function: it runs for
        every statement, and each helper call would add to every query's cost."""
        cache, start, client = self.cache, self._start, self._client
        describe, report = self._describe_cached, self._plugin.report
        error_status, status = self._error, self._status
        driver_traced, charge, due = self._driver_traced, self._charge, self._meter.due
        # no instrumentation can trace this driver (SQLite's): no call per statement to ask
        traceable = driver_traced is not _never
        meter, kinds = self._meter, self._plain_kinds

        def execute(cursor: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
            # our CPU around the statement is the collector's cost (1 in N measured)
            sampled = due()
            c0 = thread_time_ns() if sampled else 0
            span = None
            try:
                described = cache.get(statement)
                if described is None:
                    context = kwargs.get("context", args[-1] if args else None)
                    described = describe(cursor, statement, context)
                # None when instrumentation is suppressed here
                span = start(described[0], client, described[1])
            except Exception as exc:  # the statement runs untraced, never fails for us
                report("statement", f"could not start a statement span: {exc}", exc)
            if span is None:
                return method(cursor, statement, *args, **kwargs)
            # the driver's own span of this statement is suppressed, unless the cursor
            # is a plain one (its connection was opened by us, see plain_cursors)
            token = None
            if (
                traceable
                and (kinds is None or kinds.get(type(cursor)) is not False)
                and driver_traced()
                and (kinds is None or traced_cursor(cursor, kinds))
            ):
                token = suppress_driver()
            c1 = thread_time_ns() if sampled else 0
            try:
                result = method(cursor, statement, *args, **kwargs)
            except BaseException as exc:
                c2 = thread_time_ns() if sampled else 0
                try:
                    if token is not None:
                        detach(token)
                    span.set_status(status(error_status, str(exc)))
                    span.end()
                    if sampled:
                        meter.record(c1 - c0 + thread_time_ns() - c2)
                    charge(meter.mean_ns)
                except Exception as error:
                    report("statement", f"could not end a statement span: {error}", error)
                raise
            c2 = thread_time_ns() if sampled else 0
            try:
                if token is not None:
                    detach(token)
                span.end()
                if sampled:
                    meter.record(c1 - c0 + thread_time_ns() - c2)
                charge(meter.mean_ns)
            except Exception as error:
                report("statement", f"could not end a statement span: {error}", error)
            return result

        execute.__name__ = getattr(method, "__name__", "do_execute")
        execute.__wrapped__ = method  # type: ignore[attr-defined]
        return execute

    def wrap_transaction(self, method: Callable[..., Any], statement: str) -> Callable[..., Any]:
        """``method`` (a dialect's bound ``do_commit``/``do_rollback``, taking the DB-API
        connection) recording one span for ``statement`` ("COMMIT"/"ROLLBACK"), described
        as a statement span of that text. Not when the connection says no transaction is
        open (then the driver sends nothing: the pool's reset-on-return of a read-only
        connection). A driver instrumentation's span of the same call is suppressed."""
        enabled, start, client = self._enabled, self._start, self._client
        report, error_status, status = self._plugin.report, self._error, self._status
        charge, meter = self._charge, self._meter
        described: list[tuple[str, dict[str, Any]]] = []

        def transaction(dbapi_connection: Any, *args: Any, **kwargs: Any) -> Any:
            sampled = meter.due()
            c0 = thread_time_ns() if sampled else 0
            span = token = None
            try:
                # idle first: most calls are the pool's rollback of a connection with no
                # transaction, and the suppression check is several Python calls
                if not idle(dbapi_connection) and enabled():
                    if not described:
                        described.append(self.describe(None, statement, None))
                    span = start(described[0][0], client, described[0][1])
                    if span is not None:
                        token = suppress_driver()
            except Exception as exc:  # the commit runs untraced, never fails for us
                report("transaction", f"could not start a {statement} span: {exc}", exc)
            if span is None:
                return method(dbapi_connection, *args, **kwargs)
            failed: BaseException | None = None
            c1 = thread_time_ns() if sampled else 0
            try:
                return method(dbapi_connection, *args, **kwargs)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                c2 = thread_time_ns() if sampled else 0
                try:
                    if token is not None:
                        detach(token)
                    if failed is not None:
                        span.set_status(status(error_status, str(failed)))
                    span.end()
                    if sampled:
                        meter.record(c1 - c0 + thread_time_ns() - c2)
                    charge(meter.mean_ns)
                except Exception as error:
                    report("transaction", f"could not end a {statement} span: {error}", error)

        transaction.__name__ = getattr(method, "__name__", "do_commit")
        transaction.__wrapped__ = method  # type: ignore[attr-defined]
        return transaction


# SQLAlchemy driver name -> the OpenTelemetry instrumentor that also traces it
_DRIVER_INSTRUMENTORS = {
    "psycopg": ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    "psycopg_async": ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    "psycopg2": ("opentelemetry.instrumentation.psycopg2", "Psycopg2Instrumentor"),
    "asyncpg": ("opentelemetry.instrumentation.asyncpg", "AsyncPGInstrumentor"),
    "pysqlite": ("opentelemetry.instrumentation.sqlite3", "SQLite3Instrumentor"),
    "pymysql": ("opentelemetry.instrumentation.pymysql", "PyMySQLInstrumentor"),
    "mysqldb": ("opentelemetry.instrumentation.mysqlclient", "MySQLClientInstrumentor"),
}


def driver_instrumentation(driver: str) -> Callable[[], bool]:
    """Is the driver under this dialect traced by its own OpenTelemetry instrumentation
    (the psycopg or asyncpg plugin, or someone's ``opentelemetry-instrument``)? Asked per
    statement (the plugin may be switched on later): one attribute read."""
    import importlib

    found = _DRIVER_INSTRUMENTORS.get(driver)
    if found is None:
        return _never
    try:
        instrumentor = getattr(importlib.import_module(found[0]), found[1])()
    except Exception:  # not installed: nothing traces the driver
        return _never
    return lambda: bool(instrumentor._is_instrumented_by_opentelemetry)


def _never() -> bool:
    return False
