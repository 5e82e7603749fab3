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
        except Exception as exc:  # a hook inside the app's connect: never raise there
            self.report("engine", f"could not trace engine: {exc}", exc)

    def _uninstrument(self) -> None:
        if self._listening:
            from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            self._listening = False
            if event.contains(Engine, "engine_connect", self._on_engine_connect):
                event.remove(Engine, "engine_connect", self._on_engine_connect)
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


plugin = SQLAlchemyPlugin()
