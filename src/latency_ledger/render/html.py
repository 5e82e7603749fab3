"""The HTML report: one self-contained document a skeptical engineer can trust offline.

Contract: ``render_html(report)`` returns a complete HTML document; nothing in it is
fetched from the network (no CDN, fonts or images; a Content-Security-Policy meta tag
allows only the inlined style and the one inlined script, by hash). The page reads
top-down: the overall verdict in a sentence with its numbers, a stacked-bar chart of
the ledger per endpoint at p50 and p99 (inline SVG drawn server-side, readable without
JavaScript), a sortable endpoints table, one section per endpoint (verdict, findings
with their SQL, projection per target runtime, profile buckets) and how the numbers
were obtained.

Escaping: every string from a trace (span names, SQL, routes, services, problems) is
attacker-controlled. Templates load with ``autoescape=True`` and ``StrictUndefined``,
and a ``finalize`` hook replaces control and bidi-override characters. Only two kinds
of value are ``Markup``: the package's own CSS and JS files, and the SVG built in
:mod:`._svg`, where every interpolated string goes through ``markupsafe.escape`` first.
The figures the page shows are formatted into view records by :mod:`._views`; this
module loads the templates and static files and assembles the document.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from latency_ledger.errors import LedgerError
from latency_ledger.model import EndpointStats, Report

from . import _format as fmt
from ._views import endpoint_view, inputs_view, legend, target_names

CHART_ROWS = 20  # endpoints drawn in the chart; the table and sections list every one


def render_html(report: Report) -> str:
    """The whole report as one self-contained HTML document."""
    template = _environment().get_template("report.html.j2")
    css, js = _static("report.css"), _static("sort.js")
    digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    endpoints = sorted(report.endpoints, key=_total_time, reverse=True)
    views = [endpoint_view(e, f"ep-{i}") for i, e in enumerate(endpoints, start=1)]
    targets = target_names(report)
    inputs = inputs_view(report)
    modes = {e.cpu_measured for e in report.endpoints}
    services = tuple(
        (
            s.service,
            fmt.runtime_name(s.runtime, s.version),
            f"from {s.detected_from}" if s.detected_from else "nothing in the traces says",
        )
        for s in report.services
    )
    return template.render(
        csp=csp,
        services=services,
        mixed_runtimes=report.overall.runtime == "mixed",
        css=Markup(css),
        js=Markup(js),
        overall=endpoint_view(report.overall, "overall"),
        endpoints=views,
        chart=views[:CHART_ROWS],
        targets=targets,
        inputs=inputs,
        source_ids={src: f"src-{i}" for i, (_, _, src) in enumerate(inputs.sources, start=1)},
        mixed_modes=len(modes) > 1,
        parts=legend(report),
        multi_service=len({e.service for e in report.endpoints}) > 1,
        streams=report.streams,
        # A stream's service is named unless every endpoint and stream has the same one.
        streams_service=len(
            {e.service for e in report.endpoints} | {s.service for s in report.streams}
        )
        > 1,
        short={
            "database": "db",
            "network": "net",
            "interpreter": "cpu",
            "native": "native",
            "waiting": "wait",
        },
        fmt=fmt,
    )


def write_html(report: Report, path: Path) -> None:
    """Write the report as UTF-8 HTML; a failed write raises :class:`LedgerError`."""
    text = render_html(report)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LedgerError(f"{path}: cannot write the HTML report: {exc.strerror}") from exc


@functools.cache
def _environment() -> jinja2.Environment:
    # Cached: compiling the templates costs more than rendering a small report, and
    # the environment holds nothing but the package's own templates.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("latency_ledger.render", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return fmt.clean(value)
    return value


@functools.cache
def _static(name: str) -> str:
    text = importlib.resources.files("latency_ledger.render").joinpath("static", name)
    content = text.read_text(encoding="utf-8")
    # Inlined raw: a closing tag inside would end the element early.
    if "</" in content:
        raise LedgerError(f"render/static/{name} must not contain '</'")
    return content


def _total_time(stats: EndpointStats) -> int:
    return stats.count * stats.latency_ns.get("mean", 0)
