"""The ledger: one trace -> its booked requests (DESIGN.md, "The ledger").

Contract: :func:`book_trace` is pure. Every request's parts add up to its wall time
exactly, in integer nanoseconds, whatever the spans look like (overlaps, children that
outlive their parents, zero-length or inverted spans, cycles, duplicate ids).

Requests: a SERVER span, or a root span (no parent in the trace) marked INTERNAL or
UNSPECIFIED that carries HTTP server attributes, for exporters that mark everything
INTERNAL. A descendant counts toward the nearest enclosing request. A SERVER span of
the same service inside a request, not under a wait span (a framework's handler span
under its HTTP server span), is part of that request: the outermost is the request and
the inner one's children count in it. Any other nested SERVER span (another service's,
or one under a CLIENT span: a downstream call) starts its own request and, seen from
the outer request, is network time.

Booking (critical path, as Jaeger / CRISP): children are clipped to their parent; each
instant of a parent's booked time that children cover goes to ONE child, the one that
finishes last (ties: later start, then larger span id); each child's booked instants are
split among its own children the same way. Instants booked to a wait span (or anything
under it) go to that span's category; uncovered instants of other spans are the
request's own time. Own time is ``interpreter`` + ``native`` + ``waiting`` when the
request span carries ``ledger.cpu_ns``, else ``app``; ``native`` is the part of the CPU
its ``ledger.profile`` measured inside compiled extensions (0 when not profiled:
aggregation estimates it). When the collector did not export the children
(``ledger.spans_kept`` false), the request is booked from its ``ledger.*`` totals.

A request that is a long-lived stream (``streams.stream_kind``: gRPC streams,
websockets, server-sent events) is booked the same way and marked ``stream``.

Spans under no request (orphans whose request is missing, traces with no request, spans
in parent cycles, duplicate span ids) are counted in ``unbooked_spans``.

Modules, each importing only those before it: ``contract`` (the ``ledger.*`` attribute
names) -> ``records`` (fast record constructors, BookedTrace) -> ``waits`` (a wait
span's tail) -> ``own_time`` (the CPU split and the estimates) -> ``memo`` (classifying,
ClassifyMemo) -> ``statements`` (a request's statement tallies) -> ``request`` (the
Request record) -> ``flat`` (the one-pass sweep of a
flat trace) -> ``booking`` (book_trace, the span tree). This module re-exports their
names, so ``from latency_ledger.ledger import X`` is the way in.
"""

from __future__ import annotations

from latency_ledger.ledger.booking import (
    book_request,
    book_spans,
    book_trace,
    book_trace_rows,
    is_http_root,
)
from latency_ledger.ledger.contract import (
    _TOTALS as _TOTALS,
)
from latency_ledger.ledger.contract import (
    CPU_NS,
    DATABASE_NS,
    DATABASE_WAIT_MAX_NS,
    DELAY_NS,
    INTERPRETER_NS,
    KEEP_PROBABILITY,
    MAX_WALL_NS,
    NATIVE_THREADS_MAX_NS,
    NATIVE_THREADS_NS,
    NETWORK_NS,
    NETWORK_WAIT_MAX_NS,
    OVERHEAD_NS,
    PROFILE,
    QUEUEING_NS,
    SPANS_KEPT,
    STATEMENT_BOOKED_NS,
    STATEMENT_CALLS,
    STATEMENT_COUNT,
    STATEMENT_FINGERPRINTS,
    STATEMENT_LONGEST_NS,
    STATEMENT_TEXTS,
    TAIL_MAX_NS,
    TAIL_NS,
    UNBOUNDED_IO_NS,
    WAITING_NS,
    as_int,
)
from latency_ledger.ledger.flat import (
    _book_flat as _book_flat,
)
from latency_ledger.ledger.memo import (
    MEMO_LIMIT,
    NAMES_LIMIT,
    ClassifyMemo,
    MemoEntry,
    RequestNames,
    WaitExtras,
    classify_fields,
)
from latency_ledger.ledger.own_time import (
    ESTIMATE_KEYS,
    estimates,
    ledger_from_totals,
    split_measured,
    split_own_time,
    with_estimates,
)
from latency_ledger.ledger.records import (
    BookedTrace,
    fast_constructor,
    new_call,
    new_ledger,
    new_request,
)
from latency_ledger.ledger.request import (
    keep_probability,
    request_record,
)
from latency_ledger.ledger.statements import read_tallies
from latency_ledger.ledger.waits import (
    tail_overlap,
    wait_tail,
)

# The private names above (``as`` re-exports) are imported by clickhouse/ and tests.
__all__ = [
    "CPU_NS",
    "DATABASE_NS",
    "DATABASE_WAIT_MAX_NS",
    "DELAY_NS",
    "ESTIMATE_KEYS",
    "INTERPRETER_NS",
    "KEEP_PROBABILITY",
    "MAX_WALL_NS",
    "MEMO_LIMIT",
    "NAMES_LIMIT",
    "NATIVE_THREADS_MAX_NS",
    "NATIVE_THREADS_NS",
    "NETWORK_NS",
    "NETWORK_WAIT_MAX_NS",
    "OVERHEAD_NS",
    "PROFILE",
    "QUEUEING_NS",
    "SPANS_KEPT",
    "STATEMENT_BOOKED_NS",
    "STATEMENT_CALLS",
    "STATEMENT_COUNT",
    "STATEMENT_FINGERPRINTS",
    "STATEMENT_LONGEST_NS",
    "STATEMENT_TEXTS",
    "TAIL_MAX_NS",
    "TAIL_NS",
    "UNBOUNDED_IO_NS",
    "WAITING_NS",
    "BookedTrace",
    "ClassifyMemo",
    "MemoEntry",
    "RequestNames",
    "WaitExtras",
    "as_int",
    "book_request",
    "book_spans",
    "book_trace",
    "book_trace_rows",
    "classify_fields",
    "estimates",
    "fast_constructor",
    "is_http_root",
    "keep_probability",
    "ledger_from_totals",
    "new_call",
    "new_ledger",
    "new_request",
    "read_tallies",
    "request_record",
    "split_measured",
    "split_own_time",
    "tail_overlap",
    "wait_tail",
    "with_estimates",
]
