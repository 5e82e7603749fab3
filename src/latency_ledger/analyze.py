"""The offline pipeline: paths -> read -> ledger -> aggregate + findings -> verdict -> Report.

Contract: ``analyze`` streams every trace once and keeps per-endpoint accumulators only,
so memory is bounded by the traces in flight plus compact per-request columns. What
is kept per request, and how the report is made of it, is ``accumulate``'s. It never
raises for bad input: the reader records problems, and they travel in
``Report.inputs``. Deciding what is fatal (nothing readable) is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from latency_ledger.accumulate import Accumulation, build_report
from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.findings import Thresholds
from latency_ledger.ledger import book_trace
from latency_ledger.model import Report, TargetRuntime
from latency_ledger.plugins import ClassifyRule, load_plugins, plugin_classify_rules
from latency_ledger.read import ReadLimits, ReadStats, read_traces
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
    traces = read_traces(
        paths,
        stats=stats,
        idle_spans=options.idle_spans,
        on_bytes=on_bytes,
        limits=options.limits,
    )
    for trace in traces:
        acc.add_trace(book_trace(trace, rules=rules), trace.spans)
    return build_report(acc, stats, options)
