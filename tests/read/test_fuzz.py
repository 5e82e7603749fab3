"""Fuzzing the readers with damaged real-shaped files (issue 13): whatever the damage,
reading never raises, memory stays bounded by the limits, and every record the damage
did not touch is still read.

Hypothesis builds a file of whole records (JSON lines, or Collector-framed protobuf),
damages some of them (truncation, spliced bytes, flipped bytes, a cut front, junk lines,
an over-long line, a lost newline), optionally compresses the result, and reads it.
``max_examples`` keeps the run to seconds in CI; ``LEDGER_FUZZ_EXAMPLES=5000`` runs it
longer locally. The first runs found one bug: a string that is not UTF-8 made msgspec
raise UnicodeDecodeError, which lost the whole file (now one skipped line).
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import tracemalloc
from pathlib import Path

import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from latency_ledger.read import ReadLimits, ReadStats, read_traces

T0 = 1_700_000_000_000_000_000
MAX_LINE = 1 << 10  # above a record (~320 bytes), small enough to repr a failing case
LIMITS = ReadLimits(max_line_bytes=MAX_LINE, max_file_bytes=1 << 22)
EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "300"))


def _record(n: int) -> bytes:
    span = {
        "traceId": f"{n + 1:032x}",
        "spanId": f"{n + 1:016x}",
        "name": f"GET /r{n}",
        "kind": 2,
        "startTimeUnixNano": str(T0 + n * 1000),
        "endTimeUnixNano": str(T0 + n * 1000 + 500),
        "attributes": [{"key": "http.route", "value": {"stringValue": f"/r{n}"}}],
    }
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def _message(n: int) -> bytes:
    data = TracesData()
    s = data.resource_spans.add().scope_spans.add().spans.add()
    s.trace_id = (n + 1).to_bytes(16, "big")
    s.span_id = (n + 1).to_bytes(8, "big")
    s.name = f"op{n}"
    s.start_time_unix_nano = T0 + n
    s.end_time_unix_nano = T0 + n + 10
    return data.SerializeToString()


@st.composite
def _damage(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "splice", "flip", "cut_front", "huge", "junk"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if kind == "splice":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if kind == "cut_front":
        return data[draw(st.integers(1, len(data))) :]
    if kind == "huge":
        return b"x" * (MAX_LINE * draw(st.integers(1, 8)))
    return draw(st.sampled_from([b"null", b"true", b"12", b"hello: world", b"# note", b"{"]))


@st.composite
def damaged_json_lines(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    """A JSON-lines file with some lines damaged; the trace ids of the intact ones."""
    count = draw(st.integers(1, 12))
    damaged = draw(st.sets(st.integers(0, count - 1), max_size=count))
    lines: list[bytes] = []
    intact: set[str] = set()
    for n in range(count):
        record = _record(n)
        if n in damaged:
            lines.append(draw(_damage(record)))
        else:
            lines.append(record)
            intact.add(f"{n + 1:032x}")
    # A lost newline merges two lines: both count as damaged.
    if count > 1 and draw(st.booleans()):
        at = draw(st.integers(0, count - 2))
        intact -= {f"{at + 1:032x}", f"{at + 2:032x}"}
        lines[at : at + 2] = [lines[at] + lines[at + 1]]
    separator = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n  \n"]))
    return separator.join(lines) + b"\n", intact


def _read(data: bytes, name: str) -> tuple[set[str], ReadStats, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        stats = ReadStats()
        tracemalloc.start()
        try:
            found = {t.trace_id for t in read_traces([path], stats=stats, limits=LIMITS)}
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # Every problem is one line that names the file (and its place).
    assert all("\n" not in p and p.startswith(str(path)) for p in stats.problems)
    return found, stats, peak


def _memory_bound(data: bytes) -> int:
    # The file (documents are read whole), a few line buffers, decoder overhead.
    return 4 * len(data) + 8 * MAX_LINE + (4 << 20)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_json_lines(), st.sampled_from(["plain", "gzip", "zstd"]))
def test_damaged_json_lines_keep_their_intact_records(
    case: tuple[bytes, set[str]], packing: str
) -> None:
    data, intact = case
    if packing == "gzip":
        packed = gzip.compress(data)
    elif packing == "zstd":
        packed = zstandard.ZstdCompressor().compress(data)
    else:
        packed = data
    found, stats, peak = _read(packed, "t.jsonl")
    assert intact <= found, (stats.problems, sorted(intact - found))
    assert peak < _memory_bound(data)


@settings(
    max_examples=EXAMPLES * 2 // 3, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.data())
def test_damaged_protobuf_stream_keeps_what_its_framing_allows(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 8))
    messages = [_message(n) for n in range(count)]
    broken = data.draw(st.integers(0, count - 1))
    body = data.draw(_damage(messages[broken]))
    framed = b""
    for n, m in enumerate(messages):
        if n == broken:
            m = body
        framed += len(m).to_bytes(4, "big") + m
    if data.draw(st.booleans()):
        framed = framed[: data.draw(st.integers(0, len(framed)))]  # a crash mid-write
        cut = True
    else:
        cut = False
    found, stats, peak = _read(framed, "t.pb")
    if not cut and framed[4:5] == b"\x0a":
        # Framing intact: every other message is read.
        expected = {f"{n + 1:032x}" for n in range(count) if n != broken}
        assert expected <= found, stats.problems
    assert peak < _memory_bound(framed)


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_protobuf_framing_damaged_anywhere_loses_only_the_damaged_messages(
    data: st.DataObject,
) -> None:
    """Junk between frames, a corrupt length prefix, a stream cut at the front: reading
    resumes at the next whole frame, so every message the damage did not touch is read."""
    count = data.draw(st.integers(2, 8))
    intact: set[str] = set()
    stream = b""
    for n in range(count):
        body = _message(n)
        header = len(body).to_bytes(4, "big")
        if data.draw(st.booleans()):
            stream += data.draw(st.binary(min_size=1, max_size=40))  # junk before it
        if data.draw(st.integers(0, 3)) == 0:
            header = data.draw(st.binary(min_size=4, max_size=4))  # its length damaged
            if header == len(body).to_bytes(4, "big"):
                intact.add(f"{n + 1:032x}")
        else:
            intact.add(f"{n + 1:032x}")
        stream += header + body
    if data.draw(st.booleans()):  # cut at the front, inside the first frame
        first = 4 + len(_message(0))
        cut = data.draw(st.integers(1, first - 1))
        stream = stream[cut:]
        intact.discard(f"{1:032x}")
    # a stream that starts like another shape (a compressor's magic, a JSON document)
    # is read as that shape, rightly
    assume(not stream.startswith((b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"{", b"[", b"\xef\xbb\xbf")))
    found, stats, peak = _read(stream, "t.pb")
    assert intact <= found, (stats.problems, sorted(intact - found))
    assert peak < _memory_bound(stream)
