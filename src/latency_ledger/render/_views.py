"""A finished report -> the records the HTML templates read: every figure as display text.

Contract: pure functions from :mod:`latency_ledger.model` records to frozen view
records whose fields are strings already formatted (``_format``: milliseconds,
percentages, counts, names), the few numbers the page sorts or draws by, and the SVG
bars (:mod:`._svg`). :func:`endpoint_view` is one endpoint's row and section (ledger at
p50 and p99, findings ranked as the verdict ranked its fixes, the verdict and its
projections, the profile), also used for the overall row; :func:`inputs_view` is how
the numbers were obtained; :func:`target_names` and :func:`legend` are the page's
column and colour keys. Strings from traces stay plain ``str`` here: the templates
escape them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from markupsafe import Markup

from latency_ledger.model import EndpointStats, Finding, ProfileSummary, Report, Verdict

from . import _format as fmt
from ._svg import PART_ORDER, Part, bar_svg, share_svg

_VERDICT_ORDER = {"dont_migrate": 0, "marginal": 1, "migration_could_pay": 2}
_BUCKET_NAMES = {
    "framework": "framework",
    "validation_serialization": "validation + serialization",
    "validation": "validation + serialization",
    "serialization": "validation + serialization",
    "orm": "ORM",
    "application": "application",
    "app": "application",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Ledger:
    quantile: str
    latency: str
    parts: tuple[Part, ...]
    bar: Markup


@dataclass(frozen=True, slots=True, kw_only=True)
class _FindingView:
    name: str
    kind: str
    detail: str
    target: str
    is_sql: bool
    stats: str
    saving: str
    concurrent: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _ProjectionView:
    target: str
    factor: str
    factor_range: str
    source: str
    p50: str
    p99: str
    p50_saving: str
    p50_saving_pct: str
    p50_saving_range: str
    p99_saving: str
    p99_saving_pct: str
    mean_saving: str
    requests_per_core: str
    p50_saving_fraction: float


@dataclass(frozen=True, slots=True, kw_only=True)
class _VerdictView:
    label: str
    label_name: str
    confidence: str
    summary: str
    upper_bound: bool
    projections: tuple[_ProjectionView, ...]
    cpu_per_request: str | None
    requests_per_core: str
    reasons: tuple[str, ...]
    order: int
    runtime: str
    not_offered: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _ProfileView:
    samples: str
    buckets: tuple[tuple[str, str, Markup], ...]
    top: tuple[tuple[str, str], ...]
    native: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _EndpointView:
    anchor: str
    service: str
    endpoint: str
    count: int
    count_text: str
    errors_text: str
    error_fraction: float
    cpu_measured: bool
    from_totals: int
    latency: Mapping[str, str]
    latency_ns: Mapping[str, int]
    shown: tuple[_Ledger, ...]  # p50 and p99, the two the page draws
    ledger_rows: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]
    shares_p50: Mapping[str, float]
    queueing: str | None
    findings: tuple[_FindingView, ...]
    verdict: _VerdictView | None
    savings: Mapping[str, float]  # target name -> p50 saving fraction
    profile: _ProfileView | None
    native: str | None  # how the CPU split into interpreter and native was measured
    estimates: tuple[str, ...]  # the estimated figures' bounds (_format.bound_notes)


def endpoint_view(stats: EndpointStats, anchor: str) -> _EndpointView:
    shown = tuple(
        _ledger_view(q, stats.latency_ns.get(q, 0), stats.ledger_ns[q])
        for q in ("p50", "p99")
        if q in stats.ledger_ns
    )
    rows = []
    for part in shown[0].parts if shown else ():
        cells = tuple(
            next(((x.ms, x.share) for x in q.parts if x.key == part.key), ("–", "–")) for q in shown
        )
        rows.append((part.key, part.name, cells))
    verdict = None if stats.verdict is None else _verdict_view(stats.verdict)
    queueing = None
    if stats.queueing_ns.get("p50"):
        queueing = fmt.ms(stats.queueing_ns["p50"])
    return _EndpointView(
        anchor=anchor,
        service=stats.service,
        endpoint=stats.endpoint,
        count=stats.count,
        count_text=fmt.count(stats.count),
        errors_text=fmt.count(stats.errors),
        error_fraction=stats.errors / stats.count if stats.count else 0.0,
        cpu_measured=stats.cpu_measured,
        from_totals=stats.from_totals,
        latency={k: fmt.ms(v) for k, v in stats.latency_ns.items()},
        latency_ns=dict(stats.latency_ns),
        shown=shown,
        ledger_rows=tuple(rows),
        shares_p50=fmt.shares(dict(stats.ledger_ns.get("p50", {}))),
        queueing=queueing,
        findings=_findings_view(stats),
        verdict=verdict,
        savings={}
        if stats.verdict is None
        else {p.target.name: p.p50_saving_fraction for p in stats.verdict.projections},
        profile=None if stats.profile is None else _profile_view(stats.profile),
        native=_native_text(stats),
        estimates=tuple(
            fmt.bound_notes(
                dict(stats.wait_bounds_ns.get("p50", {})),
                dict(stats.ledger_ns.get("p50", {})),
                (stats.native_threads.cpu_ns_per_request, stats.native_threads.max_ns_per_request)
                if stats.native_threads
                else None,
            )
        ),
    )


def _native_text(stats: EndpointStats) -> str | None:
    native = stats.native
    if native is None:
        return None
    low, high = fmt.pct(native.cpu_fraction_low), fmt.pct(native.cpu_fraction_high)
    text = (
        f"CPU split: {fmt.pct(native.cpu_fraction)} native code (range {low}-{high}), "
        f"measured on {fmt.count(native.profiled)} profiled requests"
    )
    if native.estimated:
        text += f" and extended to {fmt.count(native.estimated)} others by that share"
    return text + ". A port shrinks interpreter CPU only."


def _ledger_view(quantile: str, latency_ns: int, parts_ns: Mapping[str, int]) -> _Ledger:
    parts = dict(parts_ns)
    share = fmt.shares(parts)
    views = tuple(
        Part(
            key=k,
            name=fmt.PART_NAMES.get(k, k),
            ms=fmt.ms(parts[k]),
            share=fmt.pct(share[k]),
            fraction=share[k],
        )
        for k in _ordered(parts)
    )
    return _Ledger(
        quantile=quantile,
        latency=fmt.ms(latency_ns),
        parts=views,
        bar=bar_svg(views, f"ledger at {quantile}, {fmt.ms(latency_ns)}"),
    )


def _ordered(parts: Mapping[str, int]) -> list[str]:
    known = [k for k in PART_ORDER if k in parts]
    return known + sorted(k for k in parts if k not in PART_ORDER)


def _findings_view(stats: EndpointStats) -> tuple[_FindingView, ...]:
    """Findings ranked as the verdict ranked its fixes, the rest after them."""
    ranked: list[Finding] = list(stats.verdict.fixes) if stats.verdict else []
    # A statement found as an N+1 is the same fix as its slow-statement entry: show it once.
    n_plus_one = {f.target for f in stats.findings if f.kind == "n_plus_one"}
    ranked += [
        f
        for f in stats.findings
        if f not in ranked and not (f.kind == "slow_statement" and f.target in n_plus_one)
    ]
    return tuple(_finding_view(f) for f in ranked)


def _finding_view(finding: Finding) -> _FindingView:
    stats = [
        f"{fmt.count(round(finding.count_per_request, 1))}× per request",
        f"costs {fmt.ms(finding.ns_per_request)} per affected request (mean)",
    ]
    fixable = finding.fixable_ns_per_request
    if fixable is not None and fixable < finding.ns_per_request:
        stats.append(f"batching leaves one call: removes {fmt.ms(fixable)} of it")
    stats.append(f"in {fmt.pct(finding.requests_fraction)} of requests")
    if finding.count:
        stats.append(f"{fmt.count(finding.count)} runs in all")
    if finding.total_ns:
        stats.append(f"{fmt.ms(finding.total_ns)} total")
    if finding.p50_ns or finding.p99_ns:
        stats.append(f"p50 {fmt.ms(finding.p50_ns)}, p99 {fmt.ms(finding.p99_ns)} each")
    if finding.counted:
        stats.append(
            f"counted in every request; p50 from {fmt.count(finding.p50_calls)} kept calls"
            if finding.p50_calls
            else "counted in every request; no kept call for a p50"
        )
    elif finding.margin_fraction:
        stats.append(
            f"estimated from {fmt.count(finding.sampled_requests)} sampled requests, "
            f"±{fmt.pct(finding.margin_fraction)} (95%)"
        )
    return _FindingView(
        name=fmt.finding_name(finding.kind),
        kind=finding.kind,
        detail=finding.detail,
        target=finding.target,
        is_sql=finding.kind in {"n_plus_one", "slow_statement", "pool_wait"},
        stats=" · ".join(stats),
        saving=fmt.ms(finding.saving_ns_per_request),
        concurrent=finding.concurrent,
    )


def _verdict_view(verdict: Verdict) -> _VerdictView:
    return _VerdictView(
        label=verdict.label,
        label_name=fmt.label_name(verdict.label),
        confidence=verdict.confidence,
        summary=verdict.summary,
        upper_bound=verdict.upper_bound,
        projections=tuple(
            _ProjectionView(
                target=fmt.target_name(p.target.name),
                factor=fmt.factor(p.target.factor_typical),
                factor_range=(
                    f"{fmt.factor(p.target.factor_low)}–{fmt.factor(p.target.factor_high)}"
                ),
                source=p.target.source,
                p50=fmt.ms(p.p50_ns),
                p99=fmt.ms(p.p99_ns),
                p50_saving=fmt.ms(p.p50_saving_ns),
                p50_saving_pct=fmt.pct(p.p50_saving_fraction),
                p50_saving_range=fmt.ms_range(*p.p50_saving_range_ns),
                p99_saving=fmt.ms(p.p99_saving_ns),
                p99_saving_pct=fmt.pct(p.p99_saving_fraction),
                mean_saving=fmt.ms(p.mean_saving_ns),
                requests_per_core=_per_core(p.requests_per_core),
                p50_saving_fraction=p.p50_saving_fraction,
            )
            for p in verdict.projections
        ),
        cpu_per_request=None
        if verdict.cpu_per_request_ns is None
        else fmt.ms(verdict.cpu_per_request_ns),
        requests_per_core=_per_core(verdict.requests_per_core),
        reasons=verdict.reasons,
        order=_VERDICT_ORDER.get(verdict.label, -1),
        runtime=fmt.runtime_name(verdict.runtime)
        + (" (assumed: none recorded)" if verdict.runtime_assumed else ""),
        not_offered=verdict.not_offered,
    )


def _per_core(value: float | None) -> str:
    if value is None:
        return "–"
    return fmt.count(round(value))


def _profile_view(profile: ProfileSummary) -> _ProfileView:
    merged: dict[str, float] = {}
    for key, share in profile.bucket_fraction.items():
        name = _BUCKET_NAMES.get(key, key.replace("_", " "))
        merged[name] = merged.get(name, 0.0) + share
    buckets = tuple(
        (name, fmt.pct(share), share_svg(share, f"{name}: {fmt.pct(share)}"))
        for name, share in sorted(merged.items(), key=lambda kv: -kv[1])
    )
    return _ProfileView(
        samples=fmt.count(profile.samples),
        buckets=buckets,
        top=tuple((name, fmt.pct(share)) for name, share in profile.top_functions),
        native=tuple((name, fmt.pct(share)) for name, share in profile.native_functions),
    )


def target_names(report: Report) -> list[str]:
    names: list[str] = []
    for stats in (report.overall, *report.endpoints):
        for p in stats.verdict.projections if stats.verdict else ():
            if p.target.name not in names:
                names.append(p.target.name)
    return names


def legend(report: Report) -> list[tuple[str, str]]:
    keys = {k for s in (report.overall, *report.endpoints) for q in s.ledger_ns.values() for k in q}
    return [(k, fmt.PART_NAMES.get(k, k)) for k in _ordered(dict.fromkeys(keys, 0))]


@dataclass(frozen=True, slots=True, kw_only=True)
class _InputsView:
    files: str
    spans: str
    traces: str
    requests: str
    skipped: tuple[tuple[str, str], ...]
    problems: tuple[str, ...]
    collector: tuple[tuple[str, str], ...]
    collector_overhead: str | None
    unbooked: str | None  # the process's CPU no request was booked (_format.unbooked_note)
    plugin_overhead: tuple[tuple[str, str], ...]
    measured: int
    bounded: int
    from_totals: int
    sources: tuple[tuple[str, str, str], ...]


def inputs_view(report: Report) -> _InputsView:
    inputs = report.inputs
    sources: dict[str, tuple[str, str, str]] = {}
    for stats in (report.overall, *report.endpoints):
        for p in stats.verdict.projections if stats.verdict else ():
            t = p.target
            sources.setdefault(
                t.source,
                (
                    fmt.target_name(t.name),
                    f"{fmt.factor(t.factor_typical)} ({fmt.factor(t.factor_low)}–"
                    f"{fmt.factor(t.factor_high)})",
                    t.source,
                ),
            )
    return _InputsView(
        files=fmt.count(inputs.files),
        spans=fmt.count(inputs.spans),
        traces=fmt.count(inputs.traces),
        requests=fmt.count(inputs.requests),
        skipped=tuple((k.replace("_", " "), fmt.count(v)) for k, v in inputs.skipped.items() if v),
        problems=inputs.problems,
        collector=tuple(
            (k.replace("_", " "), fmt.count(v)) for k, v in inputs.collector.items() if v
        ),
        collector_overhead=(
            fmt.ms(inputs.collector_overhead_ns)
            if inputs.collector_overhead_ns is not None
            else None
        ),
        unbooked=fmt.unbooked_note(
            inputs.process_cpu_ns, inputs.booked_cpu_ns, inputs.unbooked_cpu_fraction
        ),
        plugin_overhead=tuple(
            (name, f"{ns / 1000:,.1f} us") for name, ns in inputs.plugin_overhead_ns.items()
        ),
        measured=sum(1 for e in report.endpoints if e.cpu_measured),
        bounded=sum(1 for e in report.endpoints if not e.cpu_measured),
        from_totals=sum(e.from_totals for e in report.endpoints),
        sources=tuple(sources.values()),
    )
