"""latency-ledger plugin: SQLAlchemy statement and pool-wait spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every SQLAlchemy engine, sync or
async, created before or after the call, emit one CLIENT span per statement (sanitized:
literals to ``?``) and a ``connect`` span for each ``Engine.connect()`` that waited for the
pool (a checkout of ``POOL_WAIT_MIN_NS`` or more, or one that failed); returns False and
does nothing without SQLAlchemy; never raises into the app. ``uninstrument()`` removes
every hook it added. ``classify_rules()`` tells the offline ledger that a ``connect`` span
is a pool wait, not a query. If opentelemetry-instrumentation-sqlalchemy was switched on
by someone else (``opentelemetry-instrument``, the app), their spans stand and we add none.

The spans are the ones opentelemetry-instrumentation-sqlalchemy would record: the same
names and attributes, computed by its own functions (see ``statements.py``). How they are
hooked in differs, because its hooks cost more than our whole budget. Measured under wrk
on a one-query FastAPI endpoint (tests/benchmarks/bench_collect.py, ``plugins`` row), the
instrumentation cost ~200 us per request; the default collection mode may cost 10% of
that endpoint's throughput, ~35 us for everything. Where its cost is, and what we do:

- *SQLAlchemy events.* It listens to ``before/after_cursor_execute`` and ``handle_error``
  on each engine, plus four pool events that feed a connection-usage metric. Any
  listener flips the engine to its "has events" path, where every execute, begin and
  rollback dispatches events: ~25 us per one-query request here before any listener
  runs. We add no event listener. Each engine's dialect gets ``do_execute``,
  ``do_execute_no_params`` and ``do_executemany`` wrapped (instance attributes, the
  methods SQLAlchemy calls for every cursor execution), which costs one Python call.
- *Pool waits.* It wraps ``Engine.connect`` (the pool checkout) in a ``connect`` span for
  every checkout, through ``wrapt`` and ``start_as_current_span``. Ours is a plain
  function reading the wall clock twice; it records a ``connect`` span only for a
  checkout that waited (``POOL_WAIT_MIN_NS``: a faster one is pool bookkeeping on the
  CPU, booked as interpreter like other library code) or failed, and keeps the CPU spent
  opening connections inside a recorded wait out of the request's interpreter time.
- *Engines created before instrumenting.* It wraps ``create_engine``, so an engine made
  at import time, or through a ``create_engine`` name imported early, is never traced.
  Our ``Engine.connect`` sees every engine's first connection (async engines connect
  through their ``sync_engine``) and wraps its dialect then.
- *SQLAlchemy 2.1.* The instrumentation declares ``sqlalchemy < 2.1``; we use only its
  span-describing functions, which do not depend on that range, and the dialect methods
  we wrap have kept their signatures since SQLAlchemy 1.4.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Sequence
from time import thread_time_ns, time_ns
from typing import Any

from latency_ledger_plugin_base import LibraryPlugin, SanitizingTracerProvider
from latency_ledger_plugin_base.tracing import charger, meter_for
from latency_ledger_plugin_base.transactions import CONNECT_ATTRIBUTE, plain_cursors

from latency_ledger_sqlalchemy.statements import StatementSpans, describe_connect

__all__ = ["POOL_WAIT_MIN_NS", "SQLAlchemyPlugin", "plugin"]

_INSTRUMENTATION = "opentelemetry.instrumentation.sqlalchemy"
# A checkout at least this long is a pool wait worth a span (opening a new SQLite
# connection takes ~50-100 us here; a PostgreSQL connection or a wait for a free one, ms).
POOL_WAIT_MIN_NS = 100_000
_DIALECT_METHODS = ("do_execute", "do_execute_no_params", "do_executemany")
# dialect method -> the statement its span records (savepoints run through do_execute)
_TRANSACTION_METHODS = {"do_commit": "COMMIT", "do_rollback": "ROLLBACK"}
_WRAPPED = (*_DIALECT_METHODS, *_TRANSACTION_METHODS, "connect")
_SEEN = "_latency_ledger_seen"


class SQLAlchemyPlugin(LibraryPlugin):
    def __init__(self) -> None:
        super().__init__(name="sqlalchemy", library="sqlalchemy")
        self._tracer: Any = None
        # marks the engines this instrumentation has seen (an attribute on the engine: a
        # dict lookup per connect, where a WeakSet check makes a weakref each time); a
        # new token per instrument(), so engines are seen anew after uninstrument
        self._token = object()
        self._connect_attrs: weakref.WeakKeyDictionary[Any, dict[bool, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )
        self._original_connect: Any = None
        self._dialects: list[weakref.ref[Any]] = []  # whose methods we wrapped
        # connections opened on this thread (``dialect.connect`` calls): a checkout that
        # saw it change opened one, and its span says so (not a pool wait)
        self.opens = threading.local()

    def _instrument(self, tracer_provider: SanitizingTracerProvider) -> bool:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.instrumentation.sqlalchemy.version import __version__
        from sqlalchemy.engine import Engine

        if SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry:
            # someone got there first: their spans flow to their provider, none from us
            return True
        self._tracer = tracer_provider.get_tracer(_INSTRUMENTATION, __version__)
        self._original_connect = Engine.__dict__["connect"]
        Engine.connect = self._connect_function()  # type: ignore[method-assign]
        return True

    def _connect_function(self) -> Any:
        original = self._original_connect
        token = self._token
        plugin = self

        opens = self.opens
        charge, meter = charger(self._tracer), meter_for(self._tracer)

        def connect(engine: Any, *args: Any, **kwargs: Any) -> Any:
            # our CPU around the checkout is the collector's cost (1 in N measured)
            sampled = meter.due()
            c0 = thread_time_ns() if sampled else 0
            if engine.__dict__.get(_SEEN) is not token:
                plugin._discover(engine)
            seen = opens.__dict__
            opened, open_cpu = seen.get("count", 0), seen.get("cpu_ns", 0)
            c1 = thread_time_ns() if sampled else 0
            start = time_ns()
            try:
                connection = original(engine, *args, **kwargs)
            except BaseException as exc:
                plugin._record_connect(
                    engine, start, seen.get("cpu_ns", 0) - open_cpu, exc, seen.get("count", 0)
                )
                raise
            c2 = thread_time_ns() if sampled else 0
            if time_ns() - start >= POOL_WAIT_MIN_NS or seen.get("count", 0) != opened:
                plugin._record_connect(
                    engine,
                    start,
                    seen.get("cpu_ns", 0) - open_cpu,
                    None,
                    seen.get("count", 0) != opened,
                )
            if sampled:
                meter.record(c1 - c0 + thread_time_ns() - c2)
            charge(meter.mean_ns)
            return connection

        connect.__doc__ = original.__doc__
        connect.__qualname__ = "Engine.connect"
        return connect

    def _record_connect(
        self,
        engine: Any,
        start_ns: int,
        cpu_ns: int,
        error: BaseException | None,
        opened: bool,
    ) -> None:
        """A ``connect`` span for a checkout that waited, failed or opened a connection
        (``ledger.db.connect``: "open" when it did, whatever else it waited for, since
        opening dominates; "pool" otherwise). ``cpu_ns``: the CPU this thread spent
        opening connections inside it (a wait for a pooled one is blocked, not on the
        CPU; the pool's own bookkeeping is interpreter, as in a checkout that did not
        wait), measured around the opening so that a checkout costs no clock read."""
        try:
            end_ns = time_ns()
            from opentelemetry.instrumentation.utils import is_instrumentation_enabled

            if not is_instrumentation_enabled():
                return
            described = self._connect_attrs.get(engine)
            if described is None:
                plain = describe_connect(engine)
                described = self._connect_attrs[engine] = {
                    True: {**plain, CONNECT_ATTRIBUTE: "open"},
                    False: {**plain, CONNECT_ATTRIBUTE: "pool"},
                }
            attrs = described[bool(opened)]
            self._tracer.record_wait("connect", attrs, start_ns, end_ns, cpu_ns, error)
        except Exception as exc:  # inside the app's connect: never raise there
            self.report("connect", f"could not record a pool wait: {exc}", exc)

    def _discover(self, engine: Any) -> None:
        try:
            engine.__dict__[_SEEN] = self._token
            dialect = engine.dialect
            if any(ref() is dialect for ref in self._dialects):
                return
            spans = StatementSpans(self._tracer, engine, self)
            for name in _DIALECT_METHODS:
                setattr(dialect, name, spans.wrap(getattr(dialect, name)))
            for name, statement in _TRANSACTION_METHODS.items():
                setattr(dialect, name, spans.wrap_transaction(getattr(dialect, name), statement))
            dialect.connect = counting_opens(dialect.connect, self.opens)
            self._dialects.append(weakref.ref(dialect))
        except Exception as exc:  # a hook inside the app's connect: never raise there
            self.report("engine", f"could not trace engine: {exc}", exc)

    def _uninstrument(self) -> None:
        if self._original_connect is None:
            return
        from sqlalchemy.engine import Engine

        Engine.connect = self._original_connect  # type: ignore[method-assign]
        self._original_connect = None
        for ref in self._dialects:
            dialect = ref()
            if dialect is not None:
                for name in _WRAPPED:
                    dialect.__dict__.pop(name, None)  # the class's method shows again
        self._dialects.clear()
        self._token = object()
        self._connect_attrs = weakref.WeakKeyDictionary()

    def classify_rules(self) -> Sequence[Any]:
        """Offline: a ``connect`` span with a database system and no statement is a pool
        wait, or opening a connection when it says so (``ledger.db.connect="open"``)."""
        from latency_ledger.model import CallKind, Category, Span, SpanKind
        from latency_ledger.plugins import Classification, memoizable_rule

        @memoizable_rule  # reads the span's name, kind and attributes only
        def pool_wait(span: Span) -> Classification | None:
            if span.name != "connect" or span.kind != SpanKind.CLIENT:
                return None
            attrs = span.attributes
            system = attrs.get("db.system.name") or attrs.get("db.system")
            if not isinstance(system, str) or "db.statement" in attrs or "db.query.text" in attrs:
                return None
            opened = attrs.get(CONNECT_ATTRIBUTE) == "open"
            return Classification(
                category=Category.DATABASE,
                kind=CallKind.CONNECT if opened else CallKind.POOL,
                system=system,
                target="connect",
            )

        return (pool_wait,)


def counting_opens(connect: Any, opens: threading.local) -> Any:
    """``dialect.connect`` (opens a DB-API connection) counting its calls on ``opens``
    (``count``) and the thread's CPU they took (``cpu_ns``)."""

    def opening(*args: Any, **kwargs: Any) -> Any:
        opens.count = opens.__dict__.get("count", 0) + 1
        cpu = thread_time_ns()
        try:
            connection = connect(*args, **kwargs)
        finally:
            opens.cpu_ns = opens.__dict__.get("cpu_ns", 0) + thread_time_ns() - cpu
        # our statement spans cover it: no traced cursor per statement (psycopg); one that
        # refuses keeps traced cursors, whose spans we suppress
        with contextlib.suppress(Exception):
            plain_cursors(connection)
        return connection

    opening.__wrapped__ = connect  # type: ignore[attr-defined]
    return opening


plugin = SQLAlchemyPlugin()
