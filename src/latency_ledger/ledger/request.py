"""A request span and its booked ledger -> its Request record.

Contract: :func:`request_record` names the request (endpoint, method), reads its status,
error, collector overhead, keep probability, stream kind and statement tallies
(``statements.read_tallies``) from the span; pure, and
the same answer with or without the remembered names (``ClassifyMemo.names``). Shared by
both booking sweeps and by sources that book the ledger elsewhere (``clickhouse``).
"""

from __future__ import annotations

from latency_ledger.endpoint import endpoint_name, named_by_route
from latency_ledger.ledger.contract import (
    KEEP_PROBABILITY,
    MAX_WALL_NS,
    OVERHEAD_NS,
    STATEMENT_COUNT,
    as_int,
)
from latency_ledger.ledger.memo import NAMES_LIMIT, RequestNames
from latency_ledger.ledger.records import new_request
from latency_ledger.ledger.statements import read_tallies
from latency_ledger.model import Call, Ledger, Request, Span
from latency_ledger.streams import stream_kind

# what a request's name depends on when it has a route template (endpoint.named_by_route)
_METHOD, _OLD_METHOD, _ROUTE = "http.request.method", "http.method", "http.route"


def request_record(
    span: Span,
    ledger: Ledger,
    *,
    calls: tuple[Call, ...] = (),
    from_totals: bool = False,
    names: RequestNames | None = None,
) -> Request:
    """A request span and its booked ledger -> the Request (endpoint, status, weights).

    Shared by :func:`book_request` and sources that book the ledger elsewhere (a
    database computing it in SQL, ``clickhouse.book``). ``names``: request names
    remembered across requests (``ClassifyMemo.names``); the same names either way."""
    attrs = span.attributes
    if names is None:
        method, endpoint = endpoint_name(span)
    else:
        key = (attrs.get(_METHOD), attrs.get(_OLD_METHOD), attrs.get(_ROUTE))
        try:
            named = names.get(key)
        except TypeError:  # an unhashable value (attributes are untrusted)
            named = endpoint_name(span)
        else:
            if named is None:
                named = endpoint_name(span)
                if named_by_route(attrs):
                    if len(names) >= NAMES_LIMIT:
                        names.clear()
                    names[key] = named
        method, endpoint = named
    status = as_int(attrs.get("http.response.status_code", attrs.get("http.status_code")))
    if status is not None and not 100 <= status <= 599:
        status = None  # "0" (not set) and garbage are not statuses
    overhead = attrs.get(OVERHEAD_NS)
    overhead = as_int(overhead) if overhead is not None else None
    weight = attrs.get(KEEP_PROBABILITY)
    return new_request(
        trace_id=span.trace_id,
        span_id=span.span_id,
        service=span.service,
        method=method,
        endpoint=endpoint,
        start_ns=span.start_ns,
        wall_ns=min(max(0, span.end_ns - span.start_ns), MAX_WALL_NS),
        status_code=status,
        is_error=span.is_error or (status is not None and status >= 500),
        ledger=ledger,
        calls=calls,
        from_totals=from_totals,
        collector_overhead_ns=max(0, overhead or 0),
        keep_probability=keep_probability(weight) if weight is not None else 1.0,
        stream=stream_kind(span),
        # counted in the app for every request: findings count from these, not the sample
        statements=read_tallies(attrs) if STATEMENT_COUNT in attrs else None,
    )


def keep_probability(value: object) -> float:
    """``ledger.keep_probability`` as a probability in (0, 1]; 1.0 when absent or not one
    (trace content is untrusted: a zero or garbage must not weight a tree infinitely)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return 1.0
    try:
        found = float(value)
    except ValueError:
        return 1.0
    return found if 1e-6 <= found <= 1.0 else 1.0
