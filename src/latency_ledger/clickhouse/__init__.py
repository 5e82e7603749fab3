"""Analysis where the traces already live: the Collector's ``otel_traces`` in ClickHouse.

Contract: ``analyze`` hands every input that :func:`is_database_url` recognizes to
:func:`read_sources`, which yields its traces like a file reader (``read``): same
``Trace`` records, same ``ReadStats``; a trace ClickHouse booked itself comes as a
``PreBooked`` (trace and booked requests) that is not booked again. A source that
cannot be read (bad URL, server unreachable, no such table, driver missing, a query
failing midway) is one problem line counted under ``unreadable_source``; the other
inputs are still analyzed and the CLI exits non-zero. Modules: ``source`` (URLs,
connections, parameters), ``spans`` (rows <-> spans), ``read`` (the queries), ``book``
(one-span requests' ledgers in SQL), ``tree`` (span trees' ledgers in SQL), ``schema``
(the exporter's DDL and a loader).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from latency_ledger.clickhouse.read import PreBooked
from latency_ledger.clickhouse.source import is_database_url, parse_url
from latency_ledger.errors import LedgerError
from latency_ledger.model import Trace
from latency_ledger.plugins import ClassifyRule
from latency_ledger.read.limits import ReadLimits
from latency_ledger.read.stats import ReadStats, note
from latency_ledger.request_filter import RequestFilter

__all__ = ["UNREADABLE_SOURCE", "PreBooked", "is_database_url", "read_sources"]

UNREADABLE_SOURCE = "unreadable_source"


def read_sources(
    urls: Sequence[str],
    *,
    stats: ReadStats,
    select: RequestFilter,
    limits: ReadLimits,
    rules: Sequence[ClassifyRule],
) -> Iterator[Trace | PreBooked]:
    """Every trace of every ClickHouse source in ``urls``, one source after another."""
    from latency_ledger.clickhouse.read import read_table
    from latency_ledger.clickhouse.source import connect

    for url in urls:
        try:
            source = parse_url(url)
            connection = connect(source)
        except LedgerError as exc:
            note(stats, UNREADABLE_SOURCE, str(exc))
            continue
        try:
            yield from read_table(
                source, connection, stats=stats, select=select, limits=limits, rules=rules
            )
        except LedgerError as exc:
            note(stats, UNREADABLE_SOURCE, str(exc))
        finally:
            connection.close()
