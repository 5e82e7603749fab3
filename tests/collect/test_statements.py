"""Each request's statements counted in the app: the ``ledger.statement.*`` a known mix gets.

A page records a fixed plan of statement and HTTP spans with times given (tenths of a ms
from the page's start, no sleeps); what its SERVER span carries is read back through the
offline reader and compared with figures fixed from the plan beforehand: per normalized
statement, its calls, the time booked to them and its longest call, whether the spans
were sequential (booked by the collector directly) or overlapping (booked through the
offline ledger), kept or not.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.collect import CollectConfig, Collector, LedgerMiddleware
from latency_ledger.collect.statements import TOP, StatementCounter
from latency_ledger.ledger import book_trace
from latency_ledger.model import Request, StatementTallies
from latency_ledger.read import ReadStats, read_traces
from latency_ledger.sql import normalize_statement, statement_fingerprint

from .test_light import get  # one GET /page through the app

TENTH_MS = 100_000


def db(sql: str) -> dict[str, Any]:
    return {"db.system": "postgresql", "db.statement": sql}


HTTP = {"http.request.method": "GET", "url.full": "http://x/y"}
ITEM = "SELECT * FROM item WHERE id = %s"
SHOP = "SELECT name FROM shop WHERE id = 7"


def fingerprint(sql: str) -> int:
    return statement_fingerprint(normalize_statement(sql))


def requests_of(
    tmp_path: Path, plans: list[list[tuple[str, dict[str, Any], int, int]]], keep_spans: str
) -> list[Request]:
    """One request per plan, each recording its spans at the times given; the requests as
    the analyzer books them from what was written."""
    collector = Collector(
        CollectConfig(
            output_dir=tmp_path,
            keep_spans=keep_spans,
            sample_rate=0.0,
            slow_per_endpoint=False,
            set_global_provider=False,
        ),
        load_plugins=False,
    )
    tracer = collector.span_provider.get_tracer("test")
    queue = list(plans)

    async def page(request: Any) -> PlainTextResponse:
        start = time.time_ns()
        plan = queue.pop(0)
        # the request outlasts its spans (else they are clipped to it): run until then
        until = start + max(end_u for *_, end_u in plan) * TENTH_MS
        while time.time_ns() < until:
            pass
        for name, attributes, start_u, end_u in plan:
            span = tracer.start_span(
                name,
                kind=trace.SpanKind.CLIENT,
                attributes=attributes,
                start_time=start + start_u * TENTH_MS,
            )
            span.end(end_time=start + end_u * TENTH_MS)
        return PlainTextResponse("ok")

    app = LedgerMiddleware(Starlette(routes=[Route("/page", page)]), collector=collector)
    try:
        for _ in plans:
            asyncio.run(get(app))
    finally:
        collector.shutdown()
    booked = [
        request
        for t in read_traces([tmp_path], stats=ReadStats())
        for request in book_trace(t, rules=DEFAULT_RULES).requests
    ]
    return sorted(booked, key=lambda r: r.start_ns)


def by_statement(tallies: StatementTallies | None) -> dict[int, tuple[int, int, int]]:
    assert tallies is not None
    return {
        fp: (calls, booked, longest)
        for fp, calls, booked, longest in zip(
            tallies.fingerprints, tallies.calls, tallies.booked_ns, tallies.longest_ns, strict=True
        )
    }


# ITEM three times (bound), SHOP once, an HTTP call between: sequential
SEQUENTIAL = [
    ("SELECT", db(ITEM), 1, 3),
    ("SELECT", db(ITEM), 3, 4),
    ("GET", HTTP, 4, 9),
    ("SELECT", db(ITEM), 10, 15),
    ("SELECT", db(SHOP), 15, 17),
]
# the same, the first two ITEM calls overlapping: each instant goes to the call that
# ends last, 2-4 to the second, 1-2 to the first; so ITEM books 1 + 2 + 5 tenths
OVERLAPPING = [
    ("SELECT", db(ITEM), 1, 3),
    ("SELECT", db(ITEM), 2, 4),
    ("GET", HTTP, 4, 9),
    ("SELECT", db(ITEM), 10, 15),
    ("SELECT", db(SHOP), 15, 17),
]


@pytest.mark.parametrize("keep_spans", ["sampled", "all"])
@pytest.mark.parametrize(
    ("plan", "item"),
    [
        (SEQUENTIAL, (3, (2 + 1 + 5) * TENTH_MS, 5 * TENTH_MS)),
        (OVERLAPPING, (3, (1 + 2 + 5) * TENTH_MS, 5 * TENTH_MS)),
    ],
)
def test_a_known_mix_is_counted(
    tmp_path: Path, plan: Any, item: tuple[int, int, int], keep_spans: str
) -> None:
    first, second = requests_of(tmp_path, [plan, plan], keep_spans)
    shop = (1, 2 * TENTH_MS, 2 * TENTH_MS)
    for request in (first, second):
        assert request.statements is not None
        assert request.statements.count == 4
        assert by_statement(request.statements) == {
            fingerprint(ITEM): item,
            fingerprint(SHOP): shop,
        }
    # the texts are written the first time only
    assert first.statements is not None
    assert second.statements is not None
    texts = dict(zip(first.statements.fingerprints, first.statements.texts, strict=True))
    assert texts == {
        fingerprint(ITEM): normalize_statement(ITEM),
        fingerprint(SHOP): normalize_statement(SHOP),
    }
    assert second.statements.texts == ()


def test_a_request_without_statements_is_counted_as_none(tmp_path: Path) -> None:
    (request,) = requests_of(tmp_path, [[("GET", HTTP, 1, 3)]], "sampled")
    assert request.statements == StatementTallies(count=0)


def test_literals_written_in_fold_into_one_statement(tmp_path: Path) -> None:
    plan = [("SELECT", db(f"SELECT * FROM item WHERE id = {n}"), n, n + 1) for n in range(6)]
    (request,) = requests_of(tmp_path, [plan], "sampled")
    assert by_statement(request.statements) == {
        fingerprint("SELECT * FROM item WHERE id = 1"): (6, 6 * TENTH_MS, TENTH_MS)
    }


def test_past_the_top_the_rest_is_folded_and_counted(tmp_path: Path) -> None:
    # TOP + 4 distinct statements, statement n taking n + 1 tenths: the TOP - 1 longest
    # keep their own entry, the 5 shortest (1..5 tenths) are folded into fingerprint 0
    plan = []
    at = 0
    for n in range(TOP + 4):
        plan.append(("SELECT", db(f"SELECT c{n} FROM t"), at, at + n + 1))
        at += n + 1
    (request,) = requests_of(tmp_path, [plan], "sampled")
    found = by_statement(request.statements)
    assert request.statements is not None
    assert request.statements.count == TOP + 4
    assert len(found) == TOP
    assert found[0] == (5, (1 + 2 + 3 + 4 + 5) * TENTH_MS, 5 * TENTH_MS)
    for n in range(5, TOP + 4):
        assert found[fingerprint(f"SELECT c{n} FROM t")] == (
            1,
            (n + 1) * TENTH_MS,
            (n + 1) * TENTH_MS,
        )


def test_texts_are_written_again_after_a_while() -> None:
    counter = StatementCounter()
    tallies = {ITEM: [2, 10, 6]}
    assert counter.record(tallies)[5] == (normalize_statement(ITEM),)
    assert counter.record(tallies)[5] == ()
    counter.requests = 99_999  # the next is the ANNOUNCE_EVERY-th: texts written again
    assert counter.record(tallies)[5] == (normalize_statement(ITEM),)


def test_the_same_statements_again_are_recorded_alike() -> None:
    # the third request of a shape takes the cached way: the same record as the first two
    counter = StatementCounter()
    other = "SELECT 2"
    expected = [
        (4, (fingerprint(ITEM), fingerprint(other)), (3, 1), (30 + n, 5), (12, 5)) for n in range(4)
    ]
    got = [counter.record({ITEM: [3, 30 + n, 12], other: [1, 5, 5]})[:5] for n in range(4)]
    assert got == expected
    assert counter.shapes  # the cached way was taken
    # two texts of one statement are merged, never taken the cached way
    for _ in range(3):  # (fresh lists: recording takes the request's own)
        merged = {ITEM: [1, 2, 2], ITEM.replace("%s", "5"): [1, 3, 3]}
        assert counter.record(merged)[:5] == (2, (fingerprint(ITEM),), (2,), (5,), (3,))
