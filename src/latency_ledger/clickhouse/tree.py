"""Span trees booked inside ClickHouse: the critical-path rule in a recursive query.

Contract: :func:`booked_trees` books, in SQL, every trace of the shape :func:`tree_shape`
states (more than one span, at most ``MAX_TREE_SPANS``; distinct span ids; one root,
which is the trace's only SERVER span; plain decimal ``ledger.*`` values; no
``ledger.profile``), and yields each request span with its BookedTrace, equal to what
``ledger.book_trace`` books for the same spans (tests compare them), but for the order
of calls that start and end at the same instants. Everything else (nested SERVER spans,
several roots, duplicated ids, profiles, odd values, trees deeper than ``MAX_DEPTH``)
is left to Python by the caller, whole.

How (``ledger.book_spans``, written again): level by level from the request span, each
child is clipped to its parent's clipped interval; among siblings ordered by (end,
start, span id) descending, each keeps ``[start, min(end, frontier))``, the frontier
being the parent's booked end lowered to each earlier sibling's start (a window
function); a span classified as a wait keeps its category for all it booked, less its
tail and delay (``ledger.queueing_ns``, ``ledger.unattributed_ns``) inside that; the
request's own time is the rest. Which spans are waits is decided in Python, by the
same rules as for files (``ledger.classify_fields``), once per distinct (kind,
service, name, attributes but the tail keys); the answer travels back as query
parameters (at most ``MAX_SIGNATURES``; past that, trees are left to Python).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from latency_ledger.clickhouse.book import LEDGER_OUTPUT, ledger_columns, ledger_of
from latency_ledger.clickhouse.source import Connection
from latency_ledger.clickhouse.spans import KINDS, SPAN_COLUMNS, attributes, to_span
from latency_ledger.ledger import (
    CPU_NS,
    DATABASE_NS,
    DELAY_NS,
    INTERPRETER_NS,
    MAX_WALL_NS,
    NETWORK_NS,
    PROFILE,
    QUEUEING_NS,
    SPANS_KEPT,
    TAIL_MAX_NS,
    TAIL_NS,
    WAITING_NS,
    BookedTrace,
    classify_fields,
    new_call,
    request_record,
    with_estimates,
)
from latency_ledger.model import Category, Span, SpanKind
from latency_ledger.plugins import ClassifyRule

MAX_TREE_SPANS = 2000  # the shape test is quadratic in a trace's spans
MAX_DEPTH = 100
MAX_SIGNATURES = 50_000
BUCKET_TRACES = 20_000  # traces (about) booked per query
_SERVERS = "('Server', 'SPAN_KIND_SERVER')"
TAIL_KEYS = (TAIL_NS, DELAY_NS, TAIL_MAX_NS)  # vary per span, never classify
_PLAIN = "'^-?[0-9]{1,18}$'"
_CATEGORY_CODE = {Category.DATABASE: 1, Category.NETWORK: 2}

_SIGNATURE = (
    "cityHash64(SpanKind, ServiceName, SpanName, "
    "mapFilter((k, v) -> k NOT IN {tail_keys:Array(String)}, SpanAttributes))"
)


def _plain(attrs: str, key: str) -> str:
    return f"(NOT mapContains({attrs}, '{key}') OR match({attrs}['{key}'], {_PLAIN}))"


# The request span's attributes, per trace, for :func:`tree_shape`.
TREE_AGGREGATES = f"anyIf(SpanAttributes, SpanKind IN {_SERVERS}) AS ra"


def tree_shape() -> str:
    """The per-trace HAVING condition of the trees booked here (over the raw columns and
    :data:`TREE_AGGREGATES`)."""
    request_numbers = " AND ".join(
        _plain("ra", key)
        for key in (CPU_NS, QUEUEING_NS, DATABASE_NS, NETWORK_NS, INTERPRETER_NS, WAITING_NS)
    )
    odd_tails = " OR ".join(
        f"NOT {_plain('SpanAttributes', key)}" for key in (TAIL_NS, DELAY_NS, TAIL_MAX_NS)
    )
    return f"""(count() > 1 AND count() <= {MAX_TREE_SPANS}
    AND uniqExact(SpanId) = count()
    AND countIf(SpanKind IN {_SERVERS}) = 1
    AND arrayCount(p -> p = '' OR NOT has(groupArray(SpanId), p), groupArray(ParentSpanId)) = 1
    AND (anyIf(ParentSpanId, SpanKind IN {_SERVERS}) = ''
         OR NOT has(groupArray(SpanId), anyIf(ParentSpanId, SpanKind IN {_SERVERS})))
    AND countIf({odd_tails}) = 0
    AND NOT mapContains(ra, '{PROFILE}')
    AND (NOT mapContains(ra, '{SPANS_KEPT}') OR ra['{SPANS_KEPT}'] IN ('true', 'false'))
    AND {request_numbers})"""


def classify_signatures(
    connection: Connection,
    table_sql: str,
    chosen: str,
    params: Mapping[str, object],
    rules: Sequence[ClassifyRule],
) -> dict[int, tuple[Category, Any, str, str]] | None:
    """Every distinct non-SERVER span signature -> its wait classification (waits only);
    None when there are more than ``MAX_SIGNATURES``."""
    sql = f"""
SELECT {_SIGNATURE} AS h, any(SpanKind), any(ServiceName), any(SpanName),
       any(mapFilter((k, v) -> k NOT IN {{tail_keys:Array(String)}}, SpanAttributes))
FROM {table_sql}
WHERE {chosen} AND SpanKind NOT IN {_SERVERS}
GROUP BY h
LIMIT {MAX_SIGNATURES + 1}"""
    rows = list(connection.rows(sql, params))
    if len(rows) > MAX_SIGNATURES:
        return None
    waits: dict[int, tuple[Category, Any, str, str]] = {}
    for h, kind, service, name, attrs in rows:
        span = Span(
            trace_id="",
            span_id="",
            parent_span_id="",
            name=name,
            kind=KINDS.get(kind, SpanKind.UNSPECIFIED),
            start_ns=0,
            end_ns=0,
            is_error=False,
            attributes=attributes(attrs),
            service=service or "unknown_service",
        )
        found = classify_fields(span, rules)
        if found is not None:
            waits[int(h)] = found
    return waits


def booked_trees(
    connection: Connection,
    table_sql: str,
    chosen: str,
    params: Mapping[str, object],
    waits: Mapping[int, tuple[Category, Any, str, str]],
) -> Iterator[tuple[Span, BookedTrace, int] | str]:
    """Each tree-shaped trace booked by ClickHouse (its request span, booked requests
    and number of spans), or (a str) the id of one too deep to book here (the caller
    books it in Python)."""
    hashes = list(waits)
    params = {
        **params,
        "sig_h": hashes,
        "sig_c": [_CATEGORY_CODE.get(waits[h][0], 2) for h in hashes],
    }
    columns = "TraceId AS t, SpanId AS id, ParentSpanId AS p"
    sql = f"""
WITH RECURSIVE
shape AS (
    SELECT TraceId AS t, count() AS n, anyIf({SPAN_COLUMNS}, SpanKind IN {_SERVERS}) AS s,
           anyIf(toInt64(Duration), SpanKind IN {_SERVERS}) AS d, {TREE_AGGREGATES}
    FROM {table_sql}
    WHERE {chosen} AND toInt64(Duration) BETWEEN 0 AND {{max_span:Int64}}
      AND cityHash64(TraceId) % {{buckets:UInt64}} = {{bucket:UInt64}}
    GROUP BY TraceId
    HAVING {tree_shape()}
),
spans AS (
    SELECT {columns}, SpanKind IN {_SERVERS} AS server,
           toUnixTimestamp64Nano(Timestamp) AS st, st + toInt64(Duration) AS en,
           {_SIGNATURE} AS h,
           if(server, 0, transform(h, {{sig_h:Array(UInt64)}}, {{sig_c:Array(UInt8)}}, 0)) AS cat,
           greatest(toInt64OrZero(SpanAttributes['{TAIL_NS}']), 0) AS tq,
           greatest(toInt64OrZero(SpanAttributes['{DELAY_NS}']), 0) AS td,
           mapContains(SpanAttributes, '{TAIL_MAX_NS}') AS tb,
           toInt64OrZero(SpanAttributes['{TAIL_MAX_NS}']) AS tm
    FROM {table_sql}
    WHERE {chosen} AND toInt64(Duration) BETWEEN 0 AND {{max_span:Int64}}
      AND TraceId IN (SELECT t FROM shape)
),
booked AS (
    SELECT t, id, st AS lo, least(greatest(st, en), st + {MAX_WALL_NS}) AS hi, hi AS be,
           0 AS depth, false AS under, cat, h, tq, td, tb, tm, st AS s0, en AS e0
    FROM spans WHERE server
    UNION ALL
    SELECT t, id, lo, hi, greatest(lo, least(hi, frontier)) AS be, depth, under, cat, h, tq,
           td, tb, tm, s0, e0
    FROM (
        SELECT c.t AS t, c.id AS id,
               least(greatest(c.st, b.lo), b.hi) AS lo,
               greatest(least(c.en, b.hi), lo) AS hi,
               row_number() OVER siblings AS rank,
               min(lo) OVER (siblings ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier,
               if(rank = 1, b.be, least(b.be, earlier)) AS frontier,
               b.depth + 1 AS depth, b.under OR b.cat != 0 AS under, c.cat AS cat, c.h AS h,
               c.tq AS tq, c.td AS td, c.tb AS tb, c.tm AS tm, c.st AS s0, c.en AS e0
        FROM spans AS c INNER JOIN booked AS b ON c.t = b.t AND c.p = b.id
        WHERE b.depth < {MAX_DEPTH}
        WINDOW siblings AS (PARTITION BY c.t, c.p ORDER BY hi DESC, lo DESC, c.id DESC)
    )
),
waits AS (
    SELECT *, cat != 0 AND NOT under AS top, be - lo AS length, tq + td AS total,
           greatest(e0 - total, lo) AS tail_start,
           if(total > 0 AND be > tail_start, be - tail_start, 0) AS moved,
           length - moved AS kept,
           if(tb AND kept > 0, least(greatest(tm - tq, 0), kept), 0) AS slack
    FROM booked
),
trees AS (
    SELECT t, count() AS reached, max(depth) AS deepest,
           sumIf(length - moved, top AND cat = 1) AS tree_database,
           sumIf(length - moved, top AND cat = 2) AS tree_network,
           sumIf(least(tq, moved), top) AS tree_tails,
           sumIf(slack, top AND cat = 1) AS database_slack,
           sumIf(slack, top AND cat = 2) AS network_slack,
           sumIf(kept, top AND NOT tb) AS unbounded,
           groupArrayIf((h, s0, e0, length - moved), top) AS calls
    FROM waits GROUP BY t
)
SELECT t, s, n, n - reached, deepest, calls, database_slack, network_slack, unbounded,
       {ledger_columns("tree_database", "tree_network", "tree_tails")}, {LEDGER_OUTPUT}
FROM trees INNER JOIN (SELECT t, n, s, d, s.9 AS a FROM shape) AS r USING t"""
    # In buckets of traces (by id), each fetched whole: bounded memory, and no streaming
    # (see ``source.ChdbConnection.all_rows``).
    # Only traces of more than one span can be trees (none: the collector's totals only).
    traces = connection.all_rows(
        f"SELECT count() FROM (SELECT TraceId FROM {table_sql} WHERE {chosen} "
        "GROUP BY TraceId HAVING count() > 1)",
        params,
    )[0][0]
    if not traces:
        return
    buckets = max(1, -(-int(traces) // BUCKET_TRACES))
    rows = (
        row
        for bucket in range(buckets)
        for row in connection.all_rows(sql, {**params, "bucket": bucket, "buckets": buckets})
    )
    for row in rows:
        trace_id, columns, spans, unbooked, deepest, raw_calls, *bounds = row[:9]
        if deepest >= MAX_DEPTH:
            yield trace_id
            continue
        span = to_span(trace_id, columns)
        ledger, from_totals = ledger_of(row[-8:])
        # the tails' bounds and native libraries' threads (ledger._measured), in Python;
        # from totals, the bounds are the request span's own (ledger.ledger_from_totals)
        ledger = with_estimates(ledger, span.attributes, None if from_totals else tuple(bounds))
        calls = () if from_totals else _calls(raw_calls, waits)
        request = request_record(span, ledger, calls=calls, from_totals=from_totals)
        yield span, BookedTrace(requests=(request,), unbooked_spans=unbooked), spans


def _calls(raw: list[Any], waits: Mapping[int, tuple[Category, Any, str, str]]) -> tuple[Any, ...]:
    calls = []
    for h, start, end, booked in raw:
        category, kind, system, target = waits[int(h)]
        calls.append(new_call(category, kind, system, target, start, end, booked))
    calls.sort(key=lambda c: (c.start_ns, c.end_ns, c.target, c.booked_ns))
    return tuple(calls)
