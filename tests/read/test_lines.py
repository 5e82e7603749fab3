"""JSON text -> units: damaged starts, over-long lines, blank storms (issue 13, defects 4, 7)."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard

from latency_ledger.read import ReadLimits, ReadStats, read_traces

T0 = 1_700_000_000_000_000_000


def line(n: int) -> str:
    """A whole record: one request of one span, trace id n."""
    span = {
        "traceId": f"{n:032x}",
        "spanId": f"{n:016x}",
        "name": "GET /x",
        "kind": 2,
        "startTimeUnixNano": str(T0 + n),
        "endTimeUnixNano": str(T0 + n + 5_000_000),
    }
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


def read(path: Path, **limits: Any) -> tuple[set[int], ReadStats]:
    stats = ReadStats()
    traces = read_traces([path], stats=stats, limits=ReadLimits(**limits))
    return {int(t.trace_id, 16) for t in traces}, stats


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(line(1)[40:], id="cut at the front"),
        pytest.param("exported by collector 0.98 at 10:00:00", id="a text line"),
        pytest.param("Note: a preamble", id="a preamble that looks like proto text"),
        pytest.param(line(1)[40:] + "\n" + line(1)[:50], id="two broken lines"),
        pytest.param("null", id="null"),
        pytest.param("true", id="true"),
        pytest.param("12345", id="a bare number"),
    ],
)
def test_a_damaged_start_loses_only_itself(tmp_path: Path, start: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(start + "\n" + "\n".join(line(n) for n in range(2, 7)) + "\n")
    found, stats = read(path)
    assert found == {2, 3, 4, 5, 6}
    broken = start.count("\n") + 1
    assert sum(stats.skipped.values()) == broken
    # Every skipped line is named with its place.
    assert [p.split(": ", 1)[0] for p in stats.problems] == [
        f"{path}:{n}" for n in range(1, broken + 1)
    ]


def test_a_long_damaged_start_is_one_region_with_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    junk = [f"junk {i}" for i in range(40)]
    path.write_text("\n".join([*junk, "", line(7), line(8)]) + "\n")
    found, stats = read(path)
    assert found == {7, 8}
    assert stats.skipped["invalid_json_line"] == 40
    assert stats.problems[-1].startswith(f"{path}:1: lines 1-40 hold no whole JSON record")
    assert "24 more lines skipped" in stats.problems[-1]


def test_text_without_a_record_is_not_trace_data(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("# Notes\n\n" + '{"key": "service.name"}\n' * 3)
    found, stats = read(path)
    assert found == set()
    assert stats.problems == [f"{path}: not trace data (neither OTLP JSON nor protobuf)"]


def test_binary_junk_before_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(b"\x00\x13\xff\x01junk\n" + (line(3) + "\n" + line(4) + "\n").encode())
    found, stats = read(path)
    assert found == {3, 4}
    assert sum(stats.skipped.values()) == 1


def test_a_pretty_document_is_still_one_document(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    doc = json.loads(line(5))
    # A one-line attribute object inside: whole JSON, but not a record.
    doc["resourceSpans"][0]["resource"] = {
        "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
    }
    text = json.dumps(doc, indent=2).replace(
        '{\n            "key": "service.name",\n            "value": {\n              '
        '"stringValue": "svc"\n            }\n          }',
        '{"key": "service.name", "value": {"stringValue": "svc"}}',
    )
    assert '{"key": "service.name", "value": {"stringValue": "svc"}}\n' in text
    path.write_text(text)
    found, stats = read(path)
    assert found == {5}
    assert not stats.skipped


def test_a_line_past_the_limit_is_skipped_unread(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(line(1) + "\n" + " " * 5000 + line(2) + "\n" + line(3) + "\n")
    found, stats = read(path, max_line_bytes=1000)
    assert found == {1, 3}
    assert dict(stats.skipped) == {"line_too_long": 1}
    assert stats.problems == [
        f"{path}:2: line of 5,{len(line(2)) + 1:03d} bytes skipped (longer than "
        "max_line_bytes=1,000)"
    ]


def test_a_decompression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.zst"
    body = (line(1) + "\n").encode() + b" " * (64 << 20) + b"\n" + (line(2) + "\n").encode()
    path.write_bytes(zstandard.ZstdCompressor().compress(body))
    assert path.stat().st_size < 64 << 10
    found, stats = read(path, max_file_bytes=1 << 20)
    assert found == {1}
    assert stats.skipped["file_too_large"] == 1
    assert f"{path}: decompresses to more than max_file_bytes=1,048,576 bytes" in "\n".join(
        stats.problems
    )


def test_a_file_exactly_at_the_limit_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    body = (line(1) + "\n" + line(2) + "\n").encode()
    path.write_bytes(gzip.compress(body))
    found, stats = read(path, max_file_bytes=len(body))
    assert found == {1, 2}
    assert not stats.skipped


def test_a_storm_of_newlines_costs_what_decompressing_it_costs(tmp_path: Path) -> None:
    # 256 MiB of newlines in a 25 KB zstd file; before the fix each blank line was one
    # Python iteration (~410 s for 2 GiB). The reference is decompressing the same file
    # in the same run, so a loaded machine slows both.
    path = tmp_path / "t.jsonl.zst"
    body = (line(1) + "\n").encode() + b"\n" * (256 << 20) + (line(2) + "\n").encode()
    path.write_bytes(zstandard.ZstdCompressor().compress(body))
    started = time.perf_counter()
    with path.open("rb") as f, zstandard.ZstdDecompressor().stream_reader(f) as r:
        while r.read(1 << 16):
            pass
    reference = time.perf_counter() - started
    started = time.perf_counter()
    found, stats = read(path)
    took = time.perf_counter() - started
    assert found == {1, 2}
    assert not stats.skipped
    assert took < 5 * reference + 1.0, (took, reference)


def test_line_numbers_survive_blank_runs(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(line(1) + "\n" + "\n \t\n" * 1000 + "{broken\n" + line(2) + "\n")
    found, stats = read(path)
    assert found == {1, 2}
    assert stats.problems[0].startswith(f"{path}:2002: invalid JSON")


def _jaeger_trace(n: int) -> dict[str, Any]:
    span = {
        "traceID": f"{n:x}",
        "spanID": f"{n:x}",
        "operationName": "GET /x",
        "startTime": T0 // 1000 + n,
        "duration": 5000,
        "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
    }
    return {"traceID": f"{n:x}", "spans": [span], "processes": {}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '{"data": [\n' + ",\n".join(json.dumps(_jaeger_trace(n)) for n in (1, 2)) + "\n]}\n",
            {1, 2},
            id="Jaeger download, a trace per line",
        ),
        pytest.param('{"data": [\n' + json.dumps(_jaeger_trace(1)) + "\n]}\n", {1}, id="one trace"),
        pytest.param(
            "[\n" + ",\n".join(json.dumps(_jaeger_trace(n)["spans"][0]) for n in (1, 2)) + "\n]",
            {1, 2},
            id="Jaeger span list, a span per line",
        ),
    ],
)
def test_a_document_with_a_record_per_line_is_one_document(
    tmp_path: Path, text: str, expected: set[int]
) -> None:
    # Issue 10: the last element's line is a whole JSON object with a trace key, and read
    # as a JSON line it made the rest "damaged": three misleading errors, no spans.
    path = tmp_path / "j.json"
    path.write_text(text)
    found, stats = read(path)
    assert found == expected
    assert (dict(stats.skipped), stats.problems) == ({}, [])


def test_jaeger_lines_after_a_damaged_document_start(tmp_path: Path) -> None:
    # The first line opens a document, and one more Jaeger trace line would still fit in
    # it; the next cannot: the damage is the first line only.
    path = tmp_path / "j.jsonl"
    path.write_text('{"x": [\n' + "\n".join(json.dumps(_jaeger_trace(n)) for n in (1, 2, 3)) + "\n")
    found, stats = read(path)
    assert found == {1, 2, 3}
    assert dict(stats.skipped) == {"invalid_json_line": 1}
    assert stats.problems[0].startswith(f"{path}:1: invalid JSON")
