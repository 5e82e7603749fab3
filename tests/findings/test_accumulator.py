"""Findings on hand-built requests: expected numbers first, then what the code finds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from latency_ledger.findings import (
    CHATTY_CALLS,
    MAX_TARGETS_PER_ENDPOINT,
    N_PLUS_ONE,
    OTHER_TARGETS,
    POOL_WAIT,
    SLOW_STATEMENT,
    FindingsAccumulator,
    Thresholds,
)
from latency_ledger.findings.repeats import call_rows
from latency_ledger.ledger import book_trace
from latency_ledger.model import CallKind, Request
from latency_ledger.read import ReadStats, read_traces

from .conftest import (
    MS,
    SELECT_ITEM,
    SELECT_ITEM_NORMALIZED,
    concurrent_n_plus_one,
    only,
    outgoing,
    pool,
    query,
    request,
    sequential_n_plus_one,
)


def test_accumulated_n_plus_one_findings_sequential_and_concurrent() -> None:
    acc = FindingsAccumulator()
    acc.add(sequential_n_plus_one())
    acc.add(concurrent_n_plus_one())
    finding = only(acc.findings("shop", "GET /orders/{id}", 2), N_PLUS_ONE)
    # Both requests: 20 repeats each, costs 40 ms and 3.9 ms -> mean 21.95 ms.
    assert finding.count_per_request == 20
    assert finding.ns_per_request == 21_950_000
    assert finding.requests_fraction == 1.0
    assert finding.count == 40
    assert finding.concurrent is True
    assert finding.detail == f"{SELECT_ITEM_NORMALIZED} run 20x per request, concurrently"
    assert finding.p50_ns == 2 * MS  # every call lasted 2 ms
    # Batching leaves one 2 ms call in each: 38 ms and 1.9 ms removable -> mean 19.95 ms.
    assert finding.fixable_ns_per_request == 19_950_000
    assert finding.saving_ns_per_request == 19_950_000


def test_requests_fraction_ignores_requests_booked_from_totals() -> None:
    acc = FindingsAccumulator()
    acc.add(sequential_n_plus_one())
    acc.add(request([query(SELECT_ITEM.format(1), 1, 2)], 10, n=2))
    for n in range(3, 11):
        acc.add(request((), 10, from_totals=True, n=n))
    # 10 requests, 8 without calls: the N+1 is seen in 1 of the 2 that kept theirs.
    finding = only(acc.findings("shop", "GET /orders/{id}", 10), N_PLUS_ONE)
    assert finding.requests_fraction == 0.5
    # 40 ms of which one 2 ms call remains after batching: 38 ms x 0.5.
    assert finding.saving_ns_per_request == 19 * MS


def test_chatty_calls_to_one_route() -> None:
    # 8 sequential calls of 10 ms to the same route: 80 ms.
    calls = [outgoing(CallKind.HTTP, "GET users.svc/users/{id}", i * 11, 10) for i in range(8)]
    calls.append(outgoing(CallKind.HTTP, "GET users.svc/health", 100, 1))
    acc = FindingsAccumulator()
    acc.add(request(calls, 120))
    finding = only(acc.findings("shop", "GET /orders/{id}", 1), CHATTY_CALLS)
    assert finding.target == "GET users.svc/users/{id}"
    assert finding.ns_per_request == 80 * MS
    assert finding.count_per_request == 8
    assert finding.detail == "GET users.svc/users/{id} called 8x per request"


def test_pool_waits_reported_above_a_millisecond() -> None:
    acc = FindingsAccumulator()
    acc.add(request([pool(0, 4), query("SELECT 1", 4, 1)], 10, n=1))
    acc.add(request([pool(0, 2)], 10, n=2))
    acc.add(request([query("SELECT 1", 0, 1)], 10, n=3))
    acc.add(request([pool(0, 0.01)], 10, endpoint="GET /fast", n=4))
    finding = only(acc.findings("shop", "GET /orders/{id}", 3), POOL_WAIT)
    # 2 of 3 requests waited, 4 ms and 2 ms: 3 ms per affected request.
    assert finding.ns_per_request == 3 * MS
    assert finding.requests_fraction == pytest.approx(2 / 3)
    assert finding.target == "postgresql"
    # 10 microseconds is a healthy checkout, not a finding.
    assert [f.kind for f in acc.findings("shop", "GET /fast", 1)] == []


def test_slow_statements_ranked_by_total_time_with_percentiles() -> None:
    acc = FindingsAccumulator(Thresholds(slow_statements_top=2))
    # Statement A: 100 calls of 1..100 ms (one per request) -> total 5050 ms,
    # nearest-rank p50 = 50 ms, p99 = 99 ms. Statement B: 100 x 10 ms = 1000 ms.
    # Statement C: 100 x 1 ms, third: beyond the top 2.
    for i in range(100):
        acc.add(
            request(
                [
                    query(f"SELECT a FROM big WHERE k = {i}", 0, i + 1),
                    query(f"SELECT b FROM mid WHERE k = '{i}'", 200, 10),
                    query("SELECT c FROM small", 300, 1),
                ],
                400,
                n=i,
            )
        )
    slow = [f for f in acc.findings("shop", "GET /orders/{id}", 100) if f.kind == SLOW_STATEMENT]
    assert [f.target for f in slow] == [
        "SELECT a FROM big WHERE k = ?",
        "SELECT b FROM mid WHERE k = ?",
    ]
    first = slow[0]
    assert first.total_ns == 5050 * MS
    assert first.count == 100
    assert first.p50_ns == 50 * MS
    assert first.p99_ns == 99 * MS
    assert first.requests_fraction == 1.0
    assert first.ns_per_request == 50_500_000


def _on(endpoint: str, source: Request, n: int) -> Request:
    return Request(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        service="shop",
        method="GET",
        endpoint=endpoint,
        start_ns=0,
        wall_ns=source.wall_ns,
        status_code=200,
        is_error=False,
        ledger=source.ledger,
        calls=source.calls,
    )


def test_overall_merges_endpoints() -> None:
    acc = FindingsAccumulator()
    acc.add(sequential_n_plus_one())
    acc.add(_on("GET /orders", sequential_n_plus_one(), 9))
    acc.add(request((), 10, endpoint="GET /orders", n=5))
    counts = {("shop", "GET /orders/{id}"): 1, ("shop", "GET /orders"): 2}
    finding = only(acc.overall(counts, 3), N_PLUS_ONE)
    assert finding.count == 40
    assert finding.requests_fraction == pytest.approx(2 / 3)
    assert only(acc.overall(counts, 3), SLOW_STATEMENT).count == 40


def test_overall_weights_each_endpoint_by_its_own_requests() -> None:
    # /a: 100 requests, 2 kept, both with the 40 ms N+1 (38 ms removable by batching).
    # /b: 900 requests, 2 kept, neither with it. Overall: the N+1 is in ~100 of 1000
    # requests (10%), saving 38 ms there: 3.8 ms per request on average. Pooling the
    # kept requests alone would say 2 of 4 (50%) and 19 ms.
    acc = FindingsAccumulator()
    acc.add(_on("GET /a", sequential_n_plus_one(), 1))
    acc.add(_on("GET /a", sequential_n_plus_one(), 2))
    acc.add(request((), 10, endpoint="GET /b", n=3))
    acc.add(request((), 10, endpoint="GET /b", n=4))
    counts = {("shop", "GET /a"): 100, ("shop", "GET /b"): 900}
    finding = only(acc.overall(counts, 1000), N_PLUS_ONE)
    assert finding.requests_fraction == pytest.approx(0.10)
    assert finding.ns_per_request == 40 * MS
    assert finding.saving_ns_per_request == pytest.approx(3.8 * MS, rel=1e-6)


def test_findings_never_carry_raw_literals() -> None:
    acc = FindingsAccumulator()
    acc.add(
        request(
            [
                query("SELECT * FROM users WHERE email = 'alice@example.com'", i * 3, 2)
                for i in range(6)
            ],
            20,
        )
    )
    for finding in acc.findings("shop", "GET /orders/{id}", 1):
        assert "alice" not in finding.target
        assert "alice" not in finding.detail


def test_findings_are_ranked_by_saving() -> None:
    acc = FindingsAccumulator()
    acc.add(sequential_n_plus_one())
    rows = acc.findings("shop", "GET /orders/{id}", 1)
    savings = [f.saving_ns_per_request for f in rows]
    assert savings == sorted(savings, reverse=True)
    assert acc.findings("shop", "GET /unknown", 5) == ()


def test_distinct_statements_per_endpoint_are_bounded() -> None:
    acc = FindingsAccumulator(Thresholds(slow_statements_top=MAX_TARGETS_PER_ENDPOINT + 5))
    extra = 7
    for n in range(MAX_TARGETS_PER_ENDPOINT + extra):
        # A generated table name per request: nothing for the normalizer to collapse.
        acc.add(request([query(f"SELECT a FROM tmp_{n}", 0, 1)], 10, n=n))
    slow = [f for f in acc.findings("shop", "GET /orders/{id}", 1) if f.kind == SLOW_STATEMENT]
    assert len(slow) == MAX_TARGETS_PER_ENDPOINT + 1
    (other,) = [f for f in slow if f.target == OTHER_TARGETS]
    assert other.count == extra


def test_a_fast_lookup_is_not_a_slow_statement_however_often_it_runs() -> None:
    # A 0.02 ms primary-key lookup run 50x in each of 100 requests of 62 ms: 1 ms per
    # request in all, more than anything else here, but each run is fast. A 4 ms
    # statement once per request (6% of the p50) is slow; a 2 ms one (3%) is not.
    acc = FindingsAccumulator()
    for n in range(100):
        calls = [query("SELECT * FROM users WHERE id = 1", i * 0.1, 0.02) for i in range(50)]
        calls.append(query("SELECT sum(x) FROM big", 10, 4))
        calls.append(query("SELECT y FROM mid", 20, 2))
        acc.add(request(calls, 62, n=n))
    findings = acc.findings("shop", "GET /orders/{id}", 100, p50_ns=62 * MS)
    assert [f.target for f in findings if f.kind == SLOW_STATEMENT] == ["SELECT sum(x) FROM big"]


def test_setup_statements_are_never_findings() -> None:
    # A 20 ms COMMIT (an fsync) and 10 SET/SAVEPOINT per request: real database time,
    # but neither a slow statement nor an N+1. The 20 ms SELECT is.
    acc = FindingsAccumulator()
    for n in range(10):
        calls = [query(f"SAVEPOINT s{i}", i, 0.5) for i in range(10)]
        calls += [query("SET search_path TO shop", 10 + i, 6) for i in range(10)]
        calls.append(query("COMMIT", 80, 20))
        calls.append(query("SELECT * FROM orders", 100, 20))
        acc.add(request(calls, 130, n=n))
    findings = acc.findings("shop", "GET /orders/{id}", 10, p50_ns=130 * MS)
    assert [(f.kind, f.target) for f in findings] == [(SLOW_STATEMENT, "SELECT * FROM orders")]


def test_calls_given_as_rows_give_the_same_findings() -> None:
    """A request's calls handed over as rows (what the analysis does for flat traces)
    accumulate exactly as the same calls on the Request: every endpoint's findings and
    the overall ones, on the example traces (N+1s, chatty calls, pool waits, sampling)."""
    root = Path(__file__).resolve().parents[2]
    paths = sorted((root / "examples/traces").glob("*.jsonl.gz"))
    requests = [r for t in read_traces(paths, stats=ReadStats()) for r in book_trace(t).requests]
    assert sum(len(r.calls) for r in requests) > 100
    as_records, as_rows = FindingsAccumulator(), FindingsAccumulator()
    for r in requests:
        as_records.add(r)
        as_rows.add(replace(r, calls=()), call_rows(r.calls))
    keys = {(r.service, r.endpoint) for r in requests}
    found = [as_records.findings(*key, 10, 1_000_000) for key in sorted(keys)]
    assert any(found)
    assert [as_rows.findings(*key, 10, 1_000_000) for key in sorted(keys)] == found
    counts = dict.fromkeys(keys, 10)
    assert as_rows.overall(counts, 100, 1_000_000) == as_records.overall(counts, 100, 1_000_000)
