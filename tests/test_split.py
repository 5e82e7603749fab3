"""``--jobs N`` by byte ranges (split.py): each worker decodes its own share of the bytes,
and the report and the counters are still one process's.

Every input is built so a trace has spans on both sides of a cut, whichever line the cut
falls after (``_staggered``), and each test first checks the input has what it is about.
``ReadStats.ranges`` says whether the byte-range path gave the answer (the number of
ranges) or the input was analyzed another way (0: split by trace id, regrouped when out
of order); both must give one process's report.
"""

from __future__ import annotations

import importlib.util
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from latency_ledger.accumulate import build_report
from latency_ledger.analyze import AnalyzeOptions, analyze_share, default_rules
from latency_ledger.parallel import analyze_parallel
from latency_ledger.read import ReadLimits, ReadStats
from latency_ledger.read.ranges import plan_ranges
from latency_ledger.render.json import report_to_json
from latency_ledger.split import analyze_range

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = AnalyzeOptions(idle_spans=100)


_SPEC = importlib.util.spec_from_file_location("_gen", ROOT / "tests" / "read" / "gen.py")
assert _SPEC is not None
assert _SPEC.loader is not None
GEN = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(GEN)


def _requests(count: int, seed: int, start: int = GEN.START_NS) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    return [GEN._request(rng, start + i * 3_000_000, 6) for i in range(count)]


def _staggered(requests: list[list[dict[str, Any]]]) -> list[bytes]:
    """Line i: the SERVER span of request i and the children of request i + 1."""
    lines = [GEN._line("shop", requests[0][:-1])]
    for i, spans in enumerate(requests):
        following = requests[i + 1][:-1] if i + 1 < len(requests) else []
        lines.append(GEN._line("shop", [spans[-1], *following]))
    return lines


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def _one_process(paths: list[Path], options: AnalyzeOptions) -> tuple[dict[str, Any], ReadStats]:
    acc, stats = analyze_share(paths, options, default_rules(), (0, 1))
    return report_to_json(build_report(acc, stats, options)), stats


def _jobs(
    paths: list[Path],
    options: AnalyzeOptions,
    jobs: int,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], ReadStats]:
    acc, stats = analyze_parallel(paths, options, default_rules(), jobs, on_bytes)
    return report_to_json(build_report(acc, stats, options)), stats


def _counters(stats: ReadStats) -> tuple[object, ...]:
    return (
        stats.files,
        stats.spans,
        stats.traces,
        stats.bytes_read,
        dict(stats.skipped),
        stats.problems,
        stats.problem_count,
        stats.fallback_units,
    )


def _sides(path: Path, jobs: int) -> list[bytes]:
    plan = plan_ranges([path], jobs, OPTIONS.limits)
    assert plan is not None
    data = path.read_bytes()
    return [data[r[0].start : r[-1].end] for r in plan]


@pytest.mark.parametrize("jobs", [2, 3])
def test_traces_crossing_the_cuts_are_joined(tmp_path: Path, jobs: int) -> None:
    requests = _requests(400, seed=1)
    path = _write(tmp_path / "staggered.jsonl", _staggered(requests))
    sides = _sides(path, jobs)
    crossing = [
        r[0]["traceId"]
        for r in requests
        if sum(r[0]["traceId"].encode() in side for side in sides) > 1
    ]
    assert len(crossing) == jobs - 1  # one trace per cut
    expected, one = _one_process([path], OPTIONS)
    told: list[int] = []
    got, stats = _jobs([path], OPTIONS, jobs, told.append)
    assert stats.ranges == jobs
    assert got == expected
    assert _counters(stats) == _counters(one)
    assert stats.traces == len(requests)
    assert sum(told) == path.stat().st_size  # progress: every byte once


def test_problems_are_counted_once_in_reading_order(tmp_path: Path) -> None:
    lines = _staggered(_requests(400, seed=2))
    for at in (3, 150, 250, 390):  # two in each half
        lines[at] = b'{"resourceSpans": [oops\n'
        lines[at + 2] = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}\n'
        lines[at + 4] = b'{"resourceLogs": []}\n'
    lines[200:200] = [b"\n", b"   \n", b"x" * 30_000 + b"\n"]  # blank lines, a too-long line
    path = _write(tmp_path / "bad.jsonl", lines)
    options = AnalyzeOptions(idle_spans=100, limits=ReadLimits(max_line_bytes=20_000))
    sides = _sides(path, 2)
    assert all(b"oops" in side for side in sides)
    expected, one = _one_process([path], options)
    assert one.problem_count == 4 * 2 + 1 + 1  # bad lines, a too-long line, logs lines
    assert any(":4: invalid JSON" in p for p in one.problems)
    got, stats = _jobs([path], options, 2)
    assert stats.ranges == 2
    assert _counters(stats) == _counters(one)
    assert got == expected


def test_a_trace_going_on_through_a_whole_range_is_one_trace(tmp_path: Path) -> None:
    requests = _requests(600, seed=3)
    rng = random.Random(3)
    long_id = "ab" * 16
    server = "cd" * 8
    start = GEN.START_NS
    lines = _staggered(requests)
    for i in range(0, len(lines) - 1, 10):  # a span of it every 10 lines, in every range
        child = GEN._span(rng, long_id, server, "work", 1, start + i, start + i + 5, {})
        head = b'"spans":['
        lines[i] = lines[i].replace(head, head + msgspec.json.encode(child) + b",", 1)
    end = start + 3_000_000 * 700
    root = GEN._span(rng, long_id, "", "GET /stream", 2, start, end, {}, span_id=server)
    lines.append(GEN._line("shop", [root]))
    path = _write(tmp_path / "long.jsonl", lines)
    assert all(long_id.encode() in side for side in _sides(path, 3))
    expected, one = _one_process([path], OPTIONS)
    assert not one.regrouped
    got, stats = _jobs([path], OPTIONS, 3)
    assert stats.ranges == 3
    assert got == expected
    assert _counters(stats) == _counters(one)


def test_a_trace_with_spans_at_both_ends_is_regrouped(tmp_path: Path) -> None:
    requests = _requests(400, seed=4)
    early = requests[5]
    requests[5] = early[:-1]  # its SERVER span moves to the end of the file
    lines = [*_staggered(requests), GEN._line("shop", [early[-1]])]
    path = _write(tmp_path / "late.jsonl", lines)
    sides = _sides(path, 2)
    tid = early[0]["traceId"].encode()
    assert tid in sides[0]
    assert tid in sides[1]
    expected, one = _one_process([path], OPTIONS)
    assert one.regrouped  # one process: a late span, then the input regrouped
    got, stats = _jobs([path], OPTIONS, 2)
    assert stats.ranges == 0
    assert got == expected


def test_a_time_the_lines_before_the_cut_refuse(tmp_path: Path) -> None:
    requests = _requests(200, seed=5)
    late = _requests(200, seed=6, start=1_000_000)  # 1970: implausible after 2023's spans
    path = _write(tmp_path / "times.jsonl", [*_staggered(requests), *_staggered(late)])
    assert re.search(rb'"startTimeUnixNano":"\d{7,9}"', _sides(path, 2)[1])
    expected, one = _one_process([path], OPTIONS)
    assert one.skipped["implausible_time"] > 0
    got, stats = _jobs([path], OPTIONS, 2)
    assert got == expected
    assert _counters(stats) == _counters(one)


def test_several_files_cut_into_ranges(tmp_path: Path) -> None:
    requests = _requests(600, seed=7)
    lines = _staggered(requests)
    paths = [
        _write(tmp_path / "a.jsonl", lines[:250]),
        _write(tmp_path / "b.jsonl", lines[250:330]),
        _write(tmp_path / "c.jsonl", lines[330:]),
    ]
    expected, one = _one_process(paths, OPTIONS)
    for jobs in (2, 3, 4):
        got, stats = _jobs(paths, OPTIONS, jobs)
        assert stats.ranges == jobs
        assert got == expected
        assert _counters(stats) == _counters(one)


def test_spans_spread_over_the_whole_file_are_regrouped(tmp_path: Path) -> None:
    spans = [span for r in _requests(300, seed=8) for span in r]
    random.Random(8).shuffle(spans)
    lines = [GEN._line("shop", spans[i : i + 5]) for i in range(0, len(spans), 5)]
    path = _write(tmp_path / "shuffled.jsonl", lines)
    expected, one = _one_process([path], OPTIONS)
    assert one.regrouped
    assert one.traces == 300
    for jobs in (2, 3):
        got, stats = _jobs([path], OPTIONS, jobs)
        assert stats.ranges == 0  # not by ranges: by trace id, regrouped
        assert stats.regrouped
        assert got == expected


def test_ranges_shorter_than_the_scan_window(tmp_path: Path) -> None:
    # default idle_spans (200,000): each scan reads the whole neighbouring range; only
    # the ids found on both sides are edges, the rest is booked where it was read
    path = _write(tmp_path / "staggered.jsonl", _staggered(_requests(300, seed=9)))
    options = AnalyzeOptions()
    expected, one = _one_process([path], options)
    got, stats = _jobs([path], options, 2)
    assert stats.ranges == 2
    assert got == expected
    assert _counters(stats) == _counters(one)
    plan = plan_ranges([path], 2, options.limits)
    assert plan is not None
    shares = [analyze_range(plan, k, options, default_rules()) for k in range(2)]
    assert [len(share.edges) for share in shares] == [1, 1]  # the trace across the cut
