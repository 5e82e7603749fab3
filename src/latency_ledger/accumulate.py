"""Booked requests (and what SERVER spans say about their services) -> a Report.

Contract: :class:`Accumulation` is the whole state the report is computed from, filled
one booked trace (:meth:`Accumulation.add_trace`) or one request
(:meth:`Accumulation.add_request`) at a time, with the per-service side information
(runtime seen on a SERVER span's resource, collector counters, profiles) given through
:meth:`Accumulation.add_server_span` or, by a source that has no ``Span`` records (a
database computing ledgers itself), :meth:`note_runtime` / :meth:`note_collector` /
:meth:`note_profile`. Two accumulations of disjoint sets of traces merge
(:meth:`Accumulation.merge`) into the one a single pass over both would have built, so
several processes can share the work (``analyze --jobs``). :func:`build_report`
turns one accumulation and the reader's counters into the Report; it does not change
the accumulation.

Order: the report does not depend on the order requests arrive in (percentile bands
break ties between equal latencies by the rest of the row, see ``aggregate``), except
(1) which endpoints keep their own row when there are more than ``max_endpoints``
distinct ones, or more than ``endpoint.MAX_SPLITS`` kinds of one catch-all route (both
keep the first seen; a merge applies the receiving side's caps to the other's rows),
and (2) float sums of
sampling weights (``ledger.keep_probability`` other than 1), which may differ in the
last bits. Without sampling weights and within those limits, reports are identical.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import repeat
from typing import TYPE_CHECKING

from latency_ledger.aggregate import Aggregator, EndpointCap, StreamTable
from latency_ledger.endpoint import MAX_SPLITS, OTHER_SPLIT, SPLIT_MARK
from latency_ledger.findings import FindingsAccumulator, Thresholds
from latency_ledger.ledger import PROFILE as PROFILE_ATTRIBUTE
from latency_ledger.ledger import BookedTrace
from latency_ledger.model import (
    Attributes,
    AttributeValue,
    CallRow,
    EndpointStats,
    InputSummary,
    Report,
    Request,
    ServiceRuntime,
    Span,
    SpanKind,
)
from latency_ledger.native import native_finding
from latency_ledger.profiles import ProfileAccumulator
from latency_ledger.read import ReadStats
from latency_ledger.runtime import ASSUMED, UNKNOWN, RuntimeInfo, detect_runtime
from latency_ledger.verdict import decide_verdict

if TYPE_CHECKING:
    from latency_ledger.analyze import AnalyzeOptions

# Counters the in-app collector writes on its SERVER spans (cumulative per process).
COLLECTOR_PREFIX = "ledger.collector."
PROCESS_KEYS = ("process.pid", "service.instance.id")  # the span's, then its resource's
# The process's CPU and the CPU booked to requests over one window (collect/cpu.py):
# deltas, summed over every span that carries them (so over processes too).
PROCESS_CPU = "ledger.process_cpu_ns"
BOOKED_CPU = "ledger.booked_cpu_ns"
# a plugin's share of a request's ledger.overhead_ns: ledger.plugin.<name>.overhead_ns
PLUGIN_PREFIX, PLUGIN_SUFFIX = "ledger.plugin.", ".overhead_ns"
_LEDGER_PREFIX = "ledger."  # what both prefixes start with
MAX_PROBLEMS = 100
_RUNTIME_MEMO = 4096  # resources whose runtime is remembered
MIXED = "mixed"  # overall runtime when services run several: no overall port verdict


class SplitLimiter:
    """At most ``MAX_SPLITS`` endpoints per catch-all route (endpoint.py): a CMS with
    thousands of pages gets its busiest first-seen kinds and one pooled rest."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], set[str]] = {}

    def limit(self, request: Request) -> Request:
        endpoint = self.limit_name(request.service, request.endpoint)
        if endpoint == request.endpoint:
            return request
        return replace(request, endpoint=endpoint)

    def limit_name(self, service: str, endpoint: str) -> str:
        """The endpoint a request of (service, ``endpoint``) goes to."""
        base = endpoint.partition(SPLIT_MARK)[0]
        seen = self._seen.setdefault((service, base), set())
        if endpoint in seen:
            return endpoint
        if len(seen) < MAX_SPLITS:
            seen.add(endpoint)
            return endpoint
        return f"{base}{SPLIT_MARK}{OTHER_SPLIT}"


class Accumulation:
    """Everything a report is computed from; see the module docstring."""

    def __init__(self, thresholds: Thresholds | None = None, max_endpoints: int = 1000) -> None:
        self.aggregator = Aggregator()
        self.cap = EndpointCap(max_endpoints)
        self.splits = SplitLimiter()
        self.streams = StreamTable()
        self.findings = FindingsAccumulator(thresholds or Thresholds())
        self.profiles = ProfileAccumulator()
        # (service, process, counter) -> largest value seen: the counters are cumulative
        # per process, so each process's largest, summed over processes
        self.collector: dict[tuple[str, str, str], int] = {}
        self.runtimes: dict[str, Counter[RuntimeInfo]] = {}
        # id(resource) -> (resource, its runtime); holding the dict keeps its id unique
        self._runtime_of: dict[int, tuple[Attributes, RuntimeInfo]] = {}
        self.unbooked = 0
        self.requests = 0
        self.overhead_ns = 0
        self.overhead_requests = 0
        self.process_cpu_ns = 0
        self.booked_cpu_ns = 0
        # plugin -> the sum of its share of ledger.overhead_ns (per request, summed)
        self.plugin_overhead: Counter[str] = Counter()

    def add_trace(
        self, booked: BookedTrace, spans: Iterable[Span], rows: list[CallRow] | None = None
    ) -> None:
        """One booked trace and its spans (only SERVER spans are looked at); ``rows``:
        the calls of its one request as rows, when booked so (``ledger.book_trace_rows``)."""
        self.unbooked += booked.unbooked_spans
        for request in booked.requests:
            self.add_request(request, rows)
        server = SpanKind.SERVER
        for span in spans:
            if span.kind == server:
                self.add_server_span(span)

    def add_request(self, request: Request, rows: list[CallRow] | None = None) -> None:
        """One request; ``rows``: its calls as rows, given instead of ``request.calls``."""
        request = self.cap.fold(request)
        if request.stream:
            # A stream's duration is how long a client stayed connected, not a
            # latency: listed apart, out of percentiles, findings and verdicts.
            self.streams.add(request)
            return
        self.requests += 1
        if SPLIT_MARK in request.endpoint:
            request = self.splits.limit(request)
        if request.collector_overhead_ns:
            self.overhead_ns += request.collector_overhead_ns
            self.overhead_requests += 1
        self.aggregator.add(request)
        self.findings.add(request, rows)

    def add_server_span(self, span: Span) -> None:
        """What a SERVER span says about its service: runtime, profile, collector counters."""
        resource = span.resource
        # Resources are shared by their spans (one dict per resource): detect once each.
        hit = self._runtime_of.get(id(resource))
        if hit is not None and hit[0] is resource:
            info = hit[1]
        else:
            info = detect_runtime(resource)
            if len(self._runtime_of) >= _RUNTIME_MEMO:
                self._runtime_of.clear()
            self._runtime_of[id(resource)] = (resource, info)
        self.note_runtime(span.service, info)
        attrs = span.attributes
        if PROFILE_ATTRIBUTE in attrs:
            self.profiles.add(span, attrs[PROFILE_ATTRIBUTE])
        # Most SERVER spans carry no ledger.* key: one pass in C says so (a Python step
        # per key was ~70 bytecodes a request).
        if not any(map(str.startswith, attrs, repeat(_LEDGER_PREFIX))):
            keys: Iterable[tuple[str, AttributeValue]] = ()
        else:
            keys = attrs.items()
        for key, value in keys:
            if not key.startswith(_LEDGER_PREFIX):  # most keys: one test, not two
                continue
            if key.startswith(COLLECTOR_PREFIX) and isinstance(value, int):
                self.note_collector(
                    span.service,
                    key.removeprefix(COLLECTOR_PREFIX),
                    value,
                    _process_of(span),
                )
            elif (
                key.startswith(PLUGIN_PREFIX)
                and key.endswith(PLUGIN_SUFFIX)
                and isinstance(value, int)
            ):  # a plugin's share of this request's cost: summed, averaged in build_report
                self.plugin_overhead[key[len(PLUGIN_PREFIX) : -len(PLUGIN_SUFFIX)]] += value
        window = attrs.get(PROCESS_CPU)
        if isinstance(window, int):
            booked = attrs.get(BOOKED_CPU)
            self.note_cpu_window(window, booked if isinstance(booked, int) else 0)

    def note_runtime(self, service: str, info: RuntimeInfo, count: int = 1) -> None:
        """``count`` SERVER spans of ``service`` whose resource says ``info``."""
        runtimes = self.runtimes.get(service)
        if runtimes is None:
            runtimes = self.runtimes[service] = Counter()
        runtimes[info] += count

    def note_collector(self, service: str, counter: str, value: int, process: str = "") -> None:
        """A collector counter (name without ``ledger.collector.``) seen on a SERVER span
        of ``process`` (:func:`_process_of`)."""
        name = (service, process, counter)
        self.collector[name] = max(self.collector.get(name, 0), value)

    def note_cpu_window(self, process_ns: int, booked_ns: int) -> None:
        """One window of the process's CPU and the CPU booked to requests meanwhile."""
        if process_ns > 0:
            self.process_cpu_ns += process_ns
            self.booked_cpu_ns += max(0, booked_ns)

    def note_profile(self, span: Span, raw: AttributeValue) -> None:
        """A request's ``ledger.profile`` attribute (``span``: its SERVER span)."""
        self.profiles.add(span, raw)

    def merge(self, other: Accumulation) -> None:
        """Add ``other``, built from traces disjoint from this one's (another worker's).

        Its rows go through this side's row caps, as its requests would have."""
        streams = {key: self.cap.fold_name(*key, n) for key, n in other.streams.groups()}
        rows = {}
        for key, n in other.aggregator.groups():
            endpoint = self.cap.fold_name(*key, n)
            if SPLIT_MARK in endpoint:
                endpoint = self.splits.limit_name(key[0], endpoint)
            rows[key] = endpoint
        self.cap.merge_counts(other.cap)
        self.aggregator.merge(other.aggregator, rows)
        self.findings.merge(other.findings, rows)
        self.streams.merge(other.streams, streams)
        self.profiles.merge(other.profiles)
        for counter, value in other.collector.items():
            self.collector[counter] = max(self.collector.get(counter, 0), value)
        for service, counted in other.runtimes.items():
            self.runtimes.setdefault(service, Counter()).update(counted)
        self.unbooked += other.unbooked
        self.requests += other.requests
        self.overhead_ns += other.overhead_ns
        self.overhead_requests += other.overhead_requests
        self.process_cpu_ns += other.process_cpu_ns
        self.booked_cpu_ns += other.booked_cpu_ns
        self.plugin_overhead.update(other.plugin_overhead)


def build_report(acc: Accumulation, stats: ReadStats, options: AnalyzeOptions) -> Report:
    """The report of one accumulation and the reader's counters."""
    aggregator, findings, profiles = acc.aggregator, acc.findings, acc.profiles
    rows = aggregator.endpoints()
    services = service_runtimes(acc.runtimes, rows, options.runtimes)
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
    if acc.unbooked:
        skipped["span_outside_any_request"] += acc.unbooked
    skipped.update(profiles.errors)
    collector_totals: Counter[str] = Counter()
    for (_service, _process, key), value in acc.collector.items():
        collector_totals[key] += value
    folded = [line] if (line := acc.cap.problem()) else []
    inputs = InputSummary(
        files=stats.files,
        spans=stats.spans,
        traces=stats.traces,
        requests=acc.requests,
        skipped=dict(sorted(skipped.items())),
        problems=tuple([*folded, *stats.problems][:MAX_PROBLEMS]),
        problem_count=stats.problem_count + len(folded),
        collector=dict(sorted(collector_totals.items())),
        collector_overhead_ns=(
            acc.overhead_ns // acc.overhead_requests if acc.overhead_requests else None
        ),
        process_cpu_ns=acc.process_cpu_ns,
        booked_cpu_ns=acc.booked_cpu_ns,
        # each plugin's share, a mean over the same requests (those that carry a cost)
        plugin_overhead_ns={
            name: total // acc.overhead_requests
            for name, total in sorted(acc.plugin_overhead.items())
            if acc.overhead_requests
        },
        booked_in_database=stats.booked_in_database,
    )
    return Report(
        inputs=inputs,
        overall=overall,
        endpoints=tuple(endpoints),
        streams=acc.streams.streams(),
        services=tuple(services),
    )


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
        # ties broken by every field, so the answer does not depend on arrival order
        info = max(known, key=_runtime_rank)[1] if known else None
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


def _runtime_rank(item: tuple[int, RuntimeInfo]) -> tuple[int, str, str, str]:
    count, info = item
    return count, info.version, info.name, info.detected_from


def overall_runtime(services: Sequence[ServiceRuntime]) -> str:
    """The one runtime all services run (unknown ones judged as CPython), else MIXED."""
    judged = {ASSUMED if s.runtime == UNKNOWN else s.runtime for s in services}
    if len(judged) > 1:
        return MIXED
    if all(s.runtime == UNKNOWN for s in services):
        return UNKNOWN
    return judged.pop() if judged else UNKNOWN


__all__ = [
    "COLLECTOR_PREFIX",
    "MIXED",
    "Accumulation",
    "SplitLimiter",
    "build_report",
    "overall_runtime",
    "service_runtimes",
]


def _process_of(span: Span) -> str:
    """Which process a SERVER span's collector counters were counted in: ``process.pid``
    on the span (our collector writes it beside the counters: a forked worker shares its
    parent's resource), else the resource's ``process.pid`` or ``service.instance.id``;
    "" when nothing says (such counters are taken as one process's)."""
    for attributes in (span.attributes, span.resource):
        for key in PROCESS_KEYS:
            value = attributes.get(key)
            if value is not None and value != "":
                return str(value)
    return ""
