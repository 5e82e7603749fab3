"""The ``latency-ledger/3`` JSON report: a contract other tools and CI read.

Contract: ``report_to_json`` maps a :class:`Report` to plain JSON values (dicts, lists,
str, int, float, bool, None; never NaN or infinity). Keys are never renamed; new ones
may be added. Times are milliseconds rounded to 0.01 (``*_ms``), shares are fractions
rounded to 4 decimals (``*_fraction``). ``cpu_per_request_ms``, ``ms_per_request``,
``fixable_ms_per_request``, ``saving_ms_per_request`` and ``mean_saving_ms`` are means
(over the requests they name); every other ``*_ms`` is at the percentile its key names.
Each ledger dict is rounded as a whole (largest remainder), so its parts still add up
to the rounded total of its parts, which is the rounded latency when the ledger sums to
it as ``EndpointStats`` promises.

Shape (abridged)::

    {"schema": "latency-ledger/3",
     "inputs": {"files", "spans", "traces", "requests", "skipped", "problems", "collector",
                "collector_overhead_us", "cpu": <cpu> | null},
                "collector_overhead_us", "plugin_overhead_us"},
     "services": [{"service", "runtime", "version", "detected_from", "requests"}, ...],
     "overall": <endpoint>,
     "endpoints": [<endpoint>, ...],
     "streams": [{"service", "endpoint", "kind", "count", "errors", "median_ms",
                  "max_ms"}, ...]}  # long-lived streams, out of every figure above
    <endpoint> = {"service", "endpoint", "count", "errors", "cpu_measured", "from_totals",
                  "runtime",
                  "latency_ms": {"p50", "p95", "p99", "mean"},
                  "ledger_ms": {"p50": {<part>: ms}, ...}, ["queueing_ms": {"p50": ms, ...}],
                  ["percentile_error_fraction": 0.01],
                  "findings": [<finding>], "verdict": <verdict> | null,
                  "profile": <profile> | null, "native": <native> | null,
                  ["wait_bounds_ms": {"p50": {"database", "network", "unbounded"}, ...}],
                  "native_threads": <threads> | null}
    <native> = {"profiled", "estimated", "cpu_fraction", "cpu_fraction_range": [low, high]}
    <threads> = {"requests", "cpu_ms_per_request", "max_ms_per_request"}
    <cpu> = {"process_ms", "booked_ms", "unbooked_fraction"}

Changes from ``latency-ledger/1``: with CPU measured, every ``ledger_ms`` dict has a
``native`` part (CPU inside compiled extensions, which a port does not shrink) beside
``interpreter`` (now Python bytecode only; the two together are what ``interpreter`` was);
each endpoint has ``native`` (how its CPU split was measured); a profile has
``native_functions``.

Changes from ``latency-ledger/2``: with CPU measured, ``wait_bounds_ms`` says, at each
key, how much of ``database`` (``network``) may still be waiting for the event loop or
the interpreter lock (the measured bound on the I/O spans' ends, less what was booked as
queueing; at most that part) and how much of the two came from spans whose end was not
measured (``unbounded``); ``native_threads`` is the CPU that threads native libraries
started burned for the endpoint's requests (means over all its requests, as charged and
its bound; the wait for them is in ``native``); ``inputs.cpu`` compares the process's
CPU with the CPU booked to requests (``unbooked_fraction``: the share booked to none).

Added within ``latency-ledger/3`` (no key renamed or changed in type): each finding has
``counted`` (true: its count, cost and share were counted over every request from the
collector's per-request statement tallies, exact, ``margin_fraction`` 0; false: estimated
from the kept trees as before) and ``p50_calls`` (the kept calls its ``p50_ms`` and
``p99_ms`` come from; 0 for findings with no per-call percentiles). For a counted
finding ``sampled_requests`` is the kept requests those percentiles come from.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latency_ledger.errors import LedgerError
from latency_ledger.model import (
    EndpointStats,
    Finding,
    InputSummary,
    NativeShare,
    ProfileSummary,
    Projection,
    Report,
    StreamStats,
    Verdict,
)

SCHEMA = "latency-ledger/3"

_NS_PER_CENTI_MS = 10_000  # 0.01 ms


def report_to_json(report: Report) -> dict[str, Any]:
    """The whole report as the ``latency-ledger/3`` JSON shape."""
    return {
        "schema": SCHEMA,
        "inputs": _inputs(report.inputs),
        "services": [
            {
                "service": s.service,
                "runtime": s.runtime,
                "version": s.version,
                "detected_from": s.detected_from,
                "requests": s.requests,
            }
            for s in report.services
        ],
        "overall": _endpoint(report.overall),
        "endpoints": [_endpoint(e) for e in report.endpoints],
        "streams": [_stream(s) for s in report.streams],
    }


def write_json(report: Report, path: Path) -> None:
    """Write the report as UTF-8 JSON; a failed write raises :class:`LedgerError`."""
    text = json.dumps(report_to_json(report), indent=2, ensure_ascii=False, allow_nan=False)
    try:
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise LedgerError(f"{path}: cannot write the JSON report: {exc.strerror}") from exc


def _ms(ns: float | None) -> float | None:
    if ns is None or not math.isfinite(ns):
        return None
    return round(ns / 1_000_000, 2)


def _fraction(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)


def _number(value: float | None, digits: int = 2) -> float | int | None:
    """A plain number; whole floats become ints (``5`` rather than ``5.0``)."""
    if value is None or not math.isfinite(value):
        return None
    if float(value).is_integer():
        return int(value)
    return round(value, digits)


def _ledger_ms(parts: Mapping[str, int]) -> dict[str, float]:
    """Round a ledger to 0.01 ms so the rounded parts add up to the rounded total.

    Rounding each part alone can drift by up to half a hundredth per part; largest
    remainder hands the leftover hundredths to the parts that lost the most.
    """
    total = sum(parts.values())
    target = _round_half_even_div(total, _NS_PER_CENTI_MS)
    floors = {k: v // _NS_PER_CENTI_MS for k, v in parts.items()}
    remainders = {k: v - floors[k] * _NS_PER_CENTI_MS for k, v in parts.items()}
    leftover = target - sum(floors.values())
    # Ties go to the earlier key, so the result does not depend on dict hashing.
    order = sorted(parts, key=lambda k: (-remainders[k], list(parts).index(k)))
    step = 1 if leftover >= 0 else -1
    for i in range(abs(leftover)):
        floors[order[i % len(order)]] += step
    return {k: floors[k] / 100 for k in parts}


def _round_half_even_div(value: int, divisor: int) -> int:
    quotient, remainder = divmod(value, divisor)
    if remainder * 2 > divisor or (remainder * 2 == divisor and quotient % 2 == 1):
        quotient += 1
    return quotient


def _inputs(inputs: InputSummary) -> dict[str, Any]:
    booked = {"booked_in_database": inputs.booked_in_database} if inputs.booked_in_database else {}
    return {
        "files": inputs.files,
        "spans": inputs.spans,
        "traces": inputs.traces,
        "requests": inputs.requests,
        "skipped": dict(inputs.skipped),
        "problems": list(inputs.problems),
        "collector": dict(inputs.collector),
        # microseconds, not ms: a collector's cost per request is tens of them
        "collector_overhead_us": (
            round(inputs.collector_overhead_ns / 1000, 1)
            if inputs.collector_overhead_ns is not None
            else None
        ),
        "cpu": (
            None
            if inputs.unbooked_cpu_fraction is None
            else {
                "process_ms": _ms(inputs.process_cpu_ns),
                "booked_ms": _ms(inputs.booked_cpu_ns),
                "unbooked_fraction": _fraction(inputs.unbooked_cpu_fraction),
            }
        ),
        # each enabled plugin's share of it (its wrappers and spans), us per request
        "plugin_overhead_us": {
            name: round(ns / 1000, 1) for name, ns in inputs.plugin_overhead_ns.items()
        },
        **booked,  # only when a ClickHouse source booked some: requests booked in SQL
    }


def _endpoint(stats: EndpointStats) -> dict[str, Any]:
    out: dict[str, Any] = {
        "service": stats.service,
        "endpoint": stats.endpoint,
        "count": stats.count,
        "errors": stats.errors,
        "cpu_measured": stats.cpu_measured,
        "from_totals": stats.from_totals,
        "runtime": stats.runtime,
        "latency_ms": {k: _ms(v) for k, v in stats.latency_ns.items()},
        "ledger_ms": {k: _ledger_ms(parts) for k, parts in stats.ledger_ns.items()},
    }
    if stats.queueing_ns:
        out["queueing_ms"] = {k: _ms(v) for k, v in stats.queueing_ns.items()}
    if stats.percentile_error_fraction:
        # read from a sketch (more requests than kept exactly): within this of a request's
        out["percentile_error_fraction"] = stats.percentile_error_fraction
    out["findings"] = [_finding(f) for f in stats.findings]
    out["verdict"] = None if stats.verdict is None else _verdict(stats.verdict)
    out["profile"] = None if stats.profile is None else _profile(stats.profile)
    out["native"] = None if stats.native is None else _native(stats.native)
    if stats.wait_bounds_ns:
        out["wait_bounds_ms"] = {
            key: {part: _ms(value) for part, value in bounds.items()}
            for key, bounds in stats.wait_bounds_ns.items()
        }
    threads = stats.native_threads
    out["native_threads"] = (
        None
        if threads is None
        else {
            "requests": threads.requests,
            "cpu_ms_per_request": _ms(threads.cpu_ns_per_request),
            "max_ms_per_request": _ms(threads.max_ns_per_request),
        }
    )
    return out


def _native(native: NativeShare) -> dict[str, Any]:
    return {
        "profiled": native.profiled,
        "estimated": native.estimated,
        "cpu_fraction": _fraction(native.cpu_fraction),
        "cpu_fraction_range": [
            _fraction(native.cpu_fraction_low),
            _fraction(native.cpu_fraction_high),
        ],
    }


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "detail": finding.detail,
        "target": finding.target,
        "count_per_request": _number(finding.count_per_request),
        "ms_per_request": _ms(finding.ns_per_request),
        "requests_fraction": _fraction(finding.requests_fraction),
        "fixable_ms_per_request": _ms(
            finding.ns_per_request
            if finding.fixable_ns_per_request is None
            else finding.fixable_ns_per_request
        ),
        "saving_ms_per_request": _ms(finding.saving_ns_per_request),
        "total_ms": _ms(finding.total_ns),
        "count": finding.count,
        "p50_ms": _ms(finding.p50_ns),
        "p99_ms": _ms(finding.p99_ns),
        "concurrent": finding.concurrent,
        "margin_fraction": _fraction(finding.margin_fraction),
        "sampled_requests": finding.sampled_requests,
        "counted": finding.counted,
        "p50_calls": finding.p50_calls,
    }


def _projection(projection: Projection) -> dict[str, Any]:
    target = projection.target
    low, high = projection.p50_saving_range_ns
    return {
        "factor": _number(target.factor_typical),
        "factor_range": [_number(target.factor_low), _number(target.factor_high)],
        "source": target.source,
        "p50_ms": _ms(projection.p50_ns),
        "p99_ms": _ms(projection.p99_ns),
        "p50_saving_ms": _ms(projection.p50_saving_ns),
        "p50_saving_fraction": _fraction(projection.p50_saving_fraction),
        "p50_saving_range_ms": [_ms(low), _ms(high)],
        "p99_saving_ms": _ms(projection.p99_saving_ns),
        "p99_saving_fraction": _fraction(projection.p99_saving_fraction),
        "requests_per_core": _number(projection.requests_per_core, 1),
        "mean_saving_ms": _ms(projection.mean_saving_ns),
    }


def _verdict(verdict: Verdict) -> dict[str, Any]:
    return {
        "label": verdict.label,
        "confidence": verdict.confidence,
        "summary": verdict.summary,
        "upper_bound": verdict.upper_bound,
        "targets": {p.target.name: _projection(p) for p in verdict.projections},
        "fixes": [_finding(f) for f in verdict.fixes],
        "cpu_per_request_ms": _ms(verdict.cpu_per_request_ns),
        "requests_per_core": _number(verdict.requests_per_core, 1),
        "reasons": list(verdict.reasons),
        "runtime": verdict.runtime,
        "runtime_assumed": verdict.runtime_assumed,
        "not_offered": list(verdict.not_offered),
    }


def _profile(profile: ProfileSummary) -> dict[str, Any]:
    return {
        "samples": profile.samples,
        "bucket_fraction": {k: _fraction(v) for k, v in profile.bucket_fraction.items()},
        "top_functions": [
            {"function": name, "fraction": _fraction(share)}
            for name, share in profile.top_functions
        ],
        "native_functions": [
            {"function": name, "fraction": _fraction(share)}
            for name, share in profile.native_functions
        ],
    }


def _stream(stream: StreamStats) -> dict[str, Any]:
    return {
        "service": stream.service,
        "endpoint": stream.endpoint,
        "kind": stream.kind,
        "count": stream.count,
        "errors": stream.errors,
        "median_ms": _ms(stream.median_ns),
        "max_ms": _ms(stream.max_ns),
    }
