"""A ClickHouse ``otel_traces`` table -> ``model.Trace`` records, one per trace id.

Contract: :func:`read_table` runs one query that filters, projects and groups spans by
trace inside ClickHouse (a cluster shares that work) and yields each trace as the file
readers do, so the ledger books it with the same code; traces of the shape ClickHouse
books exactly (``book.SQL_SHAPE``: one SERVER span) come booked, as :class:`PreBooked`.
Only the columns the ledger reads travel (:data:`spans.SPAN_COLUMNS`). With a
:class:`RequestFilter`, only traces holding a span that started in the window (of the
services asked for) are fetched, whole, plus every other span of theirs within a day of
the window (no span is longer, see ``ReadLimits.max_span_ns``); the filter itself is
applied to the booked requests. Spans longer than ``max_span_ns`` are skipped and
counted (``implausible_duration``), as the file readers do. Errors (server, table,
driver) raise ``LedgerError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from latency_ledger.clickhouse.book import SHAPE_AGGREGATES, SQL_SHAPE, booked_in_sql
from latency_ledger.clickhouse.source import Connection, Source
from latency_ledger.clickhouse.spans import RUNTIME_KEYS, SPAN_COLUMNS, to_span
from latency_ledger.clickhouse.tree import (
    TAIL_KEYS,
    TREE_AGGREGATES,
    booked_trees,
    classify_signatures,
    tree_shape,
)
from latency_ledger.ledger import BookedTrace
from latency_ledger.model import Trace
from latency_ledger.plugins import ClassifyRule
from latency_ledger.read.limits import ReadLimits
from latency_ledger.read.stats import ReadStats, note
from latency_ledger.request_filter import RequestFilter

_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True, slots=True, kw_only=True)
class PreBooked:
    """A trace whose requests ClickHouse booked (``book``): not booked again."""

    trace: Trace
    booked: BookedTrace


def where(select: RequestFilter, table_sql: str) -> tuple[str, dict[str, object]]:
    """The WHERE clause choosing the traces ``select`` can keep, and its parameters."""
    conditions = ["TraceId != ''"]
    params: dict[str, object] = {}
    inner: list[str] = []
    if select.since_ns is not None:
        params["since"] = select.since_ns
        params["since_wide"] = max(0, select.since_ns - _DAY_NS)
        inner.append("Timestamp >= fromUnixTimestamp64Nano({since:Int64})")
        conditions.append("Timestamp >= fromUnixTimestamp64Nano({since_wide:Int64})")
    if select.until_ns is not None:
        params["until"] = select.until_ns
        params["until_wide"] = select.until_ns + _DAY_NS
        inner.append("Timestamp < fromUnixTimestamp64Nano({until:Int64})")
        conditions.append("Timestamp < fromUnixTimestamp64Nano({until_wide:Int64})")
    if select.services:
        params["services"] = sorted(select.services)
        inner.append("ServiceName IN {services:Array(String)}")
    if inner:
        conditions.append(
            f"TraceId IN (SELECT TraceId FROM {table_sql} WHERE {' AND '.join(inner)})"
        )
    return " AND ".join(conditions), params


def read_table(
    source: Source,
    connection: Connection,
    *,
    stats: ReadStats,
    select: RequestFilter,
    limits: ReadLimits,
    rules: Sequence[ClassifyRule],
) -> Iterator[Trace | PreBooked]:
    """Every trace of ``source`` the filter may keep (see the module contract): first
    those ClickHouse booked itself (``book``), then the rest, grouped, for Python."""
    chosen, params = where(select, source.table_sql)
    params["max_span"] = limits.max_span_ns
    params["runtime_keys"] = list(RUNTIME_KEYS)
    params["tail_keys"] = list(TAIL_KEYS)
    counted = list(
        connection.rows(
            f"SELECT count() FROM {source.table_sql} "
            f"WHERE {chosen} AND toInt64(Duration) > {{max_span:Int64}}",
            params,
        )
    )
    too_long = counted[0][0]
    if too_long:
        note(
            stats,
            "implausible_duration",
            f"{source.shown}: {too_long:,} spans last longer than max_span_ns (skipped)",
            int(too_long),
        )
    stats.files += 1
    for span, booked in booked_in_sql(connection, source.table_sql, chosen, params):
        stats.spans += 1
        stats.traces += 1
        yield PreBooked(trace=Trace(trace_id=span.trace_id, spans=(span,)), booked=booked)
    left = f"NOT {SQL_SHAPE}"
    waits = classify_signatures(connection, source.table_sql, chosen, params, rules)
    if waits is not None:
        deep: list[str] = []
        for item in booked_trees(connection, source.table_sql, chosen, params, waits):
            if isinstance(item, str):
                deep.append(item)
                continue
            span, booked, count = item
            stats.traces += 1
            stats.spans += count
            yield PreBooked(trace=Trace(trace_id=span.trace_id, spans=(span,)), booked=booked)
        params = {**params, "deep": deep}
        left += f" AND (NOT {tree_shape()} OR TraceId IN {{deep:Array(String)}})"
    spans_chosen = f"{chosen} AND toInt64(Duration) BETWEEN 0 AND {{max_span:Int64}}"
    # The traces left to Python are chosen on a few aggregates first, so that only theirs
    # are gathered into span lists.
    left_ids = (
        f"SELECT TraceId FROM (SELECT TraceId, {SHAPE_AGGREGATES}, {TREE_AGGREGATES} "
        f"FROM {source.table_sql} WHERE {spans_chosen} GROUP BY TraceId HAVING {left})"
    )
    sql = (
        f"SELECT TraceId, groupArray({SPAN_COLUMNS}) FROM {source.table_sql} "
        f"WHERE {spans_chosen} AND TraceId IN ({left_ids}) GROUP BY TraceId"
    )
    for trace_id, rows in connection.rows(sql, params):
        spans = tuple(to_span(trace_id, row) for row in rows)
        stats.spans += len(spans)
        stats.traces += 1
        yield Trace(trace_id=spans[0].trace_id, spans=spans)
