"""Findings from every request's counted statements (``ledger.statement.*``), hand-built.

An endpoint of 100 requests, each carrying its statement tallies as the collector writes
them, of which two kept their trees: one drawn at random at 1% (it stands for 100) and
the slowest (kept for certain). The figures below are fixed from the requests first;
the kept trees alone would say otherwise (the last assertion of the first test shows it).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from latency_ledger.findings import N_PLUS_ONE, SLOW_STATEMENT, FindingsAccumulator
from latency_ledger.ledger import read_tallies
from latency_ledger.model import Ledger, Request, StatementTallies
from latency_ledger.sql import normalize_statement, statement_fingerprint

from .conftest import MS, SELECT_ITEM, SELECT_ITEM_NORMALIZED, only, query, request

SELECT_SHOP = "SELECT * FROM shops WHERE id = {}"
SHOP_NORMALIZED = "SELECT * FROM shops WHERE id = ?"
ITEM_PRINT = statement_fingerprint(SELECT_ITEM_NORMALIZED)
SHOP_PRINT = statement_fingerprint(SHOP_NORMALIZED)


def tallies(items: int, texts: bool = False) -> StatementTallies:
    """``items`` item selects of 2 ms each and one 8 ms shop select, as counted."""
    return StatementTallies(
        count=items + 1,
        fingerprints=(ITEM_PRINT, SHOP_PRINT),
        calls=(items, 1),
        booked_ns=(items * 2 * MS, 8 * MS),
        longest_ns=(2 * MS, 8 * MS),
        texts=(SELECT_ITEM_NORMALIZED, SHOP_NORMALIZED) if texts else (),
    )


def order_page(n: int, *, kept: float | None, counted: bool = True) -> Request:
    """Request ``n``: 10 item selects if n < 50, else 30; kept with probability ``kept``
    (None: not kept, booked from its totals)."""
    items = 10 if n < 50 else 30
    calls = [query(SELECT_ITEM.format(i), 1 + 2 * i, 2) for i in range(items)]
    calls.append(query(SELECT_SHOP.format(n), 1 + 2 * items, 8))
    made = request(
        calls if kept is not None else (),
        100,
        from_totals=kept is None,
        n=n,
        keep_probability=kept or 1.0,
    )
    database = (items * 2 + 8) * MS
    return replace(
        made,
        ledger=Ledger(database_ns=database, network_ns=0, app_ns=100 * MS - database),
        statements=tallies(items) if counted else None,
    )


def endpoint(counted: bool = True) -> list[Request]:
    return [
        order_page(n, kept=0.01 if n == 0 else (1.0 if n == 99 else None), counted=counted)
        for n in range(100)
    ]


def test_counts_and_costs_come_from_every_request() -> None:
    acc = FindingsAccumulator()
    for r in endpoint():
        acc.add(r)
    found = acc.findings("shop", "GET /orders/{id}", 100, 100 * MS)
    n_plus_one = only(found, N_PLUS_ONE)
    # 50 requests run the item select 10 times (20 ms), 50 run it 30 times (60 ms)
    assert n_plus_one.target == SELECT_ITEM_NORMALIZED
    assert n_plus_one.counted is True
    assert n_plus_one.count_per_request == 20
    assert n_plus_one.count == 2000
    assert n_plus_one.requests_fraction == 1.0
    assert n_plus_one.ns_per_request == 40 * MS
    assert n_plus_one.total_ns == 4000 * MS
    # batching leaves the longest call, 2 ms, in each
    assert n_plus_one.fixable_ns_per_request == 38 * MS
    assert n_plus_one.margin_fraction == 0.0
    # the p50 of one call still rests on the kept trees: 2 of them, 40 calls of 2 ms
    assert (n_plus_one.p50_ns, n_plus_one.sampled_requests, n_plus_one.p50_calls) == (2 * MS, 2, 40)
    # the shop select (8 ms, once a request) is slow against the 100 ms p50 (5% is 5 ms)
    slow = only(found, SLOW_STATEMENT)
    assert slow.target == SHOP_NORMALIZED
    assert (slow.count, slow.count_per_request, slow.requests_fraction) == (100, 1, 1.0)
    assert (slow.ns_per_request, slow.total_ns, slow.counted) == (8 * MS, 800 * MS, True)
    # The same requests without their tallies: the two kept trees, weighted 100 and 1,
    # say (100 x 10 + 1 x 30) / 101 calls per request, half the truth.
    acc = FindingsAccumulator()
    for r in endpoint(counted=False):
        acc.add(r)
    estimated = only(acc.findings("shop", "GET /orders/{id}", 100, 100 * MS), N_PLUS_ONE)
    assert estimated.counted is False
    assert estimated.count_per_request == pytest.approx(1030 / 101)


def test_an_endpoint_with_a_request_not_counted_is_estimated() -> None:
    requests = endpoint()
    requests[5] = replace(requests[5], statements=None)  # a request written without them
    acc = FindingsAccumulator()
    for r in requests:
        acc.add(r)
    finding = only(acc.findings("shop", "GET /orders/{id}", 100, 100 * MS), N_PLUS_ONE)
    assert finding.counted is False
    assert finding.count_per_request == pytest.approx(1030 / 101)


def test_a_statement_slow_only_in_the_kept_trees_is_not_slow() -> None:
    # The two kept trees ran the shop select at 8 ms (p50 8 ms >= the 5 ms line); the
    # 98 requests not kept ran it at 1 ms: 1.14 ms a call over every request, not slow.
    acc = FindingsAccumulator()
    for r in endpoint():
        if not r.calls and r.statements is not None:
            t = r.statements
            r = replace(r, statements=replace(t, booked_ns=(t.booked_ns[0], MS)))
        acc.add(r)
    found = acc.findings("shop", "GET /orders/{id}", 100, 100 * MS)
    assert [f for f in found if f.kind == SLOW_STATEMENT] == []
    assert only(found, N_PLUS_ONE).counted is True


def test_requests_below_the_n_plus_one_line_are_not_an_n_plus_one() -> None:
    # 4 calls (< 5 repeats) in requests 0-49; 30 in 50-99: the N+1 is in half of them
    acc = FindingsAccumulator()
    for r in endpoint():
        if r.statements is not None and r.statements.calls[0] == 10:
            r = replace(r, statements=tallies(4))
        acc.add(r)
    finding = only(acc.findings("shop", "GET /orders/{id}", 100, 100 * MS), N_PLUS_ONE)
    assert (finding.requests_fraction, finding.count_per_request) == (0.5, 30)
    assert finding.ns_per_request == 60 * MS


def test_overall_adds_the_endpoints_counts() -> None:
    acc = FindingsAccumulator()
    for r in endpoint():
        acc.add(r)
    for r in endpoint():  # a second endpoint with the same requests
        acc.add(replace(r, endpoint="GET /basket/{id}", trace_id="b" + r.trace_id[1:]))
    counts = {("shop", "GET /orders/{id}"): 100, ("shop", "GET /basket/{id}"): 100}
    n_plus_one = only(acc.overall(counts, 200, 100 * MS), N_PLUS_ONE)
    assert (n_plus_one.count, n_plus_one.count_per_request) == (4000, 20)
    assert (n_plus_one.ns_per_request, n_plus_one.total_ns) == (40 * MS, 8000 * MS)


def test_a_statement_no_tree_kept_is_named_by_the_text_a_request_carried() -> None:
    acc = FindingsAccumulator()
    requests = [replace(r, calls=(), from_totals=True, keep_probability=1.0) for r in endpoint()]
    requests[0] = replace(requests[0], statements=tallies(10, texts=True))
    for r in requests:
        acc.add(r)
    finding = only(acc.findings("shop", "GET /orders/{id}", 100, 100 * MS), N_PLUS_ONE)
    assert finding.target == SELECT_ITEM_NORMALIZED
    assert (finding.count, finding.p50_ns, finding.p50_calls) == (2000, 0, 0)
    # without a text anywhere it is named by its fingerprint
    acc = FindingsAccumulator()
    for r in requests[1:]:
        acc.add(r)
    finding = only(acc.findings("shop", "GET /orders/{id}", 99, 100 * MS), N_PLUS_ONE)
    assert finding.target.startswith(f"(statement {ITEM_PRINT:016x}")


def test_folded_statements_are_never_a_finding() -> None:
    acc = FindingsAccumulator()
    folded = StatementTallies(
        count=40, fingerprints=(0,), calls=(40,), booked_ns=(80 * MS,), longest_ns=(2 * MS,)
    )
    for r in endpoint():
        acc.add(replace(r, statements=folded))
    assert not [
        f
        for f in acc.findings("shop", "GET /orders/{id}", 100, 100 * MS)
        if f.kind in (N_PLUS_ONE, SLOW_STATEMENT)
    ]


GOOD = {
    "ledger.statement_count": 3,
    "ledger.statement.fingerprints": (ITEM_PRINT, SHOP_PRINT),
    "ledger.statement.calls": (2, 1),
    "ledger.statement.booked_ns": (4, 8),
    "ledger.statement.longest_ns": (2, 8),
}


def test_tallies_are_read_back() -> None:
    assert read_tallies(GOOD) == StatementTallies(
        count=3, fingerprints=(ITEM_PRINT, SHOP_PRINT), calls=(2, 1), booked_ns=(4, 8),
        longest_ns=(2, 8),
    )  # fmt: skip
    assert read_tallies({"ledger.statement_count": 0}) == StatementTallies(count=0)
    texts = {**GOOD, "ledger.statement.texts": ("a", "")}
    assert read_tallies(texts) == replace(read_tallies(GOOD), texts=("a", ""))  # type: ignore[arg-type]
    as_strings = {**GOOD, "ledger.statement_count": "3"}  # int64 as a string (OTLP JSON)
    assert read_tallies(as_strings) == read_tallies(GOOD)


@pytest.mark.parametrize(
    "change",
    [
        {"ledger.statement_count": 4},  # the calls do not add up to it
        {"ledger.statement_count": -1},
        {"ledger.statement.calls": (2,)},  # arrays of different lengths
        {"ledger.statement.calls": (3, 0)},  # a statement never run
        {"ledger.statement.booked_ns": (4, -8)},
        {"ledger.statement.fingerprints": (ITEM_PRINT, ITEM_PRINT)},  # counted twice
        {"ledger.statement.fingerprints": "1,2"},
        {"ledger.statement.longest_ns": (2, "x")},
        {"ledger.statement.longest_ns": None},
    ],
)
def test_tallies_that_do_not_hold_together_are_not_read(change: dict[str, object]) -> None:
    attrs = {key: value for key, value in {**GOOD, **change}.items() if value is not None}
    assert read_tallies(attrs) is None  # type: ignore[arg-type]


def test_fingerprints_are_stable() -> None:
    # pinned: traces written by one version are read by later ones, and a fingerprint
    # that changed would no longer meet the kept trees' statements
    assert statement_fingerprint("SELECT ?") == 0x60A43CB7091003AD
    # one statement written with different literals and spacing: one fingerprint
    assert normalize_statement("SELECT  1") == normalize_statement("SELECT 2") == "SELECT ?"
    assert all(statement_fingerprint(text) > 0 for text in ("", "SELECT 1", "x" * 10_000))
