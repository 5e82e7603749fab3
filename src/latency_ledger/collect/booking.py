"""Book one request in the app with the offline ledger's own code.

Contract: :func:`to_model_span` turns an SDK span (ended or, for the SERVER span still
open, with ``end_ns`` given) into a :class:`model.Span`; :func:`book_request` books the
SERVER span with its children through :func:`latency_ledger.ledger.book_trace`, the same
function the analyzer runs, so a request whose children are dropped is booked here exactly
as it would be offline from its children. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from latency_ledger.ledger import book_trace
from latency_ledger.model import Ledger, Request, Span, SpanKind, Trace

# OpenTelemetry Python numbers SpanKind from 0 (INTERNAL); OTLP from 1.
_KINDS = (SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER)
_STATUS_ERROR = 2  # opentelemetry.trace.StatusCode.ERROR


def to_model_span(
    span: Any, service: str, *, end_ns: int | None = None, extra: dict[str, int] | None = None
) -> Span:
    """``extra``: attributes the collector measured beside the span (its tail)."""
    ctx = span.context
    parent = span.parent
    status = span.status
    return Span(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_span_id=f"{parent.span_id:016x}" if parent is not None else "",
        name=span.name,
        kind=_KINDS[span.kind.value],
        start_ns=span.start_time or 0,
        end_ns=end_ns if end_ns is not None else (span.end_time or 0),
        is_error=status is not None and status.status_code.value == _STATUS_ERROR,
        attributes={**(span.attributes or {}), **(extra or {})},
        service=service,
    )


def book_request(server: Span, children: Sequence[Span], rules: Sequence[Any]) -> Ledger | None:
    """The SERVER span's ledger, booked from its children; None if the ledger did not book it."""
    request = book_request_record(server, children, rules)
    return request.ledger if request is not None else None


def book_request_record(
    server: Span, children: Sequence[Span], rules: Sequence[Any]
) -> Request | None:
    """:func:`book_request`'s request record: its ledger and its booked calls."""
    booked = book_trace(Trace(trace_id=server.trace_id, spans=(server, *children)), rules=rules)
    for request in booked.requests:
        if request.span_id == server.span_id:
            return request
    return None


def book_without_children(wall_ns: int, cpu_ns: int, queueing_ns: int) -> Ledger:
    """A request with no wait spans: the ledger's rule reduces to own time only."""
    wall = max(0, wall_ns)
    interpreter = min(max(0, cpu_ns), wall)
    waiting = wall - interpreter
    return Ledger(
        database_ns=0,
        network_ns=0,
        interpreter_ns=interpreter,
        waiting_ns=waiting,
        queueing_ns=min(max(0, queueing_ns), waiting),
        cpu_measured=True,
    )
