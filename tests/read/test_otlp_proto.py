"""OTLP protobuf: one message, the Collector's length-prefixed stream, text format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import text_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status, TracesData

from latency_ledger.model import Span, SpanKind, Trace
from latency_ledger.read import ReadStats, read_traces

TRACE = "0af7651916cd43dd8448eb211c80319c"


def message(*spans: dict[str, Any], service: str = "shop") -> TracesData:
    data = TracesData()
    rs = data.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key = "service.name"
    kv.value.string_value = service
    scope = rs.scope_spans.add()
    for fields in spans:
        s = scope.spans.add()
        s.trace_id = bytes.fromhex(fields.get("trace_id", TRACE))
        s.span_id = bytes.fromhex(fields["span_id"])
        s.parent_span_id = bytes.fromhex(fields.get("parent", ""))
        s.name = fields.get("name", "op")
        s.kind = fields.get("kind", PbSpan.SPAN_KIND_INTERNAL)
        s.start_time_unix_nano = fields.get("start", 1_000)
        s.end_time_unix_nano = fields.get("end", 2_000)
        if fields.get("error"):
            s.status.code = Status.STATUS_CODE_ERROR
    return data


def framed(*messages: TracesData) -> bytes:
    out = b""
    for m in messages:
        body = m.SerializeToString()
        out += len(body).to_bytes(4, "big") + body
    return out


def read(path: Path) -> tuple[list[Trace], ReadStats]:
    stats = ReadStats()
    return list(read_traces([path], stats=stats)), stats


def test_single_message_with_every_attribute_type(tmp_path: Path) -> None:
    data = message({"span_id": "00000000000000a1", "kind": PbSpan.SPAN_KIND_SERVER, "error": True})
    attrs = data.resource_spans[0].scope_spans[0].spans[0].attributes
    for key, setter in [
        ("s", lambda v: setattr(v, "string_value", "text")),
        ("i", lambda v: setattr(v, "int_value", -7)),
        ("d", lambda v: setattr(v, "double_value", 0.25)),
        ("b", lambda v: setattr(v, "bool_value", True)),
        ("bytes", lambda v: setattr(v, "bytes_value", b"\x01\xff")),
        ("arr", lambda v: v.array_value.values.add().__setattr__("int_value", 3)),
        ("kv", lambda v: v.kvlist_value.values.add().__setattr__("key", "k")),
    ]:
        kv = attrs.add()
        kv.key = key
        setter(kv.value)
    attrs.add().key = "unset"
    path = tmp_path / "one.binpb"
    path.write_bytes(data.SerializeToString())
    traces, stats = read(path)
    assert traces == [
        Trace(
            trace_id=TRACE,
            spans=(
                Span(
                    trace_id=TRACE,
                    span_id="00000000000000a1",
                    parent_span_id="",
                    name="op",
                    kind=SpanKind.SERVER,
                    start_ns=1_000,
                    end_ns=2_000,
                    is_error=True,
                    attributes={
                        "s": "text",
                        "i": -7,
                        "d": 0.25,
                        "b": True,
                        "bytes": "01ff",
                        "arr": (3,),
                        "kv": (("k", None),),
                        "unset": None,
                    },
                    service="shop",
                    resource={"service.name": "shop"},
                ),
            ),
        )
    ]
    assert (stats.files, stats.spans, dict(stats.skipped)) == (1, 1, {})


def test_export_request_and_traces_data_are_the_same_bytes(tmp_path: Path) -> None:
    data = message({"span_id": "00000000000000a1"})
    request = ExportTraceServiceRequest()
    request.ParseFromString(data.SerializeToString())
    path = tmp_path / "req.pb"
    path.write_bytes(request.SerializeToString())
    traces, _ = read(path)
    assert [s.span_id for s in traces[0].spans] == ["00000000000000a1"]


def test_length_prefixed_stream_of_two_messages_joins_the_trace(tmp_path: Path) -> None:
    child = message({"span_id": "00000000000000b2", "parent": "00000000000000b1"})
    root = message({"span_id": "00000000000000b1", "kind": PbSpan.SPAN_KIND_SERVER})
    path = tmp_path / "traces.proto"
    path.write_bytes(framed(child, root))
    traces, stats = read(path)
    assert len(traces) == 1
    assert [s.span_id for s in traces[0].spans] == ["00000000000000b2", "00000000000000b1"]
    assert traces[0].spans[0].parent_span_id == "00000000000000b1"
    assert (stats.spans, stats.traces, dict(stats.skipped)) == (2, 1, {})


def test_truncated_stream_keeps_the_whole_messages(tmp_path: Path) -> None:
    first = message({"span_id": "00000000000000c1"})
    second = message({"span_id": "00000000000000c2"})
    data = framed(first, second)
    path = tmp_path / "cut.proto"
    path.write_bytes(data[:-5])
    traces, stats = read(path)
    assert [s.span_id for t in traces for s in t.spans] == ["00000000000000c1"]
    assert dict(stats.skipped) == {"truncated_message": 1}
    offset = 4 + len(first.SerializeToString())
    assert stats.problems[0].startswith(f"{path}:message 2 (byte {offset}): truncated")


def test_bad_spans_in_protobuf(tmp_path: Path) -> None:
    data = message(
        {"span_id": "00000000000000d1"},
        {"span_id": "00000000000000d2", "end": 0},
        {"span_id": "00000000000000d3", "start": 5_000},
        {"span_id": "0000000000000000"},
    )
    path = tmp_path / "bad.pb"
    path.write_bytes(data.SerializeToString())
    traces, stats = read(path)
    assert [s.span_id for t in traces for s in t.spans] == ["00000000000000d1"]
    assert dict(stats.skipped) == {
        "span_without_end_time": 1,
        "end_before_start": 1,
        "invalid_id": 1,
    }


def test_text_format(tmp_path: Path) -> None:
    data = message({"span_id": "00000000000000e1", "kind": PbSpan.SPAN_KIND_CLIENT})
    path = tmp_path / "trace.protobuf-text"
    path.write_text("# a comment\n" + text_format.MessageToString(data))
    traces, stats = read(path)
    [span] = traces[0].spans
    assert (span.span_id, span.kind, span.service) == ("00000000000000e1", SpanKind.CLIENT, "shop")
    assert dict(stats.skipped) == {}


def test_bad_text_format_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.txtpb"
    path.write_text("resource_spans { nonsense: 1 }\n")
    traces, stats = read(path)
    assert traces == []
    assert dict(stats.skipped) == {"not_trace_data": 1}
    assert stats.problems[0].startswith(f"{path}: not OTLP protobuf text")


def _ids(traces: list[Trace]) -> list[str]:
    return sorted(s.span_id for t in traces for s in t.spans)


FOUR = [message({"span_id": f"00000000000000d{n}", "trace_id": f"{n + 1:032x}"}) for n in range(4)]


def test_stream_cut_at_the_front_reads_every_whole_message_after(tmp_path: Path) -> None:
    data = framed(*FOUR)
    first = 4 + len(FOUR[0].SerializeToString())
    for cut in (1, 3, 4, 5, first - 1):  # inside the first frame: its header or its message
        path = tmp_path / f"cut{cut}.pb"
        path.write_bytes(data[cut:])
        traces, stats = read(path)
        assert _ids(traces) == [f"00000000000000d{n}" for n in (1, 2, 3)], (cut, stats.problems)
        # one line: the damaged start, and where reading resumed
        assert len(stats.problems) == 1, stats.problems
        assert stats.problems[0].endswith(
            (
                f"resumed at byte {first - cut}",
                f"skipped {first - cut} bytes before byte {first - cut}",
            )
        ), stats.problems


def test_junk_between_messages_and_a_corrupt_length_lose_only_their_stretch(
    tmp_path: Path,
) -> None:
    parts = [framed(m) for m in FOUR]
    junk = b"\x00\x00\x01\x0a\x0a garbage \xff\xfe"
    corrupt = b"\x7f\xff\xff\xff" + parts[2][4:]  # message 3's length prefix is damaged
    path = tmp_path / "damaged.pb"
    path.write_bytes(parts[0] + junk + parts[1] + corrupt + parts[3])
    traces, stats = read(path)
    assert _ids(traces) == ["00000000000000d0", "00000000000000d1", "00000000000000d3"]
    # one line per damaged stretch, saying where reading resumed
    assert len(stats.problems) == 2, stats.problems
    second = len(parts[0])
    assert stats.problems[0].startswith(f"{path}:message 2 (byte {second}): ")
    assert stats.problems[0].endswith(f"; resumed at byte {second + len(junk)}")
    assert "length prefix 2147483647 is not plausible; resumed at byte" in stats.problems[1]


def test_binary_junk_is_still_not_trace_data(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    # frame-like bytes (0, length, 0x0a, a fitting field) that hold no message
    path.write_bytes(b"\x01\x02" + b"\x00\x00\x00\x09\x0a\x03\x0a\x01\x00\xff\xff\xff\xff" * 50)
    traces, stats = read(path)
    assert traces == []
    assert stats.skipped["not_trace_data"] == 1
    assert len(stats.problems) == 1
    assert "not trace data" in stats.problems[0]
