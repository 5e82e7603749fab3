"""Hand-built calls and requests for the findings tests, with their known costs."""

from __future__ import annotations

from collections.abc import Sequence

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
