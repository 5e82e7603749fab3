"""latency-ledger plugin: psycopg (3) statements and transactions as CLIENT spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every statement run on a psycopg
connection opened after the call (``psycopg.connect`` and the async variant are wrapped;
connections opened before are not traced) a CLIENT span with ``db.system=postgresql`` and
the statement with literals replaced by ``?``; bind parameters are never captured and
sqlcommenter stays off. Transaction control is a span too, on every connection, sync or
async: ``commit()`` and ``rollback()`` (``COMMIT``/``ROLLBACK``; none when no transaction
is open, since psycopg then sends nothing) and ``with conn.transaction()`` blocks
(``BEGIN`` or ``SAVEPOINT`` on entry; ``COMMIT``, ``RELEASE SAVEPOINT``, ``ROLLBACK`` or
``ROLLBACK TO SAVEPOINT`` on exit). Inside an ORM's span of the same call (SQLAlchemy,
Django), which suppresses instrumentation, none is recorded: one statement, one span.
Returns False and does nothing when psycopg is not installed; never raises into the app
(failures are logged once and counted in ``plugin.errors``); ``plugin.uninstrument()``
undoes it. Statement spans come from opentelemetry-instrumentation-psycopg, handed a
sanitizing tracer provider (latency_ledger_plugin_base.tracing).

How transactions are hooked: psycopg sends ``BEGIN``/``COMMIT`` itself, not through a
cursor, so the instrumentation never sees them. Each is a generator method that the
connection's ``wait`` drives to completion (``_commit_gen``, ``_rollback_gen`` on the
connection, ``_enter_gen``/``_exit_gen`` on the transaction block, the same for sync and
async); wrapping the generator times exactly the round trip, in both worlds, with one
wrapper. They are private but have kept their names and shapes since psycopg 3.0; if one
is missing the plugin says so once and traces statements only.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from time import thread_time_ns
from typing import Any

from latency_ledger_plugin_base import InstrumentorPlugin, SanitizingTracerProvider
from latency_ledger_plugin_base.tracing import charger, clean_span_starter, meter_for
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["PsycopgPlugin", "plugin"]

_TRACER = "latency_ledger_psycopg"
_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE
# (module, class, method, how the span is named)
_HOOKS = (
    ("psycopg._connection_base", "BaseConnection", "_commit_gen", "commit"),
    ("psycopg._connection_base", "BaseConnection", "_rollback_gen", "rollback"),
    ("psycopg.transaction", "BaseTransaction", "_enter_gen", "enter"),
    ("psycopg.transaction", "BaseTransaction", "_exit_gen", "exit"),
)


def _attributes(statement: str) -> dict[str, Any]:
    return {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.statement": statement,
        "db.operation.name": statement.split()[0],
    }


def _statement(how: str, owner: Any, args: tuple[Any, ...]) -> str | None:
    """What the generator about to run sends, or None when it sends nothing."""
    if how in ("commit", "rollback"):
        if int(owner.pgconn.transaction_status) == _IDLE:
            return None
        return how.upper()
    if how == "enter":
        outer = int(owner.pgconn.transaction_status) == _IDLE
        return "BEGIN" if outer else "SAVEPOINT"
    exc_val = args[1] if len(args) > 1 else None
    commit = not exc_val and not getattr(owner, "force_rollback", False)
    if getattr(owner, "_outer_transaction", True):
        return "COMMIT" if commit else "ROLLBACK"
    return "RELEASE SAVEPOINT" if commit else "ROLLBACK TO SAVEPOINT"


class PsycopgPlugin(InstrumentorPlugin):
    def __init__(self) -> None:
        super().__init__(
            name="psycopg",
            library="psycopg",
            instrumentor="opentelemetry.instrumentation.psycopg:PsycopgInstrumentor",
        )
        self._originals: list[tuple[type, str, Any]] = []

    def _instrument(self, tracer_provider: SanitizingTracerProvider) -> bool:
        if not super()._instrument(tracer_provider):
            return False
        if not self._owned:  # instrumented by someone else: their spans, none of ours
            return True
        import importlib

        tracer = tracer_provider.get_tracer(_TRACER)
        start = clean_span_starter(tracer)
        described: dict[str, dict[str, Any]] = {}
        for module_name, class_name, method, how in _HOOKS:
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
                original = cls.__dict__[method]
            except (ImportError, AttributeError, KeyError) as exc:
                self.report("transactions", f"psycopg has no {class_name}.{method}: {exc}", exc)
                continue
            traced = self._traced(
                original, how, start, described, charger(tracer), meter_for(tracer)
            )
            setattr(cls, method, traced)
            self._originals.append((cls, method, original))
        return True

    def _traced(
        self,
        original: Callable[..., Generator[Any, Any, Any]],
        how: str,
        start: Callable[[str, SpanKind, dict[str, Any]], Any],
        described: dict[str, dict[str, Any]],
        charge: Callable[[int], None],
        meter: Any,
    ) -> Callable[..., Generator[Any, Any, Any]]:
        from opentelemetry.instrumentation.utils import is_instrumentation_enabled

        report = self.report

        def traced(owner: Any, *args: Any) -> Generator[Any, Any, Any]:
            # our CPU around the round trip is the collector's cost (1 in N measured)
            sampled = meter.due()
            c0 = thread_time_ns() if sampled else 0
            span = None
            try:
                statement = _statement(how, owner, args) if is_instrumentation_enabled() else None
                if statement is not None:
                    attrs = described.get(statement)
                    if attrs is None:
                        attrs = described[statement] = _attributes(statement)
                    span = start(statement, SpanKind.CLIENT, attrs)
            except Exception as exc:  # runs untraced, never fails for us
                report("transaction", f"could not start a transaction span: {exc}", exc)
            if span is None:
                return (yield from original(owner, *args))
            failed: BaseException | None = None
            c1 = thread_time_ns() if sampled else 0
            try:
                return (yield from original(owner, *args))
            except BaseException as exc:
                failed = exc
                raise
            finally:
                c2 = thread_time_ns() if sampled else 0
                try:
                    if failed is not None:
                        span.set_status(Status(StatusCode.ERROR, type(failed).__name__))
                    span.end()
                    if sampled:
                        meter.record(c1 - c0 + thread_time_ns() - c2)
                    charge(meter.mean_ns)
                except Exception as exc:
                    report("transaction", f"could not end a transaction span: {exc}", exc)

        traced.__wrapped__ = original  # type: ignore[attr-defined]
        traced.__name__ = original.__name__
        return traced

    def _uninstrument(self) -> None:
        for cls, method, original in reversed(self._originals):
            setattr(cls, method, original)
        self._originals.clear()
        super()._uninstrument()


plugin = PsycopgPlugin()
