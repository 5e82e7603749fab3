"""Requests booked inside ClickHouse: the shape SQL books exactly.

Contract: :func:`booked_in_sql` yields, for every trace that is one SERVER span (the
in-app collector's default: a request's ``ledger.*`` totals, its child spans not kept;
or a request with no instrumented calls), that span and the ledger ClickHouse computed
for it, equal to what ``ledger.book_trace`` books for the same span (a test compares
them). :data:`SQL_SHAPE` is the condition that chooses such traces, so the per-trace
reader (``read``) takes all others. A trace is booked in SQL only when every numeric
``ledger.*`` value it carries is a plain decimal of at most 18 digits, its
``ledger.spans_kept`` is absent, ``true`` or ``false``, and it has no ``ledger.profile``
(the native split is parsed in Python): anything else goes to Python whole.

The request record around the ledger (endpoint name, status, stream, weights) is made
in Python from the span's attributes (``ledger.request_record``); the ledger parts are
ClickHouse's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from latency_ledger.clickhouse.source import Connection
from latency_ledger.clickhouse.spans import SPAN_COLUMNS, to_span
from latency_ledger.ledger import (
    _TOTALS,
    CPU_NS,
    DATABASE_NS,
    INTERPRETER_NS,
    MAX_WALL_NS,
    NETWORK_NS,
    PROFILE,
    QUEUEING_NS,
    SPANS_KEPT,
    WAITING_NS,
    BookedTrace,
    request_record,
    with_estimates,
)
from latency_ledger.model import Ledger, Span

_NUMERIC = (CPU_NS, QUEUEING_NS, DATABASE_NS, NETWORK_NS, INTERPRETER_NS, WAITING_NS)


def _has(key: str) -> str:
    return f"mapContains(a, '{key}')"


def _num(key: str) -> str:
    """The attribute as Nullable(Int64): NULL when absent (eligibility rules out the rest)."""
    return f"if({_has(key)}, toInt64OrNull(a['{key}']), NULL)"


_plain_numbers = " AND ".join(
    f"(NOT {_has(key)} OR match(a['{key}'], '^-?[0-9]{{1,18}}$'))" for key in _NUMERIC
)
# Per trace: its spans, and (when one) that span's kind, attributes and duration.
SHAPE_AGGREGATES = (
    "count() AS n, any(SpanKind) AS k, any(SpanAttributes) AS a, any(toInt64(Duration)) AS d"
)
SQL_SHAPE = (
    "(n = 1 AND k IN ('Server', 'SPAN_KIND_SERVER') "
    f"AND NOT {_has(PROFILE)} "
    f"AND (NOT {_has(SPANS_KEPT)} OR a['{SPANS_KEPT}'] IN ('true', 'false')) "
    f"AND {_plain_numbers})"
)

_FROM_TOTALS = f"(a['{SPANS_KEPT}'] = 'false' AND ({' OR '.join(_has(k) for k in _TOTALS)}))"


def ledger_columns(database: str = "0", network: str = "0", tails: str = "0") -> str:
    """ledger.ledger_from_totals, split_own_time and _measured, written again in SQL, over
    the request span's duration ``d`` and attributes ``a``; ``database``, ``network`` and
    ``tails`` are what its span tree booked (ignored when it is booked from totals).
    Ends with the :data:`LEDGER_OUTPUT` columns' inputs."""
    return f"""
    least(greatest(d, 0), {MAX_WALL_NS}) AS wall,
    {_FROM_TOTALS} AS from_totals,
    if(from_totals, least(greatest(ifNull({_num(DATABASE_NS)}, 0), 0), wall), {database})
        AS database,
    if(from_totals, least(greatest(ifNull({_num(NETWORK_NS)}, 0), 0), wall - database),
       {network}) AS network,
    wall - database - network AS own,
    if(from_totals,
       if(isNull({_num(INTERPRETER_NS)}) AND isNull({_num(CPU_NS)}),
          if(isNull({_num(WAITING_NS)}), NULL,
             own - least(greatest(assumeNotNull({_num(WAITING_NS)}), 0), own)),
          ifNull({_num(INTERPRETER_NS)}, {_num(CPU_NS)})),
       {_num(CPU_NS)}) AS cpu,
    least(greatest(ifNull(cpu, 0), 0), own) AS interpreter,
    own - interpreter AS waiting,
    least(greatest(greatest(ifNull({_num(QUEUEING_NS)}, 0), if(from_totals, 0, {tails})), 0),
          waiting) AS queueing"""


# The ledger as eight columns, read back by :func:`ledger_of`.
LEDGER_OUTPUT = (
    "database, network, if(isNull(cpu), 0, interpreter), if(isNull(cpu), 0, waiting), "
    "if(isNull(cpu), own, 0), if(isNull(cpu), 0, queueing), NOT isNull(cpu), from_totals"
)


def ledger_of(columns: list[Any]) -> tuple[Ledger, bool]:
    """The :data:`LEDGER_OUTPUT` columns -> (Ledger, booked from totals)."""
    db, net, interp, waiting, app, queueing, measured, from_totals = columns
    ledger = Ledger(
        database_ns=db,
        network_ns=net,
        interpreter_ns=interp,
        waiting_ns=waiting,
        app_ns=app,
        queueing_ns=queueing,
        cpu_measured=bool(measured),
    )
    return ledger, bool(from_totals)


def booked_in_sql(
    connection: Connection, table_sql: str, chosen: str, params: Mapping[str, object]
) -> Iterator[tuple[Span, BookedTrace]]:
    """Each one-SERVER-span trace the filter ``chosen`` selects, booked by ClickHouse."""
    sql = f"""
SELECT t, s, {ledger_columns()}, {LEDGER_OUTPUT}
FROM (
    SELECT TraceId AS t, {SHAPE_AGGREGATES}, any({SPAN_COLUMNS}) AS s
    FROM {table_sql}
    WHERE {chosen} AND toInt64(Duration) BETWEEN 0 AND {{max_span:Int64}}
    GROUP BY TraceId
)
WHERE {SQL_SHAPE}"""
    for row in connection.rows(sql, params):
        span = to_span(row[0], row[1])
        ledger, from_totals = ledger_of(row[-8:])
        # the tails' bounds and native libraries' threads (ledger._measured), in Python
        ledger = with_estimates(ledger, span.attributes)
        request = request_record(span, ledger, from_totals=from_totals)
        yield span, BookedTrace(requests=(request,), unbooked_spans=0)
