"""Joining spans into traces, and the memory bound on traces in flight."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from latency_ledger.model import Span, SpanKind
from latency_ledger.read import ReadStats, read_traces
from latency_ledger.read.assemble import Assembler
from latency_ledger.read.values import SpanRow


def row(trace: str, n: int) -> SpanRow:
    return SpanRow(trace * 32, f"{n:016x}", "", f"s{n}", SpanKind.INTERNAL, 1, 2, False, {}, "svc")


def span(trace: str, n: int) -> Span:
    return Span(
        trace_id=trace * 32,
        span_id=f"{n:016x}",
        parent_span_id="",
        name=f"s{n}",
        kind=SpanKind.INTERNAL,
        start_ns=1,
        end_ns=2,
        is_error=False,
        attributes={},
        service="svc",
    )


def test_a_trace_goes_out_after_idle_spans_without_one_of_its_own() -> None:
    stats = ReadStats()
    assembler = Assembler(stats, idle_spans=2)
    a1, b1, a2, c1, d1, e1 = (
        row("a", 1),
        row("b", 2),
        row("a", 3),
        row("c", 4),
        row("d", 5),
        row("e", 6),
    )
    # counts: a1=1 b1=2 a2=3 c1=4 d1=5 e1=6. b is idle from 4 on (last seen at 2),
    # a from 5 (last seen at 3), c from 6.
    assert assembler.add([a1, b1, a2]) == []
    out = assembler.add([c1])
    assert [t.trace_id[0] for t in out] == ["b"]
    out = assembler.add([d1, e1])
    assert [(t.trace_id[0], t.spans) for t in out] == [
        ("a", (span("a", 1), span("a", 3))),
        ("c", (span("c", 4),)),
    ]
    rest = list(assembler.finish())
    assert [t.trace_id[0] for t in rest] == ["d", "e"]
    assert (stats.spans, stats.traces, stats.max_in_flight) == (6, 5, 3)
    assert dict(stats.skipped) == {}


def test_a_late_span_starts_a_new_partial_trace_and_is_counted() -> None:
    stats = ReadStats()
    assembler = Assembler(stats, idle_spans=1)
    out = assembler.add([row("a", 1), row("b", 2), row("a", 3), row("a", 4)])
    out += list(assembler.finish())
    assert [(t.trace_id[0], [s.name for s in t.spans]) for t in out] == [
        ("a", ["s1"]),
        ("b", ["s2"]),
        ("a", ["s3", "s4"]),
    ]
    assert stats.skipped["late_span"] == 2  # every late span counts, not once per trace
    assert stats.traces == 3


def test_late_span_memory_is_a_window() -> None:
    stats = ReadStats()
    assembler = Assembler(stats, idle_spans=1, remember=1)
    assembler.add([row("a", 1), row("b", 2), row("c", 3), row("a", 4)])
    assert stats.skipped["late_span"] == 0  # "a" was forgotten when "b" went out


def _line(*spans: tuple[str, str]) -> str:
    body = [
        {
            "traceId": trace,
            "spanId": span_id,
            "kind": 1,
            "startTimeUnixNano": "10",
            "endTimeUnixNano": "20",
        }
        for trace, span_id in spans
    ]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": body}]}]}) + "\n"


def test_a_trace_split_across_lines_and_files_is_one_trace(tmp_path: Path) -> None:
    a, b = "a" * 32, "b" * 32
    (tmp_path / "x.jsonl.1").write_text(_line((a, "01" * 8), (b, "02" * 8)) + _line((a, "03" * 8)))
    (tmp_path / "x.jsonl").write_text(_line((b, "04" * 8), (a, "05" * 8)))
    stats = ReadStats()
    traces = list(read_traces([tmp_path], stats=stats))
    got = {t.trace_id: [s.span_id[:2] for s in t.spans] for t in traces}
    # x.jsonl.1 was written before x.jsonl, so its spans come first.
    assert got == {a: ["01", "03", "05"], b: ["02", "04"]}
    assert (stats.files, stats.spans, stats.traces) == (2, 5, 2)


def test_memory_stays_bounded_by_traces_in_flight(tmp_path: Path, gen: ModuleType) -> None:
    path = tmp_path / "long.jsonl"
    written = gen.write_otlp_jsonl(path, requests=400, spans_per_request=6, seed=3)
    stats = ReadStats()
    seen = sum(len(t.spans) for t in read_traces([path], stats=stats, idle_spans=10))
    assert seen == written == stats.spans == 2400
    # At most the traces touched within the last 10 spans, plus the one being opened.
    assert stats.max_in_flight <= 11
    # Requests split over lines by the generator arrive too late for a 10-span window.
    assert stats.traces > 400
    assert stats.skipped["late_span"] == stats.traces - 400


def test_default_window_joins_every_generated_request(tmp_path: Path, gen: ModuleType) -> None:
    path = tmp_path / "gen.jsonl"
    written = gen.write_otlp_jsonl(path, requests=300, spans_per_request=5, seed=11)
    stats = ReadStats()
    traces = list(read_traces([path], stats=stats))
    assert written == 1500
    assert len(traces) == stats.traces == 300
    assert all(len(t.spans) == 5 for t in traces)
    assert dict(stats.skipped) == {}
