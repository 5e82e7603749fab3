"""The offline pipeline: paths -> read -> ledger -> aggregate + findings -> verdict -> Report.

Contract: ``analyze`` streams every trace once and keeps per-endpoint accumulators only,
so memory is bounded by the traces in flight plus compact per-request columns, up to
``sketch.EXACT_LIMIT`` requests an endpoint (then a sketch: it does not grow). What
is kept per request, and how the report is made of it, is ``accumulate``'s. It never
raises for bad input: the reader records problems, and they travel in
``Report.inputs``. Deciding what is fatal (nothing readable) is the CLI's job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from latency_ledger.accumulate import Accumulation, build_report
from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.clickhouse import PreBooked, is_database_url, read_sources
from latency_ledger.findings import Thresholds
from latency_ledger.ledger import BookedTrace, ClassifyMemo, book_trace, book_trace_rows
from latency_ledger.model import Report, TargetRuntime, Trace
from latency_ledger.plugins import ClassifyRule, load_plugins, plugin_classify_rules
from latency_ledger.read import ReadLimits, ReadStats, read_traces, total_input_bytes
from latency_ledger.read.assemble import Assembler, OutOfOrder
from latency_ledger.read.fast import read_rows
from latency_ledger.request_filter import RequestFilter
from latency_ledger.spill import decompressed_bytes, partitions_for, spilled_traces
from latency_ledger.verdict import DEFAULT_TARGETS

PARALLEL_BYTES = 50 << 20  # inputs larger than this use every core by default


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
    # worker processes; None: every core for inputs over PARALLEL_BYTES, else 1
    jobs: int | None = None
    # spans of open traces before the input counts as out of order (0: 2 * idle_spans)
    max_buffered_spans: int = 0
    reference: bool = False  # the plain one-pass reader and booker (tests compare)


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
    urls = [str(p) for p in paths if is_database_url(str(p))]
    files = [p for p in paths if not is_database_url(str(p))]
    if options.reference:
        acc, stats = _reference(files, options, rules, on_bytes)
    else:
        jobs = options.jobs or default_jobs(files)
        if jobs > 1:
            from latency_ledger.parallel import analyze_parallel

            acc, stats = analyze_parallel(files, options, rules, jobs, on_bytes)
        else:
            acc, stats = analyze_share(files, options, rules, (0, 1), on_bytes)
    if urls:  # ClickHouse tables (clickhouse/): the database filters and groups spans
        sources = read_sources(
            urls, stats=stats, select=options.select, limits=options.limits, rules=rules
        )
        for item in sources:
            if isinstance(item, PreBooked):  # booked by ClickHouse (clickhouse/book.py)
                _add(acc, item.trace, options, rules, booked=item.booked)
                stats.booked_in_database += sum(
                    not r.stream and (not options.select.active or options.select.keeps(r))
                    for r in item.booked.requests
                )
            else:
                _add(acc, item, options, rules)
    return build_report(acc, stats, options)


def _add(
    acc: Accumulation,
    trace: Trace,
    options: AnalyzeOptions,
    rules: Sequence[ClassifyRule],
    memo: ClassifyMemo | None = None,
    booked: BookedTrace | None = None,
) -> None:
    """Book one trace (unless ``booked`` already) and add it, keeping only the requests
    ``options.select`` keeps. With a memo, a flat trace's calls reach the findings as
    rows (``book_trace_rows``), never as Call records."""
    rows = None
    if booked is None:
        if memo is not None:
            booked, rows = book_trace_rows(trace, rules=rules, memo=memo)
        else:
            booked = book_trace(trace, rules=rules)
    if options.select.active:
        booked = replace(booked, requests=tuple(filter(options.select.keeps, booked.requests)))
    acc.add_trace(booked, trace.spans, rows)


def default_jobs(paths: Sequence[str | Path]) -> int:
    """Every core this process may use for inputs over :data:`PARALLEL_BYTES`, else 1."""
    if total_input_bytes(paths) <= PARALLEL_BYTES:
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def analyze_share(
    paths: Sequence[str | Path],
    options: AnalyzeOptions,
    rules: Sequence[ClassifyRule],
    share: tuple[int, int],
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[Accumulation, ReadStats]:
    """The accumulation of worker ``share[0]``'s traces (of ``share[1]``): one streaming
    pass while the input is in trace order; on the first span that pass cannot join
    (a late span, or too many spans of open traces), start over grouping by trace id
    through spill files (``spill``), so every trace is whole either way.

    A late span is recognized while its trace is among the last 100,000 let out
    (``Assembler``'s memory); one later than that starts a trace of its own (usually
    counted as ``span_outside_any_request``: its request span is elsewhere)."""
    memo = ClassifyMemo()
    stats = ReadStats()
    acc = Accumulation(options.thresholds, options.max_endpoints)
    budget = options.max_buffered_spans or 2 * options.idle_spans
    assembler = Assembler(
        stats,
        idle_spans=options.idle_spans,
        strict=True,
        max_buffered=budget,
        rows_as_spans=True,
    )
    seen = [0]  # bytes reported so far: a second pass reports only past them

    def counted(n: int) -> None:
        seen[0] += n
        if on_bytes is not None:
            on_bytes(n)

    try:
        for rows in read_rows(
            paths, stats=stats, on_bytes=counted, limits=options.limits, share=share
        ):
            for trace in assembler.add(rows):
                _add(acc, trace, options, rules, memo)
        for trace in assembler.finish():
            _add(acc, trace, options, rules, memo)
        return acc, stats
    except OutOfOrder:
        pass
    del assembler
    stats = ReadStats()
    acc = Accumulation(options.thresholds, options.max_endpoints)
    reported = seen[0]
    seen[0] = 0

    def again(n: int) -> None:
        before = seen[0]
        seen[0] += n
        if on_bytes is not None and seen[0] > reported:
            on_bytes(seen[0] - max(before, reported))

    partitions = partitions_for(decompressed_bytes(paths) // share[1])
    for trace in spilled_traces(
        paths,
        stats=stats,
        partitions=partitions,
        limits=options.limits,
        share=share,
        on_bytes=again,
    ):
        _add(acc, trace, options, rules, memo)
    stats.regrouped = True
    return acc, stats


def _reference(
    paths: Sequence[str | Path],
    options: AnalyzeOptions,
    rules: Sequence[ClassifyRule],
    on_bytes: Callable[[int], None] | None,
) -> tuple[Accumulation, ReadStats]:
    """The plain one-pass path: ``read_traces`` (reference reader; late spans start
    partial traces) and ``book_trace`` without a memo."""
    stats = ReadStats()
    acc = Accumulation(options.thresholds, options.max_endpoints)
    traces = read_traces(
        paths,
        stats=stats,
        idle_spans=options.idle_spans,
        on_bytes=on_bytes,
        limits=options.limits,
    )
    for trace in traces:
        _add(acc, trace, options, rules)
    return acc, stats
