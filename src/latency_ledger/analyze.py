"""The offline pipeline: paths -> read -> ledger -> aggregate + findings -> verdict -> Report.

Contract: ``analyze`` streams every trace once and keeps per-endpoint accumulators only,
so memory is bounded by the traces in flight plus compact per-request columns. What
is kept per request, and how the report is made of it, is ``accumulate``'s. It never
raises for bad input: the reader records problems, and they travel in
``Report.inputs``. Deciding what is fatal (nothing readable) is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path

from latency_ledger.accumulate import Accumulation, build_report
from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.clickhouse import PreBooked, is_database_url, read_sources
from latency_ledger.findings import Thresholds
from latency_ledger.ledger import book_trace
from latency_ledger.model import Report, TargetRuntime, Trace
from latency_ledger.plugins import ClassifyRule, load_plugins, plugin_classify_rules
from latency_ledger.read import ReadLimits, ReadStats, read_traces
from latency_ledger.request_filter import RequestFilter
from latency_ledger.verdict import DEFAULT_TARGETS


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyzeOptions:
    targets: tuple[TargetRuntime, ...] = DEFAULT_TARGETS
    thresholds: Thresholds = field(default_factory=Thresholds)
    idle_spans: int = 200_000
    rules: tuple[ClassifyRule, ...] | None = None  # None: plugins' rules + built-in rules
    limits: ReadLimits = field(default_factory=ReadLimits)
    max_endpoints: int = 1000  # more distinct endpoints fold into one "other" row
    given_targets: frozenset[str] = frozenset()  # target names whose factors the user gave
    runtimes: Mapping[str, str] = field(default_factory=dict)  # service ("*": all) -> runtime
    select: RequestFilter = field(default_factory=RequestFilter)  # --since/--until/--service


def default_rules() -> tuple[ClassifyRule, ...]:
    """Plugin rules first (more specific), then the built-in ones."""
    return plugin_classify_rules(load_plugins()) + tuple(DEFAULT_RULES)


def analyze(
    paths: Sequence[str | Path],
    *,
    options: AnalyzeOptions | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Report:
    options = options or AnalyzeOptions()
    rules = options.rules if options.rules is not None else default_rules()
    stats = ReadStats()
    acc = Accumulation(options.thresholds, options.max_endpoints)
    urls = [str(p) for p in paths if is_database_url(str(p))]
    traces: Iterable[Trace | PreBooked] = read_traces(
        [p for p in paths if not is_database_url(str(p))],
        stats=stats,
        idle_spans=options.idle_spans,
        on_bytes=on_bytes,
        limits=options.limits,
    )
    if urls:  # ClickHouse tables (clickhouse/): the database filters and groups spans
        sources = read_sources(urls, stats=stats, select=options.select, limits=options.limits)
        traces = chain(traces, sources)
    keeps = options.select.keeps if options.select.active else None
    for item in traces:
        if isinstance(item, PreBooked):  # booked by ClickHouse (clickhouse/book.py)
            trace, booked = item.trace, item.booked
        else:
            trace, booked = item, book_trace(item, rules=rules)
        if keeps is not None:
            booked = replace(booked, requests=tuple(filter(keeps, booked.requests)))
        acc.add_trace(booked, trace.spans)
    return build_report(acc, stats, options)
