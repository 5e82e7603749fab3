"""Findings on hand-built requests: expected numbers first, then what the code finds."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from latency_ledger.errors import ConfigError
from latency_ledger.findings import (
    CHATTY_CALLS,
    MAX_TARGETS_PER_ENDPOINT,
    N_PLUS_ONE,
    OTHER_TARGETS,
    POOL_WAIT,
    SLOW_STATEMENT,
    FindingsAccumulator,
    Thresholds,
    detect_repeats,
    is_setup_statement,
)
from latency_ledger.model import Call, CallKind, Category, Finding, Ledger, Request

MS = 1_000_000
SELECT_ITEM = "SELECT * FROM items WHERE order_id = {}"
SELECT_ITEM_NORMALIZED = "SELECT * FROM items WHERE order_id = ?"


def query(sql: str, start_ms: float, dur_ms: float, booked_ms: float | None = None) -> Call:
    start = round(start_ms * MS)
    return Call(
        category=Category.DATABASE,
        kind=CallKind.QUERY,
        system="postgresql",
        target=sql,
        start_ns=start,
        end_ns=start + round(dur_ms * MS),
        booked_ns=round((dur_ms if booked_ms is None else booked_ms) * MS),
    )


def outgoing(kind: CallKind, target: str, start_ms: float, dur_ms: float) -> Call:
    start = round(start_ms * MS)
    return Call(
        category=Category.NETWORK,
        kind=kind,
        system="http",
        target=target,
        start_ns=start,
        end_ns=start + round(dur_ms * MS),
        booked_ns=round(dur_ms * MS),
    )


def pool(start_ms: float, dur_ms: float) -> Call:
    start = round(start_ms * MS)
    return Call(
        category=Category.DATABASE,
        kind=CallKind.POOL,
        system="postgresql",
        target="connect",
        start_ns=start,
        end_ns=start + round(dur_ms * MS),
        booked_ns=round(dur_ms * MS),
    )


def request(
    calls: Sequence[Call],
    wall_ms: float,
    endpoint: str = "GET /orders/{id}",
    *,
    from_totals: bool = False,
    n: int = 0,
    keep_probability: float = 1.0,
) -> Request:
    return Request(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        service="shop",
        method=endpoint.split()[0],
        endpoint=endpoint,
        start_ns=0,
        wall_ns=round(wall_ms * MS),
        status_code=200,
        is_error=False,
        ledger=Ledger(database_ns=0, network_ns=0, app_ns=round(wall_ms * MS)),
        calls=tuple(calls),
        from_totals=from_totals,
        keep_probability=keep_probability,
    )


def sequential_n_plus_one() -> Request:
    # 20 selects of 2 ms one after the other (0.5 ms of Python between them): each
    # is booked whole, 20 x 2 ms = 40 ms, in a 60 ms request.
    calls = [query(SELECT_ITEM.format(i), 5 + i * 2.5, 2.0) for i in range(20)]
    return request(calls, 60)


def concurrent_n_plus_one() -> Request:
    # The same 20 selects run with asyncio.gather: call i covers [10 + 0.1 i, 12 + 0.1 i] ms.
    # The overlap rule books each instant to the call finishing last among those
    # running, so calls 0..18 get 0.1 ms each and call 19 gets its whole 2 ms:
    # booked = 19 x 0.1 + 2 = 3.9 ms, the union of the calls, in a 24 ms request.
    calls = [
        query(SELECT_ITEM.format(i), 10 + i * 0.1, 2.0, booked_ms=2.0 if i == 19 else 0.1)
        for i in range(20)
    ]
    return request(calls, 24)


def only(findings: Sequence[Finding], kind: str) -> Finding:
    matching = [f for f in findings if f.kind == kind]
    assert len(matching) == 1, findings
    return matching[0]


def test_sequential_n_plus_one_found_with_its_cost() -> None:
    expected_booked = 40 * MS
    (found,) = detect_repeats(sequential_n_plus_one(), Thresholds())
    assert found.kind == N_PLUS_ONE
    assert found.target == SELECT_ITEM_NORMALIZED
    assert found.count == 20
    assert found.booked_ns == expected_booked
    assert found.duration_ns == expected_booked
    assert found.concurrent is False


def test_concurrent_n_plus_one_found_costed_by_booked_time() -> None:
    expected_booked = 3_900_000  # the union, not 20 x 2 ms
    (found,) = detect_repeats(concurrent_n_plus_one(), Thresholds())
    assert found.kind == N_PLUS_ONE
    assert found.count == 20
    assert found.booked_ns == expected_booked
    assert found.duration_ns == 40 * MS
    assert found.concurrent is True


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


def test_sentry_rule_alone_would_miss_the_fast_endpoint_loop() -> None:
    # 40 ms is under Sentry's 50 ms; only the share-of-request rule (40/60) finds it.
    sentry_only = Thresholds(n_plus_one_min_fraction=1.0)
    assert detect_repeats(sequential_n_plus_one(), sentry_only) == ()
    # ...and a loop costing over 50 ms is found on the absolute rule alone.
    slow = request([query(SELECT_ITEM.format(i), i * 12, 11) for i in range(5)], 1000)
    (found,) = detect_repeats(slow, sentry_only)
    assert found.booked_ns == 55 * MS


def test_fewer_repeats_than_the_threshold_are_not_an_n_plus_one() -> None:
    four = request([query(SELECT_ITEM.format(i), i * 30, 30) for i in range(4)], 130)
    assert detect_repeats(four, Thresholds()) == ()
    assert detect_repeats(four, Thresholds(n_plus_one_min_repeats=4)) != ()


def test_cheap_repeats_in_a_slow_request_are_not_reported() -> None:
    # 6 x 1 ms = 6 ms: under 50 ms and under 10% of a 100 ms request.
    cheap = request([query(SELECT_ITEM.format(i), i * 2, 1) for i in range(6)], 100)
    assert detect_repeats(cheap, Thresholds()) == ()


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


def test_cache_keys_are_normalized_for_chatty_calls() -> None:
    calls = [outgoing(CallKind.CACHE, f"GET user:{i}", i * 11, 10) for i in range(6)]
    (found,) = detect_repeats(request(calls, 100), Thresholds())
    assert found.kind == CHATTY_CALLS
    assert found.target == "GET user:?"


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


def redis_call(start_ms: float, dur_ms: float, booked_ms: float | None = None) -> Call:
    """A CLIENT span with no http/rpc/messaging/db attributes (a bare Redis client span)."""
    start = round(start_ms * MS)
    return Call(
        category=Category.NETWORK,
        kind=CallKind.OTHER,
        system="",
        target="HGET",
        start_ns=start,
        end_ns=start + round(dur_ms * MS),
        booked_ns=round((dur_ms if booked_ms is None else booked_ms) * MS),
    )


def test_repeated_calls_without_attributes_are_found_like_an_n_plus_one() -> None:
    # 13 sequential 17 ms calls covering 221 of a 226 ms request: batching leaves one
    # call (17 ms), so it saves 204 ms.
    calls = [redis_call(2 + i * 17, 17) for i in range(13)]
    (found,) = detect_repeats(request(calls, 226), Thresholds())
    assert (found.kind, found.target, found.count) == (CHATTY_CALLS, "HGET", 13)
    assert found.booked_ns == 221 * MS
    assert found.fixable_ns == 204 * MS


def test_concurrent_calls_save_only_what_the_overlap_leaves() -> None:
    # 10 calls of 10 ms started 0.1 ms apart: they hold the request 10.9 ms (booked),
    # and batching still leaves one 10 ms call, so 0.9 ms is all a fix can save; the
    # sum of their durations (100 ms) is not a saving.
    calls = [redis_call(i * 0.1, 10, booked_ms=10 if i == 9 else 0.1) for i in range(10)]
    (found,) = detect_repeats(request(calls, 12), Thresholds())
    assert found.concurrent is True
    assert found.booked_ns == 10_900_000
    assert found.fixable_ns == 900_000
    acc = FindingsAccumulator()
    acc.add(request(calls, 12))
    finding = only(acc.findings("shop", "GET /orders/{id}", 1), CHATTY_CALLS)
    assert finding.ns_per_request == 10_900_000
    assert finding.saving_ns_per_request == 900_000


def test_client_io_is_not_a_repeated_call() -> None:
    calls = [
        Call(
            category=Category.NETWORK,
            kind=CallKind.CLIENT_IO,
            system="asgi",
            target="http.response.body",
            start_ns=i * 10 * MS,
            end_ns=(i * 10 + 9) * MS,
            booked_ns=9 * MS,
        )
        for i in range(8)
    ]
    assert detect_repeats(request(calls, 100), Thresholds()) == ()


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


@pytest.mark.parametrize(
    "bad",
    [
        {"n_plus_one_min_repeats": 1},
        {"chatty_min_ns": -1},
        {"n_plus_one_min_fraction": 1.5},
        {"slow_statements_top": -1},
    ],
)
def test_bad_thresholds_are_a_config_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Thresholds(**bad)


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


# -- weighting by keep probability, "slow means slow", setup statements -----------------


def test_sampled_trees_are_weighted_by_their_keep_probability() -> None:
    # The population: 10 slow requests with the 40 ms N+1 (kept for being slow, p = 1)
    # and 90 fast ones with a single 2 ms select, of which the 10% random draw kept 9
    # (p = 0.1, each standing for 10). The other 81 are booked from totals. Truth: the
    # N+1 is in 10 of 100 requests, 4 ms per request on average; the kept trees alone
    # would say 10 of 19 (53%).
    acc = FindingsAccumulator()
    for _ in range(10):
        acc.add(sequential_n_plus_one())
    for n in range(9):
        acc.add(request([query(SELECT_ITEM.format(1), 1, 2)], 10, n=100 + n, keep_probability=0.1))
    for n in range(81):
        acc.add(request((), 10, from_totals=True, n=200 + n))
    finding = only(acc.findings("shop", "GET /orders/{id}", 100), N_PLUS_ONE)
    assert finding.requests_fraction == pytest.approx(10 / 100)
    assert finding.ns_per_request * finding.requests_fraction == pytest.approx(4 * MS, rel=1e-6)
    # Batching leaves one 2 ms call of the 20: 38 ms saved where it occurs.
    assert finding.saving_ns_per_request == pytest.approx(3.8 * MS, rel=1e-6)
    assert finding.count_per_request == 20
    assert finding.sampled_requests == 10


def test_margin_is_zero_when_every_tree_was_certain_and_grows_with_sampling() -> None:
    certain = FindingsAccumulator()
    for _ in range(20):
        certain.add(sequential_n_plus_one())
    assert only(certain.findings("shop", "GET /orders/{id}", 20), N_PLUS_ONE).margin_fraction == 0

    # 5 random keeps at p = 0.05 with the N+1, 5 without: each stands for 20 requests.
    # Hajek variance under Poisson sampling, by hand: R = 5 x 20 x 40 ms / 200 = 20 ms;
    # sum of w (w - 1) (y - R)^2 = 10 x 380 x (20 ms)^2; half-width 1.96 x sqrt(that)
    # / 200, relative to R: 1.96 x sqrt(3800) x 20 / 200 / 20 = 0.6042...
    sampled = FindingsAccumulator()
    for n in range(5):
        sampled.add(replace_probability(sequential_n_plus_one(), 0.05))
        sampled.add(request((), 60, n=50 + n, keep_probability=0.05))
    finding = only(sampled.findings("shop", "GET /orders/{id}", 200), N_PLUS_ONE)
    assert finding.ns_per_request * finding.requests_fraction == pytest.approx(20 * MS, rel=1e-6)
    assert finding.margin_fraction == pytest.approx(1.96 * 3800**0.5 / 200, rel=1e-6)


def replace_probability(req: Request, probability: float) -> Request:
    from dataclasses import replace

    return replace(req, keep_probability=probability)


def test_weighted_percentiles_follow_the_weights() -> None:
    # Nine 30 ms runs kept with certainty and one 3 ms run kept at p = 0.01 (it stands
    # for 100): of the 109 runs they stand for, 100 took 3 ms. Unweighted, p50 = 30 ms.
    acc = FindingsAccumulator()
    for n in range(9):
        acc.add(request([query("SELECT slow FROM t", 0, 30)], 100, n=n))
    acc.add(request([query("SELECT slow FROM t", 0, 3)], 100, n=9, keep_probability=0.01))
    slow = only(acc.findings("shop", "GET /orders/{id}", 109), SLOW_STATEMENT)
    assert slow.p50_ns == 3 * MS
    assert slow.p99_ns == 30 * MS
    assert slow.total_ns == (9 * 30 + 100 * 3) * MS
    assert slow.count == 109


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


@pytest.mark.parametrize(
    ("statement", "setup"),
    [
        ("BEGIN", True),
        ("  commit;", True),
        ("PRAGMA synchronous = FULL", True),
        ('RELEASE SAVEPOINT "s1"', True),
        ("SHOW server_version", True),
        ("SELECT begin FROM t", False),
        ("settle_accounts()", False),
        ("", False),
    ],
)
def test_setup_statements_are_told_by_their_first_keyword(statement: str, setup: bool) -> None:
    assert is_setup_statement(statement) is setup


def test_cost_is_a_share_of_the_database_time_every_request_reported() -> None:
    # 10 slow requests kept whole (p = 1): the N+1 is 40 ms of their 50 ms of database
    # time. 90 requests booked from totals: 10 ms of database time each, calls unknown.
    # The kept trees say the N+1 is 80% of database time; all 100 requests reported
    # 10 x 50 + 90 x 10 = 1400 ms of it: 0.8 x 1400 / 100 = 11.2 ms per request (the kept
    # trees alone would say 40 ms). Batching leaves one of the 20 calls: 19/20 of it saved.
    acc = FindingsAccumulator()
    for n in range(10):
        kept = sequential_n_plus_one()
        acc.add(replace_ledger(kept, database_ms=50, n=n))
    for n in range(90):
        acc.add(replace_ledger(request((), 60, from_totals=True), database_ms=10, n=100 + n))
    finding = only(acc.findings("shop", "GET /orders/{id}", 100), N_PLUS_ONE)
    assert finding.ns_per_request == pytest.approx(11.2 * MS, rel=1e-6)
    assert finding.requests_fraction == 1.0  # of the kept trees: no draw says otherwise
    assert finding.saving_ns_per_request == pytest.approx(11.2 * MS * 19 / 20, rel=1e-6)
    assert finding.total_ns == pytest.approx(1120 * MS, rel=1e-6)
    assert finding.margin_fraction == 0.0


def replace_ledger(req: Request, *, database_ms: float, n: int) -> Request:
    from dataclasses import replace

    ledger = Ledger(
        database_ns=round(database_ms * MS),
        network_ns=0,
        app_ns=req.wall_ns - round(database_ms * MS),
    )
    return replace(req, ledger=ledger, trace_id=f"{n:032x}", span_id=f"{n:016x}")


def _walked_percentiles(values: list[int]) -> tuple[int, int]:
    """The weighted walk of findings._percentiles, written out for weights of 1."""
    pairs = sorted((v, 1.0) for v in values)
    total = float(len(values))
    out = []
    for q in (0.50, 0.99):
        cumulative, found = 0.0, pairs[-1][0]
        for value, weight in pairs:
            cumulative += weight
            if cumulative >= q * total - 1e-9 * total:
                found = value
                break
        out.append(found)
    return out[0], out[1]


def test_unit_weight_percentiles_are_the_walks_answer() -> None:
    from array import array

    from latency_ledger.findings import _percentiles

    rng = random.Random(5)
    for size in [*range(1, 300), 999, 1000, 1001, 12345]:
        values = [rng.randint(0, 50) for _ in range(size)]
        got = _percentiles(array("q", values), array("d", [1.0] * size))
        assert got == _walked_percentiles(values), size
