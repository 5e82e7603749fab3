"""One request's repeats (findings.repeats): expected counts and costs first."""

from __future__ import annotations

from latency_ledger.findings import (
    CHATTY_CALLS,
    N_PLUS_ONE,
    FindingsAccumulator,
    Thresholds,
    detect_repeats,
)
from latency_ledger.model import Call, CallKind, Category

from .conftest import (
    MS,
    SELECT_ITEM,
    SELECT_ITEM_NORMALIZED,
    concurrent_n_plus_one,
    only,
    outgoing,
    query,
    request,
    sequential_n_plus_one,
)


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


def test_cache_keys_are_normalized_for_chatty_calls() -> None:
    calls = [outgoing(CallKind.CACHE, f"GET user:{i}", i * 11, 10) for i in range(6)]
    (found,) = detect_repeats(request(calls, 100), Thresholds())
    assert found.kind == CHATTY_CALLS
    assert found.target == "GET user:?"


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
