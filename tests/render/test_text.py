from __future__ import annotations

import dataclasses

from latency_ledger.model import Report
from latency_ledger.render.text import render_text


def flat(text: str) -> str:
    return " ".join(text.split())


def test_verdict_sentence_comes_first(report: Report) -> None:
    text = render_text(report)
    assert report.overall.verdict is not None
    lines = text.splitlines()
    assert lines[0] == "Verdict: Don't migrate (confidence: high)"
    assert flat(report.overall.verdict.summary) in flat(text)
    assert flat(text).index(flat(report.overall.verdict.summary)) < flat(text).index("endpoint")


def test_every_endpoint_listed_with_its_numbers(report: Report) -> None:
    text = render_text(report)
    for stats in report.endpoints:
        assert f"{stats.service} {stats.endpoint}" in text
    (orders,) = [line for line in text.splitlines() if line.startswith("shop GET /orders/")]
    # count, p50, p99, then db/net/cpu/wait shares of the p50 ledger (24.1 of 31.2 ms).
    assert orders.split()[3:12] == ["1,200", "31.2", "ms", "140", "ms", "77", "6", "10", "6"]
    # CPU not measured: app's 25 of 40 ms bounds the interpreter share.
    (invoice,) = [line for line in text.splitlines() if line.startswith("billing GET /inv")]
    assert invoice.split()[3:12] == ["180", "40.0", "ms", "120", "ms", "12", "25", "≤62", "-"]


def test_fits_the_width_and_is_plain_without_color(report: Report) -> None:
    for width in (80, 100, 140):
        text = render_text(report, width=width)
        assert max(len(line) for line in text.splitlines()) <= width
        assert "\x1b" not in text


def test_color_only_when_asked(report: Report) -> None:
    assert "\x1b[" in render_text(report, color=True)


def test_bound_and_skipped_input_are_stated(report: Report) -> None:
    text = render_text(report)
    assert "app (CPU not measured: upper bound)" in text
    assert "skipped: not trace data (1), span without end time (4)" in flat(text)
    assert "collector: dropped spans (12)" in text


def test_long_names_get_their_own_line(report: Report) -> None:
    long_name = "GET /" + "very-long-segment/" * 4 + "{item_id}"  # 86 columns
    stats = dataclasses.replace(report.endpoints[0], endpoint=long_name)
    text = render_text(dataclasses.replace(report, endpoints=(stats,)))
    lines = text.splitlines()
    assert long_name in lines
    assert lines[lines.index(long_name) + 1].split()[:3] == ["1,200", "31.2", "ms"]
    assert max(len(line) for line in text.splitlines()) <= 100


def test_terminal_escapes_in_trace_content_are_neutralized(report: Report) -> None:
    evil = "GET /x\x1b[2J\x1b]0;pwned\x07\u202eevil"
    stats = dataclasses.replace(report.endpoints[0], endpoint=evil, service="s\x1b[31m")
    text = render_text(dataclasses.replace(report, endpoints=(stats,)))
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\u202e" not in text
    assert "GET /x\ufffd[2J\ufffd]0;pwned\ufffd\ufffdevil" in text


def test_no_requests(empty_report: Report) -> None:
    text = render_text(empty_report)
    assert text.startswith("No verdict: nothing to decide on (0 requests).")
    assert "(no requests found)" in text
    assert "nothing skipped" in text


def test_many_endpoints_are_capped(big_report: Report) -> None:
    text = render_text(big_report)
    assert "... and 170 more endpoints with less total time" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_streams_listed_apart_only_when_there_are_streams(report: Report) -> None:
    from latency_ledger.model import StreamStats

    assert "streams (" not in render_text(report)
    stream = StreamStats(
        service="flagd",
        endpoint="/flagd.evaluation.v1.Service/EventStream\x1b[31m",
        kind="grpc stream",
        count=3,
        errors=1,
        median_ns=41_200_000_000,
        max_ns=49_000_000_000,
    )
    text = render_text(dataclasses.replace(report, streams=(stream,)), width=80)
    lines = text.splitlines()
    start = lines.index("streams (kept out of percentiles, findings and verdicts):")
    listed = flat(" ".join(lines[start + 1 : start + 3]))
    assert listed.startswith("flagd /flagd.evaluation.v1.Service/EventStream")
    assert "(grpc stream): 3 open, 1 failed, median 41.2 s, longest 49.0 s" in listed
    assert "\x1b" not in text
    assert max(len(line) for line in lines) <= 80
    table = next(i for i, line in enumerate(lines) if line.startswith("endpoint "))
    assert table < start < next(i for i, line in enumerate(lines) if line.startswith("input:"))
