"""Telling shapes apart by content."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from latency_ledger.read.sniff import Shape, foreign_format, refusal, sniff


def _message(length_byte: int) -> bytes:
    """A real message whose first resource_spans entry is ``length_byte`` bytes long."""
    data = TracesData()
    rs = data.resource_spans.add()
    rs.schema_url = "x" * (length_byte - 2)  # field 3: tag, length, then the text
    encoded = data.SerializeToString()
    assert encoded[:2] == bytes([0x0A, length_byte])
    return encoded


@pytest.mark.parametrize(
    ("head", "shape"),
    [
        (b"", Shape.EMPTY),
        (b" \n\t\r\n", Shape.EMPTY),
        (b"\x1f\x8b\x08\x00", Shape.GZIP),
        (b"\x28\xb5\x2f\xfd\x00", Shape.ZSTD),
        (b'{"resourceSpans": []}', Shape.JSON),
        (b'\n\n  {"resourceSpans": []}', Shape.JSON),
        (b"[\n  {", Shape.JSON),
        (b'\xef\xbb\xbf{"a": 1}', Shape.JSON),
        (b"# proto-file: x\nresource_spans: [\n", Shape.PROTO_TEXT),
        (b"resource_spans {\n", Shape.PROTO_TEXT),
        (b"\x00\x00\x01\x00\x0a\xfd\x01", Shape.PROTO_STREAM),
        # Text is JSON to the sniffer: the JSON reader looks for a record past a damaged
        # start, and says "not trace data" when there is none.
        (b"# Title\n\nSome text.", Shape.JSON),
        (b'ceSpans": [{}]}\n{"resourceSpans": []}\n', Shape.JSON),  # cut at the front
        (b'null\n{"resourceSpans": []}\n', Shape.JSON),  # not the field `null` of proto text
        (b'true\n{"resourceSpans": []}\n', Shape.JSON),
        (b'Note: exported\n{"resourceSpans": []}\n', Shape.JSON),  # a preamble line
        (b'\x00\x07junk\x01\n{"resourceSpans": []}\n', Shape.JSON),  # binary junk first
        (b"\x00\x01\x02\x03\x04", Shape.UNKNOWN),
        # A whole first line of JSON, then damage (the reader keeps the intact records).
        (b'{"resourceSpans": []}\n\n\x00{"resourceSpans": []}\n', Shape.JSON),
    ],
)
def test_sniff(head: bytes, shape: Shape) -> None:
    assert sniff(head) is shape


@pytest.mark.parametrize("length", [0x7B, 0x5B, 0x20])  # '{', '[', ' ' after the 0x0a tag
def test_binary_message_that_looks_like_json_after_whitespace_is_protobuf(length: int) -> None:
    assert sniff(_message(length)) is Shape.PROTO


def test_foreign_formats() -> None:
    jaeger_trace = {"traceID": "1", "spans": [], "processes": {}}
    jaeger_span = {"traceID": "1", "spanID": "2", "operationName": "op"}
    v2_span = {"traceId": "AQ==", "spanId": "Ag==", "operationName": "op"}
    assert foreign_format({"data": [jaeger_trace]}) == "Jaeger JSON"
    assert foreign_format(jaeger_trace) == "Jaeger JSON"
    assert foreign_format([jaeger_span]) == "Jaeger JSON"
    assert foreign_format({"result": {"spans": [v2_span]}}) == "Jaeger JSON"
    zipkin = {"traceId": "1", "id": "2", "localEndpoint": {}}
    assert foreign_format([zipkin]) == "Zipkin JSON"
    assert foreign_format([[zipkin], [zipkin]]) == "Zipkin JSON"  # /api/v2/traces
    assert foreign_format([{"traceId": "1", "id": "2", "binaryAnnotations": []}]) == (
        "Zipkin v1 JSON"
    )
    v1_annotation = {"timestamp": 1, "value": "sr", "endpoint": {"serviceName": "a"}}
    assert foreign_format([{"traceId": "1", "id": "2", "annotations": [v1_annotation]}]) == (
        "Zipkin v1 JSON"
    )
    assert foreign_format({"resourceSpans": []}) is None
    assert foreign_format({"result": {"resourceSpans": []}}) is None  # Jaeger api_v3: OTLP
    assert foreign_format([1, 2]) is None
    assert foreign_format({"data": []}) is None


def test_refusal_line() -> None:
    assert refusal("t.json", "Zipkin v1 JSON") == (
        "t.json: unsupported format: Zipkin v1 JSON "
        "(Zipkin v2 JSON is read: fetch it from Zipkin's /api/v2/trace/{id})"
    )


def test_json_lines_after_a_newline_and_binary_junk_are_not_protobuf() -> None:
    # Found by tests/read/test_fuzz.py: '\n' is protobuf's field-1 tag.
    assert sniff(b'\n\x00{"resourceSpans": []}\n{"resourceSpans": []}\n') is Shape.JSON


def test_json_lines_with_a_control_byte_further_on_are_json() -> None:
    # Found by tests/read/test_fuzz.py: a NUL on line 2 sent the whole file to "unknown".
    assert sniff(b'{"resourceSpans": []}\n\n\x00{"resourceSpans": []}\n') is Shape.JSON
