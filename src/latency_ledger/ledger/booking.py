"""General booking: one trace -> its booked requests, through the span tree.

Contract: the package's (``latency_ledger.ledger``'s docstring): :func:`book_trace` is
pure and every request's parts add up to its wall time exactly, whatever the spans look
like. With a memo, a trace of the flat shape goes to the one-pass sweep (``flat``); any
other goes through the span tree (:func:`book_request`, :func:`book_spans`: critical
path, iterative). :func:`book_trace_rows` also hands the flat sweep's calls out as rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from latency_ledger.classify import (
    DEFAULT_RULES,
    answered_fields,
    classify_standard,
    standard_fields,
)
from latency_ledger.endpoint import attr_str, http_method, route_template
from latency_ledger.ledger.contract import (
    _TOTALS,
    DELAY_NS,
    MAX_WALL_NS,
    SPANS_KEPT,
    TAIL_MAX_NS,
    TAIL_NS,
    _is_false,
)
from latency_ledger.ledger.flat import _book_flat
from latency_ledger.ledger.memo import ClassifyMemo, _classify_memo, classify_fields
from latency_ledger.ledger.own_time import ledger_from_totals, split_own_time
from latency_ledger.ledger.records import BookedTrace, new_call
from latency_ledger.ledger.request import request_record
from latency_ledger.ledger.waits import wait_tail
from latency_ledger.model import Call, CallKind, CallRow, Category, Request, Span, SpanKind, Trace
from latency_ledger.plugins import ClassifyRule

_CALL_ORDER = attrgetter("start_ns", "end_ns")


_HTTP_ROOT_KINDS = frozenset({SpanKind.INTERNAL, SpanKind.UNSPECIFIED})
# Network calls a database may stand behind (an HTTP call to Elasticsearch answered by a
# SERVER span of service "elasticsearch"); caches, messaging and client I/O are not.
_ANSWERABLE = frozenset({CallKind.HTTP, CallKind.RPC, CallKind.OTHER})


def is_http_root(span: Span) -> bool:
    """A root span that is really a server span an exporter marked INTERNAL."""
    if span.kind not in _HTTP_ROOT_KINDS:
        return False
    attrs = span.attributes
    return bool(http_method(attrs)) and bool(
        attr_str(attrs, "http.route", "url.path", "http.target")
    )


def book_trace(
    trace: Trace,
    *,
    rules: Sequence[ClassifyRule] = DEFAULT_RULES,
    memo: ClassifyMemo | None = None,
) -> BookedTrace:
    """Book every request of one trace; count the spans that belong to none.

    ``memo`` (a :class:`ClassifyMemo` kept across traces) remembers the built-in rule's
    answer per attribute dict OBJECT, kind, name and service: with a reader that hands
    out one dict per distinct attribute set (``read.fast``), each set is classified once.
    Other rules still run on every span. It also remembers request names by route. The
    answers are the same with or without it."""
    spans = trace.spans
    if memo is not None:
        flat = _book_flat(spans, rules, memo, records=True)
        if flat is not None:
            return flat[0]
    return _book_tree(spans, rules, memo)


def book_trace_rows(
    trace: Trace, *, rules: Sequence[ClassifyRule], memo: ClassifyMemo
) -> tuple[BookedTrace, list[CallRow] | None]:
    """:func:`book_trace` with a memo, for a caller that reads calls as rows (the
    findings accumulator): when the trace has the flat shape (:func:`_book_flat`), its
    one request comes with ``calls=()`` and its calls as rows, in ``Request.calls``'
    order, without a Call record made for each; else rows are None and the requests are
    :func:`book_trace`'s."""
    flat = _book_flat(trace.spans, rules, memo)
    if flat is not None:
        return flat
    return _book_tree(trace.spans, rules, memo), None


def _book_tree(
    spans: Sequence[Span], rules: Sequence[ClassifyRule], memo: ClassifyMemo | None
) -> BookedTrace:
    """:func:`book_trace` of any shape, through the span tree."""
    # The first span of a duplicated id wins (later ones stay unbooked).
    by_id = {span.span_id: span for span in reversed(spans)}
    children: dict[str, list[Span]] = {}
    pending: list[Span] = []  # request spans still to book
    outside: list[Span] = []  # roots that are not requests: orphans and odd roots
    server = SpanKind.SERVER
    for span in by_id.values():
        parent = span.parent_span_id
        # A span in a parent cycle is never reached from a root, so it stays unbooked.
        if parent and parent in by_id:
            siblings = children.get(parent)
            if siblings is None:
                children[parent] = [span]
            else:
                siblings.append(span)
        elif span.kind == server or is_http_root(span):
            pending.append(span)
        else:
            outside.append(span)
    get_children = children.get
    while outside:
        kids = get_children(outside.pop().span_id)
        if kids is not None:
            for kid in kids:
                (pending if kid.kind == server else outside).append(kid)
    requests: list[Request] = []
    booked = 0
    while pending:
        # Booking a request adds the SERVER spans nested in it to ``pending``.
        request, covered = book_request(pending.pop(), children, rules, pending, memo)
        requests.append(request)
        booked += covered
    requests.sort(key=lambda r: (r.start_ns, r.span_id))
    return BookedTrace(requests=tuple(requests), unbooked_spans=len(spans) - booked)


def book_request(
    span: Span,
    children: dict[str, list[Span]],
    rules: Sequence[ClassifyRule],
    nested: list[Span],
    memo: ClassifyMemo | None = None,
) -> tuple[Request, int]:
    """One request span -> its Request and how many spans it covers.

    SERVER spans found under it are appended to ``nested`` (booked by the caller, so
    nesting depth never becomes recursion depth); the count excludes their subtrees.
    """
    attrs = span.attributes
    wall = min(max(0, span.end_ns - span.start_ns), MAX_WALL_NS)
    from_totals = _is_false(attrs.get(SPANS_KEPT)) and any(key in attrs for key in _TOTALS)
    calls: tuple[Call, ...] = ()
    if from_totals:
        ledger = ledger_from_totals(attrs, wall)
        # Which spans belong to it (and which nested SERVER spans are requests of their
        # own) follows the same rules as when booking from spans; usually it has none.
        covered = book_spans(span, children, rules, nested, memo)[4]
    else:
        database, network, own, call_list, covered, tails, bounds = book_spans(
            span, children, rules, nested, memo
        )
        ledger = split_own_time(attrs, database, network, own, tails, bounds)
        call_list.sort(key=_CALL_ORDER)
        calls = tuple(call_list)
    request = request_record(
        span, ledger, calls=calls, from_totals=from_totals, names=getattr(memo, "names", None)
    )
    return request, covered


def _cover(span: Span, children: dict[str, list[Span]], nested: list[Span]) -> int:
    """Spans in ``span``'s subtree (itself included), minus nested requests' subtrees."""
    get_children = children.get
    server = SpanKind.SERVER
    covered = 0
    stack = [span]
    while stack:
        covered += 1
        kids = get_children(stack.pop().span_id)
        if kids is not None:
            for kid in kids:
                (nested if kid.kind == server else stack).append(kid)
    return covered


def book_spans(
    request: Span,
    children: dict[str, list[Span]],
    rules: Sequence[ClassifyRule],
    nested: list[Span],
    memo: ClassifyMemo | None = None,
) -> tuple[int, int, int, list[Call], int, int, tuple[int, int, int]]:
    """``(database_ns, network_ns, own_ns, calls, spans covered, tails_ns, bounds)`` from
    a span tree.

    A wait span's tail (``ledger.queueing_ns`` on it: the end of the span spent waiting
    for the loop or the interpreter lock) and, just before it, its delay
    (``ledger.unattributed_ns``: its thread waiting for a CPU) are own time, not the
    span's category, for the part inside what the span booked; ``tails_ns`` sums the
    tails' parts (queueing). ``bounds``: ``(database, network, unbounded)``, the parts
    of what wait spans kept in their category that may still be waiting for Python
    (their tail's bound ``ledger.queueing_max_ns`` less the tail), and what spans
    without that bound kept (their wait was not measured).

    Nested SERVER spans are appended to ``nested``, as in :func:`book_request`.

    Why each span's booked time is ONE interval, starting where the span starts: a child
    C loses an instant only to siblings that finish at or after it (higher priority),
    and each of those, seen before C's end, covers a suffix ``[start, C.end)``; their
    union is a suffix too, so C keeps ``[C.start, min(C.end, earliest start of those
    siblings))``, cut at the end of what its parent itself kept. So: sort siblings by
    priority (end, start, span id; descending) and walk them once.

    Iterative (no recursion limit on deep trees); runs once per span of every trace.
    """
    start = request.start_ns
    end = min(max(start, request.end_ns), start + MAX_WALL_NS)
    database = network = own = tails = 0
    database_slack = network_slack = unbounded = 0
    calls: list[Call] = []
    get_children = children.get
    server = SpanKind.SERVER
    client = SpanKind.CLIENT
    service = request.service
    database_category = Category.DATABASE
    standard_only = len(rules) == 1 and rules[0] is classify_standard
    make_call = new_call
    # (span, clipped start, clipped end, end of the interval it was booked from its start)
    stack: list[tuple[Span, int, int, int]] = [(request, start, end, end)]
    covered = 0
    while stack:
        node, lo, hi, booked_end = stack.pop()
        covered += 1
        kids = get_children(node.span_id)
        if kids is None:
            own += booked_end - lo
            continue
        siblings: list[tuple[int, int, str, Span]] = []
        for kid in kids:
            k_start = kid.start_ns
            if k_start < lo:
                k_start = lo
            elif k_start > hi:
                k_start = hi
            k_end = kid.end_ns
            if k_end > hi:
                k_end = hi
            elif k_end < k_start:
                k_end = k_start
            siblings.append((k_end, k_start, kid.span_id, kid))
        if len(siblings) > 1:
            siblings.sort(reverse=True)
        frontier = booked_end  # where the part still unbooked ends
        taken = 0
        for k_end, k_start, _, kid in siblings:
            won_end = k_end if k_end < frontier else frontier
            if won_end < k_start:
                won_end = k_start
            elif k_start < frontier:
                frontier = k_start
            length = won_end - k_start
            taken += length
            if kid.kind == server:
                if kid.service == service:
                    # The same service's SERVER span inside its own request (a framework's
                    # handler span under its HTTP server span): part of this request.
                    stack.append((kid, k_start, k_end, won_end))
                    continue
                # Another service's request: its own ledger is booked separately.
                network += length
                calls.append(_nested_server_call(kid, length))
                nested.append(kid)
                continue
            if memo is not None:
                found = _classify_memo(kid, rules, memo)
            elif standard_only:
                found = standard_fields(kid)
            else:
                found = classify_fields(kid, rules)
            if found is None:
                stack.append((kid, k_start, k_end, won_end))
                continue
            if found[1] in _ANSWERABLE and kid.kind == client:
                answers = get_children(kid.span_id)
                if answers is not None:
                    found = answered_fields(kid, answers) or found
            # A wait span's descendants are its own; count them as covered.
            covered += 1 if get_children(kid.span_id) is None else _cover(kid, children, nested)
            category, kind, system, target = found
            kid_attrs = kid.attributes
            moved, tail_part, slack = wait_tail(
                kid_attrs.get(TAIL_NS),
                kid_attrs.get(DELAY_NS),
                kid_attrs.get(TAIL_MAX_NS),
                k_start,
                won_end,
                kid.end_ns,
            )
            length -= moved
            own += moved
            tails += tail_part
            if slack is None:
                slack = 0
                unbounded += length
            elif slack > length:
                slack = length
            if category == database_category:
                database += length
                database_slack += slack
            else:
                network += length
                network_slack += slack
            calls.append(
                make_call(
                    category=category,
                    kind=kind,
                    system=system,
                    target=target,
                    start_ns=kid.start_ns,
                    end_ns=kid.end_ns,
                    booked_ns=length,
                )
            )
        own += booked_end - lo - taken
    return database, network, own, calls, covered, tails, (database_slack, network_slack, unbounded)


def _nested_server_call(span: Span, booked: int) -> Call:
    """A downstream SERVER span as one network call of the enclosing request."""
    attrs = span.attributes
    method = http_method(attrs)
    route = route_template(span)
    if method and route.startswith(method + " "):
        route = route[len(method) + 1 :]
    if method:
        kind, system = CallKind.HTTP, "http"
    elif rpc := attr_str(attrs, "rpc.system"):
        kind, system = CallKind.RPC, rpc.lower()
    else:
        kind, system = CallKind.OTHER, ""
    separator = "" if route.startswith("/") else " "
    target = f"{method} {span.service}{separator}{route}".lstrip()
    return Call(
        category=Category.NETWORK,
        kind=kind,
        system=system,
        target=target,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        booked_ns=booked,
    )
