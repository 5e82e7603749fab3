"""Estimates over every request from weighted kept trees (findings.estimate), through
the accumulator: expected figures worked out by hand first."""

from __future__ import annotations

import random
from array import array
from dataclasses import replace

import pytest

from latency_ledger.findings import N_PLUS_ONE, SLOW_STATEMENT, FindingsAccumulator
from latency_ledger.findings.estimate import percentiles
from latency_ledger.model import Ledger, Request

from .conftest import MS, SELECT_ITEM, only, query, request, sequential_n_plus_one


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
    return replace(req, keep_probability=probability)


def test_weighted_percentiles_follow_the_weights() -> None:
    # Nine 30 ms runs kept with certainty and one 3 ms run kept at p = 0.01 (it stands
    # for 100, the other 99 booked from their totals): of the 109 runs, 100 took 3 ms.
    # Unweighted, p50 = 30 ms.
    acc = FindingsAccumulator()
    for n in range(9):
        acc.add(request([query("SELECT slow FROM t", 0, 30)], 100, n=n))
    acc.add(request([query("SELECT slow FROM t", 0, 3)], 100, n=9, keep_probability=0.01))
    for n in range(99):
        acc.add(request((), 100, from_totals=True, n=10 + n))
    slow = only(acc.findings("shop", "GET /orders/{id}", 109), SLOW_STATEMENT)
    assert slow.p50_ns == 3 * MS
    assert slow.p99_ns == 30 * MS
    assert slow.total_ns == (9 * 30 + 100 * 3) * MS
    assert slow.count == 109


def test_a_slow_statements_total_and_count_are_of_every_request_whatever_the_draw_kept() -> None:
    # 40 searches, each running the statement once, its time all of the request's
    # database time. 4 kept for being slow (p = 1): 30 ms. The 10% draw kept 1 of the
    # other 36 (p = 0.1; 3.6 expected): 6 ms, as were the 35 booked from totals. Truth:
    # 40 calls, 4 x 30 + 36 x 6 = 336 ms. Weighted sums alone would say 4 + 10 = 14
    # calls and 120 + 60 = 180 ms. The statement is all of the kept trees' database time,
    # and every request reported its own: 120 + 36 x 6 = 336 ms; 14 weighted calls in 14
    # weighted requests, 1 per request, over 40 requests: 40.
    acc = FindingsAccumulator()
    for n in range(4):
        acc.add(
            replace_ledger(request([query("SELECT slow FROM t", 0, 30)], 40), database_ms=30, n=n)
        )
    sampled = request([query("SELECT slow FROM t", 0, 6)], 10, keep_probability=0.1)
    acc.add(replace_ledger(sampled, database_ms=6, n=4))
    for n in range(35):
        acc.add(replace_ledger(request((), 10, from_totals=True), database_ms=6, n=5 + n))
    slow = only(acc.findings("shop", "GET /orders/{id}", 40), SLOW_STATEMENT)
    assert slow.total_ns == pytest.approx(336 * MS, rel=1e-9)
    assert slow.count == 40
    assert slow.count_per_request == 1.0
    assert slow.ns_per_request == pytest.approx(336 / 40 * MS, rel=1e-6)


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
    ledger = Ledger(
        database_ns=round(database_ms * MS),
        network_ns=0,
        app_ns=req.wall_ns - round(database_ms * MS),
    )
    return replace(req, ledger=ledger, trace_id=f"{n:032x}", span_id=f"{n:016x}")


def _walked_percentiles(values: list[int]) -> tuple[int, int]:
    """The weighted walk of estimate.percentiles, written out for weights of 1."""
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
    rng = random.Random(5)
    for size in [*range(1, 300), 999, 1000, 1001, 12345]:
        values = [rng.randint(0, 50) for _ in range(size)]
        got = percentiles(array("q", values), array("d", [1.0] * size))
        assert got == _walked_percentiles(values), size
