"""latency-ledger plugin: SQLAlchemy statement and pool-wait spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every SQLAlchemy engine, sync or
async, created before or after the call, emit one CLIENT span per statement (sanitized:
literals to ``?``) and a ``connect`` span around each ``Engine.connect()``; returns False
and does nothing without SQLAlchemy; never raises into the app. ``uninstrument()``
removes every hook it added. ``classify_rules()`` tells the offline ledger that a
``connect`` span is a pool wait, not a query.

Spans come from opentelemetry-instrumentation-sqlalchemy. What it lacks, and how we add it:

- *Engines created before instrumenting.* The instrumentor only wraps ``create_engine``
  (and an engine passed to it), so an engine made at import time, or later through a
  ``create_engine`` name imported before instrumenting, gets no statement spans. We add
  one class-level ``engine_connect`` listener on ``sqlalchemy.engine.Engine``: it fires for
  every new Connection of every engine (async engines connect through their
  ``sync_engine``), and the first time it sees an engine without the instrumentation's
  ``EngineTracer`` it attaches one. That covers both holes with the instrumentation's own
  span code, costs one weak-set lookup per connection afterwards, and needs no scan of the
  heap (a ``gc.get_objects()`` walk at startup would miss engines made after it through an
  early-imported ``create_engine``).
- *Pool waits.* The instrumentation's ``connect`` span wraps ``Engine.connect()`` at class
  level, i.e. the pool checkout: waiting for a free connection and opening a new one.
  That is the pool-wait span; no separate checkout span is added.
- *SQLAlchemy 2.1.* The instrumentation declares ``sqlalchemy < 2.1`` and, on 2.1.x,
  logs one line and instruments nothing. Checked on 2.1.9 in a scratch venv: with
  ``skip_dep_check=True`` statement and connect spans come out right for sync and async
  engines made before and after. So on a newer SQLAlchemy we instrument anyway and warn
  loudly that we did, rather than leave the ledger with silently empty database time.
- *Per-statement cost.* The instrumentation's ``before_cursor_execute`` listener works out
  the span's name and attributes from the engine URL, the cursor and the statement text
  for every statement (~30 Python calls). For a given engine those depend only on the
  statement, so once we see an engine we swap that one listener for :class:`_StatementSpans`,
  which computes them with the instrumentation's own functions the first time a statement
  is seen and starts the span with the cached result afterwards; its
  ``after_cursor_execute``/``handle_error`` listeners end the span as before. (Cached per
  engine: an engine whose connections reach different PostgreSQL hosts would see the
  first connection's host on every span.) With the SQL commenter on, or if the
  instrumentation's helpers are not where we expect, the listener is left alone.
- *Uninstrument.* The instrumentation's own listener removal stops at the first listener
  SQLAlchemy no longer holds (seen with a disposed aiosqlite engine), leaving the rest
  attached; we remove each listener that is still present, then let it unwrap.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from latency_ledger_plugin_base import InstrumentorPlugin, SanitizingTracerProvider

__all__ = ["SQLAlchemyPlugin", "plugin"]

_INSTRUMENTATION = "opentelemetry.instrumentation.sqlalchemy"


class SQLAlchemyPlugin(InstrumentorPlugin):
    def __init__(self) -> None:
        super().__init__(
            name="sqlalchemy",
            library="sqlalchemy",
            instrumentor=f"{_INSTRUMENTATION}:SQLAlchemyInstrumentor",
            beyond_declared_range=True,
        )
        self._tracer: Any = None
        self._usage: Any = None
        self._seen: weakref.WeakSet[Any] = weakref.WeakSet()
        self._listening = False
        self._swapped: list[tuple[weakref.ref[Any], Any]] = []  # (engine, our listener)

    def _instrument(self, tracer_provider: SanitizingTracerProvider) -> bool:
        if not super()._instrument(tracer_provider):
            return False
        if not self._owned:  # instrumented by someone else: their engines, their hooks
            return True
        from opentelemetry.instrumentation.sqlalchemy.version import __version__
        from opentelemetry.metrics import get_meter
        from opentelemetry.semconv.metrics import MetricInstruments
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self._tracer = tracer_provider.get_tracer(_INSTRUMENTATION, __version__)
        self._usage = get_meter(_INSTRUMENTATION, __version__).create_up_down_counter(
            name=MetricInstruments.DB_CLIENT_CONNECTIONS_USAGE, unit="connections"
        )
        event.listen(Engine, "engine_connect", self._on_engine_connect)
        self._listening = True
        return True

    def _on_engine_connect(self, connection: Any) -> None:
        try:
            engine = connection.engine
            if engine in self._seen:
                return
            self._seen.add(engine)
            from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

            if not any(ref() is engine for ref, _, _ in EngineTracer._remove_event_listener_params):
                EngineTracer(self._tracer, engine, self._usage)  # type: ignore[no-untyped-call]
            self._swap_statement_listener(engine)
        except Exception as exc:  # a hook inside the app's connect: never raise there
            self.report("engine", f"could not trace engine: {exc}", exc)

    def _swap_statement_listener(self, engine: Any) -> None:
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from sqlalchemy import event

        for ref, identifier, fn in EngineTracer._remove_event_listener_params:
            if ref() is not engine or identifier != "before_cursor_execute":
                continue
            tracer = getattr(fn, "__self__", None)
            if not isinstance(tracer, EngineTracer) or tracer.enable_commenter:
                return
            if not event.contains(engine, identifier, fn):
                return
            listener = _StatementSpans(tracer)
            if not listener.usable:
                return
            event.remove(engine, identifier, fn)
            event.listen(engine, identifier, listener, retval=True, insert=True)
            self._swapped.append((weakref.ref(engine), listener))
            return

    def _uninstrument(self) -> None:
        if self._listening:
            from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            self._listening = False
            if event.contains(Engine, "engine_connect", self._on_engine_connect):
                event.remove(Engine, "engine_connect", self._on_engine_connect)
            for ref, listener in self._swapped:
                engine = ref()
                if engine is not None and event.contains(engine, "before_cursor_execute", listener):
                    event.remove(engine, "before_cursor_execute", listener)
            self._swapped.clear()
            for ref, identifier, fn in EngineTracer._remove_event_listener_params:
                target = ref()
                if target is not None and event.contains(target, identifier, fn):
                    event.remove(target, identifier, fn)
            EngineTracer._remove_event_listener_params.clear()
            self._seen = weakref.WeakSet()
        super()._uninstrument()

    def classify_rules(self) -> Sequence[Any]:
        """Offline: a ``connect`` span with a database system and no statement is a pool wait."""
        from latency_ledger.model import CallKind, Category, Span, SpanKind
        from latency_ledger.plugins import Classification

        def pool_wait(span: Span) -> Classification | None:
            if span.name != "connect" or span.kind != SpanKind.CLIENT:
                return None
            attrs = span.attributes
            system = attrs.get("db.system.name") or attrs.get("db.system")
            if not isinstance(system, str) or "db.statement" in attrs or "db.query.text" in attrs:
                return None
            return Classification(
                category=Category.DATABASE, kind=CallKind.POOL, system=system, target="connect"
            )

        return (pool_wait,)


class _Recorder:
    """Collects what ``EngineTracer`` would set on a span, to cache it."""

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


MAX_CACHED_STATEMENTS = 1024  # per engine; raw statements with inlined literals are unbounded


class _StatementSpans:
    """``EngineTracer._before_cur_exec`` with the name and attributes cached per statement."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer
        self.cache: dict[str, tuple[str, dict[str, Any]]] = {}
        try:
            from opentelemetry.instrumentation.sqlalchemy import engine as otel_engine
            from opentelemetry.instrumentation.utils import is_instrumentation_enabled
            from opentelemetry.trace import SpanKind

            self._enabled = is_instrumentation_enabled
            # untyped upstream helpers, held as Any
            self._from_url: Any = otel_engine._get_attributes_from_url
            self._from_cursor: Any = otel_engine._get_attributes_from_cursor_or_conn
            self._db_name: Any = otel_engine._get_db_name_from_cursor_or_conn
            self._client = SpanKind.CLIENT
            self.usable = callable(getattr(tracer, "_set_db_client_span_attributes", None))
        except (ImportError, AttributeError):
            self.usable = False

    def _describe(self, conn: Any, cursor: Any, statement: str) -> tuple[str, dict[str, Any]]:
        """What the instrumentation computes for this statement (its own functions)."""
        tracer = self.tracer
        db_mode, http_mode = tracer._sem_conv_opt_in_mode_db, tracer._sem_conv_opt_in_mode_http
        attrs, found = self._from_url(conn.engine.url, db_mode, http_mode)
        if not found:
            attrs = self._from_cursor(tracer.vendor, conn, cursor, attrs, db_mode, http_mode)
        db_name = self._db_name(tracer.vendor, conn, cursor)
        recorder = _Recorder()
        tracer._set_db_client_span_attributes(recorder, statement, db_name, attrs)
        return tracer._operation_name(db_name, statement), recorder.attributes

    def __call__(
        self, conn: Any, cursor: Any, statement: Any, params: Any, context: Any, executemany: bool
    ) -> tuple[Any, Any]:
        if not self._enabled():
            return statement, params
        described = self.cache.get(statement)
        if described is None:
            described = self._describe(conn, cursor, statement)
            if len(self.cache) >= MAX_CACHED_STATEMENTS:
                self.cache.clear()
            self.cache[statement] = described
        name, attributes = described
        # the instrumentation's after_cursor_execute / handle_error end it from here
        context._otel_span = self.tracer.tracer.start_span(
            name, kind=self._client, attributes=attributes
        )
        return statement, params


plugin = SQLAlchemyPlugin()
