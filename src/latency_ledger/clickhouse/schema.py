"""The OpenTelemetry Collector ``clickhouse`` exporter's ``otel_traces`` table, and a loader.

Contract: :data:`TRACES_DDL` is the table as the exporter creates it
(opentelemetry-collector-contrib, ``exporter/clickhouseexporter/internal/sql_templates/
traces_table.sql``: the same columns, types, indexes and ordering; ``{table}`` is a
backquoted ``db.table``). :func:`load_traces` writes traces into such a table, a batch
of rows at a time through a JSON-lines file, so tests and the benchmark put the same
spans in a table that ``analyze`` reads from files. Nothing in ``analyze`` uses it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable

import msgspec

from latency_ledger.clickhouse.source import param_text
from latency_ledger.clickhouse.spans import to_row
from latency_ledger.model import Trace

TRACES_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

INSERT_SQL = """
INSERT INTO {table} (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind,
    ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode)
SELECT fromUnixTimestamp64Nano(ts), trace, span, parent, name, kind, service, resource,
    attrs, duration, status
FROM file({{path:String}}, JSONEachRow, 'ts Int64, trace String, span String,
    parent String, name String, kind String, service String,
    resource Map(String, String), attrs Map(String, String), duration UInt64,
    status String')
"""

BATCH_SPANS = 200_000


def load_traces(
    session: object,
    traces: Iterable[Trace],
    *,
    table: str = "`default`.`otel_traces`",
    old_names: bool = False,
) -> int:
    """Create ``table`` (if missing) in a chdb ``session`` and insert every span of
    ``traces``; returns the number of spans written."""
    query = session.query  # type: ignore[attr-defined]
    query(TRACES_DDL.format(table=table))
    encode = msgspec.json.Encoder().encode
    written = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spans.jsonl")
        batch: list[bytes] = []

        def flush() -> None:
            with open(path, "wb") as out:
                out.write(b"\n".join(batch))
                out.write(b"\n")
            query(INSERT_SQL.format(table=table), params={"path": param_text(path)})
            batch.clear()

        for trace in traces:
            for span in trace.spans:
                batch.append(encode(to_row(span, old_names=old_names)))
                written += 1
            if len(batch) >= BATCH_SPANS:
                flush()
        if batch:
            flush()
    return written
