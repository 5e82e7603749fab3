"""Aggregation: percentiles, band ledgers that sum to latency, endpoint grouping."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latency_ledger.aggregate import (
    OTHER_ENDPOINT,
    Aggregator,
    EndpointCap,
    band,
    nearest_rank,
    scale_parts,
)
from latency_ledger.ledger import book_trace
from latency_ledger.model import Ledger, Request, Span, SpanKind, Trace

MS = 1_000_000


def request(
    wall: int,
    *,
    database: int = 0,
    network: int = 0,
    cpu: int | None = None,
    queueing: int = 0,
    endpoint: str = "GET /orders/{id}",
    service: str = "shop",
    error: bool = False,
    from_totals: bool = False,
) -> Request:
    own = wall - database - network
    if cpu is None:
        ledger = Ledger(database_ns=database, network_ns=network, app_ns=own)
    else:
        ledger = Ledger(
            database_ns=database,
            network_ns=network,
            interpreter_ns=cpu,
            waiting_ns=own - cpu,
            queueing_ns=queueing,
            cpu_measured=True,
        )
    return Request(
        trace_id="t",
        span_id="s",
        service=service,
        method=endpoint.split(" ")[0],
        endpoint=endpoint,
        start_ns=0,
        wall_ns=wall,
        status_code=500 if error else 200,
        is_error=error,
        ledger=ledger,
        from_totals=from_totals,
    )


def test_nearest_rank_and_band() -> None:
    # 100 requests: p50 is rank 50, its band ranks 48..52 (47.5%..52.5%); p99 is rank 99,
    # band 97..100. One request: everything is rank 1. Three: p50 is rank 2, band 2..2.
    assert nearest_rank(50, 100) == 50
    assert nearest_rank(99, 100) == 99
    assert band(50, 100) == (48, 52)
    assert band(99, 100) == (97, 100)
    assert band(95, 1) == (1, 1)
    assert (nearest_rank(50, 3), band(50, 3)) == (2, (2, 2))
    assert band(50, 1000) == (475, 525)


def test_scale_parts_gives_the_remainder_to_the_largest_part() -> None:
    # 10 split 1:1:1 -> 3, 3, 3 and the remainder 1 to the first largest part.
    assert scale_parts([1, 1, 1], 10) == [4, 3, 3]
    assert scale_parts([1, 5, 2], 16) == [2, 10, 4]
    assert scale_parts([0, 0, 0], 0) == [0, 0, 0]


def test_percentiles_on_a_known_set() -> None:
    # Walls 1..100 ms; each request 10 ms network, the rest split half database, half app.
    # p50 = 50 ms, p95 = 95, p99 = 99, mean = 50.5 ms.
    # p50 band = ranks 48..52: walls sum 250, network 50, database 100, app 100, scaled to
    # 50 ms -> network 10, database 20, app 20.
    aggregator = Aggregator()
    for wall in range(1, 101):
        network = min(10, wall) * MS
        aggregator.add(request(wall * MS, network=network, database=(wall * MS - network) // 2))
    (stats,) = aggregator.endpoints()
    assert stats.count == 100
    assert dict(stats.latency_ns) == {
        "p50": 50 * MS,
        "p95": 95 * MS,
        "p99": 99 * MS,
        "mean": 50_500_000,
    }
    assert dict(stats.ledger_ns["p50"]) == {"database": 20 * MS, "network": 10 * MS, "app": 20 * MS}
    assert not stats.cpu_measured
    for key, latency in stats.latency_ns.items():
        assert sum(stats.ledger_ns[key].values()) == latency


def test_cpu_measured_endpoint_reports_interpreter_waiting_and_queueing() -> None:
    # Two requests of 40 ms: database 20, interpreter 10, waiting 10 (queueing 4).
    # p50 = p99 = mean = 40 ms with the same split; queueing 4 ms at every key.
    aggregator = Aggregator()
    for _ in range(2):
        aggregator.add(request(40 * MS, database=20 * MS, cpu=10 * MS, queueing=4 * MS))
    (stats,) = aggregator.endpoints()
    assert stats.cpu_measured
    expected = {
        "database": 20 * MS,
        "network": 0,
        "interpreter": 10 * MS,
        "native": 0,
        "waiting": 10 * MS,
    }
    assert {key: dict(parts) for key, parts in stats.ledger_ns.items()} == dict.fromkeys(
        ("p50", "p95", "p99", "mean"), expected
    )
    assert dict(stats.queueing_ns) == dict.fromkeys(("p50", "p95", "p99", "mean"), 4 * MS)


def profiled(wall: int, *, native: int, bytecode: int, native_max: int) -> Request:
    """A profiled request: its own profile measured ``native`` of its CPU."""
    ledger = Ledger(
        database_ns=0,
        network_ns=0,
        interpreter_ns=bytecode,
        native_ns=native,
        waiting_ns=wall - bytecode - native,
        cpu_measured=True,
        native_measured=True,
        native_max_ns=native_max,
    )
    return replace(request(wall, cpu=0), ledger=ledger)


def test_unprofiled_requests_take_the_profiled_native_cpu_over_their_own_cpu() -> None:
    # One profiled request: 40 ms native, 20 ms bytecode (slowed by the profiler), upper
    # bound 42 ms native. Four unprofiled: 50 ms CPU each in 60 ms. Native share of an
    # unprofiled request's CPU = 40 / 50 = 0.8 (not 40 / 60: the profiler slowed only the
    # bytecode): native 40, interpreter 10, waiting 10 each. The endpoint: native
    # 40 * 5 = 200 of CPU 60 + 200 = 260; bound low 200/260, high (42 + 4 * 50 *
    # 42/50)/260 = 210/260; one profiled request, four estimated.
    aggregator = Aggregator()
    aggregator.add(profiled(80 * MS, native=40 * MS, bytecode=20 * MS, native_max=42 * MS))
    for _ in range(4):
        aggregator.add(request(60 * MS, cpu=50 * MS))
    (stats,) = aggregator.endpoints()
    assert stats.native is not None
    assert (stats.native.profiled, stats.native.estimated) == (1, 4)
    assert stats.native.cpu_fraction == pytest.approx(200 / 260)
    assert stats.native.cpu_fraction_low == pytest.approx(200 / 260)
    assert stats.native.cpu_fraction_high == pytest.approx(210 / 260)
    assert dict(stats.ledger_ns["p50"]) == {
        "database": 0,
        "network": 0,
        "interpreter": 10 * MS,
        "native": 40 * MS,
        "waiting": 10 * MS,
    }
    overall = aggregator.overall()
    assert overall.native == stats.native
    assert dict(overall.ledger_ns["mean"]) == dict(stats.ledger_ns["mean"])


def test_native_share_is_estimated_within_each_endpoint() -> None:
    # /login is profiled all native (30 of 30 ms); /search profiled all bytecode. Each
    # endpoint's unprofiled requests take their own endpoint's share, also in "*".
    aggregator = Aggregator()
    aggregator.add(
        replace(profiled(40 * MS, native=30 * MS, bytecode=0, native_max=30 * MS), endpoint="A")
    )
    aggregator.add(replace(request(40 * MS, cpu=30 * MS), endpoint="A"))
    aggregator.add(
        replace(profiled(40 * MS, native=0, bytecode=30 * MS, native_max=1 * MS), endpoint="B")
    )
    aggregator.add(replace(request(40 * MS, cpu=30 * MS), endpoint="B"))
    by_name = {stats.endpoint: stats for stats in aggregator.endpoints()}
    assert by_name["A"].ledger_ns["mean"]["native"] == 30 * MS
    assert by_name["B"].ledger_ns["mean"]["native"] == 0
    overall = aggregator.overall()
    assert overall.ledger_ns["mean"]["native"] == 15 * MS
    assert overall.native is not None
    assert overall.native.profiled == 2


def test_two_profiles_bound_the_share_by_two_standard_errors() -> None:
    # Profiled native 20 and 40 ms (mean 30, sample sd 14.14, se 10): on 60 ms of
    # unprofiled CPU the share is 0.5, bounded by (30 - 20)/60 and (30 + 20)/60.
    aggregator = Aggregator()
    aggregator.add(profiled(70 * MS, native=20 * MS, bytecode=40 * MS, native_max=20 * MS))
    aggregator.add(profiled(70 * MS, native=40 * MS, bytecode=20 * MS, native_max=40 * MS))
    aggregator.add(request(70 * MS, cpu=60 * MS))
    (stats,) = aggregator.endpoints()
    assert stats.native is not None
    assert stats.ledger_ns["mean"]["native"] == pytest.approx((20 + 40 + 30) * MS / 3, abs=2)
    cpu = 180 * MS
    assert stats.native.cpu_fraction_low == pytest.approx((60 * MS + 60 * MS * 10 / 60) / cpu)
    assert stats.native.cpu_fraction_high == pytest.approx((60 * MS + 60 * MS * 50 / 60) / cpu)


def test_no_profile_no_native_share() -> None:
    aggregator = Aggregator()
    aggregator.add(request(40 * MS, cpu=30 * MS))
    (stats,) = aggregator.endpoints()
    assert stats.native is None
    assert stats.ledger_ns["mean"]["native"] == 0


def test_mixed_measurement_books_own_time_as_app() -> None:
    # One measured (interpreter 10 + waiting 10) and one not (app 20), both 40 ms with
    # database 20: the endpoint reports app 20, not interpreter/waiting.
    aggregator = Aggregator()
    aggregator.add(request(40 * MS, database=20 * MS, cpu=10 * MS))
    aggregator.add(request(40 * MS, database=20 * MS))
    (stats,) = aggregator.endpoints()
    assert not stats.cpu_measured
    assert dict(stats.ledger_ns["mean"]) == {"database": 20 * MS, "network": 0, "app": 20 * MS}
    assert dict(stats.queueing_ns) == dict.fromkeys(("p50", "p95", "p99", "mean"), 0)


def test_endpoints_sorted_by_total_time_with_errors_and_overall() -> None:
    # slow: 2 x 100 ms = 200 ms total; fast: 10 x 5 ms = 50 ms; fast has 1 error.
    aggregator = Aggregator()
    for _ in range(2):
        aggregator.add(request(100 * MS, endpoint="GET /slow", from_totals=True))
    for index in range(10):
        aggregator.add(request(5 * MS, endpoint="GET /fast", error=index == 0))
    slow, fast = aggregator.endpoints()
    assert (slow.endpoint, slow.count, slow.errors, slow.from_totals) == ("GET /slow", 2, 0, 2)
    assert (fast.endpoint, fast.count, fast.errors) == ("GET /fast", 10, 1)
    overall = aggregator.overall()
    # Overall: 12 requests; p50 = rank 6 = 5 ms, p99 = rank 12 = 100 ms, mean 250/12 ms.
    assert (overall.service, overall.endpoint, overall.count, overall.errors) == ("*", "*", 12, 1)
    assert overall.latency_ns["p50"] == 5 * MS
    assert overall.latency_ns["p99"] == 100 * MS
    assert overall.latency_ns["mean"] == 20_833_333
    assert sum(overall.ledger_ns["mean"].values()) == 20_833_333


def test_empty_aggregator() -> None:
    aggregator = Aggregator()
    assert aggregator.endpoints() == ()
    overall = aggregator.overall()
    assert (overall.count, overall.latency_ns["p50"], overall.cpu_measured) == (0, 0, False)
    assert dict(overall.ledger_ns["p99"]) == {"database": 0, "network": 0, "app": 0}


def _server(span_id: str, target: str, wall: int) -> Span:
    return Span(
        trace_id=span_id * 4,
        span_id=span_id,
        parent_span_id="",
        name="GET",
        kind=SpanKind.SERVER,
        start_ns=0,
        end_ns=wall,
        is_error=False,
        attributes={"http.request.method": "GET", "http.target": target},
        service="shop",
    )


def test_raw_paths_collapse_into_one_endpoint() -> None:
    # /orders/123 and /orders/456 are one endpoint; a UUID path is {uuid}.
    aggregator = Aggregator()
    for span_id, target in (
        ("a", "/orders/123"),
        ("b", "/orders/456?full=1"),
        ("c", "/orders/9f8e7d6c-5b4a-4c3d-9e2f-1a0b9c8d7e6f"),
    ):
        trace = Trace(trace_id=span_id * 4, spans=(_server(span_id, target, 10 * MS),))
        for booked in book_trace(trace).requests:
            aggregator.add(booked)
    counts = {stats.endpoint: stats.count for stats in aggregator.endpoints()}
    assert counts == {"GET /orders/{id}": 2, "GET /orders/{uuid}": 1}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**9), st.integers(0, 100), st.integers(0, 100), st.booleans()),
        min_size=1,
        max_size=60,
    )
)
def test_band_ledgers_sum_exactly_to_latency(rows: list[tuple[int, int, int, bool]]) -> None:
    aggregator = Aggregator()
    for wall, db_share, net_share, measured in rows:
        database = wall * db_share // 100
        network = (wall - database) * net_share // 100
        own = wall - database - network
        aggregator.add(
            request(
                wall,
                database=database,
                network=network,
                cpu=own // 3 if measured else None,
                queueing=own // 7 if measured else 0,
            )
        )
    for stats in (*aggregator.endpoints(), aggregator.overall()):
        walls = sorted(row[0] for row in rows)
        assert stats.latency_ns["p50"] == walls[nearest_rank(50, len(walls)) - 1]
        for key, latency in stats.latency_ns.items():
            parts = stats.ledger_ns[key]
            assert min(parts.values()) >= 0
            assert sum(parts.values()) == latency
            if stats.cpu_measured:
                assert 0 <= stats.queueing_ns[key] <= parts["waiting"]


@pytest.mark.parametrize("count", [1, 2, 20, 1000])
def test_percentile_latencies_are_observed_values(count: int) -> None:
    # Walls 1..count ms in reverse order: p95 is rank ceil(0.95 * count).
    aggregator = Aggregator()
    for wall in range(count, 0, -1):
        aggregator.add(request(wall * MS))
    (stats,) = aggregator.endpoints()
    assert stats.latency_ns["p95"] == -(-95 * count // 100) * MS


def test_endpoint_cap_folds_new_names_past_its_limit() -> None:
    # Issue 13, defect 7: endpoints were never capped.
    cap = EndpointCap(2)
    names = [cap.fold(request(1, endpoint=e)).endpoint for e in ("a", "b", "c", "a", "d", "c")]
    assert names == ["a", "b", OTHER_ENDPOINT, "a", OTHER_ENDPOINT, OTHER_ENDPOINT]
    assert cap.requests_folded == 3
    assert "2 further endpoints (3 requests)" in str(cap.problem())
    assert EndpointCap(5).problem() is None
