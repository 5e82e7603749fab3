"""The ledger ClickHouse computes (clickhouse/book.py) equals ``ledger.book_trace``'s.

The reference is ``book_trace`` on the very span the table returns; the spans carry the
``ledger.*`` values a collector writes and the ones it must survive (negative, larger
than the request, missing parts, waiting only, garbage, whitespace, 19-20 digits), so
both SQL's arithmetic and its choice of what to leave to Python are checked.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import ModuleType

from latency_ledger.clickhouse import PreBooked
from latency_ledger.ledger import book_trace
from latency_ledger.model import Span, SpanKind, Trace

from .conftest import load_spans, read_items

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
VALUES = ["5000000", "0", "-3000000", "999000000", "", "abc", " 7", "1234567890123456789", "-"]
KEPT = [None, "false", "true", " false", "FALSE"]
KEYS = (
    "ledger.cpu_ns",
    "ledger.queueing_ns",
    "ledger.database_ns",
    "ledger.network_ns",
    "ledger.interpreter_ns",
    "ledger.waiting_ns",
)


def _spans() -> list[Span]:
    spans = []
    combos = itertools.product(range(len(KEYS) + 1), VALUES, KEPT, range(3))
    for i, (drop, value, kept, shift) in enumerate(combos):
        attrs: dict[str, object] = {
            "http.request.method": "GET",
            "http.route": f"/r{i % 7}",
            "http.response.status_code": "200" if i % 5 else "503",
        }
        for j, key in enumerate(KEYS):
            if j != drop and (i + j) % 3:
                # rotate which keys carry the odd value, the rest plausible
                attrs[key] = value if (i + j + shift) % 4 == 0 else str((j + 1) * MS)
        if kept is not None:
            attrs["ledger.spans_kept"] = kept
        spans.append(
            Span(
                trace_id=f"{i + 1:032x}",
                span_id=f"{i + 1:016x}",
                parent_span_id="",
                name="GET",
                kind=SpanKind.SERVER,
                start_ns=T0 + i * MS,
                end_ns=T0 + i * MS + (10 + i % 13) * MS,
                is_error=False,
                attributes=attrs,  # type: ignore[arg-type]
                service="shop",
            )
        )
    return spans


def test_sql_ledger_equals_book_trace(chdb_session: ModuleType, chdb_dir: Path) -> None:
    spans = _spans()
    url = load_spans(
        chdb_session, chdb_dir / "db", (Trace(trace_id=s.trace_id, spans=(s,)) for s in spans)
    )
    items = read_items(url)
    assert len(items) == len(spans)
    in_sql = [item for item in items if isinstance(item, PreBooked)]
    # Most shapes are booked in SQL; the odd values (whitespace, 19 digits, garbage
    # kept flags) go to Python whole.
    assert len(spans) // 3 < len(in_sql) < len(spans)
    for item in in_sql:
        assert item.booked == book_trace(item.trace), item.trace.spans[0].attributes
    measured = sum(item.booked.requests[0].ledger.cpu_measured for item in in_sql)
    from_totals = sum(item.booked.requests[0].from_totals for item in in_sql)
    assert 0 < measured < len(in_sql)
    assert 0 < from_totals < len(in_sql)
