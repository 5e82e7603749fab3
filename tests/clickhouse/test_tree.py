"""Span trees booked in ClickHouse (clickhouse/tree.py) equal ``ledger.book_trace``'s.

The reference is ``book_trace`` on the same spans. The trees are random but seeded:
children that start before or end after their parent, zero-length spans, exact ties
of end and start (broken by span id), concurrent waits, spans under wait spans, tails,
delays and tail bounds on waits (inside and outside what they booked), native
libraries' threads on requests, deep chains, cycles, requests with CPU measured and
not, booked from totals.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType

import pytest

from latency_ledger.clickhouse import PreBooked, tree
from latency_ledger.ledger import BookedTrace, book_trace
from latency_ledger.model import Request, Span, SpanKind, Trace
from latency_ledger.read import ReadStats

from .conftest import load_spans, read_items

US = 1_000
T0 = 1_700_000_000_000_000_000
WAITS = (
    {"db.system": "postgresql", "db.statement": "SELECT 1"},
    {"db.system.name": "sqlite", "db.query.text": "SELECT * FROM t WHERE id = ?"},
    {"http.request.method": "GET", "url.full": "http://pricing/quote", "server.address": "pricing"},
    {"db.system": "redis", "db.statement": "GET k"},
)


def _tree(rng: random.Random, number: int) -> list[Span]:
    trace = f"{number + 1:032x}"
    start = T0 + number * 10_000 * US
    end = start + rng.randint(0, 5_000) * US
    root_attrs: dict[str, str] = {"http.request.method": "GET", "http.route": f"/r{number % 5}"}
    if rng.random() < 0.7:
        root_attrs["ledger.cpu_ns"] = str(rng.randint(-100, 6_000) * US)
    if rng.random() < 0.3:
        root_attrs["ledger.queueing_ns"] = str(rng.randint(0, 900) * US)
    if rng.random() < 0.1:
        root_attrs |= {"ledger.spans_kept": "false", "ledger.database_ns": str(700 * US)}
    if rng.random() < 0.2:  # estimates: native libraries' threads, the totals' bounds
        root_attrs |= {
            "ledger.native_threads_ns": str(rng.randint(0, 900) * US),
            "ledger.native_threads_max_ns": str(rng.randint(0, 1_200) * US),
            "ledger.database_wait_max_ns": str(rng.randint(0, 500) * US),
        }
    spans = [_span(trace, "a0", "", SpanKind.SERVER, start, end, root_attrs)]
    parents = [(0, start, end)]
    deep = rng.random() < 0.05
    for i in range(1, rng.randint(2, 14)):
        index, lo, hi = parents[-1] if deep else rng.choice(parents)
        s = lo + rng.randint(-300, max(0, (hi - lo) // US)) * US
        if rng.random() < 0.15 and spans[index].end_ns > s:  # ties: same end as another
            e = spans[index].end_ns
        else:
            e = s + rng.choice((0, rng.randint(0, 2_500))) * US
        roll = rng.random()
        if roll < 0.5:
            attrs = dict(rng.choice(WAITS))
            if rng.random() < 0.4:
                attrs["ledger.queueing_ns"] = str(rng.randint(0, 1_500) * US)
            if rng.random() < 0.3:
                attrs["ledger.unattributed_ns"] = str(rng.randint(0, 800) * US)
            if rng.random() < 0.5:
                attrs["ledger.queueing_max_ns"] = str(rng.randint(0, 2_000) * US)
            kind = SpanKind.CLIENT
        else:
            attrs = {"code.function": f"f{i % 3}"}
            kind = SpanKind.INTERNAL
        span_id = f"a{i:x}" if rng.random() < 0.9 else f"a{i:x}0"  # ids decide some ties
        spans.append(_span(trace, span_id, spans[index].span_id, kind, s, e, attrs))
        parents.append((len(spans) - 1, s, e))
    if rng.random() < 0.05:  # a cycle: never reached, counted as unbooked
        spans += [
            _span(trace, "c1", "c2", SpanKind.INTERNAL, start, end, {}),
            _span(trace, "c2", "c1", SpanKind.INTERNAL, start, end, {}),
        ]
    return spans


def _span(
    trace: str,
    span_id: str,
    parent: str,
    kind: SpanKind,
    start: int,
    end: int,
    attrs: dict[str, str],
) -> Span:
    return Span(
        trace_id=trace,
        span_id=f"{int(span_id[1:] or '0', 16) + (1 << 40) * (span_id[0] == 'c'):016x}",
        parent_span_id=(
            ""
            if not parent
            else f"{int(parent[1:] or '0', 16) + (1 << 40) * (parent[0] == 'c'):016x}"
        ),
        name=attrs.get("db.statement", "work"),
        kind=kind,
        start_ns=start,
        end_ns=max(start, end),
        is_error=False,
        attributes=attrs,
        service="shop",
    )


def _normalized(booked: BookedTrace) -> tuple[int, list[Request]]:
    """Calls that start and end at the same instants may come in either order."""
    requests = []
    for request in booked.requests:
        calls = sorted(request.calls, key=lambda c: (c.start_ns, c.end_ns, c.target, c.booked_ns))
        requests.append(Request(**{**_fields(request), "calls": tuple(calls)}))
    return booked.unbooked_spans, requests


def _fields(request: Request) -> dict[str, object]:
    return {name: getattr(request, name) for name in Request.__dataclass_fields__}


@pytest.mark.parametrize("bucket", [20_000, 97], ids=["one-query", "in-buckets"])
def test_sql_trees_equal_book_trace(
    chdb_session: ModuleType, chdb_dir: Path, bucket: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tree, "BUCKET_TRACES", bucket)
    rng = random.Random(2026)
    traces = [
        Trace(trace_id=t[0].trace_id, spans=tuple(t)) for t in (_tree(rng, n) for n in range(600))
    ]
    url = load_spans(chdb_session, chdb_dir / "db", traces)
    by_id = {t.trace_id: t for t in traces}
    stats = ReadStats()
    items = read_items(url, stats)
    assert stats.problems == []
    assert stats.spans == sum(len(t.spans) for t in traces)
    trees = [
        i for i in items if isinstance(i, PreBooked) and len(by_id[i.trace.trace_id].spans) > 1
    ]
    assert len(trees) > 450  # almost every tree is booked in SQL (cycles are, too)
    assert sum(bool(i.booked.requests[0].calls) for i in trees) > 300
    assert sum(i.booked.unbooked_spans > 0 for i in trees) > 5
    for item in trees:
        reference = book_trace(by_id[item.trace.trace_id])
        assert _normalized(item.booked) == _normalized(reference), item.trace.trace_id


def test_deeper_than_sql_books_goes_to_python(chdb_session: ModuleType, chdb_dir: Path) -> None:
    """A chain deeper than MAX_DEPTH is booked in Python, whole, with the same answer."""
    from latency_ledger.clickhouse.tree import MAX_DEPTH

    trace = "f" * 32
    start = T0
    chain = [_span(trace, "a0", "", SpanKind.SERVER, start, start + 10_000 * US, {})]
    for i in range(1, MAX_DEPTH + 20):
        attrs = dict(WAITS[0]) if i == MAX_DEPTH + 10 else {}
        kind = SpanKind.CLIENT if attrs else SpanKind.INTERNAL
        s = start + i * US
        chain.append(_span(trace, f"a{i:x}", chain[-1].span_id, kind, s, s + 5_000 * US, attrs))
    deep = Trace(trace_id=chain[0].trace_id, spans=tuple(chain))
    url = load_spans(chdb_session, chdb_dir / "db", [deep])
    items = read_items(url)
    assert len(items) == 1
    assert isinstance(items[0], Trace)
    assert len(items[0].spans) == len(chain)
    # every link is clipped to the first child's end (5,001 us): the wait books 110..5,001
    assert book_trace(items[0]).requests[0].ledger.database_ns == (5_001 - 110) * US
