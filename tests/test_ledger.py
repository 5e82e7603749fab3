"""Known-answer and property tests for ledger.book_trace (expected numbers stated first)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latency_ledger.aggregate import Aggregator
from latency_ledger.classify import DEFAULT_RULES, classify_span
from latency_ledger.ledger import (
    book_trace,
    fast_constructor,
    new_call,
    new_ledger,
    new_request,
)
from latency_ledger.model import (
    AttributeValue,
    Call,
    CallKind,
    Category,
    Ledger,
    Request,
    Span,
    SpanKind,
    Trace,
)
from latency_ledger.plugins import Classification

MS = 1_000_000
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SERVER_ATTRS = {"http.request.method": "GET", "http.route": "/orders/{order_id}"}
PG = {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}
HTTP_OUT = {"http.request.method": "GET", "server.address": "pay.example", "url.path": "/x"}


def make_span(
    span_id: str,
    parent: str = "",
    *,
    start: int,
    end: int,
    kind: SpanKind = SpanKind.INTERNAL,
    attrs: Mapping[str, AttributeValue] | None = None,
    name: str = "span",
    service: str = "shop",
    error: bool = False,
) -> Span:
    return Span(
        trace_id=TRACE_ID,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=end,
        is_error=error,
        attributes=dict(attrs or {}),
        service=service,
    )


def request_span(
    span_id: str = "r",
    *,
    start: int = 0,
    end: int = 100 * MS,
    attrs: Mapping[str, AttributeValue] | None = None,
    error: bool = False,
) -> Span:
    return make_span(
        span_id,
        start=start,
        end=end,
        kind=SpanKind.SERVER,
        attrs={**SERVER_ATTRS, **(attrs or {})},
        error=error,
    )


def db(span_id: str, parent: str, start: int, end: int, **attrs: AttributeValue) -> Span:
    return make_span(
        span_id, parent, start=start, end=end, kind=SpanKind.CLIENT, attrs={**PG, **attrs}
    )


def book(*spans: Span) -> tuple[Request, ...]:
    return book_trace(Trace(trace_id=TRACE_ID, spans=spans)).requests


def only(*spans: Span) -> Request:
    requests = book(*spans)
    assert len(requests) == 1
    return requests[0]


def test_sequential_calls() -> None:
    # 100 ms request: DB 30 + DB 20 (database 50), HTTP 15 (network), own 35.
    expected = Ledger(database_ns=50 * MS, network_ns=15 * MS, app_ns=35 * MS)
    request = only(
        request_span(),
        db("d1", "r", 10 * MS, 40 * MS),
        db("d2", "r", 50 * MS, 70 * MS),
        make_span("h1", "r", start=75 * MS, end=90 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
    )
    assert request.ledger == expected
    assert [c.booked_ns for c in request.calls] == [30 * MS, 20 * MS, 15 * MS]
    assert [c.kind for c in request.calls] == [CallKind.QUERY, CallKind.QUERY, CallKind.HTTP]
    assert request.calls[2].target == "GET pay.example/x"
    assert (request.method, request.endpoint, request.service) == (
        "GET",
        "GET /orders/{order_id}",
        "shop",
    )
    assert request.wall_ns == 100 * MS
    assert not request.from_totals


def test_concurrent_calls_go_to_the_last_finisher() -> None:
    # gather of 3 queries: [10,50] [20,60] [30,45]. The union [10,60] = 50 ms is database;
    # d1 owns [10,20) until d2 (ends later) covers, d2 owns [20,60), d3 is never last.
    request = only(
        request_span(),
        db("d1", "r", 10 * MS, 50 * MS),
        db("d2", "r", 20 * MS, 60 * MS),
        db("d3", "r", 30 * MS, 45 * MS),
    )
    assert request.ledger == Ledger(database_ns=50 * MS, network_ns=0, app_ns=50 * MS)
    booked = {c.start_ns // MS: c.booked_ns // MS for c in request.calls}
    assert booked == {10: 10, 20: 40, 30: 0}


def test_concurrent_database_and_network() -> None:
    # DB [10,50] and HTTP [30,70]: DB owns [10,30) = 20, HTTP owns [30,70) = 40; own 40.
    request = only(
        request_span(),
        db("d1", "r", 10 * MS, 50 * MS),
        make_span("h1", "r", start=30 * MS, end=70 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
    )
    assert request.ledger == Ledger(database_ns=20 * MS, network_ns=40 * MS, app_ns=40 * MS)


def test_ties_break_by_later_start_then_span_id() -> None:
    # Same end: the later start wins where both cover. Identical: the larger span id wins.
    request = only(
        request_span(),
        db("a", "r", 10 * MS, 50 * MS),
        db("b", "r", 20 * MS, 50 * MS),
        db("c", "r", 60 * MS, 80 * MS),
        db("d", "r", 60 * MS, 80 * MS),
    )
    assert {c.start_ns // MS: c.booked_ns // MS for c in request.calls if c.start_ns < 60 * MS} == {
        10: 10,
        20: 30,
    }
    later = [c for c in request.calls if c.start_ns == 60 * MS]
    assert sorted(c.booked_ns // MS for c in later) == [0, 20]
    assert request.ledger.database_ns == 60 * MS


def test_nesting_database_under_internal_span() -> None:
    # request [0,100] > handler [5,95] (INTERNAL) > DB [20,60]: database 40, own 60.
    request = only(
        request_span(),
        make_span("h", "r", start=5 * MS, end=95 * MS),
        db("d", "h", 20 * MS, 60 * MS),
    )
    assert request.ledger == Ledger(database_ns=40 * MS, network_ns=0, app_ns=60 * MS)
    assert [c.booked_ns for c in request.calls] == [40 * MS]


def test_children_of_an_overlapped_span_count_only_where_it_is_booked() -> None:
    # Two concurrent INTERNAL tasks: t1 [0,50] and t2 [20,60] (finishes later, so owns
    # [20,60]); t1 keeps [0,20). t1's query [30,40] falls in t2's time: it books 0, and
    # t1's query [5,15] books 10. t2's query [40,55] books 15. Own: 100 - 25 = 75.
    request = only(
        request_span(),
        make_span("t1", "r", start=0, end=50 * MS),
        make_span("t2", "r", start=20 * MS, end=60 * MS),
        db("q1", "t1", 30 * MS, 40 * MS),
        db("q0", "t1", 5 * MS, 15 * MS),
        db("q2", "t2", 40 * MS, 55 * MS),
    )
    assert request.ledger == Ledger(database_ns=25 * MS, network_ns=0, app_ns=75 * MS)
    assert [c.booked_ns // MS for c in request.calls] == [10, 0, 15]


def test_spans_under_a_wait_span_belong_to_it() -> None:
    # HTTP call [10,90] with a DB span inside (a proxy's own span): all 80 ms are network,
    # and only the outermost wait span is a call.
    request = only(
        request_span(),
        make_span("h", "r", start=10 * MS, end=90 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
        db("d", "h", 20 * MS, 60 * MS),
    )
    assert request.ledger == Ledger(database_ns=0, network_ns=80 * MS, app_ns=20 * MS)
    assert len(request.calls) == 1


def test_child_that_outlives_its_parent_is_clipped() -> None:
    # DB [80,150] under a [0,100] request books 20; DB [-10,10] books 10; a grandchild
    # [40,90] under an INTERNAL span [10,50] is clipped to [40,50]: 10. Own 60.
    request = only(
        request_span(),
        db("late", "r", 80 * MS, 150 * MS),
        db("early", "r", -10 * MS, 10 * MS),
        make_span("i", "r", start=10 * MS, end=50 * MS),
        db("grand", "i", 40 * MS, 90 * MS),
    )
    assert request.ledger == Ledger(database_ns=40 * MS, network_ns=0, app_ns=60 * MS)
    late = next(c for c in request.calls if c.start_ns == 80 * MS)
    assert (late.booked_ns, late.end_ns) == (20 * MS, 150 * MS)


def test_child_entirely_outside_its_request_books_nothing_but_is_a_call() -> None:
    request = only(request_span(), db("d", "r", 200 * MS, 300 * MS))
    assert request.ledger == Ledger(database_ns=0, network_ns=0, app_ns=100 * MS)
    assert [c.booked_ns for c in request.calls] == [0]


def test_request_with_no_children_is_all_own_time() -> None:
    request = only(request_span(end=7 * MS))
    assert request.ledger == Ledger(database_ns=0, network_ns=0, app_ns=7 * MS)
    assert request.calls == ()


def test_orphans_and_traces_without_a_request_are_unbooked() -> None:
    # Booked: r and its DB span. Unbooked: an orphan INTERNAL span (parent never exported)
    # and its child, 2 spans.
    result = book_trace(
        Trace(
            trace_id=TRACE_ID,
            spans=(
                request_span(),
                db("d", "r", 10 * MS, 20 * MS),
                make_span("o", "missing", start=0, end=5 * MS),
                db("od", "o", 1 * MS, 2 * MS),
            ),
        )
    )
    assert (len(result.requests), result.unbooked_spans) == (1, 2)
    assert result.requests[0].ledger.database_ns == 10 * MS

    no_request = book_trace(
        Trace(
            trace_id=TRACE_ID,
            spans=(make_span("a", start=0, end=9), make_span("b", "a", start=1, end=2)),
        )
    )
    assert (no_request.requests, no_request.unbooked_spans) == ((), 2)


def test_orphan_server_span_is_still_a_request() -> None:
    # A SERVER span whose caller's span is missing is its own request.
    orphan = replace(request_span(), parent_span_id="gone")
    result = book_trace(Trace(trace_id=TRACE_ID, spans=(orphan,)))
    assert (len(result.requests), result.unbooked_spans) == (1, 0)


def test_cycles_and_duplicate_ids_are_unbooked_not_fatal() -> None:
    # a -> b -> a has no root: both unbooked. A second span reusing id "r" is unbooked.
    result = book_trace(
        Trace(
            trace_id=TRACE_ID,
            spans=(
                make_span("a", "b", start=0, end=10),
                make_span("b", "a", start=0, end=10),
                make_span("s", "s", start=0, end=10, kind=SpanKind.SERVER),
                request_span(),
                request_span(end=5 * MS),
            ),
        )
    )
    assert result.unbooked_spans == 4
    assert [r.wall_ns for r in result.requests] == [100 * MS]


def test_absurd_timestamps_are_capped_to_fit_int64_columns() -> None:
    # A corrupt request lasting 2**64 ns is capped at 2**62 ns; parts still add up and
    # the aggregator's int64 columns accept it.
    request = only(request_span(start=0, end=2**64), db("d", "r", 0, 2**63))
    assert request.wall_ns == 2**62
    assert request.ledger == Ledger(database_ns=2**62, network_ns=0, app_ns=0)
    aggregator = Aggregator()
    aggregator.add(request)
    assert aggregator.overall().latency_ns["p99"] == 2**62


def test_deep_tree_does_not_hit_the_recursion_limit() -> None:
    # 5,000 nested INTERNAL spans, each 1 ns shorter at both ends (the deepest is
    # [4999, 15001)), then a DB span [6000, 11000): database 5,000 of the 20,000 ns.
    depth = 5_000
    spans = [request_span(end=20_000)]
    for level in range(depth):
        spans.append(make_span(f"n{level}", spans[-1].span_id, start=level, end=20_000 - level))
    spans.append(db("deep", spans[-1].span_id, 6_000, 11_000))
    request = only(*spans)
    assert request.ledger == Ledger(database_ns=5_000, network_ns=0, app_ns=15_000)


def test_cpu_measured_request_splits_own_time() -> None:
    # 100 ms, DB 40 -> own 60: cpu 35 -> interpreter 35, waiting 25 of which queueing 10.
    request = only(
        request_span(attrs={"ledger.cpu_ns": 35 * MS, "ledger.queueing_ns": 10 * MS}),
        db("d", "r", 10 * MS, 50 * MS),
    )
    assert request.ledger == Ledger(
        database_ns=40 * MS,
        network_ns=0,
        interpreter_ns=35 * MS,
        waiting_ns=25 * MS,
        queueing_ns=10 * MS,
        cpu_measured=True,
        unbounded_io_ns=40 * MS,  # the span's end was not measured (no tail bound on it)
    )
    assert request.ledger.parts() == {
        "database": 40 * MS,
        "network": 0,
        "interpreter": 35 * MS,
        "native": 0,  # not profiled: no native part measured
        "waiting": 25 * MS,
    }


def test_cpu_above_own_time_is_capped() -> None:
    # Own time 60: cpu 90 (clock skew) -> interpreter 60, waiting 0, queueing 0.
    request = only(
        request_span(attrs={"ledger.cpu_ns": "90000000", "ledger.queueing_ns": 5 * MS}),
        db("d", "r", 10 * MS, 50 * MS),
    )
    assert (request.ledger.interpreter_ns, request.ledger.waiting_ns) == (60 * MS, 0)
    assert request.ledger.queueing_ns == 0


def _totals_copy(request: Request, span: Span) -> Span:
    ledger = request.ledger
    attrs = dict(span.attributes)
    attrs.update(
        {
            "ledger.spans_kept": False,
            "ledger.database_ns": ledger.database_ns,
            "ledger.network_ns": ledger.network_ns,
            # the collector's total is all own CPU: it does not know the native part
            "ledger.interpreter_ns": ledger.interpreter_ns + ledger.native_ns,
            "ledger.waiting_ns": ledger.waiting_ns,
            "ledger.database_wait_max_ns": ledger.database_wait_max_ns,
            "ledger.network_wait_max_ns": ledger.network_wait_max_ns,
            "ledger.unbounded_io_ns": ledger.unbounded_io_ns,
        }
    )
    return replace(span, attributes=attrs)


def test_totals_path_agrees_with_spans_path() -> None:
    server = request_span(attrs={"ledger.cpu_ns": 22 * MS, "ledger.queueing_ns": 3 * MS})
    children = (
        db("d1", "r", 10 * MS, 40 * MS),
        db("d2", "r", 20 * MS, 45 * MS),
        make_span("h", "r", start=60 * MS, end=80 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
    )
    # Spans path: database 35 (union [10,45]), network 20, own 45 = interpreter 22 + waiting 23.
    from_spans = only(server, *children)
    assert from_spans.ledger == Ledger(
        database_ns=35 * MS,
        network_ns=20 * MS,
        interpreter_ns=22 * MS,
        waiting_ns=23 * MS,
        queueing_ns=3 * MS,
        cpu_measured=True,
        unbounded_io_ns=55 * MS,  # no span's end was measured
    )
    from_totals = only(_totals_copy(from_spans, server))
    assert from_totals.from_totals
    assert from_totals.ledger == from_spans.ledger
    assert (from_totals.endpoint, from_totals.wall_ns) == (from_spans.endpoint, from_spans.wall_ns)


def _profile(native_s: float, native_max_s: float) -> str:
    return json.dumps(
        {
            "samples": 9,
            "buckets": {"application": 0.05},
            "cpu": 0.05,
            "native": native_s,
            "native_max": native_max_s,
            "native_top": [["hashpw", native_s]],
        }
    )


def test_profiled_request_splits_its_cpu_into_interpreter_and_native() -> None:
    # 100 ms, DB 40 -> own 60: cpu 35, of which the profile booked 30 ms native (upper
    # bound 31): interpreter 5, native 30, waiting 25. Same through the totals path.
    server = request_span(
        attrs={"ledger.cpu_ns": 35 * MS, "ledger.profile": _profile(0.030, 0.031)}
    )
    from_spans = only(server, db("d", "r", 10 * MS, 50 * MS))
    assert from_spans.ledger == Ledger(
        database_ns=40 * MS,
        network_ns=0,
        interpreter_ns=5 * MS,
        native_ns=30 * MS,
        waiting_ns=25 * MS,
        cpu_measured=True,
        native_measured=True,
        native_max_ns=31 * MS,
        unbounded_io_ns=40 * MS,
    )
    assert sum(from_spans.ledger.parts().values()) == from_spans.wall_ns
    assert only(_totals_copy(from_spans, server)).ledger == from_spans.ledger


def test_cpu_the_profile_did_not_see_widens_the_upper_bound() -> None:
    # A sync endpoint: its 35 ms of CPU ran in a worker thread, the profile (of the loop
    # thread) saw 5 ms of CPU, none of it native. Booked: native 0, interpreter 35; but
    # the 30 ms the profile did not see may be native: upper bound 30 ms + 1 ms.
    profile = json.loads(_profile(0.0, 0.001))
    profile["cpu"] = 0.005
    request = only(
        request_span(attrs={"ledger.cpu_ns": 35 * MS, "ledger.profile": json.dumps(profile)})
    )
    ledger = request.ledger
    assert (ledger.interpreter_ns, ledger.native_ns, ledger.native_max_ns) == (35 * MS, 0, 31 * MS)
    assert ledger.native_measured


def test_native_is_clipped_to_the_cpu_booked() -> None:
    # cpu 10 ms but the profile says 50 ms native (clock skew, or a forged attribute):
    # native is all 10 ms of CPU, never more; waiting keeps the rest of own time.
    request = only(
        request_span(attrs={"ledger.cpu_ns": 10 * MS, "ledger.profile": _profile(0.05, 0.06)})
    )
    ledger = request.ledger
    assert (ledger.interpreter_ns, ledger.native_ns, ledger.waiting_ns) == (0, 10 * MS, 90 * MS)


@pytest.mark.parametrize(
    "profile",
    [
        '{"samples": 3, "buckets": {"application": 0.01}}',  # an older collector's
        '{"native": "lots", "native_max": 1}',
        '{"native": -1, "native_max": 1}',
        '{"native": 1e400, "native_max": 1}',
        "not json",
        '{"native": 1e300, "native_max": 1e300}',
    ],
)
def test_a_profile_without_a_usable_native_figure_leaves_cpu_as_interpreter(
    profile: str,
) -> None:
    request = only(request_span(attrs={"ledger.cpu_ns": 10 * MS, "ledger.profile": profile}))
    ledger = request.ledger
    assert ledger.total_ns == request.wall_ns
    if "1e300" in profile:  # huge but finite: clipped to the CPU
        assert (ledger.interpreter_ns, ledger.native_ns) == (0, 10 * MS)
    else:
        assert (ledger.interpreter_ns, ledger.native_ns) == (10 * MS, 0)
        assert not ledger.native_measured


def test_totals_path_without_cpu_books_app() -> None:
    # Totals without interpreter/waiting: database 30 + network 10, app the other 60.
    server = request_span(
        attrs={
            "ledger.spans_kept": False,
            "ledger.database_ns": 30 * MS,
            "ledger.network_ns": 10 * MS,
        }
    )
    assert only(server).ledger == Ledger(database_ns=30 * MS, network_ns=10 * MS, app_ns=60 * MS)


def test_totals_that_overflow_wall_time_are_repaired() -> None:
    # 100 ms wall but totals 80 + 50 + 30: database 80, network clipped to 20, nothing left.
    # Totals that fall short: the gap goes to waiting.
    over = request_span(
        attrs={
            "ledger.spans_kept": False,
            "ledger.database_ns": 80 * MS,
            "ledger.network_ns": 50 * MS,
            "ledger.interpreter_ns": 30 * MS,
            "ledger.waiting_ns": 0,
        }
    )
    assert only(over).ledger == Ledger(
        database_ns=80 * MS, network_ns=20 * MS, interpreter_ns=0, waiting_ns=0, cpu_measured=True
    )
    short = request_span(
        attrs={
            "ledger.spans_kept": False,
            "ledger.database_ns": 50 * MS,
            "ledger.network_ns": -5,
            "ledger.interpreter_ns": 10 * MS,
            "ledger.waiting_ns": 1 * MS,
            "ledger.queueing_ns": 90 * MS,
        }
    )
    assert only(short).ledger == Ledger(
        database_ns=50 * MS,
        network_ns=0,
        interpreter_ns=10 * MS,
        waiting_ns=40 * MS,
        queueing_ns=40 * MS,
        cpu_measured=True,
    )


def test_spans_kept_true_uses_the_spans() -> None:
    server = request_span(attrs={"ledger.spans_kept": True, "ledger.database_ns": 99 * MS})
    request = only(server, db("d", "r", 0, 10 * MS))
    assert (request.from_totals, request.ledger.database_ns) == (False, 10 * MS)


def test_nested_server_is_its_own_request_and_network_for_the_caller() -> None:
    # shop [0,100] > HTTP client [10,90] > payments SERVER [20,80] > DB [30,60].
    # shop: network 80, app 20. payments: database 30, app 30.
    shop, payments = book(
        request_span(),
        make_span("c", "r", start=10 * MS, end=90 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
        make_span(
            "p",
            "c",
            start=20 * MS,
            end=80 * MS,
            kind=SpanKind.SERVER,
            attrs={"http.request.method": "POST", "http.route": "/charge"},
            service="payments",
        ),
        db("d", "p", 30 * MS, 60 * MS),
    )
    assert shop.ledger == Ledger(database_ns=0, network_ns=80 * MS, app_ns=20 * MS)
    assert payments.ledger == Ledger(database_ns=30 * MS, network_ns=0, app_ns=30 * MS)
    assert (payments.service, payments.endpoint) == ("payments", "POST /charge")


def test_nested_server_without_client_span_is_network() -> None:
    # shop [0,100] > handler [0,100] > payments SERVER [20,80]: shop books 60 network.
    shop, payments = book(
        request_span(),
        make_span("h", "r", start=0, end=100 * MS),
        make_span(
            "p",
            "h",
            start=20 * MS,
            end=80 * MS,
            kind=SpanKind.SERVER,
            attrs={"http.request.method": "POST", "http.route": "/charge"},
            service="payments",
        ),
    )
    assert shop.ledger == Ledger(database_ns=0, network_ns=60 * MS, app_ns=40 * MS)
    assert [(c.kind, c.target, c.booked_ns) for c in shop.calls] == [
        (CallKind.HTTP, "POST payments/charge", 60 * MS)
    ]
    assert payments.ledger.app_ns == 60 * MS


def test_internal_only_exporter_root_with_http_attributes_is_a_request() -> None:
    # Everything INTERNAL: the root with method + target is the request; db.system still
    # makes its child a database wait. A root CLIENT span with a path is not a request.
    spans = (
        make_span(
            "root",
            start=0,
            end=50 * MS,
            attrs={"http.method": "get", "http.target": "/orders/42?x=1", "http.status_code": 503},
        ),
        make_span("q", "root", start=5 * MS, end=25 * MS, attrs={"db.system": "mysql"}),
    )
    request = only(*spans)
    assert (request.endpoint, request.status_code, request.is_error) == (
        "GET /orders/{id}",
        503,
        True,
    )
    assert request.ledger == Ledger(database_ns=20 * MS, network_ns=0, app_ns=30 * MS)
    client_root = make_span(
        "c",
        start=0,
        end=5,
        kind=SpanKind.CLIENT,
        attrs={"http.request.method": "GET", "url.path": "/a"},
    )
    assert book_trace(Trace(trace_id=TRACE_ID, spans=(client_root,))).unbooked_spans == 1


def test_status_error_and_overhead() -> None:
    # "200" as a string is 200; "0" (unset) is None; an ERROR span is an error; overhead kept.
    ok = only(request_span(attrs={"http.response.status_code": "200", "ledger.overhead_ns": 4_000}))
    assert (ok.status_code, ok.is_error, ok.collector_overhead_ns) == (200, False, 4_000)
    unset = only(request_span(attrs={"http.status_code": "0"}, error=True))
    assert (unset.status_code, unset.is_error) == (None, True)


def test_asgi_receive_send_spans_are_client_io() -> None:
    request = only(
        request_span(),
        make_span("rx", "r", start=0, end=2 * MS, attrs={"asgi.event.type": "http.request"}),
        make_span(
            "tx", "r", start=98 * MS, end=100 * MS, attrs={"asgi.event.type": "http.response.body"}
        ),
    )
    assert request.ledger == Ledger(database_ns=0, network_ns=4 * MS, app_ns=96 * MS)
    assert {c.kind for c in request.calls} == {CallKind.CLIENT_IO}


def test_fast_call_constructor_builds_the_same_record() -> None:
    fast = new_call(Category.DATABASE, CallKind.QUERY, "postgresql", "SELECT 1", 5, 9, 3)
    fields: dict[str, Any] = {
        "category": Category.DATABASE,
        "kind": CallKind.QUERY,
        "system": "postgresql",
        "target": "SELECT 1",
        "start_ns": 5,
        "end_ns": 9,
        "booked_ns": 3,
    }
    slow = Call(**fields)
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert fast.duration_ns == 4
    with pytest.raises(AttributeError):
        fast.booked_ns = 0  # type: ignore[misc]
    assert new_call(**fields) == slow  # by keyword, as the dataclass takes them


def test_fast_ledger_and_request_constructors_build_the_same_records() -> None:
    ledger = new_ledger(database_ns=1, network_ns=2, app_ns=3)
    assert ledger == Ledger(database_ns=1, network_ns=2, app_ns=3)
    assert repr(ledger) == repr(Ledger(database_ns=1, network_ns=2, app_ns=3))
    given = {
        "trace_id": "t",
        "span_id": "s",
        "service": "svc",
        "method": "GET",
        "endpoint": "GET /",
        "start_ns": 1,
        "wall_ns": 2,
        "status_code": None,
        "is_error": False,
        "ledger": ledger,
        "stream": "websocket",
    }
    fast, slow = new_request(**given), Request(**given)  # type: ignore[arg-type]
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert fast.calls == ()
    assert fast.keep_probability == 1.0
    with pytest.raises(TypeError):
        new_request(span_id="s")  # required fields stay required


def test_fast_constructor_falls_back_when_the_layout_differs() -> None:
    """A record whose slots a plain twin class cannot match (here a weakref slot) is
    still built right, through its slots' descriptors; and the usual records take the
    twin-class path (their constructor assigns ``__class__``)."""

    @dataclass(frozen=True, slots=True, kw_only=True, weakref_slot=True)
    class Weak:
        a: int
        b: str = "x"

    make = fast_constructor(Weak)
    assert "__class__" not in make.__code__.co_names
    assert make(a=1) == Weak(a=1)
    assert make(2, "y") == Weak(a=2, b="y")
    assert type(make(a=1)) is Weak
    assert "__class__" in new_call.__code__.co_names


def test_plugin_rule_comes_first() -> None:
    def inhouse(span: Span) -> Classification | None:
        if span.name == "rpc.call":
            return Classification(
                category=Category.NETWORK, kind=CallKind.RPC, system="inhouse", target="x"
            )
        return None

    spans = (request_span(), make_span("i", "r", start=0, end=10 * MS, name="rpc.call"))
    plain = only(*spans)
    ruled = book_trace(Trace(trace_id=TRACE_ID, spans=spans), rules=(inhouse, *DEFAULT_RULES))
    assert plain.ledger.network_ns == 0
    assert ruled.requests[0].ledger.network_ns == 10 * MS


# ---------------------------------------------------------------------------------------
# What a request is, and calls known by who answers them (issue 10).


def test_a_sql_query_client_span_in_another_resource_is_database() -> None:
    # HotROD: service "customer" serves 258 ms; the 257 ms MySQL call is a CLIENT span
    # reported under service "mysql" with only sql.query. Expected: 257 database, 1 own.
    request = only(
        make_span("r", start=0, end=258 * MS, kind=SpanKind.SERVER, attrs=SERVER_ATTRS,
                  service="customer"),
        make_span("q", "r", start=1 * MS, end=258 * MS, kind=SpanKind.CLIENT,
                  attrs={"sql.query": "SELECT * FROM customer WHERE customer_id=?"},
                  service="mysql", name="SQL SELECT"),
    )  # fmt: skip
    assert request.ledger == Ledger(database_ns=257 * MS, network_ns=0, app_ns=1 * MS)
    [call] = request.calls
    assert (call.kind, call.system) == (CallKind.QUERY, "mysql")


def test_a_call_answered_by_a_database_service_is_a_database_wait() -> None:
    # An HTTP call whose answering SERVER span belongs to service "elasticsearch": 40 ms
    # of database; the answering span is that service's own request.
    spans = (
        request_span(),
        make_span("c", "r", start=10 * MS, end=50 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
        make_span("a", "c", start=12 * MS, end=48 * MS, kind=SpanKind.SERVER,
                  attrs=SERVER_ATTRS, service="elasticsearch"),
    )  # fmt: skip
    shop, answering = book(*spans)
    assert shop.ledger == Ledger(database_ns=40 * MS, network_ns=0, app_ns=60 * MS)
    assert (shop.calls[0].kind, shop.calls[0].system) == (CallKind.QUERY, "elasticsearch")
    assert answering.service == "elasticsearch"
    # Answered by an ordinary service, the same call stays network.
    other = book(spans[0], spans[1], replace(spans[2], service="pricing"))[0]
    assert other.ledger.network_ns == 40 * MS


def test_nested_server_spans_of_one_service_are_one_request() -> None:
    # The HTTP server span (100 ms) holds the framework's handler SERVER span (80 ms),
    # which holds a 30 ms query and a 10 ms outgoing call: one request, the outer one,
    # with the inner one's children counted: 30 database, 10 network, 60 own.
    request = only(
        request_span(),
        make_span("h", "r", start=10 * MS, end=90 * MS, kind=SpanKind.SERVER,
                  attrs={"http.route": "/inner"}),
        db("d", "h", 20 * MS, 50 * MS),
        make_span("c", "h", start=60 * MS, end=70 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
    )  # fmt: skip
    assert request.span_id == "r"
    assert request.endpoint == "GET /orders/{order_id}"
    assert request.ledger == Ledger(database_ns=30 * MS, network_ns=10 * MS, app_ns=60 * MS)


def test_server_span_under_a_client_span_is_a_downstream_request_even_of_the_same_service() -> None:
    # The service calls itself over HTTP: 40 ms network for the caller, and the callee's
    # 30 ms are its own request.
    caller, callee = book(
        request_span(),
        make_span("c", "r", start=10 * MS, end=50 * MS, kind=SpanKind.CLIENT, attrs=HTTP_OUT),
        make_span("s", "c", start=15 * MS, end=45 * MS, kind=SpanKind.SERVER, attrs=SERVER_ATTRS),
    )
    assert caller.ledger == Ledger(database_ns=0, network_ns=40 * MS, app_ns=60 * MS)
    assert (callee.span_id, callee.wall_ns) == ("s", 30 * MS)


def test_server_span_of_another_service_inside_a_request_is_downstream_network() -> None:
    caller, callee = book(
        request_span(),
        make_span("s", "r", start=20 * MS, end=45 * MS, kind=SpanKind.SERVER,
                  attrs=SERVER_ATTRS, service="pricing"),
    )  # fmt: skip
    assert caller.ledger == Ledger(database_ns=0, network_ns=25 * MS, app_ns=75 * MS)
    assert (callee.service, callee.wall_ns) == ("pricing", 25 * MS)


# A real third-party export: Next.js (via highlight.io) reports a SERVER span for the HTTP
# request and a nested SERVER span for the API route, plus three outgoing fetches.
HIGHLIGHT = Path(__file__).resolve().parent / "data/traces/otlp-json/highlight__nextjs.json"


def _spans_from_otlp_json(path: Path) -> tuple[Span, ...]:
    """The few OTLP JSON fields this test needs (the real reader lives in read/)."""
    doc = json.loads(path.read_text())
    out = []
    for resource_spans in doc["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for raw in scope_spans["spans"]:
                attrs = {}
                for kv in raw.get("attributes", []):
                    value = next(iter(kv["value"].values()), None)
                    attrs[kv["key"]] = int(value) if kv["value"].get("intValue") else value
                out.append(
                    Span(
                        trace_id=raw["traceId"],
                        span_id=raw["spanId"],
                        parent_span_id=raw.get("parentSpanId", ""),
                        name=raw["name"],
                        kind=SpanKind(raw["kind"]),
                        start_ns=int(raw["startTimeUnixNano"]),
                        end_ns=int(raw["endTimeUnixNano"]),
                        is_error=raw.get("status", {}).get("code") == 2,
                        attributes=attrs,
                        service="nextjs",
                    )
                )
    return tuple(out)


def test_highlight_nextjs_trace() -> None:
    # Outer SERVER 5e66...: 22.9293 ms wall. Inside it the same service's SERVER span
    # 38c1... (Next.js's handler, 22.231 ms) is part of the same request, not a second
    # one: its three fetches [507, 508.813] [510, 511.381] [511, 511.9572] (ms past the
    # second) are the request's network, 1.813 + the union 1.9572 = 3.7702 ms, the
    # overlapping one charged only [510, 511); all the rest is own time.
    spans = _spans_from_otlp_json(HIGHLIGHT)
    result = book_trace(Trace(trace_id=spans[0].trace_id, spans=spans))
    assert result.unbooked_spans == 0
    [request] = result.requests
    assert request.span_id == "5e66c7bc054bfad5"
    assert request.ledger == Ledger(
        database_ns=0, network_ns=3_770_200, app_ns=22_929_300 - 3_770_200
    )
    assert [c.booked_ns for c in request.calls] == [1_813_000, 1_000_000, 957_200]
    assert [c.kind for c in request.calls] == [CallKind.HTTP] * 3


# ---------------------------------------------------------------------------------------
# Property tests over random span trees.

KIND_ATTRS: tuple[tuple[SpanKind, dict[str, AttributeValue]], ...] = (
    # INTERNAL thrice: overlapping INTERNAL spans with children are the tricky case.
    (SpanKind.INTERNAL, {}),
    (SpanKind.INTERNAL, {}),
    (SpanKind.INTERNAL, {}),
    (SpanKind.CLIENT, PG),
    (SpanKind.CLIENT, {"db.system": "redis", "db.statement": "GET ?"}),
    (SpanKind.CLIENT, HTTP_OUT),
    (SpanKind.CLIENT, {"rpc.system": "grpc"}),
    (SpanKind.PRODUCER, {"messaging.system": "kafka"}),
    (SpanKind.CLIENT, {}),
    (SpanKind.INTERNAL, {"asgi.event.type": "http.request"}),
    (SpanKind.SERVER, {"http.request.method": "GET", "url.path": "/a/1"}),
    (SpanKind.CONSUMER, {"messaging.system": "kafka"}),
    (SpanKind.INTERNAL, {"db.system": 5}),  # wrong type: not a wait
)
REQUEST_ATTRS: tuple[dict[str, AttributeValue], ...] = (
    {},
    {"ledger.cpu_ns": 7, "ledger.queueing_ns": 3},
    {"ledger.cpu_ns": "12"},
    {"ledger.cpu_ns": 20, "ledger.profile": '{"buckets": {}, "native": 5e-9, "native_max": 9e-9}'},
    {"ledger.cpu_ns": 4, "ledger.profile": '{"buckets": {}, "native": 1e-8, "native_max": 1e-8}'},
    {"ledger.spans_kept": False, "ledger.database_ns": 9, "ledger.network_ns": 40},
    {
        "ledger.spans_kept": False,
        "ledger.database_ns": 3,
        "ledger.interpreter_ns": 2,
        "ledger.waiting_ns": 1,
    },
    {
        "ledger.spans_kept": False,
        "ledger.database_ns": 3,
        "ledger.interpreter_ns": 12,
        "ledger.waiting_ns": 1,
        "ledger.profile": '{"buckets": {}, "native": 7e-9, "native_max": 9e-9}',
    },
)


@st.composite
def span_trees(draw: st.DrawFn) -> tuple[Span, ...]:
    count = draw(st.integers(1, 14))
    spans = []
    for index in range(count):
        # Parent: an earlier span (a tree), none (a root) or a missing id (an orphan).
        parent = draw(st.sampled_from(["", "missing", *[f"s{i}" for i in range(index)]]))
        start = draw(st.integers(0, 40))
        end = start + draw(st.integers(-2, 30))  # negative: a malformed inverted span
        kind, attrs = draw(st.sampled_from(KIND_ATTRS))
        if index == 0 or (draw(st.booleans()) and kind == SpanKind.SERVER):
            kind = SpanKind.SERVER
            attrs = {**SERVER_ATTRS, **draw(st.sampled_from(REQUEST_ATTRS))}
        # Two services: a SERVER span of the request's own service is part of it.
        service = draw(st.sampled_from(["shop", "pay"]))
        spans.append(
            make_span(
                f"s{index}", parent, start=start, end=end, kind=kind, attrs=attrs, service=service
            )
        )
    return tuple(draw(st.permutations(spans)))


def _oracle(spans: tuple[Span, ...], request: Span) -> tuple[dict[str, int], dict[str, int]]:
    """Per-instant brute force of DESIGN's rule, independent of ledger.py's algorithm.

    Returns the category totals and the ns booked to each wait span, by span id.
    """
    children: dict[str, list[Span]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id, []).append(span)
    totals = {"database": 0, "network": 0, "own": 0}
    per_call: dict[str, int] = {}
    for instant in range(request.start_ns, max(request.start_ns, request.end_ns)):
        node, lo, hi = request, request.start_ns, request.end_ns
        while True:
            covering = []
            for kid in children.get(node.span_id, []):
                k_lo, k_hi = max(kid.start_ns, lo), min(kid.end_ns, hi)
                if k_lo <= instant < k_hi:
                    covering.append((k_hi, k_lo, kid.span_id, kid))
            if not covering:
                totals["own"] += 1
                break
            k_hi, k_lo, _, winner = max(covering, key=lambda c: c[:3])
            found = classify_span(winner, DEFAULT_RULES)
            if winner.kind == SpanKind.SERVER and winner.service == request.service:
                node, lo, hi = winner, k_lo, k_hi  # the same service: part of the request
                continue
            if winner.kind == SpanKind.SERVER or found is not None:
                category = "network" if found is None else found.category.value
                totals[category] += 1
                per_call[winner.span_id] = per_call.get(winner.span_id, 0) + 1
                break
            node, lo, hi = winner, k_lo, k_hi
    return totals, per_call


def _is_own_request(span: Span, by_id: Mapping[str, Span]) -> bool:
    """A SERVER span is a request unless the first SERVER or wait span above it is a
    SERVER span of its own service."""
    if span.kind != SpanKind.SERVER:
        return False
    node = by_id.get(span.parent_span_id)
    while node is not None:
        if node.kind == SpanKind.SERVER:
            return node.service != span.service
        if classify_span(node, DEFAULT_RULES) is not None:
            return True
        node = by_id.get(node.parent_span_id)
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_trees())
def test_parts_are_non_negative_and_add_up_to_wall_time(spans: tuple[Span, ...]) -> None:
    result = book_trace(Trace(trace_id=TRACE_ID, spans=spans))
    by_id = {span.span_id: span for span in spans}
    # Oracle for what is booked: a span is under a request when it or an ancestor is one
    # (the trees here have no cycles and unique ids; an http root is never generated).
    under_request = 0
    for span in spans:
        node: Span | None = span
        while node is not None and node.kind != SpanKind.SERVER:
            node = by_id.get(node.parent_span_id)
        under_request += node is not None
    assert result.unbooked_spans == len(spans) - under_request
    assert len(result.requests) == sum(_is_own_request(span, by_id) for span in spans)
    for request in result.requests:
        ledger = request.ledger
        parts = (
            ledger.database_ns,
            ledger.network_ns,
            ledger.interpreter_ns,
            ledger.native_ns,
            ledger.waiting_ns,
            ledger.app_ns,
            ledger.queueing_ns,
        )
        assert min(parts) >= 0
        assert ledger.total_ns == request.wall_ns
        assert sum(ledger.parts().values()) == request.wall_ns
        assert ledger.queueing_ns <= ledger.waiting_ns
        if request.from_totals:
            continue
        # Every database/network nanosecond is charged to exactly one call.
        assert sum(c.booked_ns for c in request.calls if c.category == Category.DATABASE) == (
            ledger.database_ns
        )
        assert sum(c.booked_ns for c in request.calls if c.category == Category.NETWORK) == (
            ledger.network_ns
        )
        assert all(0 <= c.booked_ns <= max(0, c.duration_ns) for c in request.calls)
        expected, per_call = _oracle(spans, by_id[request.span_id])
        own = ledger.app_ns + ledger.interpreter_ns + ledger.native_ns + ledger.waiting_ns
        assert (ledger.database_ns, ledger.network_ns, own) == (
            expected["database"],
            expected["network"],
            expected["own"],
        )
        # Calls carry start/end, not ids: match them by interval.
        booked = sorted((c.start_ns, c.end_ns, c.booked_ns) for c in request.calls if c.booked_ns)
        oracle_booked = sorted(
            (by_id[i].start_ns, by_id[i].end_ns, ns) for i, ns in per_call.items()
        )
        assert booked == oracle_booked


def test_a_wait_spans_tail_is_waiting_and_queueing_not_its_category() -> None:
    # 100 ms request, CPU 20 ms: a query 10..70 whose last 50 ms waited for the loop
    # (``ledger.queueing_ns`` on it, measured in-app): database 10, own time 90 of which
    # interpreter 20, waiting 70, queueing at least the 50 ms tail
    request = only(
        request_span(attrs={"ledger.cpu_ns": 20 * MS, "ledger.queueing_ns": 0}),
        db(
            "d1",
            "r",
            10 * MS,
            70 * MS,
            **{"ledger.queueing_ns": 50 * MS, "ledger.queueing_max_ns": 55 * MS},
        ),
    )
    assert request.ledger == Ledger(
        database_ns=10 * MS,
        network_ns=0,
        interpreter_ns=20 * MS,
        waiting_ns=70 * MS,
        queueing_ns=50 * MS,
        cpu_measured=True,
        database_wait_max_ns=5 * MS,  # the bound's 5 ms not booked as tail
    )
    assert [c.booked_ns for c in request.calls] == [10 * MS]


def test_a_tail_counts_only_where_its_span_was_booked() -> None:
    # d1 10..60 with a 30 ms tail (30..60), d2 40..80 ends later and wins 40..80: d1 keeps
    # 10..40, of which 30..40 is tail; d2 has none. Database 30 + 40 = 70 - 10.
    request = only(
        request_span(attrs={"ledger.cpu_ns": 0}),
        db("d1", "r", 10 * MS, 60 * MS, **{"ledger.queueing_ns": 30 * MS}),
        db("d2", "r", 40 * MS, 80 * MS),
    )
    assert request.ledger.database_ns == 60 * MS
    assert request.ledger.queueing_ns == 10 * MS
    assert request.ledger.total_ns == request.wall_ns


def test_a_wait_spans_os_delay_is_waiting_but_not_queueing() -> None:
    # d1 10..70: its last 20 ms waited for the lock (queueing), the 30 ms before that its
    # thread waited for a CPU (the OS ran another process): database 10
    request = only(
        request_span(attrs={"ledger.cpu_ns": 20 * MS}),
        db(
            "d1",
            "r",
            10 * MS,
            70 * MS,
            **{"ledger.queueing_ns": 20 * MS, "ledger.unattributed_ns": 30 * MS},
        ),
    )
    assert request.ledger.database_ns == 10 * MS
    assert request.ledger.waiting_ns == 70 * MS
    assert request.ledger.queueing_ns == 20 * MS


def test_the_bounds_of_database_and_network_stay_inside_them() -> None:
    # d1 10..70: tail 20 booked, bound 50 -> up to 30 ms of its 40 booked may be Python's;
    # h 70..80 (network): bound 30 > its 10 ms booked -> all 10; d2 80..90 unmeasured
    request = only(
        request_span(attrs={"ledger.cpu_ns": 5 * MS}),
        db(
            "d1",
            "r",
            10 * MS,
            70 * MS,
            **{"ledger.queueing_ns": 20 * MS, "ledger.queueing_max_ns": 50 * MS},
        ),
        make_span(
            "h",
            "r",
            start=70 * MS,
            end=80 * MS,
            kind=SpanKind.CLIENT,
            attrs={**HTTP_OUT, "ledger.queueing_ns": 0, "ledger.queueing_max_ns": 30 * MS},
        ),
        db("d2", "r", 80 * MS, 90 * MS),
    )
    ledger = request.ledger
    assert (ledger.database_ns, ledger.network_ns) == (50 * MS, 10 * MS)
    assert ledger.database_wait_max_ns == 30 * MS
    assert ledger.network_wait_max_ns == 10 * MS
    assert ledger.unbounded_io_ns == 10 * MS
    # not measured in-app (no CPU): no tail was measured, nothing is said
    foreign = only(request_span(), db("d", "r", 10 * MS, 20 * MS))
    assert foreign.ledger.unbounded_io_ns == 0


def test_native_threads_cpu_books_the_wait_for_them_as_native() -> None:
    # 100 ms, CPU 8 ms, no waits: 92 ms off CPU, 2 of it queueing. Native threads burned
    # 150 ms for it (bound 150): the 90 ms it waited (not queueing) is native, the CPU
    # figure stays 150 ms. With a 30 ms share of a 150 ms bound: 30 ms native.
    attrs = {
        "ledger.cpu_ns": 8 * MS,
        "ledger.queueing_ns": 2 * MS,
        "ledger.native_threads_ns": 150 * MS,
        "ledger.native_threads_max_ns": 150 * MS,
    }
    ledger = only(request_span(attrs=attrs)).ledger
    assert (ledger.interpreter_ns, ledger.native_ns, ledger.waiting_ns) == (8 * MS, 90 * MS, 2 * MS)
    assert (ledger.native_threads_ns, ledger.native_threads_booked_ns) == (150 * MS, 90 * MS)
    shared = only(request_span(attrs={**attrs, "ledger.native_threads_ns": 30 * MS})).ledger
    assert (shared.native_ns, shared.waiting_ns) == (30 * MS, 62 * MS)
    assert shared.native_threads_max_ns == 150 * MS


def test_estimates_applied_to_a_ledger_booked_elsewhere_match_the_totals_path() -> None:
    # ClickHouse books totals-only requests in SQL, without the estimates: added after,
    # they give what ledger_from_totals gives with them
    from latency_ledger.ledger import ESTIMATE_KEYS, ledger_from_totals, with_estimates

    attrs = {
        "ledger.cpu_ns": 8 * MS,
        "ledger.queueing_ns": 2 * MS,
        "ledger.spans_kept": False,
        "ledger.database_ns": 20 * MS,
        "ledger.network_ns": 5 * MS,
        "ledger.interpreter_ns": 8 * MS,
        "ledger.waiting_ns": 67 * MS,
        "ledger.database_wait_max_ns": 30 * MS,  # more than the database part: clipped
        "ledger.network_wait_max_ns": 1 * MS,
        "ledger.unbounded_io_ns": 4 * MS,
        "ledger.native_threads_ns": 50 * MS,
        "ledger.native_threads_max_ns": 60 * MS,
    }
    plain = {k: v for k, v in attrs.items() if k not in ESTIMATE_KEYS}
    whole = ledger_from_totals(attrs, 100 * MS)
    assert with_estimates(ledger_from_totals(plain, 100 * MS), attrs) == whole
    assert (whole.database_wait_max_ns, whole.native_ns, whole.waiting_ns) == (
        20 * MS,
        50 * MS,
        17 * MS,
    )
    assert with_estimates(whole, {}) is whole
