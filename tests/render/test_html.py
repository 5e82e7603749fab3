from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from latency_ledger.errors import LedgerError
from latency_ledger.model import Report
from latency_ledger.render.html import render_html, write_html

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "' onmouseover='alert(3)",
    "{{ 7*7 }}{% if 1 %}",
    "</style></code></pre><b>bold</b>",
    "javascript:alert(4)",
)
# Every element the templates write; anything else came from trace content.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "link", "style", "body", "svg", "defs", "pattern",
    "rect", "main", "header", "p", "a", "section", "div", "span", "ul", "ol", "li", "b",
    "em", "h1", "h2", "h3", "table", "thead", "tbody", "tr", "th", "td", "button", "code",
    "pre", "br", "footer", "script",
}  # fmt: skip


class Page(HTMLParser):
    """Tags, attributes and the text a browser would show."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
        self.text.append(data)

    @property
    def visible(self) -> str:
        return "".join(self.text)

    def attrs(self, name: str) -> list[str]:
        return [a[name] or "" for _, a in self.tags if name in a]


def test_verdict_first_then_chart_table_sections_method(report: Report) -> None:
    html = render_html(report)
    assert report.overall.verdict is not None
    marks = [
        "61% of p50 latency is database wait",
        'id="chart"',
        'id="endpoints"',
        'id="details"',
        'id="method"',
    ]
    positions = [html.index(m) for m in marks]
    assert positions == sorted(positions)
    assert html.index('<span class="badge dont_migrate">') < html.index('id="chart"')


def test_every_endpoint_has_a_row_and_a_section(report: Report) -> None:
    page = Page(render_html(report))
    rows = [a for tag, a in page.tags if tag == "td" and "name" in (a.get("class") or "")]
    sections = [a["id"] for tag, a in page.tags if tag == "section" and a.get("id")]
    assert len(rows) == len(report.endpoints) == 4
    assert sections == ["ep-1", "ep-2", "ep-3", "ep-4"]
    for stats in report.endpoints:
        assert stats.endpoint in page.visible


def test_sections_show_findings_projections_profile_and_bound(report: Report) -> None:
    page = Page(render_html(report))
    text = " ".join(page.visible.split())
    assert (
        "SELECT order_items.id, order_items.sku, order_items.qty FROM order_items "
        "WHERE order_items.order_id = ?" in text
    )
    assert "N+1 queries · saves up to 17.1 ms per request on average" in text
    # node at 3x (2x-5x) on GET /orders: p50 31.2 -> 29.1 ms, saving 2.1 ms (6.6%),
    # 1.6-2.5 ms across the factor range.
    assert (
        '<td class="n">2.1 ms (6.6%)<br><span class="muted small">range 1.6–2.5 ms</span></td>'
        '<td class="n">6.3 ms (4.5%)</td><td class="n">2.1 ms</td><td class="n">29.1 ms</td>'
        '<td class="n">134 ms</td>'
        '<td class="n">3× <span class="muted">(2×–5×)</span></td>'
    ) in render_html(report)
    assert "validation + serialization" in text
    assert "CPU not measured: app is an upper bound" in text
    assert "Benchmarks Game (CPython 3.11 vs Node.js 20" in text
    # Sources in full once (overall table, method section); endpoint tables link to them.
    html = render_html(report)
    assert html.count('<a href="#src-1">source</a>') == len(report.endpoints)
    assert '<li id="src-1">Node.js 3× (2×–5×): Benchmarks Game' in html
    assert "not trace data (1), span without end time (4)" in text
    assert "dropped spans (12)" in text
    assert "traces/shop-2.jsonl:17: span 9f2c01aa44b0e3d1 has no end time" in text


def test_stacked_bars_add_up_to_the_whole(report: Report) -> None:
    html = render_html(report)
    bars = re.findall(r'<svg class="bar" role="img" aria-label="ledger[^"]*">(.*?)</svg>', html)
    assert len(bars) == 2 * (len(report.endpoints) + 1) + 2 * len(report.endpoints)
    for bar in bars:
        widths = [float(w) for w in re.findall(r'width="([0-9.]+)%"', bar)]
        assert sum(widths) == pytest.approx(100, abs=0.05)
    assert 'class="p-app"' in html  # the bound endpoint's own time is hatched


def test_sortable_table_has_a_value_for_every_column(report: Report) -> None:
    page = Page(render_html(report))
    headers = [a for tag, a in page.tags if tag == "th" and "data-col" in a]
    cols = [int(a["data-col"] or "") for a in headers]
    assert cols == list(range(len(cols)))
    html = render_html(report)
    body = html[html.index("<tbody>", html.index('id="endpoints"')) :]
    body = body[: body.index("</tbody>")]
    for row in body.split("<tr>")[1:]:
        assert row.count("data-v=") == len(cols)


def test_self_contained_with_csp_and_hashed_script(report: Report) -> None:
    html = render_html(report)
    page = Page(html)
    (csp,) = [
        a["content"] or ""
        for tag, a in page.tags
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in csp
    assert "style-src 'unsafe-inline'" in csp
    assert "img-src data:" in csp
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert page.attrs("src") == []
    assert all(h.startswith(("#", "data:")) for h in page.attrs("href"))
    assert "@import" not in html
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:)?//", html)


def test_trace_content_is_escaped_everywhere(hostile_report: Report) -> None:
    html = render_html(hostile_report)
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    assert [tag for tag, _ in page.tags].count("script") == 1
    for tag, attrs in page.tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
    assert all(h.startswith(("#", "data:")) for h in page.attrs("href"))
    assert "<script>alert" not in html
    assert "<img" not in html
    assert "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text = page.visible
    # Verbatim as text: services, routes, SQL, details, summaries, runtimes, problems.
    for i in range(len(hostile_report.endpoints)):
        assert "svc" + HOSTILE[(i + 4) % len(HOSTILE)] in text
        assert "GET /" + HOSTILE[(i + 5) % len(HOSTILE)] in text
    for payload in HOSTILE:
        assert f"problem{payload}" in text
    assert "detail" + HOSTILE[1] in text
    assert f"SELECT '{HOSTILE[2]}' FROM t WHERE a = \"{HOSTILE[3]}\"" in text
    assert "summary" + HOSTILE[2] in text
    assert "overall" + HOSTILE[0] in text
    assert "src" + HOSTILE[1] in text
    assert "fn" + HOSTILE[1] in text
    assert "{{ 7*7 }}{% if 1 %}" in text


def test_large_report_stays_small(big_report: Report) -> None:
    html = render_html(big_report)
    assert len(big_report.endpoints) == 200
    assert len(html.encode()) < 2_000_000
    # The chart draws the top 20 and says so; the table and sections list all 200.
    assert "The 20 endpoints with the most total time" in html
    assert html.count('<section class="endpoint') == 200


def test_no_requests(empty_report: Report) -> None:
    html = render_html(empty_report)
    assert "No verdict: nothing to decide on (0 requests)." in html
    assert "</html>" in html


def test_write_html(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_html(report, path)
    assert path.read_text(encoding="utf-8") == render_html(report)
    with pytest.raises(LedgerError, match=r"cannot write the HTML report"):
        write_html(report, tmp_path / "missing" / "report.html")


def test_invisible_characters_do_not_reach_the_page(hostile_report: Report) -> None:
    # Issue 13, defect 8: zero-width and bidi controls reached the HTML unmarked.
    hidden = "\u200b\u2060\ufeff\u061c\u2067\U000e0041"
    first = dataclasses.replace(hostile_report.endpoints[0], endpoint=f"GET /a{hidden}b")
    html = render_html(dataclasses.replace(hostile_report, endpoints=(first,)))
    assert not set(hidden) & set(html)
    assert "GET /a\ufffd\ufffd\ufffd\ufffd\ufffd\ufffdb" in html


def test_streams_table_only_when_there_are_streams(report: Report) -> None:
    from latency_ledger.model import StreamStats

    assert 'id="streams"' not in render_html(report)
    streams = tuple(
        StreamStats(
            service="svc" + payload,
            endpoint="ws" + payload,
            kind="websocket",
            count=3,
            errors=0,
            median_ns=61_000_000_000,
            max_ns=3_600_000_000_000,
        )
        for payload in HOSTILE
    )
    html = render_html(dataclasses.replace(report, streams=streams))
    page = Page(html)
    assert {tag for tag, _ in page.tags} <= ALLOWED_TAGS
    assert "<script>alert" not in html
    assert 'id="streams"' in html
    for payload in HOSTILE:
        assert "ws" + payload in page.visible
    assert "left out of every percentile, finding and verdict" in page.visible
    # With one service among the endpoints, a stream of another still names its own.
    one = tuple(dataclasses.replace(e, service="shop") for e in report.endpoints)
    html = render_html(dataclasses.replace(report, endpoints=one, streams=streams[:1]))
    assert "svc" + HOSTILE[0] + " · ws" + HOSTILE[0] in Page(html).visible
