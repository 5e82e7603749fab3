"""The terminal summary: the verdict first, then a compact ledger table.

Contract: ``render_text(report, width=100, color=False)`` returns plain text whose lines
fit in ``width`` columns (at least 80; the bar column is dropped below 90). Color means
ANSI escapes, only when asked. Trace content (endpoints, services, the verdict text,
reasons) has control and bidi characters replaced, so it cannot move the cursor or
recolor the terminal. The table lists the 30 endpoints with the most total time
(requests x mean latency); the HTML and JSON reports list all of them.

Layout::

    Verdict: Don't migrate (confidence: high)
    <overall verdict sentence, wrapped>
      ported to node (3× faster CPU): p50 -4.7 ms (16%), p99 -40.0 ms (22%)
      cheaper fix: N+1 queries costs 17.1 ms per request: <detail>

    endpoint                count      p50      p99 db% net% cpu% wait%  p50 ledger
    GET /orders/{order_id}  1,200  31.2 ms   140 ms  77    6   10     6  ████████▓▒
    GET /invoices/{id}.pdf    180  40.0 ms   120 ms  12   25  ≤62     -  █▓▓▓╳╳╳╳╳╳
    ledger: █ database  ▓ network  ▒ interpreter  ░ waiting
    (with a ``nat%`` column and ``▞ native`` in the legend when a profile measured native CPU)
            ╳ app (CPU not measured: upper bound); cpu% shows it as ≤N

    streams (kept out of percentiles, findings and verdicts):    (when there are any)
      /flagd.evaluation.v1.Service/EventStream (grpc stream): 3 open, median 41.2 s, ...

    input: 3 files, 41,332 spans, 2,000 traces, 2,000 requests; skipped: not trace data (1)
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from latency_ledger.model import EndpointStats, Report

from ._format import (
    bound_notes,
    clean,
    count,
    factor,
    finding_name,
    label_name,
    ms,
    pct,
    runtime_name,
    shares,
    target_name,
    unbooked_note,
)

# Distinct glyphs so the bar reads without color; with color each also gets its hue.
_GLYPHS = {
    "database": "█",
    "network": "▓",
    "interpreter": "▒",
    "native": "▞",
    "waiting": "░",
    "app": "╳",
}
_COLORS = {
    "database": "34",
    "network": "32",
    "interpreter": "31",
    "native": "35",
    "waiting": "90",
    "app": "33",
}
_LABEL_COLORS = {"dont_migrate": "32", "marginal": "33", "migration_could_pay": "35"}
_PCT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("db%", "database"),
    ("net%", "network"),
    ("cpu%", "interpreter"),
    ("nat%", "native"),
    ("wait%", "waiting"),
)
_BAR = 10
_MAX_ROWS = 30  # the HTML and JSON reports list every endpoint

Paint = Callable[[str, str], str]


def render_text(report: Report, *, width: int = 100, color: bool = False) -> str:
    """The terminal summary of ``report``."""
    width = max(width, 80)
    paint = _painter(color)
    lines = _verdict_lines(report, width, paint)
    lines.append("")
    lines.extend(_table(report, width, paint))
    estimates = _estimate_lines(report, width)
    if estimates:
        lines.append("")
        lines.extend(estimates)
    streams = _stream_lines(report, width)
    if streams:
        lines.append("")
        lines.extend(streams)
    lines.append("")
    lines.extend(_input_lines(report, width))
    return "\n".join(lines) + "\n"


def _painter(color: bool) -> Paint:
    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color and code else text

    return paint


def _verdict_lines(report: Report, width: int, paint: Paint) -> list[str]:
    overall = report.overall
    verdict = overall.verdict
    if verdict is None:
        if overall.runtime == "mixed":
            runs = ", ".join(
                f"{clean(s.service, one_line=True)} {runtime_name(s.runtime)}"
                for s in report.services
            )
            text = (
                "No overall verdict: the services run different runtimes "
                f"({runs}); a port is decided per service, see each endpoint."
            )
            return textwrap.wrap(text, width, break_on_hyphens=False)
        head = "No verdict: nothing to decide on"
        return textwrap.wrap(f"{head} ({overall.count:,} requests).", width)
    label = paint(
        clean(label_name(verdict.label), one_line=True), _LABEL_COLORS.get(verdict.label, "1")
    )
    head = f"Verdict: {label} (confidence: {clean(verdict.confidence, one_line=True)})"
    if verdict.upper_bound:
        head += ", an upper bound: CPU not measured"
    wrapped = [head]
    wrapped.extend(
        textwrap.wrap(clean(verdict.summary, one_line=True), width, break_on_hyphens=False)
    )
    for p in verdict.projections:
        bound = "at most " if verdict.upper_bound else ""
        line = (
            f"ported to {clean(target_name(p.target.name), one_line=True)} "
            f"(interpreter {factor(p.target.factor_typical)} faster): {bound}p50 "
            f"-{ms(p.p50_saving_ns)} ({pct(p.p50_saving_fraction)}), "
            f"p99 -{ms(p.p99_saving_ns)} ({pct(p.p99_saving_fraction)}), "
            f"mean -{ms(p.mean_saving_ns)}"
        )
        wrapped.extend(textwrap.wrap(line, width, initial_indent="  ", subsequent_indent="    "))
    for note in verdict.not_offered:
        wrapped.extend(
            textwrap.wrap(
                clean(note, one_line=True), width, initial_indent="  ", subsequent_indent="    "
            )
        )
    if verdict.fixes:
        fix = verdict.fixes[0]
        line = (
            f"cheaper fix: {finding_name(fix.kind)}, saves up to "
            f"{ms(fix.saving_ns_per_request)} per request on average: "
            f"{clean(fix.detail, one_line=True)}"
        )
        wrapped.extend(textwrap.wrap(line, width, initial_indent="  ", subsequent_indent="    "))
    return wrapped


def _table(report: Report, width: int, paint: Paint) -> list[str]:
    endpoints = sorted(report.endpoints, key=_total_time, reverse=True)
    services = {e.service for e in report.endpoints}
    bar = width >= 90
    # the native column only where some endpoint measured native CPU (a profile saw it)
    native = any(e.native is not None for e in (*report.endpoints, report.overall))
    columns = tuple(c for c in _PCT_COLUMNS if native or c[1] != "native")
    fixed = 6 + 8 + 8 + sum(len(h) + 1 for h, _ in columns) + 2 * 2 + (_BAR + 2 if bar else 0)
    names = [e.endpoint if len(services) == 1 else f"{e.service} {e.endpoint}" for e in endpoints]
    # As wide as the names need, up to what the numbers leave; at least 8 columns.
    longest = max((len(n) for n in names[:_MAX_ROWS]), default=8)
    name_width = max(min(width - fixed - 2, longest), 8)
    header = (
        f"{'endpoint':<{name_width}}  {'count':>6} {'p50':>8} {'p99':>8} "
        + " ".join(f"{h:>{len(h)}}" for h, _ in columns)
        + ("  p50 ledger" if bar else "")
    )
    lines = [header[:width]]
    for stats, raw in zip(endpoints[:_MAX_ROWS], names, strict=False):
        name = clean(raw, one_line=True)
        if len(name) > name_width:  # a long name gets its own line rather than being cut
            lines.append(_cut(name, width))
            name = ""
        lines.append(_row(stats, name, name_width, bar, paint, columns))
    hidden = len(endpoints) - _MAX_ROWS
    if hidden > 0:
        lines.append(f"... and {hidden:,} more endpoints with less total time (see the reports)")
    if not endpoints:
        lines.append("(no requests found)")
    legend = "  ".join(
        paint(_GLYPHS[k], _COLORS[k]) + f" {k}"
        for k in _GLYPHS
        if k != "app" and (native or k != "native")
    )
    lines.append(f"ledger: {legend}  (shares of p50)")
    if any(not e.cpu_measured for e in (*report.endpoints, report.overall)):
        lines.append(
            f"        {paint(_GLYPHS['app'], _COLORS['app'])} app (CPU not measured: upper bound)"
            + ("; cpu% shows it as ≤N" if width >= 84 else "")
        )
    sketched = [e for e in (*report.endpoints, report.overall) if e.percentile_error_fraction]
    if sketched:
        error = max(e.percentile_error_fraction for e in sketched)
        lines.append(
            f"percentiles of {len(sketched)} rows are read from a sketch (too many requests to "
            f"keep each): within {error:.0%} of a request's latency at that rank"
        )
    return lines


def _row(
    stats: EndpointStats,
    name: str,
    name_width: int,
    bar: bool,
    paint: Paint,
    columns: tuple[tuple[str, str], ...] = _PCT_COLUMNS,
) -> str:
    parts = dict(stats.ledger_ns.get("p50", {}))
    share = shares(parts)
    cells = []
    for head, key in columns:
        if key in share:
            cell = _whole_pct(share[key])
        elif key == "interpreter" and "app" in share:
            cell = "≤" + _whole_pct(share["app"])  # CPU not measured: app bounds it
        else:
            cell = "-"
        cells.append(f"{cell:>{len(head)}}")
    return (
        f"{name:<{name_width}}  {count(stats.count):>6} {ms(stats.latency_ns.get('p50')):>8} "
        f"{ms(stats.latency_ns.get('p99')):>8} "
        + " ".join(cells)
        + ("  " + _bar(share, paint) if bar else "")
    )


def _bar(share: dict[str, float], paint: Paint) -> str:
    """``_BAR`` cells split by largest remainder, so the cells always add up."""
    exact = {k: v * _BAR for k, v in share.items()}
    cells = {k: int(v) for k, v in exact.items()}
    if sum(share.values()) > 0:
        for k in sorted(exact, key=lambda k: cells[k] - exact[k])[: _BAR - sum(cells.values())]:
            cells[k] += 1
    return "".join(
        paint(_GLYPHS.get(k, "?") * n, _COLORS.get(k, "")) for k, n in cells.items() if n
    )


def _whole_pct(fraction: float) -> str:
    value = round(fraction * 100)
    return "<1" if value == 0 and fraction > 0 else str(value)


def _estimate_lines(report: Report, width: int) -> list[str]:
    """The estimated figures' bounds, per endpoint shown in the table (_format.bound_notes)."""
    services = {e.service for e in report.endpoints}
    lines = []
    for stats in sorted(report.endpoints, key=_total_time, reverse=True)[:_MAX_ROWS]:
        threads = stats.native_threads
        notes = bound_notes(
            dict(stats.wait_bounds_ns.get("p50", {})),
            dict(stats.ledger_ns.get("p50", {})),
            (threads.cpu_ns_per_request, threads.max_ns_per_request) if threads else None,
        )
        if not notes:
            continue
        name = stats.endpoint if len(services) == 1 else f"{stats.service} {stats.endpoint}"
        text = f"{clean(name, one_line=True)}: {'; '.join(notes)}"
        lines.extend(textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="    "))
    return ["estimated (bounds):", *lines] if lines else []


def _stream_lines(report: Report, width: int) -> list[str]:
    """Long-lived streams, listed apart as in the HTML and JSON (out of every figure)."""
    if not report.streams:
        return []
    services = {e.service for e in report.endpoints} | {s.service for s in report.streams}
    lines = ["streams (kept out of percentiles, findings and verdicts):"]
    for stream in report.streams[:_MAX_ROWS]:
        name = stream.endpoint if len(services) == 1 else f"{stream.service} {stream.endpoint}"
        errors = f", {count(stream.errors)} failed" if stream.errors else ""
        text = (
            f"{clean(name, one_line=True)} ({stream.kind}): {count(stream.count)} open"
            f"{errors}, median {ms(stream.median_ns)}, longest {ms(stream.max_ns)}"
        )
        lines.extend(textwrap.wrap(text, width, initial_indent="  ", subsequent_indent="    "))
    if len(report.streams) > _MAX_ROWS:
        lines.append(f"  ... and {len(report.streams) - _MAX_ROWS} more (HTML and JSON list all)")
    return lines


def _total_time(stats: EndpointStats) -> int:
    return stats.count * stats.latency_ns.get("mean", 0)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _input_lines(report: Report, width: int) -> list[str]:
    inputs = report.inputs
    line = (
        f"input: {inputs.files:,} files, {inputs.spans:,} spans, {inputs.traces:,} traces, "
        f"{inputs.requests:,} requests"
    )
    if inputs.booked_in_database:
        line += f" ({inputs.booked_in_database:,} booked in ClickHouse)"
    skipped = {k: v for k, v in inputs.skipped.items() if v}
    if skipped:
        what = ", ".join(
            f"{clean(k, one_line=True).replace('_', ' ')} ({v:,})" for k, v in skipped.items()
        )
        line += f"; skipped: {what}"
    else:
        line += "; nothing skipped"
    lines = textwrap.wrap(line, width, subsequent_indent="  ")
    if report.services:
        runs = ", ".join(
            f"{clean(s.service, one_line=True)} {runtime_name(s.runtime, s.version)}"
            + (f" (from {s.detected_from})" if s.detected_from else "")
            for s in report.services
        )
        lines.extend(textwrap.wrap(f"runtime: {runs}", width, subsequent_indent="  "))
    dropped = {k: v for k, v in inputs.collector.items() if v}
    if dropped:
        what = ", ".join(
            f"{clean(k, one_line=True).replace('_', ' ')} ({v:,})" for k, v in dropped.items()
        )
        lines.extend(textwrap.wrap(f"collector: {what}", width, subsequent_indent="  "))
    if inputs.collector_overhead_ns is not None:
        lines.append(
            f"collector's own measured cost: {inputs.collector_overhead_ns / 1000:,.0f} us "
            "per request (mean)"
        )
        if inputs.plugin_overhead_ns:
            shares = ", ".join(
                f"{clean(name, one_line=True)} {ns / 1000:,.1f} us"
                for name, ns in inputs.plugin_overhead_ns.items()
            )
            lines.extend(
                textwrap.wrap(f"  of which plugins: {shares}", width, subsequent_indent="    ")
            )
    note = unbooked_note(inputs.process_cpu_ns, inputs.booked_cpu_ns, inputs.unbooked_cpu_fraction)
    if note is not None:
        lines.extend(textwrap.wrap(note, width, subsequent_indent="  "))
    return lines
