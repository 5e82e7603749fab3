"""Paths, compression and shapes: what reaches the decoders, and what never does."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import zstandard

from latency_ledger.model import Trace
from latency_ledger.read import ReadStats, expand_paths, read_traces, total_input_bytes


def line(trace_id: str, span_id: str = "00000000000000a1") -> bytes:
    span = {
        "traceId": trace_id,
        "spanId": span_id,
        "kind": 2,
        "startTimeUnixNano": "100",
        "endTimeUnixNano": "200",
    }
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode() + b"\n"


def read(paths: list[Any], **kwargs: Any) -> tuple[list[Trace], ReadStats]:
    stats = ReadStats()
    return list(read_traces(paths, stats=stats, **kwargs)), stats


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_logrotate_files_come_oldest_first(tmp_path: Path) -> None:
    names = ["x.jsonl", "x.jsonl.1", "x.jsonl.2.gz", "x.jsonl.10", "a.jsonl"]
    for name in names:
        touch(tmp_path / name)
    got = [p.name for p in expand_paths([tmp_path])]
    assert got == ["a.jsonl", "x.jsonl.10", "x.jsonl.2.gz", "x.jsonl.1", "x.jsonl"]


def test_collector_rotation_backups_come_before_the_live_file(tmp_path: Path) -> None:
    # lumberjack (the Collector fileexporter's rotation) names backups <name>-<time>.<ext>
    names = ["t.json", "t-2024-05-01T10-00-00.000.json", "t-2024-04-30T23-59-59.000.json"]
    for name in names:
        touch(tmp_path / name)
    got = [p.name for p in expand_paths([tmp_path / "*.json"])]
    assert got == ["t-2024-04-30T23-59-59.000.json", "t-2024-05-01T10-00-00.000.json", "t.json"]


def test_numbers_in_names_sort_as_numbers(tmp_path: Path) -> None:
    for name in ["part-10.jsonl", "part-9.jsonl", "part-1.jsonl"]:
        touch(tmp_path / name)
    assert [p.name for p in expand_paths([tmp_path])] == [
        "part-1.jsonl",
        "part-9.jsonl",
        "part-10.jsonl",
    ]


def test_directories_are_walked_skipping_hidden_entries(tmp_path: Path) -> None:
    touch(tmp_path / "d/a.jsonl")
    touch(tmp_path / "d/sub/b.jsonl")
    touch(tmp_path / "d/.hidden.jsonl")
    touch(tmp_path / "d/.git/c.jsonl")
    got = expand_paths([tmp_path / "d", tmp_path / "d/a.jsonl"])  # a.jsonl listed once
    assert got == [tmp_path / "d/a.jsonl", tmp_path / "d/sub/b.jsonl"]


def test_directory_and_glob_are_read(tmp_path: Path) -> None:
    touch(tmp_path / "dir/one.jsonl", line("1" * 32))
    touch(tmp_path / "dir/nested/two.jsonl", line("2" * 32))
    touch(tmp_path / "glob/three.jsonl", line("3" * 32))
    touch(tmp_path / "glob/skip.txt", line("4" * 32))
    traces, stats = read([tmp_path / "dir", str(tmp_path / "glob" / "*.jsonl")])
    assert sorted(t.trace_id[0] for t in traces) == ["1", "2", "3"]
    assert stats.files == 3


def test_paths_matching_nothing_are_problem_lines(tmp_path: Path) -> None:
    (tmp_path / "empty_dir").mkdir()
    touch(tmp_path / "ok.jsonl", line("1" * 32))
    missing = tmp_path / "missing.jsonl"
    pattern = str(tmp_path / "nothing-*.jsonl")
    traces, stats = read([missing, pattern, tmp_path / "empty_dir", tmp_path / "ok.jsonl"])
    assert len(traces) == 1
    assert stats.files == 1
    assert dict(stats.skipped) == {"unreadable_file": 3}
    assert sorted(stats.problems) == sorted(
        [
            f"{missing}: no such file or directory",
            f"{pattern}: matches no file",
            f"{tmp_path / 'empty_dir'}: directory holds no files",
        ]
    )


@pytest.mark.parametrize("name", ["t.jsonl.gz", "t.jsonl"])  # magic bytes, not the name
def test_gzip(tmp_path: Path, name: str) -> None:
    path = touch(tmp_path / name, gzip.compress(line("1" * 32) + line("2" * 32)))
    traces, stats = read([path])
    assert sorted(t.trace_id[0] for t in traces) == ["1", "2"]
    assert stats.bytes_read == path.stat().st_size  # compressed bytes: what progress counts


@pytest.mark.parametrize("name", ["t.jsonl.zst", "t.bin"])
def test_zstd_across_frames(tmp_path: Path, name: str) -> None:
    frames = zstandard.ZstdCompressor().compress(line("1" * 32))
    frames += zstandard.ZstdCompressor().compress(line("2" * 32))
    traces, stats = read([touch(tmp_path / name, frames)])
    assert sorted(t.trace_id[0] for t in traces) == ["1", "2"]
    assert dict(stats.skipped) == {}


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    body = b"".join(line(f"{i:032x}") for i in range(1, 2001))
    data = gzip.compress(body)
    path = touch(tmp_path / "cut.jsonl.gz", data[: len(data) * 3 // 4])
    traces, stats = read([path])
    assert 0 < len(traces) < 2000
    assert stats.skipped["unreadable_file"] == 1
    assert stats.problems[-1].startswith(f"{path}: read failed:")


def test_random_bytes_are_not_trace_data(tmp_path: Path) -> None:
    rng = random.Random(7)
    path = touch(tmp_path / "noise.bin", bytes(rng.getrandbits(8) for _ in range(4096)))
    traces, stats = read([path])
    assert (traces, stats.files, stats.spans) == ([], 1, 0)
    assert sum(stats.skipped.values()) == 1
    assert stats.problems[0].startswith(f"{path}: not")


def test_empty_and_blank_files(tmp_path: Path) -> None:
    empty = touch(tmp_path / "empty.jsonl")
    blank = touch(tmp_path / "blank.jsonl", b"\n  \n\t\n")
    traces, stats = read([empty, blank])
    assert (traces, stats.files) == ([], 2)
    assert dict(stats.skipped) == {"empty_file": 2}
    assert sorted(stats.problems) == [
        f"{blank}: empty file, no trace data",
        f"{empty}: empty file, no trace data",
    ]


def test_text_that_is_not_trace_data(tmp_path: Path) -> None:
    path = touch(tmp_path / "README.md", b"# Traces\n\nNothing to see.\n")
    traces, stats = read([path])
    assert traces == []
    assert stats.problems == [f"{path}: not trace data (neither OTLP JSON nor protobuf)"]


def test_progress_reports_add_up_to_the_total(tmp_path: Path) -> None:
    big = touch(tmp_path / "a.jsonl", b"".join(line(f"{i:032x}") for i in range(1, 3001)))
    zipped = touch(tmp_path / "b.jsonl.gz", gzip.compress(line("f" * 32)))
    # Refused after its first line: the unread rest is still reported to the bar.
    jaeger = touch(
        tmp_path / "c.json",
        b'{"data": [{"traceID": "1", "spans": []}]}\n' + b" " * 200_000 + b"\n",
    )
    total = total_input_bytes([tmp_path])
    assert total == sum(p.stat().st_size for p in (big, zipped, jaeger))
    calls: list[int] = []
    _, stats = read([tmp_path], on_bytes=calls.append)
    assert sum(calls) == total
    assert len(calls) > 3  # streamed in chunks, not once per file
    assert stats.bytes_read <= total


def test_unreadable_path_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads any file; a name too long still fails, with an OSError
        target: Path = tmp_path / ("x" * 300)
    else:
        target = touch(tmp_path / "locked.jsonl", line("1" * 32))
        target.chmod(0)
    traces, stats = read([target])
    assert traces == []
    assert stats.skipped["unreadable_file"] == 1
    assert stats.problems[0].startswith(f"{target}: cannot open: ")


def test_nul_byte_in_a_path_is_a_problem_not_an_exception() -> None:
    traces, stats = read(["bad\0name.jsonl"])
    assert traces == []
    assert dict(stats.skipped) == {"unreadable_file": 1}


def test_compressed_protobuf_stream_and_pretty_document(tmp_path: Path) -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

    message = TracesData()
    span = message.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("1" * 32)
    span.span_id = bytes.fromhex("2" * 16)
    span.start_time_unix_nano, span.end_time_unix_nano = 100, 200
    body = message.SerializeToString()
    stream = touch(tmp_path / "a.proto.gz", gzip.compress(len(body).to_bytes(4, "big") + body))
    pretty = json.dumps(json.loads(line("3" * 32)), indent=2).encode()
    doc = touch(tmp_path / "b.json.zst", zstandard.ZstdCompressor().compress(pretty))
    traces, stats = read([stream, doc])
    assert sorted(t.trace_id[0] for t in traces) == ["1", "3"]
    assert dict(stats.skipped) == {}


def test_windows_line_endings(tmp_path: Path) -> None:
    data = line("1" * 32).replace(b"\n", b"\r\n") + b"\r\n" + line("2" * 32).replace(b"\n", b"\r\n")
    traces, stats = read([touch(tmp_path / "crlf.jsonl", data)])
    assert sorted(t.trace_id[0] for t in traces) == ["1", "2"]
    assert dict(stats.skipped) == {}
