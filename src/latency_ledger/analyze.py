"""The offline pipeline: paths -> read -> ledger -> aggregate + findings -> verdict -> Report.

Contract: ``analyze`` streams every trace once and keeps per-endpoint accumulators only,
so memory is bounded by the traces in flight plus compact per-request columns. It never
raises for bad input: the reader records problems, and they travel in
``Report.inputs``. Deciding what is fatal (nothing readable) is the CLI's job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from latency_ledger.aggregate import Aggregator, EndpointCap, StreamTable
from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.endpoint import MAX_SPLITS, OTHER_SPLIT, SPLIT_MARK
from latency_ledger.findings import FindingsAccumulator, Thresholds
from latency_ledger.ledger import PROFILE as PROFILE_ATTRIBUTE
from latency_ledger.ledger import book_trace
from latency_ledger.model import (
    EndpointStats,
    InputSummary,
    Report,
    Request,
    ServiceRuntime,
    SpanKind,
    TargetRuntime,
)
from latency_ledger.native import native_finding
from latency_ledger.plugins import ClassifyRule, load_plugins, plugin_classify_rules
from latency_ledger.profiles import ProfileAccumulator
from latency_ledger.read import ReadLimits, ReadStats, read_traces
from latency_ledger.runtime import ASSUMED, UNKNOWN, RuntimeInfo, detect_runtime
from latency_ledger.verdict import DEFAULT_TARGETS, decide_verdict

# Counters the in-app collector writes on its SERVER spans (cumulative per process).
COLLECTOR_PREFIX = "ledger.collector."
MAX_PROBLEMS = 100


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
    aggregator = Aggregator()
    cap = EndpointCap(options.max_endpoints)
    streams = StreamTable()
    findings = FindingsAccumulator(options.thresholds)
    profiles = ProfileAccumulator()
    collector: dict[tuple[str, str], int] = {}
    unbooked = 0
    requests = 0
    overhead_ns = overhead_requests = 0
    seen_runtimes: dict[str, Counter[RuntimeInfo]] = {}
    splits = SplitLimiter()

    traces = read_traces(
        paths,
        stats=stats,
        idle_spans=options.idle_spans,
        on_bytes=on_bytes,
        limits=options.limits,
    )
    for trace in traces:
        booked = book_trace(trace, rules=rules)
        unbooked += booked.unbooked_spans
        for request in booked.requests:
            request = cap.fold(request)
            if request.stream:
                # A stream's duration is how long a client stayed connected, not a
                # latency: listed apart, out of percentiles, findings and verdicts.
                streams.add(request)
                continue
            requests += 1
            if SPLIT_MARK in request.endpoint:
                request = splits.limit(request)
            if request.collector_overhead_ns:
                overhead_ns += request.collector_overhead_ns
                overhead_requests += 1
            aggregator.add(request)
            findings.add(request)
        # Collector counters and profiles ride on SERVER spans; only those are looked at.
        for span in trace.spans:
            if span.kind != SpanKind.SERVER:
                continue
            runtimes = seen_runtimes.get(span.service)
            if runtimes is None:
                runtimes = seen_runtimes[span.service] = Counter()
            runtimes[detect_runtime(span.resource)] += 1
            attrs = span.attributes
            if PROFILE_ATTRIBUTE in attrs:
                profiles.add(span, attrs[PROFILE_ATTRIBUTE])
            for key, value in attrs.items():
                if key.startswith(COLLECTOR_PREFIX) and isinstance(value, int):
                    # Cumulative per process: the largest value seen per service is the total.
                    name = (span.service, key.removeprefix(COLLECTOR_PREFIX))
                    collector[name] = max(collector.get(name, 0), value)

    rows = aggregator.endpoints()
    services = service_runtimes(seen_runtimes, rows, options.runtimes)
    runtime_of = {s.service: s.runtime for s in services}
    endpoints = []
    for stats_row in rows:
        found = findings.findings(
            stats_row.service,
            stats_row.endpoint,
            stats_row.count,
            stats_row.latency_ns.get("p50", 0),
        )
        stats_row = replace(
            stats_row,
            profile=profiles.summary(stats_row.service, stats_row.endpoint),
            runtime=runtime_of.get(stats_row.service, UNKNOWN),
        )
        native = native_finding(stats_row)
        if native is not None:
            found = tuple(sorted((*found, native), key=lambda f: -f.saving_ns_per_request))
        endpoints.append(
            replace(
                stats_row,
                findings=found,
                verdict=decide_verdict(
                    stats_row, found, targets=options.targets, given=options.given_targets
                ),
            )
        )
    overall_row = replace(aggregator.overall(), runtime=overall_runtime(services))
    overall_findings = findings.overall(
        {(e.service, e.endpoint): e.count for e in endpoints},
        overall_row.count,
        overall_row.latency_ns.get("p50", 0),
    )
    overall = replace(
        overall_row,
        findings=overall_findings,
        verdict=(
            decide_verdict(
                overall_row, overall_findings, targets=options.targets, given=options.given_targets
            )
            if overall_row.count and overall_row.runtime != MIXED
            else None
        ),
    )

    skipped = Counter(stats.skipped)
    if unbooked:
        skipped["span_outside_any_request"] += unbooked
    skipped.update(profiles.errors)
    collector_totals: Counter[str] = Counter()
    for (_service, key), value in collector.items():
        collector_totals[key] += value
    folded = [line] if (line := cap.problem()) else []
    inputs = InputSummary(
        files=stats.files,
        spans=stats.spans,
        traces=stats.traces,
        requests=requests,
        skipped=dict(sorted(skipped.items())),
        problems=tuple([*folded, *stats.problems][:MAX_PROBLEMS]),
        problem_count=stats.problem_count + len(folded),
        collector=dict(sorted(collector_totals.items())),
        collector_overhead_ns=overhead_ns // overhead_requests if overhead_requests else None,
    )
    return Report(
        inputs=inputs,
        overall=overall,
        endpoints=tuple(endpoints),
        streams=streams.streams(),
        services=tuple(services),
    )


class SplitLimiter:
    """At most ``MAX_SPLITS`` endpoints per catch-all route (endpoint.py): a CMS with
    thousands of pages gets its busiest first-seen kinds and one pooled rest."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], set[str]] = {}

    def limit(self, request: Request) -> Request:
        base = request.endpoint.partition(SPLIT_MARK)[0]
        seen = self._seen.setdefault((request.service, base), set())
        if request.endpoint in seen:
            return request
        if len(seen) < MAX_SPLITS:
            seen.add(request.endpoint)
            return request
        return replace(request, endpoint=f"{base}{SPLIT_MARK}{OTHER_SPLIT}")


MIXED = "mixed"  # overall runtime when services run several: no overall port verdict


def service_runtimes(
    seen: Mapping[str, Counter[RuntimeInfo]],
    rows: Sequence[EndpointStats],
    overrides: Mapping[str, str],
) -> list[ServiceRuntime]:
    """Each service's runtime: the one most of its SERVER spans' resources report, unless
    ``overrides`` names it (or ``"*"``); ordered by requests, most first."""
    requests: Counter[str] = Counter()
    for row in rows:
        requests[row.service] += row.count
    out = []
    for service in sorted(requests, key=lambda s: (-requests[s], s)):
        given = overrides.get(service) or overrides.get("*")
        if given:
            out.append(
                ServiceRuntime(
                    service=service,
                    runtime=given,
                    detected_from="--runtime",
                    requests=requests[service],
                )
            )
            continue
        counted = seen.get(service, Counter())
        known = [(n, info) for info, n in counted.items() if info.name != UNKNOWN]
        info = max(known, key=lambda item: (item[0], item[1].version))[1] if known else None
        out.append(
            ServiceRuntime(
                service=service,
                runtime=info.name if info else UNKNOWN,
                version=info.version if info else "",
                detected_from=info.detected_from if info else "",
                requests=requests[service],
            )
        )
    return out


def overall_runtime(services: Sequence[ServiceRuntime]) -> str:
    """The one runtime all services run (unknown ones judged as CPython), else MIXED."""
    judged = {ASSUMED if s.runtime == UNKNOWN else s.runtime for s in services}
    if len(judged) > 1:
        return MIXED
    if all(s.runtime == UNKNOWN for s in services):
        return UNKNOWN
    return judged.pop() if judged else UNKNOWN
