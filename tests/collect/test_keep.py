"""The keep decision: why and with what probability a request's child spans are kept, and
that weighting the kept trees by it gives every request's figures, not the slow ones'."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

import latency_ledger.collect.keep as keep_module
from latency_ledger.findings import N_PLUS_ONE, FindingsAccumulator
from latency_ledger.model import Call, CallKind, Category, Ledger, Request

MS = 1_000_000


def test_reasons_and_probabilities(make_collector: Callable[..., Any]) -> None:
    collector, _ = make_collector(keep_spans="sampled", sample_rate=0.25)
    collector.keeper.rng = random.Random(7)
    assert collector.keeper.keep("GET /a", 10 * MS, failed=False) == ("slow", 1.0)  # first
    assert collector.keeper.keep("GET /a", 5 * MS, failed=True) == ("failed", 1.0)
    draws = [collector.keeper.keep("GET /a", 1 * MS, failed=False) for _ in range(400)]
    assert set(draws) == {None, ("random", 0.25)}
    assert 60 < draws.count(("random", 0.25)) < 140  # 100 expected; binomial sd ~8.7
    assert make_collector(keep_spans="all")[0].keeper.keep("GET /a", MS, False) == ("all", 1.0)
    assert make_collector(keep_spans="none")[0].keeper.keep("GET /a", MS, True) is None


def test_the_slow_rule_does_not_depend_on_the_draw(make_collector: Callable[..., Any]) -> None:
    # The same latencies under three different random draws: the requests kept as "slow"
    # are the same ones, so "kept with probability 1" is exactly true for them.
    latencies = random.Random(3)
    walls = [latencies.lognormvariate(0, 1) for _ in range(2000)]
    slow_sets = []
    for seed, rate in ((1, 0.0), (2, 0.5), (3, 0.9)):
        collector, _ = make_collector(keep_spans="sampled", sample_rate=rate)
        collector.keeper.rng = random.Random(seed)
        decisions = [collector.keeper.keep("GET /a", int(w * MS), failed=False) for w in walls]
        slow_sets.append({i for i, d in enumerate(decisions) if d == ("slow", 1.0)})
    assert slow_sets[0] == slow_sets[1] == slow_sets[2]
    assert 2 <= len(slow_sets[0]) <= 40  # records of 2000 draws: ~ln(2000) = 7.6


def _request(
    n: int, wall_ns: int, n_plus_one: bool, probability: float, *, kept: bool = True
) -> Request:
    calls = tuple(
        Call(
            category=Category.DATABASE,
            kind=CallKind.QUERY,
            system="sqlite",
            target="SELECT * FROM items WHERE id = ?",
            start_ns=i * 3 * MS,
            end_ns=i * 3 * MS + 2 * MS,
            booked_ns=2 * MS,
        )
        for i in range(20 if n_plus_one else 1)
    )
    database_ns = sum(c.booked_ns for c in calls)
    return Request(
        trace_id=f"{n:032x}",
        span_id=f"{n:016x}",
        service="s",
        method="GET",
        endpoint="GET /a",
        start_ns=0,
        wall_ns=wall_ns,
        status_code=200,
        is_error=False,
        ledger=Ledger(database_ns=database_ns, network_ns=0, app_ns=wall_ns - database_ns),
        calls=calls if kept else (),
        from_totals=not kept,
        keep_probability=probability,
    )


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_weighted_findings_hold_for_every_request(
    make_collector: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    # A population where the N+1 makes requests slow: 10% of 20,000 requests run it (40 ms
    # more), and the slowest are the ones kept with certainty. Truth, fixed first: the N+1
    # is in 10% of requests and costs 4 ms per request on average. A request arrives every
    # ms and the slow window is 0.2 s, so the slow rule keeps ~6 of each 200 (about as
    # many as the 5% draw keeps): the kept trees alone over-state the N+1 several times.
    rng = random.Random(seed)
    clock = iter(range(0, 10**12, MS))
    monkeypatch.setattr(keep_module, "time_ns", lambda: next(clock))
    collector, _ = make_collector(keep_spans="sampled", sample_rate=0.05, slow_interval_s=0.2)
    collector.keeper.rng = random.Random(seed + 100)
    weighted, unweighted = FindingsAccumulator(), FindingsAccumulator()
    truth_requests = 0
    for n in range(20_000):
        n_plus_one = n % 10 == 0
        truth_requests += n_plus_one
        wall = int((rng.lognormvariate(2.5, 0.3) + (40 if n_plus_one else 0)) * MS)
        keep = collector.keeper.keep("GET /a", wall, failed=False)
        if keep is None:  # booked from its totals: its database time is known, not its calls
            weighted.add(_request(n, wall, n_plus_one, 1.0, kept=False))
            unweighted.add(_request(n, wall, n_plus_one, 1.0, kept=False))
            continue
        weighted.add(_request(n, wall, n_plus_one, keep[1]))
        unweighted.add(_request(n, wall, n_plus_one, 1.0))
    found = next(f for f in weighted.findings("s", "GET /a", 20_000) if f.kind == N_PLUS_ONE)
    truth_fraction = truth_requests / 20_000
    assert found.requests_fraction == pytest.approx(truth_fraction, rel=0.25)
    # the cost per request (what the margin is of; a fix's saving is bounded below it)
    cost = found.ns_per_request * found.requests_fraction
    assert cost == pytest.approx(truth_fraction * 40 * MS, rel=0.25)
    # the stated margin covers the error, and is not so wide it says nothing
    error = abs(cost / (truth_fraction * 40 * MS) - 1)
    assert error <= found.margin_fraction < 0.5
    biased = next(f for f in unweighted.findings("s", "GET /a", 20_000) if f.kind == N_PLUS_ONE)
    assert biased.requests_fraction > truth_fraction * 2  # what the kept trees alone say
